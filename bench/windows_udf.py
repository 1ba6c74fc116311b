"""The churn-window featurization written the ways people write it in Python.

Shared by bench/windows_vs_pandas.py (one Python process) and
bench/windows_vs_pyspark.py (PySpark `applyInPandas`). Both functions implement the
semantics of issue 4 exactly as `dlprep windows` does, for W=14d, S=7d, P=1d, H=30d,
categories CATS and values VALUES with aggregations AGGS:

* `featurize_numpy`: one pass of numpy per window (np.bincount per step), the fastest
  version a pandas user would reasonably write;
* `featurize_pandas`: idiomatic pandas, as in the talk's grouped-map UDF: slice the
  group's frame per window and `groupby(step).agg(...)` / `crosstab` it.

Each returns rows (key, window_start, label, features float32[W/P * F], time-major).
"""
import numpy as np

DAY = 86400
W, S, P, H = 14 * DAY, 7 * DAY, DAY, 30 * DAY
STEPS = W // P
VALUES = ["amount", "duration"]
AGGS = ["sum", "mean", "max"]
CATS = ["call", "data", "sms", "support", "topup"]
F = 1 + len(CATS) + len(VALUES) * len(AGGS)


def _limit(churn, until):
    churned = churn is not None and not np.isnan(churn)
    return (min(until, churn) if churned else until), churned


def featurize_numpy(key, t, cat, vals, churn, until):
    """t: int64 epoch seconds sorted ascending; cat: object array; vals: name -> float
    array (NaN = null); churn: epoch seconds or NaN/None."""
    origin = (t.min() // P) * P
    limit, churned = _limit(churn, until)
    rows = []
    k = 0
    while origin + k * S + W <= limit:
        start = origin + k * S
        end = start + W
        m = (t >= start) & (t < end)
        step = (t[m] - start) // P
        feats = [np.bincount(step, minlength=STEPS)]
        for cname in CATS:
            feats.append(np.bincount(step[cat[m] == cname], minlength=STEPS))
        for v in VALUES:
            x = vals[v][m]
            ok = ~np.isnan(x)
            sums = np.bincount(step[ok], weights=x[ok], minlength=STEPS)
            cnt = np.bincount(step[ok], minlength=STEPS)
            for a in AGGS:
                if a == "sum":
                    feats.append(sums)
                elif a == "mean":
                    feats.append(np.divide(sums, cnt, out=np.zeros(STEPS), where=cnt > 0))
                else:
                    mx = np.full(STEPS, -np.inf)
                    np.maximum.at(mx, step[ok], x[ok])
                    feats.append(np.where(cnt > 0, mx, 0.0))
        label = int(churned and churn < end + H)
        rows.append((key, start, label, np.stack(feats, axis=1).astype(np.float32).ravel()))
        k += 1
    return rows


def featurize_pandas(g, key, churn, until):
    """g: the key's events as a DataFrame (ts int64 seconds, event_type, values),
    sorted by ts."""
    import pandas as pd

    t = g["ts"].to_numpy()
    origin = (t.min() // P) * P
    limit, churned = _limit(churn, until)
    rows = []
    steps = pd.RangeIndex(STEPS)
    k = 0
    while origin + k * S + W <= limit:
        start = origin + k * S
        end = start + W
        w = g[(g["ts"] >= start) & (g["ts"] < end)]
        step = (w["ts"] - start) // P
        parts = [w.groupby(step).size().reindex(steps, fill_value=0).rename("count")]
        ct = pd.crosstab(step, w["event_type"]).reindex(index=steps, columns=CATS,
                                                        fill_value=0)
        parts.append(ct.fillna(0).add_prefix("count_"))
        agg = w.groupby(step)[VALUES].agg(AGGS).reindex(steps)
        for v in VALUES:
            for a in AGGS:
                parts.append(agg[(v, a)].fillna(0.0).rename(f"{a}_{v}"))
        feats = pd.concat(parts, axis=1).to_numpy(dtype=np.float64)
        label = int(churned and churn < end + H)
        rows.append((key, start, label, feats.astype(np.float32).ravel()))
        k += 1
    return rows


def compare(got_rows, want_rows, rtol=1e-6):
    """Both: lists of (key, start, label, features). True when the window sets are equal
    and features agree within rtol (pandas sums with Kahan compensation, we do not)."""
    got = {(int(k), int(s)): (int(lab), np.asarray(f, dtype=np.float32))
           for k, s, lab, f in got_rows}
    want = {(int(k), int(s)): (int(lab), np.asarray(f, dtype=np.float32))
            for k, s, lab, f in want_rows}
    if got.keys() != want.keys():
        print(f"windows differ: {len(got.keys() - want.keys())} only in dlprep's output "
              f"(e.g. {sorted(got.keys() - want.keys())[:3]}), "
              f"{len(want.keys() - got.keys())} only in the other "
              f"(e.g. {sorted(want.keys() - got.keys())[:3]})")
        return False
    for kk, (lab, f) in want.items():
        glab, gf = got[kk]
        if glab != lab or gf.shape != f.shape or not np.allclose(gf, f, rtol=rtol, atol=1e-6):
            print(f"window {kk} differs: label {glab} vs {lab}, features {gf} vs {f}")
            return False
    return True
