"""Where the time of ``dsp.windows`` goes inside Spark: one job, per-stage figures from
Spark's own REST API (the UI's /api/v1), next to the job's wall and CPU time.

For each stage of the timed job: its tasks, the sum of the tasks' run time and CPU
time (JVM threads; the Python workers' CPU is in the process-tree CPU printed with the
job, not in the stage's), bytes read from files, shuffle bytes written and read, and
the stage's own wall time. The job is ``dsp.windows`` (labels broadcast-joined) written
with the ``noop`` format, so no output file is timed; the first run is a warm-up.

    PYSPARK_PYTHON=$VENV/bin/python SPARK_LOCAL_IP=127.0.0.1 \\
        $VENV/bin/python bench/spark_windows_stages.py [--customers 1500 --days 120]
"""
import argparse
import json
import os
import sys
import tempfile
import shutil
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from spark_vs_udfs import _gen_churn, tree_processes  # noqa: E402
from windows_udf import AGGS, CATS, VALUES  # noqa: E402


def tree_cpu_by_kind():
    """CPU seconds (user + system) of this process tree's processes that are still
    alive, by kind: the JVM ("java") and Python (the driver and Spark's Python
    workers and daemon)."""
    out = {"java": 0.0, "python": 0.0}
    for comm, cpu in tree_processes().values():
        out["java" if comm.startswith("java") else "python"] += cpu
    return out


def jvm_threads_cpu():
    """CPU seconds of the JVM's threads under this process, summed by thread name with
    digits dropped ("Executor task launch worker for task 3.0 in stage 2.0" and the
    like fold into one name)."""
    import re
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                text = f.read()
            if not text.split("(", 1)[1].startswith("java"):
                continue
            tasks = os.listdir(f"/proc/{pid}/task")
        except (OSError, IndexError):
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    head, rest = f.read().rsplit(")", 1)
            except OSError:
                continue
            name = re.sub(r"[0-9.]+", "#", head.split("(", 1)[1])
            fields = rest.split()
            out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def _get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--customers", type=int, default=1500)
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--partitions", type=int, default=4,
                    help="spark.sql.shuffle.partitions")
    ap.add_argument("--batch-rows", type=int, default=10000,
                    help="spark.sql.execution.arrow.maxRecordsPerBatch")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--prepare", choices=["map", "reduce"], default="map",
                    help="dsp.windows(prepare=): the operator's map-side step before the "
                         "shuffle (in a mapInArrow) or after it (in the engine)")
    args = ap.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from dlprep import spark as dsp
    work = tempfile.mkdtemp(prefix="dlprep-spark-stages-")
    spark = (SparkSession.builder.master(args.master).appName("dlprep-windows-stages")
             .config("spark.driver.memory", "2g")
             .config("spark.sql.shuffle.partitions", str(args.partitions))
             .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(args.batch_rows))
             .config("spark.ui.enabled", "true")
             .config("spark.ui.port", "0")
             .config("spark.ui.showConsoleProgress", "false").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    api = f"{spark.sparkContext.uiWebUrl}/api/v1/applications/" \
          f"{spark.sparkContext.applicationId}"
    try:
        events_dir, labels_dir, n, until = _gen_churn(work, "churn", args.customers,
                                                      args.days)

        def job():
            dsp.windows(spark.read.parquet(events_dir),
                        labels=spark.read.parquet(labels_dir), key="customer_id",
                        time="ts", category="event_type", categories=CATS, values=VALUES,
                        aggs=AGGS, window="14d", stride="7d", step="1d", horizon="30d",
                        label_time="churn_ts", until=until, prepare=args.prepare) \
                .write.mode("overwrite").format("noop").save()

        for run in range(args.runs + 1):
            group = f"run{run}"
            spark.sparkContext.setJobGroup(group, group)
            w, c, t = time.perf_counter(), tree_cpu_by_kind(), jvm_threads_cpu()
            job()
            wall, c2, t2 = time.perf_counter() - w, tree_cpu_by_kind(), jvm_threads_cpu()
            jvm, py = c2["java"] - c["java"], c2["python"] - c["python"]
            cpu = jvm + py
            if run == 0:
                continue  # warm-up
            time.sleep(1)  # the listener bus catches up
            jobs = [j for j in _get(f"{api}/jobs") if j.get("jobGroup") == group]
            stage_ids = sorted({s for j in jobs for s in j["stageIds"]})
            print(f"run {run}: {n} events, {wall:.2f} s wall, {cpu:.2f} s CPU "
                  f"(JVM {jvm:.2f} s, Python {py:.2f} s), {n / wall:,.0f} events/s, "
                  f"{n / cpu:,.0f} per CPU-s; "
                  f"load {os.getloadavg()[0]:.1f}")
            by_thread = sorted(((t2[k] - t.get(k, 0.0), k) for k in t2), reverse=True)
            print("  JVM threads: " + ", ".join(f"{k} {v:.2f} s" for v, k in by_thread[:8]
                                                if v >= 0.05))
            for sid in stage_ids:
                for st in _get(f"{api}/stages/{sid}"):
                    if st["status"] != "COMPLETE":
                        continue
                    t0 = st.get("firstTaskLaunchedTime") or st.get("submissionTime")
                    stage_wall = _span(t0, st.get("completionTime"))
                    print(f"  stage {sid} ({st['numTasks']} tasks) {st['name'][:60]}: "
                          f"wall {stage_wall:.2f} s, tasks run {st['executorRunTime'] / 1e3:.2f} s, "
                          f"JVM CPU {st['executorCpuTime'] / 1e9:.2f} s, "
                          f"in {st['inputBytes'] / 1e6:.1f} MB, "
                          f"shuffle write {st['shuffleWriteBytes'] / 1e6:.1f} MB "
                          f"({st['shuffleWriteRecords']} rows), "
                          f"shuffle read {st['shuffleReadBytes'] / 1e6:.1f} MB")
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)


def _span(start, end):
    from datetime import datetime
    if not start or not end:
        return float("nan")
    f = "%Y-%m-%dT%H:%M:%S.%f%Z"
    return (datetime.strptime(end.replace("GMT", "UTC"), f) -
            datetime.strptime(start.replace("GMT", "UTC"), f)).total_seconds()


if __name__ == "__main__":
    main()
