"""The churn windows on Spark: events -> 14-day windows -> TFRecord, with dlprep.spark.

    python examples/spark/churn_windows.py OUT [--master local[2]] [--customers 400]
    spark-submit --master spark://HOST:7077 examples/spark/churn_windows.py OUT

1. ``dlprep gen churn`` writes synthetic events and churn labels as Parquet to
   OUT/data (skipped with ``--events`` / ``--labels``).
2. Spark reads them; ``dlprep.spark.windows`` joins the labels (broadcast), runs the
   operator's map-side step in ``mapInArrow`` and the windows per customer in
   ``groupBy("customer_id").applyInArrow``.
3. ``dlprep.spark.write_tfrecord`` writes one gzip TFRecord file per Spark partition
   to OUT/windows and commits on the driver (``_manifest.json``, ``_SUCCESS``);
   ``dlprep.spark.read_tfrecord`` reads it back as a DataFrame.

OUT must be a folder the driver and every worker see at the same path. The Python
workers must run a Python with dlprep installed: PYSPARK_PYTHON (default here: this
Python). The same windows on one machine: examples/python/churn.py.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time


def dlprep_command():
    exe = os.path.join(os.path.dirname(sys.executable), "dlprep")
    if os.path.exists(exe):
        return exe
    exe = shutil.which("dlprep")
    if exe is None:
        sys.exit("churn_windows.py: the dlprep command is not installed (pip install dlprep)")
    return exe


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="output folder (created)")
    ap.add_argument("--master", help="Spark master (default local[2]; under spark-submit "
                                     "its --master)")
    ap.add_argument("--events", help="events Parquet folder (default: generated)")
    ap.add_argument("--labels", help="labels Parquet folder (default: generated)")
    ap.add_argument("--customers", type=int, default=400)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--partitions", type=int, default=4,
                    help="Spark partitions of the windows (= TFRecord files)")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    events, labels = args.events, args.labels
    if events is None or labels is None:
        data = os.path.join(out, "data")
        subprocess.run([dlprep_command(), "gen", "churn", "--customers", str(args.customers),
                        "--days", str(args.days), "--output", data, "--overwrite"],
                       check=True)
        events, labels = os.path.join(data, "events"), os.path.join(data, "labels")

    from pyspark.sql import SparkSession
    from dlprep import spark as dsp

    # One TFRecord file per shuffle partition: AQE must not merge them.
    builder = (SparkSession.builder.appName("dlprep-churn-windows")
               .config("spark.sql.shuffle.partitions", str(args.partitions))
               .config("spark.sql.adaptive.coalescePartitions.enabled", "false"))
    if args.master or "PYSPARK_GATEWAY_PORT" not in os.environ:  # not under spark-submit
        builder = builder.master(args.master or "local[2]")
    spark = builder.getOrCreate()
    start = time.perf_counter()
    try:
        windows = dsp.windows(
            spark.read.parquet(events), labels=spark.read.parquet(labels),
            key="customer_id", time="ts", category="event_type",
            values=["amount", "duration"], aggs=["sum", "mean", "max"],
            window="14d", stride="7d", step="1d", horizon="30d", label_time="churn_ts")
        path = os.path.join(out, "windows")
        stats = dsp.write_tfrecord(windows, path, compression="gzip", overwrite=True)
        shape = windows.schema["features"].metadata.get("dlprep.shape")
        print(f"windows: {stats['rows']} rows in {stats['files']} files, features {shape} "
              f"-> {path}")
        back = dsp.read_tfrecord(spark, path)
        positives = back.where("label = 1").count()
        print(f"read back: {back.count()} windows, {positives} churn labels")
    finally:
        spark.stop()
    print(f"done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
