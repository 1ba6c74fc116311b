"""Batch inference through a model server from Spark: churn windows -> HTTP (KServe V2)
-> scores, with dlprep.spark.

    python examples/spark/score_http.py OUT --url URL [--master local[2]] [--windows DIR]
    spark-submit --master spark://HOST:7077 examples/spark/score_http.py OUT --url URL

With the MLServer example (examples/mlserver; needs .venv-mlserver from
scripts/setup.sh)::

    bash examples/mlserver/run.sh          # windows, a trained model, the server's repo
    .venv-mlserver/bin/mlserver start examples/mlserver/out/repo &
    python examples/spark/score_http.py OUT --windows examples/mlserver/out/windows \\
        --url http://127.0.0.1:PORT/v2/models/churn/infer

(PORT: ``http_port`` in examples/mlserver/out/repo/settings.json.)

1. Without ``--windows``, makes churn windows as churn_windows.py does (``dlprep gen
   churn``, then ``dlprep.spark.windows``).
2. ``dlprep.spark.score_http`` sends each Spark Arrow batch's ``features`` to URL in
   requests of ``--batch-size`` rows, ``--concurrency`` in flight per task, retried
   with backoff; a row the server refuses keeps its message in ``_dlprep_error``.
3. ``dlprep.spark.write_parquet`` commits OUT/scores (customer_id, window_end, label,
   churn_probability, _dlprep_error).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from churn_windows import dlprep_command  # noqa: E402


def is_tfrecord(folder):
    """True for a TFRecord folder written by dlprep (its _manifest.json says so)."""
    import json
    try:
        with open(os.path.join(folder, "_manifest.json"), encoding="utf-8") as f:
            return json.load(f).get("format") == "tfrecord"
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="output folder (created)")
    ap.add_argument("--url", required=True,
                    help="the model's infer URL, e.g. http://127.0.0.1:8080/v2/models/"
                         "churn/infer")
    ap.add_argument("--master", help="Spark master (default local[2]; under spark-submit "
                                     "its --master)")
    ap.add_argument("--windows", help="Parquet or TFRecord windows written by dlprep "
                                      "(default: generated)")
    ap.add_argument("--output", default="churn_probability:float64",
                    help="the server's output NAME:TYPE")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--partitions", type=int, default=4)
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    from pyspark.sql import SparkSession

    from dlprep import spark as dsp

    builder = (SparkSession.builder.appName("dlprep-score-http")
               .config("spark.sql.shuffle.partitions", str(args.partitions))
               .config("spark.ui.showConsoleProgress", "false"))
    if args.master or "PYSPARK_GATEWAY_PORT" not in os.environ:  # not under spark-submit
        builder = builder.master(args.master or "local[2]")
    if args.windows is None:
        import subprocess
        data = os.path.join(out, "data")
        subprocess.run([dlprep_command(), "gen", "churn", "--customers", "200", "--days",
                        "90", "--output", data, "--overwrite", "--quiet"], check=True)
    spark = builder.getOrCreate()
    start = time.perf_counter()
    try:
        if args.windows is None:
            windows = dsp.windows(
                spark.read.parquet(os.path.join(data, "events")),
                labels=spark.read.parquet(os.path.join(data, "labels")),
                key="customer_id", time="ts", category="event_type",
                values=["amount", "duration"], aggs=["sum", "mean", "max"], window="14d",
                stride="7d", step="1d", horizon="30d", label_time="churn_ts")
        elif is_tfrecord(args.windows):
            windows = dsp.read_tfrecord(spark, args.windows)
        else:
            windows = spark.read.parquet(os.path.abspath(args.windows))
        windows = windows.repartition(args.partitions)
        scores = dsp.score_http(windows.select("customer_id", "window_end", "label",
                                               "features"),
                                url=args.url, column="features", protocol="kserve-v2",
                                outputs=[args.output], batch_size=args.batch_size,
                                concurrency=args.concurrency, errors="column")
        scores = scores.drop("features")
        path = os.path.join(out, "scores")
        stats = dsp.write_parquet(scores, path, overwrite=True)
        back = spark.read.parquet(path)
        failed = back.where(f"{dsp.ERROR_COLUMN} IS NOT NULL").count()
        print(f"score_http: {stats['rows']} windows scored through {args.url} in "
              f"{stats['files']} files, {failed} failed -> {path}")
    finally:
        spark.stop()
    print(f"done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
