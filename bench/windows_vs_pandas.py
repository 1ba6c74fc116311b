"""Churn windows: `dlprep windows` vs the talk's pandas grouped-map UDF.

Generates events with `dlprep gen churn`, runs dlprep on all of them with 1 and 2
workers, and runs the same featurization written as a pandas `groupby(key).apply(f)`
function (one Python process) on the events of the first --pandas-customers customers
(it is slow). Both outputs for those customers are compared value by value, so the
benchmark also checks that the two agree; rates are events per second and the ratio
is per core (dlprep on 1 worker vs pandas on 1 process).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAY = 86400
W, S, P, H = 14 * DAY, 7 * DAY, DAY, 30 * DAY
VALUES = ["amount", "duration"]
AGGS = ["sum", "mean", "max"]
CATS = ["call", "data", "sms", "support", "topup"]


def pandas_windows(events, labels, until):
    import pandas as pd

    churn = dict(zip(labels["customer_id"], labels["churn_ts"]))
    steps = W // P

    def featurize(g):
        t = g["ts"].to_numpy()
        origin = (t.min() // P) * P
        c = churn.get(g.name)
        limit = min(until, c) if c is not None and not np.isnan(c) else until
        rows = []
        cat = g["event_type"].to_numpy()
        vals = {v: g[v].to_numpy(dtype=float) for v in VALUES}
        k = 0
        while origin + k * S + W <= limit:
            start = origin + k * S
            end = start + W
            m = (t >= start) & (t < end)
            step = (t[m] - start) // P
            feats = [np.bincount(step, minlength=steps)]
            for cname in CATS:
                feats.append(np.bincount(step[cat[m] == cname], minlength=steps))
            for v in VALUES:
                x = vals[v][m]
                ok = ~np.isnan(x)
                sums = np.bincount(step[ok], weights=x[ok], minlength=steps)
                cnt = np.bincount(step[ok], minlength=steps)
                for a in AGGS:
                    if a == "sum":
                        feats.append(sums)
                    elif a == "mean":
                        feats.append(np.divide(sums, cnt, out=np.zeros(steps), where=cnt > 0))
                    else:
                        mx = np.zeros(steps)
                        for s in range(steps):
                            sel = x[ok][step[ok] == s]
                            mx[s] = sel.max() if len(sel) else 0.0
                        feats.append(mx)
            label = int(c is not None and not np.isnan(c) and c < end + H)
            rows.append((g.name, start, label,
                         np.stack(feats, axis=1).astype(np.float32).ravel()))
            k += 1
        return pd.DataFrame(rows, columns=["customer_id", "window_start", "label", "features"])

    df = events
    return df.sort_values("ts", kind="stable").groupby("customer_id").apply(featurize)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--customers", type=int, default=25000)
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--pandas-customers", type=int, default=1000)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()
    exe = os.path.join(args.build, "dlprep")
    work = tempfile.mkdtemp(prefix="dlprep-windows-bench-")
    try:
        data = os.path.join(work, "churn")
        subprocess.run([exe, "gen", "churn", "--customers", str(args.customers), "--days",
                        str(args.days), "-o", data, "-q"], check=True)
        events = pq.read_table(os.path.join(data, "events"))
        n_events = events.num_rows
        base = ["windows", "--events", os.path.join(data, "events"), "--labels",
                os.path.join(data, "labels"), "--key", "customer_id", "--time", "ts",
                "--category", "event_type", "--values", ",".join(VALUES), "--aggs",
                ",".join(AGGS), "--window", "14d", "--stride", "7d", "--step", "1d",
                "--horizon", "30d", "--label-time", "churn_ts", "--format", "parquet",
                "--overwrite", "-q"]
        times = {}
        for w in [1, 2]:
            runs = []
            for _ in range(3):
                start = time.perf_counter()
                subprocess.run([exe, *base, "-o", os.path.join(work, f"out{w}"), "-w", str(w)],
                               check=True)
                runs.append(time.perf_counter() - start)
            times[w] = statistics.median(runs)
        start = time.perf_counter()
        subprocess.run([exe, *base, "-o", os.path.join(work, "outlim"), "-w", "2",
                        "--memory-limit", "1GB"], check=True)
        limited = time.perf_counter() - start
        # until as dlprep computes it by default.
        max_s = pc.max(pc.cast(pc.cast(events.column("ts"), pa.timestamp("s")), pa.int64())).as_py()
        until = (max_s // P) * P + P
        first = pc.is_in(events.column("customer_id"),
                         pa.array(np.arange(1_000_000, 1_000_000 + args.pandas_customers)))
        sub = events.filter(first)
        seconds = pc.floor(pc.divide(pc.cast(pc.cast(sub.column("ts"), pa.timestamp("ms")),
                                             pa.int64()).cast(pa.float64()), 1000.0))
        sub_pd = sub.set_column(1, "ts", seconds.cast(pa.int64())).to_pandas()
        labels = pq.read_table(os.path.join(data, "labels")).to_pandas()
        labels["churn_ts"] = [np.nan if x is None else float(int(x.timestamp())) for x in
                              pq.read_table(os.path.join(data, "labels")).column("churn_ts").to_pylist()]
        start = time.perf_counter()
        want = pandas_windows(sub_pd, labels, until)
        pandas_secs = time.perf_counter() - start
        # Compare with dlprep's rows for the same customers.
        got = pq.read_table(os.path.join(work, "out1")).filter(
            pc.is_in(pq.read_table(os.path.join(work, "out1")).column("customer_id"),
                     pa.array(np.arange(1_000_000, 1_000_000 + args.pandas_customers))))
        got_rows = sorted((r["customer_id"], int(r["window_start"].timestamp()), r["label"],
                           tuple(np.float32(r["features"]))) for r in got.to_pylist())
        want_rows = sorted((int(r.customer_id), int(r.window_start), int(r.label),
                            tuple(r.features)) for r in want.itertuples())
        same = got_rows == want_rows
        dl_rate = n_events / times[1]
        pd_rate = sub.num_rows / pandas_secs
        print(f"{n_events} events, {args.customers} customers, {args.days} days")
        print(f"dlprep windows: 1 worker {times[1]:.2f} s ({dl_rate:,.0f} events/s), "
              f"2 workers {times[2]:.2f} s -> scaling {times[1] / times[2]:.2f}x (goal 1.8x)")
        print(f"dlprep windows with --memory-limit 1GB, 2 workers: {limited:.2f} s")
        print(f"pandas groupby.apply on {sub.num_rows} events ({args.pandas_customers} "
              f"customers): {pandas_secs:.2f} s ({pd_rate:,.0f} events/s)")
        print(f"outputs for those customers identical: {same} ({len(got_rows)} windows)")
        print(f"ratio per core dlprep/pandas: {dl_rate / pd_rate:.0f}x (goal 100x)")
        return 0 if same else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
