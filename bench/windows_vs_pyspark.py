"""Churn windows: `dlprep windows` vs PySpark `groupBy(key).applyInPandas` in local[2].

The talk's way to run the grouped-map function at scale: Spark shuffles the events by
customer and calls a pandas function per group through Arrow. Both sides get the same
generated Parquet (at least 10M events by default) and the same two cores: dlprep with
--workers 2, Spark with master local[2]. The UDF is bench/windows_udf.py's
numpy-vectorised function (the fastest reasonable pandas UDF; --udf pandas picks the
idiomatic one). Spark's session start-up is timed apart and not counted; its job time is
read + broadcast join of the labels + shuffle + UDF + Parquet write, as dlprep's is.
Outputs are compared for every window.

Needs pyspark (scripts/requirements-bench.txt) and Java 17.
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


def spark_windows(spark, events_dir, labels_dir, out_dir, until, udf_kind):
    import pandas as pd
    from pyspark.sql import functions as F

    ev = spark.read.parquet(events_dir).select(
        "customer_id", F.col("ts").cast("long").alias("ts"), "event_type", *VALUES)
    lab = spark.read.parquet(labels_dir).select(
        "customer_id", F.col("churn_ts").cast("long").alias("churn_ts"))
    joined = ev.join(F.broadcast(lab), "customer_id", "left")

    def udf(g):
        g = g.sort_values("ts", kind="stable")
        key = int(g["customer_id"].iloc[0])
        churn = g["churn_ts"].iloc[0]
        churn = None if pd.isna(churn) else float(churn)
        if udf_kind == "numpy":
            rows = featurize_numpy(key, g["ts"].to_numpy(), g["event_type"].to_numpy(),
                                   {v: g[v].to_numpy(dtype=float) for v in VALUES},
                                   churn, until)
        else:
            rows = featurize_pandas(g, key, churn, until)
        return pd.DataFrame(rows, columns=["customer_id", "window_start", "label",
                                           "features"])

    schema = "customer_id long, window_start long, label long, features array<float>"
    (joined.groupBy("customer_id").applyInPandas(udf, schema)
     .write.mode("overwrite").parquet(out_dir))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--customers", type=int, default=15000)
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--udf", choices=["numpy", "pandas"], default="numpy")
    ap.add_argument("--runs", type=int, default=3, help="dlprep runs (median)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()
    exe = os.path.join(args.build, "dlprep")
    work = tempfile.mkdtemp(prefix="dlprep-windows-spark-")
    try:
        data = os.path.join(work, "churn")
        subprocess.run([exe, "gen", "churn", "--customers", str(args.customers), "--days",
                        str(args.days), "-o", data, "-q"], check=True)
        events_dir, labels_dir = os.path.join(data, "events"), os.path.join(data, "labels")
        events = pq.read_table(events_dir, columns=["ts"])
        n_events = events.num_rows
        max_s = pc.max(pc.cast(pc.cast(events.column("ts"), pa.timestamp("s")),
                               pa.int64())).as_py()
        until = (max_s // P) * P + P
        base = ["windows", "--events", events_dir, "--labels", labels_dir, "--key",
                "customer_id", "--time", "ts", "--category", "event_type", "--values",
                ",".join(VALUES), "--aggs", ",".join(AGGS), "--window", "14d", "--stride",
                "7d", "--step", "1d", "--horizon", "30d", "--label-time", "churn_ts",
                "--until", str(until), "--format", "parquet", "--overwrite", "-q"]
        runs = []
        for _ in range(args.runs):
            start = time.perf_counter()
            subprocess.run([exe, *base, "-o", os.path.join(work, "dl"), "-w", "2"],
                           check=True)
            runs.append(time.perf_counter() - start)
        dl_secs = statistics.median(runs)

        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        # Spark's Python workers import the UDF module from here.
        here = os.path.dirname(os.path.abspath(__file__))
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in [here, os.environ.get("PYTHONPATH", "")] if p)
        from pyspark.sql import SparkSession

        start = time.perf_counter()
        spark = (SparkSession.builder.master("local[2]").appName("windows-bench")
                 .config("spark.driver.memory", "6g")
                 .config("spark.sql.shuffle.partitions", "8")
                 .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                 .config("spark.ui.enabled", "false").getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
        startup = time.perf_counter() - start
        start = time.perf_counter()
        spark_windows(spark, events_dir, labels_dir, os.path.join(work, "spark"), until,
                      args.udf)
        spark_secs = time.perf_counter() - start
        spark.stop()

        got = pq.read_table(os.path.join(work, "dl"))
        starts = pc.cast(pc.cast(got.column("window_start"), pa.timestamp("s")), pa.int64())
        got_rows = zip(got.column("customer_id").to_numpy(), starts.to_numpy(),
                       got.column("label").to_numpy(), got.column("features").to_pylist())
        want = pq.read_table(os.path.join(work, "spark"))
        want_rows = zip(want.column("customer_id").to_numpy(),
                        want.column("window_start").to_numpy(),
                        want.column("label").to_numpy(), want.column("features").to_pylist())
        same = compare(list(got_rows), list(want_rows))
        print(f"{n_events} events, {args.customers} customers, {args.days} days; "
              f"2 cores each")
        print(f"dlprep windows --workers 2: {dl_secs:.2f} s "
              f"({n_events / dl_secs:,.0f} events/s, median of {args.runs})")
        print(f"PySpark applyInPandas local[2], {args.udf} UDF: {spark_secs:.2f} s "
              f"({n_events / spark_secs:,.0f} events/s; session start-up {startup:.1f} s "
              f"not counted)")
        print(f"outputs agree: {same} ({got.num_rows} windows)")
        print(f"ratio dlprep/PySpark: {spark_secs / dl_secs:.1f}x (goal 20x)")
        return 0 if same else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
