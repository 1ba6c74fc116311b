#!/usr/bin/env python3
"""Group-by + sort + per-group function: dlprep vs pandas / DuckDB / Polars.

Generates N rows (default 10M) of (key int64 with a skewed Zipf-like distribution,
ts int64, value float64) as Parquet, then per key: count, sum of value and the last
value in ts order, with
  * dlprep: build/grouped_benchmark (Pipeline.GroupBy({"key"}, "ts").Apply(op)),
  * pandas: df.sort_values("ts").groupby("key").apply(f)        (if pandas is installed),
  * DuckDB: SQL with arg_max(value, ts)                          (if duckdb is installed),
  * Polars: sort("ts").group_by("key").agg(...)                  (if polars is installed).
Prints the median wall time of 3 runs for each and the ratio to dlprep. Tools that are
not installed are skipped with a note (PyPI: pandas, duckdb, polars).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def generate(path, rows, keys, seed=7):
    rng = np.random.default_rng(seed)
    # Skewed: a few hot keys hold most rows (Zipf, clipped to `keys` distinct keys).
    key = (rng.zipf(1.3, rows) - 1) % keys
    ts = rng.integers(0, 10**9, rows)
    value = rng.random(rows)
    table = pa.table({"key": key.astype(np.int64), "ts": ts.astype(np.int64),
                      "value": value})
    pq.write_table(table, path, row_group_size=1 << 20)


def median_of(fn, runs):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_dlprep(binary, path, runs, workers, memory_limit):
    cmd = [binary, path, "--repeat", str(runs)]
    if workers:
        cmd += ["--workers", str(workers)]
    if memory_limit:
        cmd += ["--memory-limit", str(memory_limit)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    lines = [l for l in out.splitlines() if l.startswith("seconds=")]
    secs = [float(l.split()[0].split("=")[1]) for l in lines]
    print("  dlprep runs:", "; ".join(lines))
    return statistics.median(secs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--build", default="build")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--memory-limit", type=int, default=0, help="bytes; 0 = unlimited")
    ap.add_argument("--data", default="", help="reuse this Parquet file")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="dlprep-grouped-bench-")
    path = args.data or os.path.join(tmp, "events.parquet")
    if not os.path.exists(path):
        t0 = time.perf_counter()
        generate(path, args.rows, args.keys)
        print(f"generated {args.rows} rows in {time.perf_counter() - t0:.1f}s: {path}")

    results = {}
    binary = os.path.join(args.build, "grouped_benchmark")
    if os.path.exists(binary):
        results["dlprep"] = run_dlprep(binary, path, args.runs, args.workers,
                                       args.memory_limit)
    else:
        print(f"skip dlprep: {binary} not built (cmake -DDLPREP_BUILD_BENCH=ON)")

    try:
        import pandas as pd

        def pandas_run():
            df = pd.read_parquet(path)
            f = lambda g: pd.Series({"count": len(g), "sum": g["value"].sum(),
                                     "last": g["value"].iloc[-1]})
            df.sort_values("ts", kind="stable").groupby("key")[["value"]].apply(f)

        results["pandas groupby.apply"] = median_of(pandas_run, args.runs)
    except ImportError:
        print("skip pandas: not installed (pip install pandas)")

    try:
        import duckdb

        def duckdb_run():
            duckdb.sql(f"SELECT key, count(*), sum(value), arg_max(value, ts) "
                       f"FROM read_parquet('{path}') GROUP BY key").fetchall()

        results["duckdb"] = median_of(duckdb_run, args.runs)
    except ImportError:
        print("skip duckdb: not installed (pip install duckdb)")

    try:
        import polars as pl

        def polars_run():
            (pl.read_parquet(path).sort("ts").group_by("key")
             .agg(pl.len().alias("count"), pl.col("value").sum().alias("sum"),
                  pl.col("value").last().alias("last")))

        results["polars"] = median_of(polars_run, args.runs)
    except ImportError:
        print("skip polars: not installed (pip install polars)")

    base = results.get("dlprep")
    print(f"\nmedian of {args.runs} runs, {args.rows} rows, {args.keys} keys:")
    for name, secs in results.items():
        ratio = f"  ({secs / base:.2f}x dlprep)" if base else ""
        print(f"  {name:24s} {secs:8.3f} s{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
