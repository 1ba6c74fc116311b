"""dlprep.spark against the idiomatic PySpark UDFs, on the same Spark session and data.

Four jobs, each timed as a whole Spark job (session start-up not counted), median of
--runs, wall and CPU time (CPU of this process and every process under it: the JVM and
Spark's Python workers, read from /proc). Jobs that are compared take turns round by
round after --warmups warm-up rounds, each timed job after a full GC of the driver's
JVM:

* churn windows: ``dsp.windows`` vs ``groupBy(key).applyInPandas`` with the
  numpy-vectorised pandas UDF of bench/windows_udf.py (the fastest reasonable one) on
  the whole input, and with the idiomatic pandas UDF (about 4k events/s) on the first
  --udf-customers customers, compared in events/s; all from the events ``dlprep gen
  churn`` writes, written with ``df.write.parquet``, outputs compared for every window.
* speech: ``dsp.audio`` vs a pandas UDF calling librosa on binaryFile content (skipped
  when librosa is not importable in the Python Spark's workers run). Both read the
  WAVs afresh in every run (``spark.read.format("binaryFile")``, not cached), in the
  same number of tasks: the number ``dsp.audio`` chooses (one per core), given to the
  UDF with ``coalesce``. ``dsp.audio`` takes the paths from Spark's file list and reads
  the local files in its tasks (no scan); ``dsp.audio read_files=False`` (Spark reads
  and ships the content, as for the UDF) is timed too.
  Rate: clips/s.
* scoring: ``dsp.score`` vs ``pyspark.ml.functions.predict_batch_udf`` with the same
  TorchScript model (time-averaged [101, 64] input -> linear layer -> 3 scores), one
  torch thread per task; predictions compared; the two take turns in each round.
  Rate: rows/s.
* scaling (``--jobs scaling``): ``dsp.windows`` and ``dsp.audio`` (``--scaling-jobs``)
  on a standalone cluster of one and then two one-core workers (started and stopped
  here with examples/spark/local_cluster.py): the second worker's speed-up. The audio
  job reads --clips WAVs afresh in every run, as in the speech job. ``spark`` in
  --scaling-jobs adds a reference without dlprep: the Spark side of the windows job
  alone (the same scan, label join and shuffle of the same columns, each partition
  sorted by key and time instead of handed to the engine), to show what Spark itself
  gains from the second worker on the same machine. --runs rounds, each starting a
  one-worker and then a two-worker cluster afresh; on each, --warmups warm-up jobs
  (fresh executor JVMs compile Spark's code for their first jobs: one warm-up left
  the two-worker side, whose executors each see half the work, still compiling) and
  one timed job per kind; medians over the rounds. Spark's ``--cores 1`` counts task
  slots only: a one-core worker's executor JVM threads run beside its Python worker,
  so on this machine it uses more than one CPU. ``--pin-workers`` confines each
  worker and its children to a CPU of its own, as on a cluster of one-core machines.
  The driver is not pinned unless ``--pin-driver``, which confines it (this process
  and its JVM) to the first worker's CPU on both clusters, so that the second worker
  adds exactly one CPU: unpinned, the one-worker driver has the second CPU to itself,
  and the two-worker one shares the workers' CPUs.
* writing: ``dsp.write_tfrecord`` (no compression) vs ``df.write.parquet`` of the
  generated churn events (cached in Spark first). Rate: rows/s.

    PYSPARK_PYTHON=$VENV/bin/python SPARK_LOCAL_IP=127.0.0.1 \\
        $VENV/bin/python bench/spark_vs_udfs.py [--master local[2]] [--customers 2000]

$VENV: a venv with the dlprep wheel, pyspark 4.3.0 (scripts/requirements-pkg.txt), for
the speech job librosa and soundfile (the versions in scripts/requirements-bench.txt:
``$VENV/bin/pip install librosa==... soundfile==...``) and, for the scoring job, PyTorch
(made with --system-site-packages over Debian's python3-torch). The issue's sizes are
10M events and 2,000 clips (--customers 15000 --days 120 --clips 2000).
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
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "examples", "spark"))  # speech, local_cluster
from windows_udf import AGGS, CATS, P, VALUES, compare  # noqa: E402
from windows_vs_pyspark import spark_windows  # noqa: E402


def tree_processes(root=None):
    """{pid: (command name, CPU seconds)} of process ``root`` (default: this one) and
    all its descendants that are still alive; a process's CPU (user + system) includes
    its reaped children's."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    head, rest = f.read().rsplit(")", 1)
                fields = rest.split()
                stats[int(pid)] = (int(fields[1]), head.split("(", 1)[1],
                                   sum(map(int, fields[11:15])) / tick)
            except (OSError, IndexError):
                pass
    mine, grew = {os.getpid() if root is None else root}, True
    while grew:
        grew = False
        for pid, (ppid, _, _) in stats.items():
            if ppid in mine and pid not in mine:
                mine.add(pid)
                grew = True
    return {pid: stats[pid][1:] for pid in mine if pid in stats}


def tree_cpu():
    """CPU seconds (user + system) of this process and all its descendants, reaped
    children included."""
    return sum(cpu for _, cpu in tree_processes().values())


def settle():
    """Before each timed job: a full garbage collection in the driver's JVM (and
    Python), then a pause for the JVM's concurrent GC threads, so that the garbage of
    the job before (the librosa UDF moves every file's bytes through the JVM) is not
    counted in the CPU time of the next."""
    import gc
    from pyspark.sql import SparkSession
    gc.collect()
    spark = SparkSession.getActiveSession()
    if spark is not None:
        spark.sparkContext._jvm.System.gc()
    time.sleep(0.5)


def timed(fn, runs, warmup=True):
    """Median wall and CPU seconds of ``runs`` calls, after one warm-up call (Python
    workers started, modules imported, files in the page cache), or ``warmup`` calls
    when it is a number, none when it is false."""
    for _ in range(int(warmup)):
        fn()
    walls, cpus = [], []
    for _ in range(runs):
        settle()
        w, c = time.perf_counter(), tree_cpu()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(tree_cpu() - c)
    return statistics.median(walls), statistics.median(cpus)


# Warm-up rounds before the timed ones: the JVM keeps compiling hot code (C2) through
# the first rounds of every job, and its compiler threads' CPU would count in the job
# that happens to run then (a short job most: the speech job took 9.2-9.6 CPU-s in its
# first rounds of a session and 6.5 CPU-s once compiled).
WARMUPS = 2


def timed_interleaved(fns, runs):
    """``timed`` for several functions at once: WARMUPS rounds of warm-up calls, then
    ``runs`` rounds calling each in turn, so that a slow spell of a shared machine falls
    on all of them alike. A list of (median wall, median CPU) seconds, one per
    function."""
    for _ in range(WARMUPS):
        for fn in fns:
            fn()
    samples = [[] for _ in fns]
    for _ in range(runs):
        for i, fn in enumerate(fns):
            settle()
            w, c = time.perf_counter(), tree_cpu()
            fn()
            samples[i].append((time.perf_counter() - w, tree_cpu() - c))
    return [(statistics.median(w for w, _ in s), statistics.median(c for _, c in s))
            for s in samples]


def report(name, unit, n, ours, theirs, other):
    (w1, c1), (w2, c2) = ours, theirs
    print(f"{name}: {n} {unit}")
    print(f"  dlprep.spark: {w1:7.2f} s wall, {c1:7.2f} s CPU, {n / w1:12,.0f} {unit}/s")
    print(f"  {other}: {w2:7.2f} s wall, {c2:7.2f} s CPU, {n / w2:12,.0f} {unit}/s")
    print(f"  ratio (theirs / dlprep): wall {w2 / w1:.1f}x, CPU {c2 / c1:.1f}x")


def _gen_churn(work, name, customers, days, files=8):
    """``dlprep gen churn`` into work/name, the events split into ``files`` Parquet files
    (so that Spark reads them with as many tasks); (events folder, labels folder,
    events, until) where until is the end of the last whole period."""
    data = os.path.join(work, name)
    exe = os.path.join(os.path.dirname(sys.executable), "dlprep")
    subprocess.run([exe, "gen", "churn", "--customers", str(customers), "--days",
                    str(days), "-o", data, "-q"], check=True)
    events_dir, labels_dir = os.path.join(data, "events"), os.path.join(data, "labels")
    if files > 1:  # gen writes one file (one row group): one map task would read it all
        events = pq.read_table(events_dir)
        events_dir = os.path.join(data, f"events_{files}")
        os.makedirs(events_dir)
        step = -(-events.num_rows // files)
        for i in range(files):
            pq.write_table(events.slice(i * step, step),
                           os.path.join(events_dir, f"part-{i:05d}.parquet"))
    ts = pq.read_table(events_dir, columns=["ts"]).column("ts")
    seconds = pa.compute.cast(ts.cast(pa.timestamp("s")), pa.int64())
    until = (pa.compute.max(seconds).as_py() // P) * P + P
    return events_dir, labels_dir, len(ts), until


def _dsp_windows(spark, dsp, events_dir, labels_dir, until, out_dir, prepare="reduce"):
    w = dsp.windows(spark.read.parquet(events_dir), labels=spark.read.parquet(labels_dir),
                    key="customer_id", time="ts", category="event_type", categories=CATS,
                    values=VALUES, aggs=AGGS, window="14d", stride="7d", step="1d",
                    horizon="30d", label_time="churn_ts", until=until, prepare=prepare)
    w.write.mode("overwrite").parquet(out_dir)


def _same_windows(spark, ours_dir, theirs_dir):
    """(outputs agree, windows): every window of both outputs compared."""
    from pyspark.sql import functions as F
    got = spark.read.parquet(ours_dir).select(
        "customer_id", F.unix_seconds("window_start").alias("s"), "label", "features")
    got = [tuple(r) for r in got.collect()]
    want = [tuple(r) for r in spark.read.parquet(theirs_dir).collect()]
    return compare(got, want) and len(got) > 0, len(got)


def bench_windows(spark, work, args, dsp, udf=True):
    """dsp.windows against the numpy-vectorised pandas UDF on the whole input and against
    the idiomatic pandas UDF (about 4k events/s) on the first --udf-customers customers
    (compared in events/s). With udf=False only the events are made (the input of the
    write comparison). Returns the events' folder."""
    events_dir, labels_dir, n, until = _gen_churn(work, "churn", args.customers, args.days)
    if not udf:
        return events_dir
    ours_dir, numpy_dir = os.path.join(work, "w_dlprep"), os.path.join(work, "w_numpy")
    ours, numpy_udf = timed_interleaved(
        [lambda: _dsp_windows(spark, dsp, events_dir, labels_dir, until, ours_dir,
                              args.prepare),
         lambda: spark_windows(spark, events_dir, labels_dir, numpy_dir, until, "numpy")],
        args.runs)
    same, windows = _same_windows(spark, ours_dir, numpy_dir)
    report(f"churn windows ({args.customers} customers, {args.days} days, {windows} "
           f"windows; outputs agree: {same})", "events", n, ours, numpy_udf,
           "applyInPandas, numpy-vectorised UDF")
    # The idiomatic pandas UDF on a subset (same generator, fewer customers).
    sub = min(args.udf_customers, args.customers)
    if sub == args.customers:
        s_events, s_labels, s_n, s_until = events_dir, labels_dir, n, until
    else:
        s_events, s_labels, s_n, s_until = _gen_churn(work, "churn_sub", sub, args.days)
    pandas_dir, sub_dir = os.path.join(work, "w_pandas"), os.path.join(work, "w_sub")
    # No warm-up of its own (it takes minutes at 1M events): the session's Python workers
    # are warm from the jobs above, which read the same kind of files.
    pandas_udf = timed(lambda: spark_windows(spark, s_events, s_labels, pandas_dir, s_until,
                                             "pandas"), max(1, args.runs // 2), warmup=False)
    _dsp_windows(spark, dsp, s_events, s_labels, s_until, sub_dir, args.prepare)
    same, windows = _same_windows(spark, sub_dir, pandas_dir)
    (w1, c1), (w2, c2) = ours, pandas_udf
    print(f"churn windows, idiomatic pandas UDF on {sub} customers ({s_n} events, "
          f"{windows} windows; outputs agree: {same}) vs dlprep.spark on all {n} events")
    print(f"  dlprep.spark: {n / w1:12,.0f} events/s wall, {n / c1:12,.0f} events/CPU-s")
    print(f"  applyInPandas, pandas UDF: {s_n / w2:12,.0f} events/s wall, "
          f"{s_n / c2:12,.0f} events/CPU-s")
    print(f"  ratio (dlprep / theirs, events per second): wall {(n / w1) / (s_n / w2):.1f}x, "
          f"CPU {(n / c1) / (s_n / c2):.1f}x")
    return events_dir


def _spark_side_of_windows(spark, events_dir, labels_dir):
    """The scaling reference without dlprep: what Spark does in the windows job (scan,
    broadcast label join, the shuffle of the same reduce-side columns), each partition
    then sorted by key and time (Spark's own grouping work) instead of handed to the
    engine; the noop format writes nothing."""
    from pyspark.sql import functions as F
    events = spark.read.parquet(events_dir)
    labels = spark.read.parquet(labels_dir).select("customer_id", "churn_ts")
    codes = F.array(*[F.lit(c) for c in CATS])
    (events.join(F.broadcast(labels), on="customer_id", how="left")
     .where(F.col("customer_id").isNotNull())
     .select("customer_id", F.unix_seconds("ts").alias("ts"),
             (F.array_position(codes, F.col("event_type")) - 1).cast("short")
             .alias("event_type"), F.unix_seconds("churn_ts").alias("churn_ts"),
             *VALUES)
     .repartition("customer_id").sortWithinPartitions("customer_id", "ts")
     .write.mode("overwrite").format("noop").save())


def _pin_driver(cpus):
    """Confines every thread of this process and of the driver's JVM (PySpark's gateway
    process and the processes under it; not the cluster's, which are children of this
    process too) to ``cpus``. Threads started later inherit it from theirs, and a
    gateway JVM started later from this thread."""
    from pyspark import SparkContext
    gateway = getattr(SparkContext._gateway, "proc", None)
    pids = {os.getpid()} | (set(tree_processes(gateway.pid)) if gateway is not None
                            else set())
    for pid in pids:
        try:
            threads = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in threads:
            try:
                os.sched_setaffinity(int(tid), cpus)
            except OSError:  # ended meanwhile
                pass


def bench_scaling(work, args, dsp):
    """dsp.windows and dsp.audio on a standalone cluster of one and of two one-core
    workers (examples/spark/local_cluster.py), same data: the speed-up of the second
    worker; ``spark`` in --scaling-jobs: the Spark side of the windows job alone, as the
    platform's own reference."""
    from local_cluster import standalone_cluster
    from pyspark.sql import SparkSession

    from speech import write_tones
    jobs = args.scaling_jobs.split(",")
    unknown = set(jobs) - {"windows", "audio", "spark"}
    if unknown:
        raise SystemExit(f"--scaling-jobs: unknown job(s) {', '.join(sorted(unknown))}; "
                         "expected windows, audio or spark")
    if "windows" in jobs or "spark" in jobs:
        events_dir, labels_dir, n, until = _gen_churn(work, "churn_scaling",
                                                      args.customers, args.days)
    if "audio" in jobs:
        wavs = os.path.join(work, "wavs_scaling")
        clips = write_tones(wavs, max(1, -(-args.clips // 3)))
    all_cpus = os.sched_getaffinity(0)
    # Rounds: in each, a one-worker and then a two-worker cluster, each started afresh,
    # WARMUPS warm-up jobs and one timed job per job kind. Alternating the clusters
    # round by round keeps a slow spell of this shared machine from landing on one side
    # only.
    samples = {}
    for rnd in range(args.runs):
        for workers in (1, 2):
            folder = os.path.join(work, f"cluster{workers}_{rnd}")
            with standalone_cluster(workers, folder, pin=args.pin_workers) as master:
                if args.pin_driver:  # the first worker's CPU (standalone_cluster's order)
                    _pin_driver({sorted(all_cpus)[0]})
                spark = (SparkSession.builder.master(master).appName("dlprep-scaling")
                         .config("spark.executor.memory", "1g")
                         .config("spark.sql.shuffle.partitions", "8")
                         .config("spark.ui.enabled", "false")
                         .config("spark.ui.showConsoleProgress", "false").getOrCreate())
                spark.sparkContext.setLogLevel("ERROR")
                try:
                    if "windows" in jobs:
                        out = os.path.join(work, "w_scaling")
                        samples.setdefault(("windows", workers), []).append(timed(
                            lambda: _dsp_windows(spark, dsp, events_dir, labels_dir, until,
                                                 out, args.prepare), 1, WARMUPS))
                    if "spark" in jobs:
                        samples.setdefault(("spark", workers), []).append(timed(
                            lambda: _spark_side_of_windows(spark, events_dir, labels_dir),
                            1, WARMUPS))
                    if "audio" in jobs:
                        files = _wav_files(spark, wavs)
                        if rnd == 0:
                            tasks = dsp.audio(files, clip_seconds=1).rdd.getNumPartitions()
                            print(f"scaling, {workers} worker(s): dsp.audio runs {tasks} "
                                  "tasks")
                        samples.setdefault(("audio", workers), []).append(timed(
                            lambda: dsp.audio(files, clip_seconds=1).select("path", "log_mel")
                            .write.mode("overwrite").format("noop").save(), 1, WARMUPS))
                finally:
                    spark.stop()
                    if args.pin_driver:
                        _pin_driver(all_cpus)
            shutil.rmtree(folder, ignore_errors=True)
    results = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
               for k, v in samples.items()}
    sizes = {"windows": lambda: f"dsp.windows, {n} events",
             "spark": lambda: f"reference without dlprep: the Spark side of the windows "
                              f"job, {n} events",
             "audio": lambda: f"dsp.audio, {clips} clips"}
    for job in jobs:
        (w1, c1), (w2, c2) = results[(job, 1)], results[(job, 2)]
        pinned = ", each pinned to a CPU of its own" if args.pin_workers else ""
        if args.pin_driver:
            pinned += ", the driver on the first worker's CPU"
        print(f"scaling, {sizes[job]()}; standalone cluster of one-core workers{pinned}:")
        print(f"  1 worker: {w1:7.2f} s wall, {c1:7.2f} s CPU; 2 workers: {w2:7.2f} s wall, "
              f"{c2:7.2f} s CPU; speed-up {w1 / w2:.2f}x (medians of {args.runs} rounds)")
        for workers in (1, 2):
            walls = ", ".join(f"{w:.2f}" for w, _ in samples[(job, workers)])
            print(f"    {workers} worker(s), wall by round: {walls}")
        ratios = ", ".join(f"{a[0] / b[0]:.2f}x" for a, b in
                           zip(samples[(job, 1)], samples[(job, 2)]))
        print(f"    speed-up by round: {ratios}")


def _wav_files(spark, wavs):
    return (spark.read.format("binaryFile").option("pathGlobFilter", "*.wav")
            .option("recursiveFileLookup", "true").load(wavs))


def bench_speech(spark, work, args, dsp):
    from speech import write_tones
    wavs = os.path.join(work, "wavs")
    clips = write_tones(wavs, max(1, -(-args.clips // 3)))
    files = _wav_files(spark, wavs)  # read afresh by every job
    tasks = dsp.audio(files, clip_seconds=1).rdd.getNumPartitions()
    print(f"speech: binaryFile scan {files.rdd.getNumPartitions()} partitions; dsp.audio "
          f"and the UDF run {tasks} tasks")

    def ours():
        dsp.audio(files, clip_seconds=1).select("path", "log_mel") \
            .write.mode("overwrite").format("noop").save()

    def ours_content():
        dsp.audio(files, clip_seconds=1, read_files=False, partitions=tasks) \
            .select("path", "log_mel").write.mode("overwrite").format("noop").save()

    try:
        import librosa  # noqa: F401
    except ImportError:
        print(f"speech ({clips} clips): librosa is not importable in {sys.executable}; "
              "the librosa pandas UDF is skipped")
        w, c = timed(ours, args.runs)
        print(f"  dlprep.spark audio: {w:.2f} s wall, {c:.2f} s CPU, "
              f"{clips / w:,.1f} clips/s")
        return
    import pandas as pd
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("array<float>")
    def log_mel(content: pd.Series) -> pd.Series:
        import io

        import librosa
        import soundfile as sf
        out = []
        for b in content:
            y, sr = sf.read(io.BytesIO(b), dtype="float32")
            S = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=512, hop_length=160,
                                               win_length=400, n_mels=64,
                                               pad_mode="constant")
            out.append(librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=80).T.ravel())
        return pd.Series(out)

    def theirs():
        files.coalesce(tasks).select("path", log_mel("content").alias("log_mel")) \
            .write.mode("overwrite").format("noop").save()

    mine, content, udf = timed_interleaved([ours, ours_content, theirs], args.runs)
    report(f"speech ({clips} one-second clips)", "clips", clips, mine, udf,
           "pandas UDF, librosa")
    (w, c) = content
    print(f"  dsp.audio read_files=False (Spark reads the content): {w:7.2f} s wall, "
          f"{c:7.2f} s CPU, {clips / w:12,.0f} clips/s; ratio wall {udf[0] / w:.1f}x, "
          f"CPU {udf[1] / c:.1f}x")


def bench_score(spark, work, args, dsp):
    try:
        import torch
    except ImportError:
        print("scoring: torch is not importable; skipped")
        return
    torch.manual_seed(0)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(64, 3)

        def forward(self, x):  # [batch, 101, 64]
            return self.linear(x.mean(dim=1))

    model = os.path.join(work, "model.pt")
    torch.jit.script(Model()).save(model)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, 101 * 64), dtype=np.float32)
    field = pa.field("x", pa.list_(pa.float32()), metadata={"dlprep.shape": "[101,64]"})
    offsets = np.arange(0, x.size + 1, 101 * 64, dtype=np.int32)
    table = pa.table({"id": np.arange(args.rows),
                      "x": pa.ListArray.from_arrays(offsets, pa.array(x.ravel()))})
    table = table.cast(pa.schema([("id", pa.int64()), field]))
    pq.write_table(table, os.path.join(work, "x.parquet"))
    df = spark.read.parquet(os.path.join(work, "x.parquet")).repartition(4).cache()
    df.count()

    def ours():
        dsp.score(df, model=model, column="x", argmax=True, batch_size=256,
                  shapes=["101,64"], keep=["id"], threads_per_task=1) \
            .write.mode("overwrite").format("noop").save()

    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql import types as T

    def make_predict_fn():
        import torch
        torch.set_num_threads(1)
        m = torch.jit.load(model)

        def predict(inputs):
            with torch.no_grad():
                return m(torch.from_numpy(inputs)).numpy()
        return predict

    udf = predict_batch_udf(make_predict_fn, return_type=T.ArrayType(T.FloatType()),
                            batch_size=256, input_tensor_shapes=[[101, 64]])

    def theirs():
        df.select("id", udf("x").alias("scores")).write.mode("overwrite").format("noop") \
            .save()

    a, b = timed_interleaved([ours, theirs], args.runs)
    got = dsp.score(df, model=model, column="x", shapes=["101,64"], keep=["id"]) \
        .orderBy("id").limit(50).collect()
    want = df.select("id", udf("x").alias("scores")).orderBy("id").limit(50).collect()
    same = all(np.allclose(g["scores"], w["scores"], rtol=1e-4, atol=1e-5)
               for g, w in zip(got, want))
    report(f"scoring ({args.rows} rows of [101, 64]; first 50 rows agree: {same})",
           "rows", args.rows, a, b, "predict_batch_udf")
    df.unpersist()


def bench_write(spark, work, args, dsp, events_dir):
    df = spark.read.parquet(events_dir).repartition(4).cache()
    n = df.count()

    def ours():
        dsp.write_tfrecord(df, os.path.join(work, "tfr"), overwrite=True)

    def theirs():
        df.write.mode("overwrite").parquet(os.path.join(work, "pq"))

    report("writing the churn events (4 partitions)", "rows", n, timed(ours, args.runs),
           timed(theirs, args.runs), "df.write.parquet")
    df.unpersist()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--customers", type=int, default=2000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--clips", type=int, default=300)
    ap.add_argument("--rows", type=int, default=4000, help="rows to score")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmups", type=int, default=WARMUPS,
                    help="warm-up rounds before the timed rounds of jobs that take turns")
    ap.add_argument("--scaling-jobs", default="windows,audio",
                    help="what --jobs scaling runs, comma-separated: windows, audio, "
                         "spark (the Spark side of the windows job alone, a reference)")
    ap.add_argument("--pin-driver", action="store_true",
                    help="scaling: the driver (this process and its JVM) on the first "
                         "worker's CPU on both clusters, so that the second worker adds "
                         "one CPU and nothing else (needs --pin-workers)")
    ap.add_argument("--pin-workers", action="store_true",
                    help="scaling: each one-core worker (its executor JVM and Python "
                         "workers) on a CPU of its own, as on one-core machines; without "
                         "it a one-core worker uses more than one CPU of this machine")
    ap.add_argument("--udf-customers", type=int, default=2000,
                    help="customers given to the idiomatic pandas UDF (a subset: it does "
                         "about 4k events/s; the numpy UDF gets all of them)")
    ap.add_argument("--prepare", choices=["map", "reduce"], default="reduce",
                    help="dsp.windows(prepare=): its map-side step before the shuffle "
                         "(map) or in the engine after it (reduce, the default)")
    ap.add_argument("--jobs", default="windows,speech,score,write",
                    help="comma-separated: windows, speech, score, write, scaling (this "
                         "one starts standalone clusters of 1 and 2 workers itself)")
    args = ap.parse_args()
    if args.pin_driver and not args.pin_workers:
        ap.error("--pin-driver needs --pin-workers (the driver joins the first worker's "
                 "CPU)")
    globals()["WARMUPS"] = args.warmups
    jobs = args.jobs.split(",")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # Spark's Python workers import windows_udf from here.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in [HERE, os.environ.get("PYTHONPATH", "")] if p)
    from pyspark.sql import SparkSession

    from dlprep import spark as dsp
    work = tempfile.mkdtemp(prefix="dlprep-spark-bench-")
    start = time.perf_counter()
    spark = (SparkSession.builder.master(args.master).appName("dlprep-spark-bench")
             .config("spark.driver.memory", "2g")
             .config("spark.sql.shuffle.partitions", "4")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    print(f"master {args.master}, {os.cpu_count()} CPUs; session start-up "
          f"{time.perf_counter() - start:.1f} s (not counted); medians of {args.runs}")
    try:
        events_dir = None
        if "windows" in jobs or "write" in jobs:
            events_dir = bench_windows(spark, work, args, dsp, "windows" in jobs)
        if "speech" in jobs:
            bench_speech(spark, work, args, dsp)
        if "score" in jobs:
            bench_score(spark, work, args, dsp)
        if "write" in jobs:
            bench_write(spark, work, args, dsp, events_dir)
        if "scaling" in jobs:
            spark.stop()  # one SparkContext per process
            bench_scaling(work, args, dsp)
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
