"""Churn windows: `dlprep windows` vs the talk's pandas grouped-map UDF.

Generates events with `dlprep gen churn`, runs dlprep on all of them with 1 and 2
workers, and runs the same featurization as a pandas `groupby(key).apply(f)` function
(one Python process) in two versions (bench/windows_udf.py): numpy-vectorised per
window on the first --pandas-customers customers, and idiomatic pandas (groupby/agg per
window) on the first --idiomatic-customers (they are slow). Their outputs for those
customers are compared with dlprep's, so the benchmark also checks that they agree;
rates are events per second and the ratio is per core (dlprep on 1 worker vs pandas in
1 process).
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
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from windows_udf import AGGS, P, VALUES, compare, featurize_numpy, featurize_pandas  # noqa: E402


def pandas_windows(events, labels, until, fn):
    """The talk's grouped-map pattern: events.groupby(key).apply(f) in one process."""
    churn = dict(zip(labels["customer_id"], labels["churn_ts"]))

    def numpy_udf(g):
        return featurize_numpy(g.name, g["ts"].to_numpy(), g["event_type"].to_numpy(),
                               {v: g[v].to_numpy(dtype=float) for v in VALUES},
                               churn.get(g.name), until)

    def pandas_udf(g):
        return featurize_pandas(g, g.name, churn.get(g.name), until)

    udf = numpy_udf if fn == "numpy" else pandas_udf
    out = events.sort_values("ts", kind="stable").groupby("customer_id").apply(udf, include_groups=False)
    return [row for rows in out for row in rows]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--customers", type=int, default=25000)
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--pandas-customers", type=int, default=1000,
                    help="customers featurized by the numpy-vectorised UDF")
    ap.add_argument("--idiomatic-customers", type=int, default=200,
                    help="customers featurized by the idiomatic pandas UDF (slow)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--runs", type=int, default=3, help="dlprep runs per worker count")
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
            for _ in range(args.runs):
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
        got_tab = pq.read_table(os.path.join(work, "out1"))
        got_tab = got_tab.filter(pc.is_in(got_tab.column("customer_id"), pa.array(
            np.arange(1_000_000, 1_000_000 + args.pandas_customers))))
        got_rows = [(r["customer_id"], int(r["window_start"].timestamp()), r["label"],
                     r["features"]) for r in got_tab.to_pylist()]
        dl_rate = n_events / times[1]
        print(f"{n_events} events, {args.customers} customers, {args.days} days")
        print(f"dlprep windows: 1 worker {times[1]:.2f} s ({dl_rate:,.0f} events/s), "
              f"2 workers {times[2]:.2f} s -> scaling {times[1] / times[2]:.2f}x (goal 1.8x)")
        print(f"dlprep windows with --memory-limit 1GB, 2 workers: {limited:.2f} s")
        ok = True
        for fn, customers in [("numpy", args.pandas_customers),
                              ("pandas", args.idiomatic_customers)]:
            part = sub_pd[sub_pd["customer_id"] < 1_000_000 + customers]
            start = time.perf_counter()
            want = pandas_windows(part, labels, until, fn)
            secs = time.perf_counter() - start
            rate = len(part) / secs
            mine = [r for r in got_rows if r[0] < 1_000_000 + customers]
            same = compare(mine, want)
            ok = ok and same
            print(f"pandas groupby.apply, {fn} UDF, {len(part)} events ({customers} "
                  f"customers): {secs:.2f} s ({rate:,.0f} events/s); outputs agree: {same} "
                  f"({len(want)} windows); ratio per core dlprep/pandas: "
                  f"{dl_rate / rate:.0f}x (goal 100x)")
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
