"""dlprep.spark: the engine's operators inside PySpark (mapInArrow / applyInArrow) give
the rows the engine gives on one machine; writes commit once per partition whatever
Spark retries; stateful operators open once per Python worker."""
import gc
import json
import importlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pyspark = pytest.importorskip("pyspark")
if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
    pytest.skip("Spark needs Java (17)", allow_module_level=True)

import dlprep  # noqa: E402
from conftest import SOURCE  # noqa: E402
from test_dataset import _write_wav  # noqa: E402

from dlprep import spark as dsp  # noqa: E402

AUDIO = dict(clip_seconds=1, mfcc=13, label_regex=r"([^/]+)/[^/]+$")
WINDOWS = dict(key="customer_id", time="ts", category="event_type",
               values=["amount", "duration"], aggs=["sum", "mean", "max"], window="14d",
               stride="7d", step="1d", horizon="30d")


def _session(master, **conf):
    from pyspark.sql import SparkSession
    b = (SparkSession.builder.master(master).appName("dlprep-test")
         .config("spark.ui.enabled", "false")
         .config("spark.ui.showConsoleProgress", "false")
         .config("spark.sql.shuffle.partitions", "4")
         .config("spark.python.worker.reuse", "true")
         # Small Arrow batches: several per task, so stateful operators hold rows back.
         .config("spark.sql.execution.arrow.maxRecordsPerBatch", "200")
         # Not UTC: timestamps must come out right whatever the session's zone.
         .config("spark.sql.session.timeZone", "America/New_York")
         .config("spark.driver.memory", "1g"))
    for k, v in conf.items():
        b = b.config(k, v)
    s = b.getOrCreate()
    s.sparkContext.setLogLevel("ERROR")
    return s


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Processes:
    """Processes a test started, each stopped by its PID (and process group: the Spark
    scripts exec java) at the end, also on failure."""

    def __init__(self, folder):
        self.folder = folder
        self.procs = []
        self.logs = []

    def start(self, args, env):
        log = open(self.folder / f"proc{len(self.procs)}.log", "wb")
        self.logs.append(log)
        p = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for log in self.logs:
            log.close()


SPARK_HOME = Path(os.path.dirname(pyspark.__file__))


@pytest.fixture(scope="module", autouse=True)
def spark_env():
    """Spark's Python workers run this Python (with the installed dlprep); Spark binds
    to the loopback interface."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYSPARK_PYTHON", sys.executable)
        mp.setenv("SPARK_LOCAL_IP", "127.0.0.1")
        yield


@pytest.fixture(scope="module")
def connect_server(spark_env, tmp_path_factory):
    """A Spark Connect server (local[2,4]) on 127.0.0.1, started at the beginning of the
    module so that it comes up while the other tests run; None without the Connect
    client's dependencies (pip install 'pyspark[connect]')."""
    try:
        for module in ("grpc", "grpc_status", "google.rpc.status_pb2", "zstandard"):
            importlib.import_module(module)
    except ImportError:
        yield None
        return
    procs = _Processes(tmp_path_factory.mktemp("connect"))
    port = _free_port()
    procs.start([str(SPARK_HOME / "bin" / "spark-submit"), "--class",
                 "org.apache.spark.sql.connect.service.SparkConnectServer",
                 "--master", "local[2,4]", "--conf", f"spark.connect.grpc.binding.port={port}",
                 "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
                 "--conf", "spark.ui.enabled=false", "--conf", "spark.driver.memory=1g"],
                dict(os.environ, SPARK_HOME=str(SPARK_HOME)))
    try:
        yield port
    finally:
        procs.stop()


@pytest.fixture(scope="module")
def spark(connect_server):
    # local[2,4]: two cores, and a failed task is retried up to 4 times (plain local[N]
    # never retries).
    s = _session("local[2,4]")
    yield s
    s.stop()


def _rows(table, keys):
    return table.sort_by([(k, "ascending") for k in keys]).to_pylist()


def _same_rows(got, expected, keys):
    """Rows equal (floats to 1e-5 relative); timestamps compare as instants."""
    a, b = _rows(got, keys), _rows(expected, keys)
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            u, v = x[k], y[k]
            if isinstance(u, list) and u and isinstance(u[0], float):
                assert np.allclose(u, v, rtol=1e-5, atol=1e-6), k
            elif isinstance(u, float):
                assert u == pytest.approx(v, rel=1e-5, abs=1e-6), k
            else:
                assert u == v, (k, u, v)


# -- data --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def churn(tmp_path_factory):
    """Events of 40 customers over 60 days and labels (churn time for half of them)."""
    d = tmp_path_factory.mktemp("churn")
    rng = np.random.default_rng(7)
    n = 3000
    start = 1_700_000_000
    ts = start + rng.permutation(60 * 86400)[:n]  # distinct times: one order per key
    keys = rng.integers(0, 40, n).astype(object)
    keys[:5] = None  # null keys are left out
    events = pa.table({
        "customer_id": pa.array(keys, pa.int64()),
        "ts": pa.array(ts * 1_000_000, pa.timestamp("us", tz="UTC")),
        "event_type": pa.array(rng.choice(["login", "purchase", "support"], n)),
        "amount": pa.array(rng.gamma(2.0, 10.0, n)),
        "duration": pa.array(rng.integers(1, 600, n), pa.int64())})
    labels = pa.table({
        "customer_id": pa.array(range(0, 40, 2), pa.int64()),
        "churn_ts": pa.array([(start + (20 + i) * 86400) * 1_000_000 for i in range(20)],
                             pa.timestamp("us", tz="UTC"))})
    pq.write_table(events, d / "events.parquet")
    pq.write_table(labels, d / "labels.parquet")
    return d, events, labels


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    for i in range(15):
        _write_wav(d / ("yes" if i % 2 else "no") / f"{i}.wav", 200 + 40 * i)
    (d / "no" / "bad.wav").write_bytes(b"not a wav file at all")
    return d


def _binary_files(spark, folder, partitions):
    return (spark.read.format("binaryFile").option("pathGlobFilter", "*.wav")
            .option("recursiveFileLookup", "true").load(str(folder))
            .repartition(partitions))


def _local_path(table):
    """Spark's binaryFile paths are URIs (file:/x); the engine's are plain paths."""
    i = table.schema.get_field_index("path")
    return table.set_column(i, "path", pa.array(
        [re.sub(r"^file:", "", p) for p in table.column("path").to_pylist()]))


# -- types -------------------------------------------------------------------------------
def test_audio_task_count_fills_every_core_in_the_last_round():
    # at most 1,000 files a task, a multiple of the default parallelism
    assert [dsp._audio_tasks(n, 2) for n in (1, 2000, 2001, 4000, 20001)] == \
        [2, 2, 4, 4, 22]
    assert [dsp._audio_tasks(n, 3) for n in (10, 3001, 9000)] == [3, 6, 9]
    assert dsp._audio_tasks(5, 0) == 1


def test_arrow_and_spark_schemas_map_exactly():
    from pyspark.sql import types as T
    schema = pa.schema([
        ("a", pa.int64()), ("b", pa.int32()), ("c", pa.float32()), ("d", pa.float64()),
        pa.field("e", pa.list_(pa.float32()), metadata={"dlprep.shape": "[2,3]"}),
        ("f", pa.timestamp("s", tz="UTC")), ("g", pa.string()), ("h", pa.binary()),
        ("i", pa.int16()), pa.field("j", pa.int32(), nullable=False), ("k", pa.uint32()),
        ("l", pa.list_(pa.field("item", pa.int64(), nullable=False))), ("m", pa.bool_()),
        ("n", pa.timestamp("us"))])
    s = dsp.spark_schema(schema)
    assert [f.dataType for f in s.fields] == [
        T.LongType(), T.IntegerType(), T.FloatType(), T.DoubleType(),
        T.ArrayType(T.FloatType()), T.TimestampType(), T.StringType(), T.BinaryType(),
        T.ShortType(), T.IntegerType(), T.LongType(), T.ArrayType(T.LongType(), False),
        T.BooleanType(), T.TimestampNTZType()]
    assert s["e"].metadata == {"dlprep.shape": "[2,3]"} and not s["j"].nullable
    # Types Spark lacks keep their exact Arrow type in the column metadata: back to
    # Arrow, the schema is the one we started from.
    assert "dlprep.arrow_type" in s["f"].metadata and "dlprep.arrow_type" in s["k"].metadata
    assert "dlprep.arrow_type" not in s["a"].metadata
    back = dsp.arrow_schema(s)
    assert back.equals(schema, check_metadata=True)
    plain = dsp.arrow_schema(dsp.spark_schema(schema).__class__(
        [f.__class__(f.name, f.dataType, f.nullable) for f in s.fields]))
    assert plain.field("f").type == pa.timestamp("us", tz="UTC")
    assert plain.field("e").type == pa.list_(pa.float32())
    with pytest.raises(dlprep.errors.TypeError, match="column 'u'.*uint64"):
        dsp.spark_schema(pa.schema([("u", pa.uint64())]))
    # Spark's other types: large variants, nested types, and one dlprep does not read
    s = T.StructType([T.StructField("s", T.StringType()), T.StructField("d", T.DateType()),
                      T.StructField("x", T.DecimalType(10, 2)),
                      T.StructField("m", T.MapType(T.StringType(), T.DoubleType())),
                      T.StructField("t", T.StructType([T.StructField("b", T.BinaryType())]))])
    assert dsp.arrow_schema(s) == pa.schema([
        ("s", pa.string()), ("d", pa.date32()), ("x", pa.decimal128(10, 2)),
        ("m", pa.map_(pa.string(), pa.float64())), ("t", pa.struct([("b", pa.binary())]))])
    assert dsp._spark_arrow_schema(s, True).field("t").type == \
        pa.struct([("b", pa.large_binary())])
    with pytest.raises(dlprep.errors.TypeError,
                       match="column 'ym' has Spark type interval year to month, which "
                             "dlprep does not read"):
        dsp.arrow_schema(T.StructType([T.StructField("ym", T.YearMonthIntervalType())]))


# -- job-level errors fail on the driver, before any task ---------------------------------
def test_bad_options_fail_on_the_driver(spark, clips, tmp_path):
    sc = spark.sparkContext
    sc.setJobGroup("dlprep-bad-options", "no job may run")
    try:
        files = spark.read.format("binaryFile").load(str(clips / "yes"))
        with pytest.raises(dlprep.InvalidInput, match="model file '/nonexistent.pt'"):
            dsp.score(files, model="/nonexistent.pt", column="content")
        with pytest.raises(dlprep.InvalidInput, match="n-mels must be positive"):
            dsp.audio(files, n_mels=0)
        with pytest.raises(dlprep.InvalidInput, match="errors"):
            dsp.audio(files, errors="ignore", **AUDIO)
        with pytest.raises(dlprep.InvalidInput, match="option read_files: expected None, "
                                                      "True or False, not 'yes'"):
            dsp.audio(files, read_files="yes", **AUDIO)
        with pytest.raises(dlprep.InvalidInput, match="option partitions: expected an "
                                                      "integer >= 1, not 0"):
            dsp.audio(files, partitions=0, **AUDIO)
        with pytest.raises(dlprep.InvalidInput, match="read_files: no column 'path'"):
            dsp.audio(files.select("content"), read_files=True, **AUDIO)
        with pytest.raises(dlprep.Error, match="compression"):
            dsp.write_tfrecord(files, tmp_path / "out", compression="bogus")
        with pytest.raises(dlprep.Error, match="windows"):
            dsp.windows(files, key="path", time="modificationTime", window="7d",
                        stride="nonsense", step="1d", until=10)
        assert sc.statusTracker().getJobIdsForGroup("dlprep-bad-options") == []
        assert not (tmp_path / "out").exists()
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)


# -- grouped: windows, then the commit --------------------------------------------------
def test_windows_and_tfrecord_equal_the_engine(spark, churn, tmp_path):
    d, events, labels = churn
    local = tmp_path / "local"
    dlprep.from_arrow(events).windows(
        **WINDOWS, labels=dlprep.read_parquet(d / "labels.parquet"),
        label_time="churn_ts").write_tfrecord(local, compression="gzip")
    expected = dlprep.read_tfrecord(local).to_arrow()

    events_df = spark.read.parquet(str(d / "events.parquet")).repartition(3)
    labels_df = spark.read.parquet(str(d / "labels.parquet"))
    w = dsp.windows(events_df, labels=labels_df, label_time="churn_ts", **WINDOWS)
    assert json.loads(w.schema["features"].metadata["dlprep.shape"]) == \
        json.loads(expected.schema.field("features").metadata[b"dlprep.shape"])
    out = tmp_path / "spark"
    stats = dsp.write_tfrecord(w, out, compression="gzip")

    names = sorted(os.listdir(out))
    parts = [n for n in names if n.startswith("part-")]
    assert names == sorted(parts + ["_SUCCESS", "_manifest.json"])  # no _temporary
    assert all(re.fullmatch(r"part-\d{5}-[0-9a-f-]{36}-c\d{3}\.tfrecord\.gz", n) for n in parts)
    got = dlprep.read_tfrecord(out).to_arrow()
    keys = ["customer_id", "window_end"]
    _same_rows(got, expected, keys)
    assert got.schema.equals(expected.schema, check_metadata=True)

    m_spark = json.loads((out / "_manifest.json").read_text())
    m_local = json.loads((local / "_manifest.json").read_text())
    for k in ("format", "compression", "record_type", "rows", "schema", "arrow_schema",
              "features"):
        assert m_spark[k] == m_local[k], k
    assert [f["name"] for f in m_spark["files"]] == parts
    assert sum(f["bytes"] for f in m_spark["files"]) == m_spark["bytes"] == sum(
        (out / p).stat().st_size for p in parts)
    assert stats["rows"] == m_local["rows"] and stats["files"] == len(parts)

    # Read back through Spark: one task per file, the manifest's schema.
    back = dsp.read_tfrecord(spark, out)
    assert back.schema == dsp.spark_schema(expected.schema)
    _same_rows(back.toArrow(), expected, keys)

    with pytest.raises(dlprep.InvalidInput, match="not empty"):
        dsp.write_tfrecord(w, out)


def test_one_large_key_equals_the_engine(spark, tmp_path):
    """One key with 300k events among small ones, with a reduce-side memory budget far
    smaller than the key: the engine's grouped executor in the task spills its buckets
    and streams the key through the operator in time order."""
    rng = np.random.default_rng(11)
    big, small = 300_000, 20 * 150
    start = 1_700_000_000
    ts = start + rng.choice(45 * 86400, big + small, replace=False)  # distinct times
    keys = np.concatenate([np.zeros(big, np.int64), np.arange(small) % 20 + 1])
    events = pa.table({
        "customer_id": pa.array(keys, pa.int64()),
        "ts": pa.array(ts * 1_000_000, pa.timestamp("us", tz="UTC")),
        "event_type": pa.array(rng.choice(["login", "purchase", "support"], big + small)),
        "amount": pa.array(rng.gamma(2.0, 10.0, big + small)),
        "duration": pa.array(rng.integers(1, 600, big + small), pa.int64())})
    pq.write_table(events, tmp_path / "events.parquet")
    opts = {k: v for k, v in WINDOWS.items() if k != "horizon"}
    expected = dlprep.from_arrow(events).windows(**opts).to_arrow()

    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "10000")
    try:
        df = spark.read.parquet(str(tmp_path / "events.parquet"))
        # The key's prepared rows are about 10 MB.
        got = dsp.windows(df, **opts, memory_limit="24MB", max_group_bytes="1MB",
                          spill_dir=tmp_path / "spill").toArrow()
    finally:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "200")
    big_key = pa.compute.equal(expected.column("customer_id"), 0)
    assert expected.filter(big_key).num_rows > 0
    _same_rows(got, expected, ["customer_id", "window_end"])
    assert not any((tmp_path / "spill").iterdir())  # each task removed its spill folder


def _group_spec(events, run_options):
    """The reduce side of dsp.windows on the churn events, as windows() builds it."""
    opts = {k: v for k, v in WINDOWS.items() if k != "horizon"}
    op = dlprep.ops.windows(**opts, until=1_700_000_000 + 61 * 86400,
                            categories=["login", "purchase", "support"])
    pre = op.pre_group(events.to_batches()[0]).schema
    out = op.output_schema(events.schema)
    spec = dsp._GroupSpec("windows", op.options, "customer_id", events.schema, pre, pre,
                          out, run_options)
    return op, spec


def test_the_reduce_task_runs_the_engines_grouped_executor(churn):
    _, events, _ = churn
    events = events.filter(pa.compute.is_valid(events.column("customer_id")))
    op, spec = _group_spec(events, {"memory_limit": "64MB"})
    expected = dlprep.from_arrow(events).windows(
        **{k: v for k, v in WINDOWS.items() if k != "horizon"},
        until=1_700_000_000 + 61 * 86400).to_arrow()
    # Spark's batches: prepared on the map side, any number, keys interleaved.
    prepared = [op.pre_group(b) for b in events.to_batches(max_chunksize=250)]
    got = pa.Table.from_batches(list(dsp._group_task(spec, iter(prepared))))
    _same_rows(got, expected, ["customer_id", "window_end"])
    assert list(dsp._group_task(spec, iter([]))) == []  # an empty partition


def test_a_partition_over_the_memory_limit_fails_naming_the_settings(churn):
    _, events, _ = churn
    events = events.filter(pa.compute.is_valid(events.column("customer_id")))
    op, spec = _group_spec(events, {"memory_limit": "1000"})
    prepared = [op.pre_group(b) for b in events.to_batches(max_chunksize=250)]
    message = (r"key customer_id.*memory-limit.*dsp\.windows\(memory_limit=.*"
               r"spark\.sql\.shuffle\.partitions")
    with pytest.raises(dlprep.errors.OutOfMemory, match=message):
        list(dsp._group_task(spec, iter(prepared)))


@pytest.mark.parametrize("prepare", ["map", "reduce"])
def test_windows_prepared_before_or_after_the_shuffle_equal_the_engine(spark, churn,
                                                                       prepare):
    d, events, labels = churn
    expected = dlprep.from_arrow(events).windows(
        **WINDOWS, labels=dlprep.read_parquet(d / "labels.parquet"),
        label_time="churn_ts").to_arrow()
    w = dsp.windows(spark.read.parquet(str(d / "events.parquet")).repartition(3),
                    labels=spark.read.parquet(str(d / "labels.parquet")),
                    label_time="churn_ts", prepare=prepare, **WINDOWS)
    _same_rows(w.toArrow(), expected, ["customer_id", "window_end"])


def test_windows_partitions_sets_the_reduce_tasks_exactly(spark, churn):
    d, events, labels = churn
    expected = dlprep.from_arrow(events).windows(
        **WINDOWS, labels=dlprep.read_parquet(d / "labels.parquet"),
        label_time="churn_ts").to_arrow()
    events_df = spark.read.parquet(str(d / "events.parquet"))
    labels_df = spark.read.parquet(str(d / "labels.parquet"))
    for n in (1, 7):  # 7: more than the session's shuffle partitions, never coalesced
        w = dsp.windows(events_df, labels=labels_df, label_time="churn_ts", partitions=n,
                        **WINDOWS)
        assert w.rdd.getNumPartitions() == n
        _same_rows(w.toArrow(), expected, ["customer_id", "window_end"])


@pytest.mark.parametrize("codes_in_spark", [True, False])
def test_windows_reduce_side_columns_keep_the_engine_semantics(spark, tmp_path,
                                                               monkeypatch, codes_in_spark):
    """Times before 1970 and not on whole seconds (floored), null times (dropped),
    null and unlisted categories (counted in no category), an int32 value column, and
    categories coded by Spark or, past the limit, by the engine: same rows as the
    engine."""
    rng = np.random.default_rng(11)
    n = 2000
    ts = (-30 * 86400 + rng.integers(0, 60 * 86400, n)) * 1_000_000 + \
        rng.integers(-999_999, 999_999, n)
    # Just before midnights around 1970 and key 0's first event: flooring, not
    # truncating, puts them in the earlier day.
    ts[:6] = [-5 * 86_400_000_000 - 500_000, -86_400_000_000 - 1, -1, -500_000,
              86_400_000_000 - 1, -31 * 86_400_000_000 - 1]
    ts = pa.array(ts, pa.timestamp("us", tz="UTC")).to_pylist()
    for i in range(6, n, 97):
        ts[i] = None
    cats = rng.choice(["a", "b", "zz", None], n).tolist()
    events = pa.table({
        "k": pa.array([0] * 6 + rng.integers(0, 9, n - 6).tolist(), pa.int64()),
        "t": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "c": pa.array(cats, pa.string()),
        "v": pa.array(rng.integers(-50, 50, n), pa.int32()),
        "w": pa.array(rng.normal(size=n)),
    })
    path = tmp_path / "odd.parquet"
    pq.write_table(events, path)
    opts = dict(key="k", time="t", category="c", categories=["a", "b", "x"],
                values=["v", "w"], aggs=["sum", "min", "max"], window="3d", stride="1d",
                step="1d", until=40 * 86400)
    if not codes_in_spark:
        monkeypatch.setattr(dsp, "_JVM_CATEGORY_CODES_MAX", 2)
    expected = dlprep.from_arrow(events).windows(**opts).to_arrow()
    w = dsp.windows(spark.read.parquet(str(path)), **opts)
    plan = w._jdf.queryExecution().executedPlan().toString()
    assert ("array_position" in plan) == codes_in_spark
    _same_rows(w.toArrow(), expected, ["k", "window_end"])


def test_windows_run_options_are_checked_on_the_driver(spark, churn):
    d, _, _ = churn
    df = spark.read.parquet(str(d / "events.parquet"))
    with pytest.raises(dlprep.InvalidInput, match="memory_limit"):
        dsp.windows(df, **WINDOWS, memory_limit="lots")
    with pytest.raises(dlprep.InvalidInput, match="option prepare: expected 'map' or "
                                                  "'reduce', got 'early'"):
        dsp.windows(df, **WINDOWS, prepare="early")
    for bad in (0, 2.5, True, "4"):
        with pytest.raises(dlprep.InvalidInput, match="option partitions: expected an "
                                                      f"integer >= 1, not {bad!r}"):
            dsp.windows(df, **WINDOWS, partitions=bad)


def test_windows_bad_columns_and_labels_fail_on_the_driver_naming_them(spark, churn,
                                                                       tmp_path):
    d, events, labels = churn
    df = spark.read.parquet(str(d / "events.parquet"))
    labels_df = spark.read.parquet(str(d / "labels.parquet"))
    opts = dict(WINDOWS)
    with pytest.raises(dlprep.InvalidInput, match="option labels needs label_time"):
        dsp.windows(df, labels=labels_df, **opts)
    with pytest.raises(dlprep.InvalidInput, match="option label_time needs labels"):
        dsp.windows(df, label_time="churn_ts", **opts)
    with pytest.raises(dlprep.InvalidInput, match="option key: no column 'cust' "
                                                  r"\(columns: customer_id, ts,"):
        dsp.windows(df, **dict(opts, key="cust"))
    with pytest.raises(dlprep.InvalidInput, match="option time: no column 'when'"):
        dsp.windows(df, **dict(opts, time="when"))
    with pytest.raises(dlprep.errors.TypeError, match="option time: column 'event_type' has "
                                               "Spark type string; expected a timestamp"):
        dsp.windows(df, **dict(opts, time="event_type"))
    with pytest.raises(dlprep.InvalidInput, match="option category: no column 'kind'"):
        dsp.windows(df, **dict(opts, category="kind"))
    with pytest.raises(dlprep.InvalidInput, match="the events have no non-null times"):
        dsp.windows(df.where("ts IS NULL"), **opts)
    with pytest.raises(dlprep.InvalidInput, match=r"option labels: no column 'churn_at' "
                                                  r"\(columns: customer_id, churn_ts\)"):
        dsp.windows(df, labels=labels_df, label_time="churn_at", **opts)
    with pytest.raises(dlprep.InvalidInput, match="option label_time: the events already "
                                                  "have a column 'ts'"):
        dsp.windows(df, labels=labels_df.withColumnRenamed("churn_ts", "ts"),
                    label_time="ts", **dict(opts, time="ts"))
    # A key twice in the labels would count its events twice: refused before any task
    # of the windows job runs, naming the key (as the engine's join does).
    twice = pa.concat_tables([labels, labels.slice(3, 1)])
    pq.write_table(twice, tmp_path / "labels_twice.parquet")
    with pytest.raises(dlprep.InvalidInput, match=r"join: the labels have the key "
                                                  r"\(customer_id=6\) 2 times; keys of the "
                                                  "labels must be unique"):
        dsp.windows(df, labels=spark.read.parquet(str(tmp_path / "labels_twice.parquet")),
                    label_time="churn_ts", **opts)


# -- stateful: audio (opens once per worker), score, score_http --------------------------
def _scan_columns(df):
    """The columns Spark's binaryFile scan reads for ``df`` (from its physical plan)."""
    plan = df._jdf.queryExecution().executedPlan().toString()
    return re.search(r"FileScan binaryFile.*ReadSchema: struct<([^>]*)>", plan).group(1)


@pytest.mark.parametrize("read_files", [None, False])
def test_audio_equals_the_engine_and_opens_once_per_worker(spark, clips, read_files):
    expected = dlprep.read_binary_files(clips, recursive=True, name_filter="*.wav") \
        .audio(**AUDIO).to_arrow()
    # 8 tasks on 2 Python workers (content read by Spark), or coalesced to 2 (the
    # default parallelism) when the task reads the local files itself.
    files = _binary_files(spark, clips, 8)
    before_opens, before_errors = dsp.operator_opens(spark), dsp.row_error_count(spark)
    feats = dsp.audio(files, errors="column", read_files=read_files, **AUDIO)
    assert feats.schema["log_mel"].metadata == {"dlprep.shape": "[101,64]"}
    if read_files is None:  # local files: Spark reads the paths only
        assert _scan_columns(feats) == "path:string"
        assert feats.rdd.getNumPartitions() == 2
    else:
        assert "content:binary" in _scan_columns(feats)
        assert feats.rdd.getNumPartitions() == 8
    got = _local_path(feats.toArrow())
    opens = dsp.operator_opens(spark) - before_opens
    # the second parameter's tasks find the operator open (same options)
    assert (1 if read_files is None else 0) <= opens <= 2, opens
    assert dsp.row_error_count(spark) - before_errors == 1

    bad = got.filter(pa.compute.is_valid(got.column(dsp.ERROR_COLUMN)))
    assert bad.num_rows == 1
    assert bad.column("path")[0].as_py().endswith("bad.wav")
    assert "bad.wav" in bad.column(dsp.ERROR_COLUMN)[0].as_py()
    good = got.filter(pa.compute.is_null(got.column(dsp.ERROR_COLUMN))) \
        .drop_columns([dsp.ERROR_COLUMN])
    _same_rows(good, expected, ["path"])


def test_audio_reads_the_files_in_the_task_only_for_local_binary_files(spark, clips,
                                                                      tmp_path):
    # A DataFrame that is not a binaryFile scan (here built from Arrow data, with
    # paths on another file system) keeps using its content column.
    files = _binary_files(spark, clips, 2).where("path not like '%bad.wav'")
    table = files.toArrow()
    table = table.set_column(0, "path", pa.array(
        [re.sub(r"^file:", "hdfs://nn", p) for p in table.column("path").to_pylist()]))
    built = spark.createDataFrame(table)
    assert dsp._local_binary_files(built) is None
    assert dsp._local_binary_files(files) == 16
    # a content column computed in Spark is not the file's
    renamed = files.withColumn("content", files["content"])
    assert dsp._local_binary_files(renamed) is None
    expected = dlprep.read_binary_files(clips, recursive=True, name_filter="*.wav") \
        .audio(**AUDIO).to_arrow()
    got = dsp.audio(built, **AUDIO).toArrow()
    got = got.set_column(0, "path", pa.array(
        [re.sub(r"^hdfs://nn", "", p) for p in got.column("path").to_pylist()]))
    _same_rows(got, expected.filter(pa.compute.invert(pa.compute.ends_with(
        expected.column("path"), "bad.wav"))), ["path"])
    # Forced to read paths that are not local: one row error each, with the path.
    forced = dsp.audio(built, read_files=True, errors="column", **AUDIO).toArrow()
    assert forced.num_rows == 15
    assert all(re.fullmatch(r"cannot read 'hdfs://nn/.*\.wav': not a local file .*", m)
               for m in forced.column(dsp.ERROR_COLUMN).to_pylist())
    assert dsp._local_file("file:/a b/%20.wav") == "/a b/%20.wav"
    assert dsp._local_file("file:///data/x.wav") == "/data/x.wav"
    assert dsp._local_file("file://localhost/data/x.wav") == "/data/x.wav"
    assert dsp._local_file("/data/x.wav") == "/data/x.wav"
    assert dsp._local_file("file://otherhost/data/x.wav") is None
    assert dsp._local_file("s3a://bucket/x.wav") is None


def test_audio_on_a_binary_file_source_reads_spark_s_list_without_a_scan(spark, clips,
                                                                         tmp_path):
    from pyspark.sql import functions as F
    folder = tmp_path / "clips"
    shutil.copytree(clips, folder)
    odd = ["a b.wav", "a%20b.wav", "c#d.wav", "\u00e9t\u00e9.wav", "p+q.wav", "x%y.wav",
           "semi;colon.wav", "q?.wav"]
    for name in odd:
        (folder / "yes" / name).write_bytes((folder / "yes" / "1.wav").read_bytes())
    files = spark.read.format("binaryFile").option("pathGlobFilter", "*.wav") \
        .option("recursiveFileLookup", "true").load(str(folder))
    scanned = sorted(r.path for r in files.select("path").collect())
    # Spark's list, spelled as its scan spells the path column
    assert sorted(dsp._listed_binary_files(files)) == scanned
    assert sorted(dsp._listed_binary_files(files.select("content", "path"))) == scanned
    assert dsp._listed_binary_files(files.where("length > 0")) is None
    assert dsp._listed_binary_files(files.repartition(2)) is None
    assert dsp._listed_binary_files(files.withColumn("path", F.upper("path"))) is None
    assert dsp._listed_binary_files(files.select(F.col("path").alias("p"))) is None
    assert dsp._hadoop_path("file:/a%20b/%25x%23y%3F.wav") == "file:/a b/%x#y?.wav"
    assert dsp._hadoop_path("file:///d/%C3%A9.wav") == "file:/d/\u00e9.wav"
    assert dsp._hadoop_path("file://host/d/x.wav") == "file://host/d/x.wav"
    assert dsp._hadoop_path("file:/d/x+y;zé.wav") == "file:/d/x+y;zé.wav"  # as is

    feats = dsp.audio(files, errors="column", **AUDIO)
    plan = feats._jdf.queryExecution().executedPlan().toString()
    assert "FileScan" not in plan, plan  # no task scans the files for their paths
    assert feats.rdd.getNumPartitions() == 2  # 25 files: one task, rounded up to 2
    assert dsp.audio(files, partitions=30, **AUDIO).rdd.getNumPartitions() == 30
    got = feats.toArrow()
    assert sorted(got.column("path").to_pylist()) == scanned
    expected = dlprep.read_binary_files(folder, recursive=True, name_filter="*.wav") \
        .audio(**AUDIO).to_arrow()
    good = got.filter(pa.compute.is_null(got.column(dsp.ERROR_COLUMN))) \
        .drop_columns([dsp.ERROR_COLUMN])
    assert good.num_rows == len(scanned) - 1  # bad.wav
    _same_rows(_local_path(good), expected, ["path"])


def test_audio_file_unreadable_in_the_task_is_a_row_error(spark, clips, tmp_path):
    folder = tmp_path / "clips"
    shutil.copytree(clips, folder)
    (folder / "yes" / "a b%20.wav").write_bytes((folder / "yes" / "1.wav").read_bytes())
    # Many small scan partitions: the task count is then chosen by dsp.audio.
    spark.conf.set("spark.sql.files.maxPartitionBytes", "1")
    try:
        files = spark.read.format("binaryFile").option("pathGlobFilter", "*.wav") \
            .option("recursiveFileLookup", "true").load(str(folder))
        assert files.rdd.getNumPartitions() == 17
        feats = dsp.audio(files, errors="column", **AUDIO)
        assert feats.rdd.getNumPartitions() == 2
        assert dsp.audio(files, partitions=3, **AUDIO).rdd.getNumPartitions() == 3
        assert dsp.audio(files, partitions=20, **AUDIO).rdd.getNumPartitions() == 20
        # Listed by Spark as a file, a folder when the task runs (Spark's scan still
        # looks the file up; the task cannot read it).
        (folder / "yes" / "3.wav").unlink()
        (folder / "yes" / "3.wav").mkdir()
        before = dsp.row_error_count(spark)
        got = feats.toArrow()
        assert dsp.row_error_count(spark) - before == 2  # 3.wav and bad.wav
        errors = {p.rsplit("/", 1)[1]: m for p, m in zip(
            got.column("path").to_pylist(), got.column(dsp.ERROR_COLUMN).to_pylist()) if m}
        assert errors.keys() == {"3.wav", "bad.wav"}
        assert re.fullmatch(r"cannot read 'file:/.*/yes/3\.wav': Is a directory",
                            errors["3.wav"])
        # the file with a space and a '%' in its name is read (Spark's path is no URI)
        ok = got.filter(pa.compute.is_null(got.column(dsp.ERROR_COLUMN)))
        assert ok.num_rows == 15
        assert any(p.endswith("/yes/a b%20.wav") for p in ok.column("path").to_pylist())
        with pytest.raises(Exception, match=r"cannot read '.*3\.wav': Is a directory"):
            dsp.audio(files.where("path like '%/3.wav'"), errors="fail", **AUDIO).collect()
        assert dsp.audio(files, **AUDIO).count() == 15  # errors="drop"
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")


def test_score_after_audio_equals_the_engine(spark, clips, tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.jit.script(torch.nn.Sequential(torch.nn.Flatten(),
                                                 torch.nn.Linear(101 * 64, 3)))
    model.save(str(tmp_path / "m.pt"))
    ds = dlprep.read_binary_files(clips, recursive=True, name_filter="*.wav") \
        .audio(**AUDIO).select(["path", "label", "log_mel"])
    try:
        expected = ds.score(tmp_path / "m.pt", "log_mel", argmax=True, batch_size=4) \
            .to_arrow()
    except dlprep.errors.NotImplementedError:
        pytest.skip("this build has no TorchScript backend")
    feats = dsp.audio(_binary_files(spark, clips, 4), **AUDIO).select("path", "label",
                                                                         "log_mel")
    # log_mel's shape comes from its Spark column metadata; batches of 4 make score
    # hold rows back until each task's flush.
    scored = dsp.score(feats, model=str(tmp_path / "m.pt"), column="log_mel", argmax=True,
                       batch_size=4)
    _same_rows(_local_path(scored.toArrow()), expected, ["path"])


def test_score_http_equals_the_engine_and_keeps_failed_rows(spark, model_server):
    server = model_server
    rng = np.random.default_rng(3)
    n = 60
    t = pa.table({"id": pa.array(np.arange(n), pa.int64()),
                  "features": pa.array(list(rng.standard_normal((n, 4)).astype(np.float32)),
                                       pa.list_(pa.float32()))})
    # One row per request: only the row with id 13 fails, whatever the batches.
    opts = dict(protocol="kserve-v2", outputs=["score:float64", "row_id:int64"],
                batch_size=1, concurrency=4, retries=0)
    url = server.url("kserve-v2")
    server.fault = {"mode": "fail_ids", "ids": {13}, "code": 400}
    expected = dlprep.from_arrow(t).score_http(url, ["id", "features"], **opts).to_arrow()
    df = spark.createDataFrame(t).repartition(4)
    got = dsp.score_http(df, url=url, column=["id", "features"], errors="column",
                         **opts).toArrow()
    bad = got.filter(pa.compute.is_valid(got.column(dsp.ERROR_COLUMN)))
    assert expected.num_rows == n - 1 and bad.column("id").to_pylist() == [13]
    assert "400" in bad.column(dsp.ERROR_COLUMN)[0].as_py()
    assert bad.column("score").null_count == 1
    good = got.filter(pa.compute.is_null(got.column(dsp.ERROR_COLUMN)))
    _same_rows(good.drop_columns([dsp.ERROR_COLUMN]), expected, ["id"])
    assert dsp.step(df, "filter", expr="id >= 45").count() == 15
    with pytest.raises(Exception, match="400"):
        dsp.score_http(df, url=url, column=["id", "features"], errors="fail",
                       **opts).count()


def test_score_http_requests_hold_batch_size_rows_across_arrow_batches(spark, model_server):
    """The session's Arrow batches hold 200 rows; score_http still sends its batch_size
    (500) per request: the operator gathers a task's batches."""
    server = model_server
    n = 1200
    t = pa.table({"id": pa.array(np.arange(n), pa.int64()),
                  "x": pa.array(list(np.ones((n, 4), np.float32)), pa.list_(pa.float32()))})
    got = dsp.score_http(spark.createDataFrame(t).coalesce(1), url=server.url("kserve-v2"),
                         column=["id", "x"], protocol="kserve-v2",
                         outputs=["score:float64", "row_id:int64"], batch_size=500,
                         concurrency=1, retries=0).toArrow()
    assert sorted(got.column("id").to_pylist()) == list(range(n))
    sizes = sorted(len(ids) for ids in server.completed)
    assert sum(sizes) == n and max(sizes) == 500, sizes


def test_threads_per_task_default_is_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # Spark sets it to spark.task.cpus
    assert dsp._default_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert dsp._default_threads() == 1


def test_dlprep_tasks_freeze_the_python_worker_s_heap(spark):
    # PySpark runs gc.collect() after every task of a reused worker; each dlprep task
    # first freezes what is alive then, so those collections skip it.
    df = spark.range(0, 64, 1, 4)
    assert len(dsp.step(df, "select", columns=["id"]).collect()) == 64

    def probe(batches):
        import gc
        import os
        import sys
        for _ in batches:
            pass
        yield pa.RecordBatch.from_pylist([{
            "pid": os.getpid(), "ran": "dlprep.spark" in sys.modules,  # dlprep's tasks
            "frozen_objects": gc.get_freeze_count()}])

    rows = df.mapInArrow(probe, "pid long, ran boolean, frozen_objects long").collect()
    ran = [r for r in rows if r.ran]
    assert ran, rows  # the plain job reused workers that ran the dlprep job
    assert all(r.frozen_objects > 0 for r in ran), rows
    # In the task: what is alive when it starts is frozen, unless the driver's
    # spark.dlprep.gcFreeze is false; a bad value fails on the driver.
    spec = type("Spec", (), {})()
    try:
        gc.unfreeze()
        for conf, freezes in ((None, True), ("False", False), ("true", True)):
            if conf is not None:
                spark.conf.set(dsp.GC_FREEZE_CONF, conf)
            spec.gc_freeze = dsp._gc_freeze(spark)
            alive = [[i] for i in range(1000)]  # noqa: F841 - tracked objects
            dsp._freeze_worker_heap(spec)
            assert (gc.get_freeze_count() > 0) == freezes, conf
            gc.unfreeze()
        spark.conf.set(dsp.GC_FREEZE_CONF, "sometimes")
        with pytest.raises(dlprep.InvalidInput, match=r"spark\.dlprep\.gcFreeze: expected "
                                                      r"true or false, not 'sometimes'"):
            dsp.step(df, "select", columns=["id"])
    finally:
        gc.unfreeze()
        spark.conf.unset(dsp.GC_FREEZE_CONF)


# -- the commit under retries and failures ------------------------------------------------
def _flaky(mode):
    """A mapInArrow function that fails attempt 0 of partitions 1 (an exception after
    some rows went to the writer) and 2 (the Python worker is killed by SIGKILL), or (mode "always")
    every attempt of partition 0."""
    def fn(batches):
        from pyspark import TaskContext
        ctx = TaskContext.get()
        p, attempt = ctx.partitionId(), ctx.attemptNumber()
        for i, b in enumerate(batches):
            yield b
            if mode == "always" and p == 0:
                raise RuntimeError("injected: partition 0 always fails")
            if mode == "once" and attempt == 0 and p == 1 and i == 1:
                raise RuntimeError("injected: partition 1 fails once")
            if mode == "once" and attempt == 0 and p == 2 and i == 1:
                os.kill(os.getpid(), signal.SIGKILL)  # the Python worker is killed
    return fn


def test_retried_tasks_commit_every_row_once(spark, tmp_path):
    from pyspark.sql import functions as F
    df = spark.range(0, 4000, 1, numPartitions=4).withColumn(
        "v", (F.col("id") * 0.5).cast("float"))
    flaky = df.mapInArrow(_flaky("once"), df.schema)
    stats = dsp.write_tfrecord(flaky, tmp_path / "out", max_rows_per_file=600)
    names = sorted(os.listdir(tmp_path / "out"))
    assert "_temporary" not in names and "_SUCCESS" in names
    assert not [n for n in names if n.startswith(".")]
    got = dlprep.read_tfrecord(tmp_path / "out").to_arrow()
    assert sorted(got.column("id").to_pylist()) == list(range(4000))
    assert stats["rows"] == 4000 and stats["partitions"] == 4
    assert stats["attempts"] == [0, 1, 1, 0]  # the retried attempts were committed
    m = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert m["rows"] == 4000 and len(m["files"]) == stats["files"] == len(names) - 2
    assert {f["name"] for f in m["files"]} == set(names) - {"_SUCCESS", "_manifest.json"}

    # Overwrite replaces the folder's files with the new job's.
    dsp.write_tfrecord(df.where("id < 10"), tmp_path / "out", overwrite=True)
    assert dlprep.read_tfrecord(tmp_path / "out").to_arrow().num_rows == 10
    assert len(os.listdir(tmp_path / "out")) == 3


def test_failed_job_leaves_no_files(spark, tmp_path):
    df = spark.range(0, 1000, 1, numPartitions=3)
    with pytest.raises(Exception, match="partition 0 always fails"):
        dsp.write_tfrecord(df.mapInArrow(_flaky("always"), df.schema), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "keep.txt").write_text("x")
    with pytest.raises(Exception, match="partition 0 always fails"):
        dsp.write_tfrecord(df.mapInArrow(_flaky("always"), df.schema), tmp_path / "old",
                           overwrite=True)
    assert os.listdir(tmp_path / "old") == ["keep.txt"]


def test_an_attempt_after_the_job_ended_writes_nothing(monkeypatch, tmp_path):
    """A task attempt that starts (or finishes writing) after the driver removed the
    job's folder, as a speculative copy Spark did not kill in time can, leaves no file
    in the output folder (the engine's writer would create the missing folders)."""
    import pyspark

    class Ctx:
        def partitionId(self):
            return 3

        def stageId(self):
            return 1

        def attemptNumber(self):
            return 1

    monkeypatch.setattr(pyspark.TaskContext, "get", staticmethod(lambda: Ctx()))
    schema = pa.schema([("id", pa.int64())])
    out = tmp_path / "out"
    job_dir = out / "_temporary" / "job"
    spec = dsp._WriteSpec("tfrecord", {}, str(job_dir), schema, 1)
    batch = pa.record_batch({"id": pa.array([1, 2, 3], pa.int64())})
    assert list(dsp._write_task(spec, iter([batch]))) == []  # the job had ended
    assert not out.exists()

    (job_dir / "_template").mkdir(parents=True)  # the job is running ...

    def batches():
        yield batch
        shutil.rmtree(out / "_temporary")  # ... the driver commits while this one writes

    assert list(dsp._write_task(spec, batches())) == []
    assert os.listdir(out) == []
    (job_dir / "_template").mkdir(parents=True)
    [summary] = list(dsp._write_task(spec, iter([batch])))
    assert summary.column("rows").to_pylist() == [3]
    assert summary.column("dir").to_pylist() == ["attempt-1-3-1"]


# -- Spark Connect -----------------------------------------------------------------------
def test_spark_connect_gives_the_same_rows(connect_server, clips, tmp_path):
    if connect_server is None:
        pytest.skip("the Spark Connect client's dependencies are not installed "
                    "(pip install 'pyspark[connect]')")
    import socket
    deadline = time.time() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", connect_server), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline:
                pytest.fail("the Spark Connect server did not come up in 120 s")
            time.sleep(1)
    from pyspark.sql import SparkSession
    mode_was_set = "SPARK_CONNECT_MODE_ENABLED" in os.environ
    remote = SparkSession.builder.remote(f"sc://127.0.0.1:{connect_server}").create()
    try:
        expected = dlprep.read_binary_files(clips, recursive=True, name_filter="*.wav") \
            .audio(**AUDIO).to_arrow()
        feats = dsp.audio(_binary_files(remote, clips, 4), **AUDIO)
        dsp.write_tfrecord(feats, tmp_path / "out")
        got = _local_path(dsp.read_tfrecord(remote, tmp_path / "out").toArrow())
        _same_rows(got, expected, ["path"])
        assert dsp.operator_opens(remote) is None  # no accumulators in Spark Connect
    finally:
        remote.stop()
        if not mode_was_set:  # set by the Connect client; classic sessions refuse it
            os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)


# -- a standalone cluster (a master and two one-core workers) ----------------------------
@pytest.fixture()
def standalone(spark, tmp_path):
    """A master and two one-core workers (examples/spark/local_cluster.py, which stops
    every process it started by PID at the end), each pinned to a CPU of its own when
    this process may use two. Skipped when they do not come up within 90 s."""
    sys.path.insert(0, str(SOURCE / "examples" / "spark"))
    from local_cluster import ClusterNotReady, standalone_cluster
    spark.stop()  # one SparkContext per process
    pin = len(os.sched_getaffinity(0)) >= 2
    try:
        with standalone_cluster(workers=2, folder=tmp_path / "cluster", pin=pin) as master:
            s = _session(master, **{"spark.executor.memory": "512m",
                                    "spark.task.maxFailures": "4"})
            yield s
            s.stop()
    except ClusterNotReady as e:
        pytest.skip(f"the standalone cluster did not come up: {e}")


def test_standalone_cluster_gives_the_same_rows(standalone, clips, tmp_path):
    expected = dlprep.read_binary_files(clips, recursive=True, name_filter="*.wav") \
        .audio(**AUDIO).to_arrow()
    feats = dsp.audio(_binary_files(standalone, clips, 4), **AUDIO)
    dsp.write_tfrecord(feats, tmp_path / "out")
    got = _local_path(dlprep.read_tfrecord(tmp_path / "out").to_arrow())
    _same_rows(got, expected.select(got.schema.names), ["path"])
    assert 1 <= dsp.operator_opens(standalone) <= 4  # at most 2 per executor (1 core)
    if len(os.sched_getaffinity(0)) >= 2:
        # pinned workers: every Python worker may run on one CPU only
        def cpus(batches):
            for b in batches:
                yield pa.RecordBatch.from_pylist(
                    [{"cpus": len(os.sched_getaffinity(0))}] * b.num_rows)
        df = standalone.range(0, 64, 1, numPartitions=8)
        got = {r.cpus for r in df.mapInArrow(cpus, "cpus long").collect()}
        assert got == {1}


def test_pinned_cluster_with_more_workers_than_cpus_is_refused(tmp_path):
    sys.path.insert(0, str(SOURCE / "examples" / "spark"))
    from local_cluster import standalone_cluster
    n = len(os.sched_getaffinity(0))
    with pytest.raises(ValueError, match=fr"pin: {n + 1} workers with 1 core\(s\) each "
                                         fr"need {n + 1} CPUs; this process may use {n}"):
        with standalone_cluster(workers=n + 1, folder=tmp_path / "cluster", pin=True):
            pass
    assert not os.path.exists(tmp_path / "cluster" / "proc0.log")  # nothing started


# -- speculation ------------------------------------------------------------------------
@pytest.fixture()
def speculative(spark):
    """local[2,4] with speculative execution on (checked every 100 ms, a task slower than
    1.1 x the median of half the tasks is copied); a fresh SparkContext, as speculation
    is fixed when the context starts."""
    spark.stop()  # one SparkContext per process
    s = _session("local[2,4]", **{"spark.speculation": "true",
                                  "spark.speculation.interval": "100ms",
                                  "spark.speculation.multiplier": "1.1",
                                  "spark.speculation.quantile": "0.5",
                                  "spark.speculation.minTaskRuntime": "50ms"})
    yield s
    s.stop()


def test_speculation_commits_every_row_once(speculative, tmp_path):
    """One slow task under speculation: every row once, no attempt folder left. Spark
    launches no speculative copy in local mode (TaskSchedulerImpl runs its speculation
    check only when the master is not local[...]) nor on a host where the task already
    runs, so a copy may or may not run; each attempt leaves a mark so the test can say
    which case it saw."""
    marks = tmp_path / "marks"
    marks.mkdir()

    def slow(batches):
        from pyspark import TaskContext
        ctx = TaskContext.get()
        p, attempt = ctx.partitionId(), ctx.attemptNumber()
        (marks / f"p{p}-a{attempt}").touch()
        for b in batches:
            yield b
        if p == 2 and attempt == 0:
            time.sleep(4)

    df = speculative.range(0, 3000, 1, numPartitions=6)
    stats = dsp.write_tfrecord(df.mapInArrow(slow, df.schema), tmp_path / "out")
    names = sorted(os.listdir(tmp_path / "out"))
    assert "_SUCCESS" in names and "_temporary" not in names
    assert not [n for n in names if n.startswith(".")]
    got = dlprep.read_tfrecord(tmp_path / "out").to_arrow()
    assert sorted(got.column("id").to_pylist()) == list(range(3000))
    assert stats["rows"] == 3000 and stats["partitions"] == 6
    time.sleep(1)  # a copy still running when the job ended must not write afterwards
    assert sorted(os.listdir(tmp_path / "out")) == names
    copies = sorted(m.name for m in marks.iterdir() if not m.name.endswith("-a0"))
    print(f"speculative copies: {copies or 'none'}; committed: {stats['attempts']}")
