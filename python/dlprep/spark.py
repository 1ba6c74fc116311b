"""dlprep's operators inside Apache Spark (PySpark 4), through Arrow UDFs.

Spark does the cluster work (scheduling, shuffles, retries); each Spark task calls the
engine's operators (:mod:`dlprep.ops`) on the Arrow batches Spark hands its Python
worker. Every function takes and returns Spark DataFrames::

    from dlprep import spark as dsp
    files = spark.read.format("binaryFile").option("pathGlobFilter", "*.wav").load("clips/")
    feats = dsp.audio(files, clip_seconds=1, mfcc=13, label_regex=r"([^/]+)/[^/]+$")
    scores = dsp.score(feats, model="/shared/model.pt", column="log_mel", argmax=True)
    dsp.write_tfrecord(scores, "/shared/out/scores", compression="gzip")
    df = dsp.read_tfrecord(spark, "/shared/out/scores")

* Batch and stateful steps (``audio``, ``score``, ``score_http``, :func:`step`) run
  in ``DataFrame.mapInArrow``. A stateful step (a model) is opened once per Python
  worker process and kept open across tasks (a cache in this module; Spark reuses its
  Python workers unless ``spark.python.worker.reuse`` is false); the rows it still
  holds are flushed at the end of every task. :func:`operator_opens` counts the opens.
* :func:`windows`: Spark shuffles the rows by key (``repartition(key)``) and each
  reduce task gives its whole partition, as one Arrow stream, to the engine's grouped
  executor in a ``mapInArrow`` (hash buckets, spilled over the task's memory budget),
  so Spark neither sorts the rows nor frames them per key. The categories and the end
  time are found by one Spark aggregation; labels are broadcast-joined in Spark.
* :func:`write_tfrecord` / :func:`write_parquet` write each task's rows with the
  engine's writer into ``path/_temporary/<job>/attempt-<stage>-<partition>-<attempt>/``
  and commit on the driver: one attempt per partition (the one Spark returned),
  renamed to ``part-<partition>-<job>-c<k>``, then ``_manifest.json`` and ``_SUCCESS``.
  A failed job leaves no part file and no ``_SUCCESS``. The folder must be on a file
  system every worker and the driver see at the same path (local, NFS).
* Options are checked on the driver before a task runs (the operator is built there and
  asked for its output schema), so a bad option or a missing model fails at once with
  the engine's message. Output types are the operator's Arrow types in Spark's terms
  (:func:`spark_schema`); tensor shapes (``dlprep.shape``) travel in the Spark column
  metadata, so a later ``score`` or ``write_tfrecord`` still knows them.

Row errors (a corrupt WAV, a failed HTTP call), option ``errors``:

* ``"drop"`` (default): the row is left out, as in the engine; counted by
  :func:`row_error_count`.
* ``"fail"``: the task raises with the row's message (Spark retries it, then fails
  the job).
* ``"column"``: the output gets a string column ``_dlprep_error``, null on good rows;
  a failed row is kept with its message there, the columns it shares with the input
  (``path`` for ``audio``) copied from the input and the rest null (every column is
  then nullable).

Threads: Spark sets ``OMP_NUM_THREADS`` to ``spark.task.cpus`` in its Python workers;
``threads_per_task`` (default: that variable, else 1) is what a model may use.
"""
import base64
import collections
import functools
import gc
import json
import os
import shutil
import uuid

import pyarrow as pa

from . import _dlprep
from . import ops as _ops
from .errors import InvalidInput as _InvalidInput
from .errors import OutOfMemory as _OutOfMemory
from .errors import TypeError as _TypeError

__all__ = ["audio", "score", "score_http", "step", "windows", "write_tfrecord",
           "write_parquet", "read_tfrecord", "operator_opens", "row_error_count",
           "spark_schema", "arrow_schema"]

ERROR_COLUMN = "_dlprep_error"
_ERROR_MODES = ("drop", "fail", "column")
# Field metadata keys that travel through Spark (as Spark column metadata).
_META_PREFIX = "dlprep."
_TYPE_KEY = "dlprep.arrow_type"


# -- types ------------------------------------------------------------------------------
def _spark_type(t, where):
    """The Spark type holding Arrow type ``t`` without loss."""
    from pyspark.sql import types as T
    if pa.types.is_dictionary(t):
        return _spark_type(t.value_type, where)
    if pa.types.is_boolean(t):
        return T.BooleanType()
    if pa.types.is_int8(t):
        return T.ByteType()
    if pa.types.is_int16(t) or pa.types.is_uint8(t):
        return T.ShortType()
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return T.IntegerType()
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return T.LongType()
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return T.FloatType()
    if pa.types.is_float64(t):
        return T.DoubleType()
    if pa.types.is_decimal(t) and t.precision <= 38:
        return T.DecimalType(t.precision, t.scale)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return T.StringType()
    if (pa.types.is_binary(t) or pa.types.is_large_binary(t) or
            pa.types.is_fixed_size_binary(t) or pa.types.is_binary_view(t)):
        return T.BinaryType()
    if pa.types.is_date(t):
        return T.DateType()
    if pa.types.is_timestamp(t):
        return T.TimestampType() if t.tz is not None else T.TimestampNTZType()
    if pa.types.is_duration(t):
        return T.DayTimeIntervalType()
    if (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
            or pa.types.is_list_view(t) or pa.types.is_large_list_view(t)):
        return T.ArrayType(_spark_type(t.value_type, where), t.value_field.nullable)
    if pa.types.is_map(t):
        return T.MapType(_spark_type(t.key_type, where), _spark_type(t.item_type, where),
                         t.item_field.nullable)
    if pa.types.is_struct(t):
        return T.StructType([T.StructField(f.name, _spark_type(f.type, where), f.nullable)
                             for f in t])
    if pa.types.is_null(t):
        return T.NullType()
    raise _TypeError(f"{where} has Arrow type {t}, which Spark cannot hold; cast it first "
                     "(e.g. with dlprep.ops.cast or the cast step)")


def _field_metadata(field, spark_type):
    meta = field.metadata or {}
    out = {}
    for k, v in meta.items():
        k = k.decode("utf-8", "replace") if isinstance(k, bytes) else k
        if k.startswith(_META_PREFIX) and k != _TYPE_KEY:
            out[k] = v.decode("utf-8", "replace") if isinstance(v, bytes) else v
    if _arrow_type(spark_type) != field.type:
        # Spark has no such type (timestamp[s], uint32, fixed_size_list, dictionary):
        # the column keeps its exact Arrow type in its metadata, restored by
        # arrow_schema(), so a write gives the bytes and schema the engine gives.
        out[_TYPE_KEY] = base64.b64encode(
            pa.schema([pa.field("t", field.type)]).serialize().to_pybytes()).decode()
    return out


def _type_from_metadata(text):
    try:
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text))).field(0).type
    except (ValueError, pa.ArrowInvalid):
        return None


def spark_schema(schema, *, nullable=False):
    """The Spark ``StructType`` of an Arrow schema: int64 -> LongType, int32 ->
    IntegerType, float32 -> FloatType, list<float32> -> ArrayType(FloatType), timestamp
    with a time zone -> TimestampType, without -> TimestampNTZType, unsigned integers ->
    the next wider signed type. ``dlprep.*`` field metadata (tensor shapes) becomes the
    column's Spark metadata, and so does the exact Arrow type where Spark has none
    (``dlprep.arrow_type``). ``nullable=True`` makes every column nullable."""
    from pyspark.sql import types as T
    fields = []
    for f in schema:
        st = _spark_type(f.type, f"column '{f.name}'")
        fields.append(T.StructField(f.name, st, True if nullable else f.nullable,
                                    _field_metadata(f, st)))
    return T.StructType(fields)


def _arrow_type(dt, large=False):
    """The Arrow type dlprep's operators are given for a Spark type, as Spark's Arrow
    conversion gives it: timestamps in UTC, microseconds; ``large``: strings and binary
    as large_string / large_binary (``spark.sql.execution.arrow.useLargeVarTypes``).
    Our own table, so that it does not depend on a private pyspark function whose
    signature changes between Spark versions."""
    from pyspark.sql import types as T
    if isinstance(dt, T.ArrayType):
        return pa.list_(pa.field("item", _arrow_type(dt.elementType, large),
                                 dt.containsNull))
    if isinstance(dt, T.StructType):
        return pa.struct([pa.field(f.name, _arrow_type(f.dataType, large), f.nullable)
                          for f in dt.fields])
    if isinstance(dt, T.MapType):
        return pa.map_(pa.field("key", _arrow_type(dt.keyType, large), False),
                       pa.field("value", _arrow_type(dt.valueType, large),
                                dt.valueContainsNull))
    if isinstance(dt, T.DecimalType):
        return pa.decimal128(dt.precision, dt.scale)
    if isinstance(dt, T.StringType):  # also char(n) / varchar(n)
        return pa.large_string() if large else pa.string()
    if isinstance(dt, T.BinaryType):
        return pa.large_binary() if large else pa.binary()
    if isinstance(dt, T.UserDefinedType):
        return _arrow_type(dt.sqlType(), large)
    for spark_type, arrow in _scalar_types():
        if isinstance(dt, spark_type):
            return arrow
    raise _TypeError(f"has Spark type {dt.simpleString()}, which dlprep does not read; "
                     "cast it or leave it out first")


def _column_arrow_type(field, large=False):
    """_arrow_type of a Spark StructField; an unsupported type's error names the
    column."""
    try:
        return _arrow_type(field.dataType, large)
    except _TypeError as e:
        raise _TypeError(f"column '{field.name}' {e}") from None


@functools.lru_cache(maxsize=None)
def _scalar_types():
    """(Spark type class, Arrow type) pairs of the types without parameters."""
    from pyspark.sql import types as T
    return ((T.BooleanType, pa.bool_()), (T.ByteType, pa.int8()),
            (T.ShortType, pa.int16()), (T.IntegerType, pa.int32()),
            (T.LongType, pa.int64()), (T.FloatType, pa.float32()),
            (T.DoubleType, pa.float64()), (T.DateType, pa.date32()),
            (T.TimestampType, pa.timestamp("us", tz="UTC")),
            (T.TimestampNTZType, pa.timestamp("us")),
            (T.DayTimeIntervalType, pa.duration("us")), (T.NullType, pa.null()))


def arrow_schema(schema):
    """The Arrow schema dlprep's operators see for a Spark ``StructType`` (timestamps
    as timestamp[us, UTC]); the inverse of :func:`spark_schema`, Spark column metadata
    ``dlprep.*`` included (a column's ``dlprep.arrow_type`` gives its exact type)."""
    fields = []
    for f in schema.fields:
        meta = {k: str(v) for k, v in (f.metadata or {}).items() if k.startswith(_META_PREFIX)}
        t = _column_arrow_type(f)
        exact = meta.pop(_TYPE_KEY, None)
        if exact is not None:
            exact = _type_from_metadata(exact)
            if exact is not None and _spark_type(exact, f.name) == f.dataType:
                t = exact
        fields.append(pa.field(f.name, t, f.nullable, meta or None))
    return pa.schema(fields)


def _spark_arrow_schema(struct, large):
    """The exact Arrow schema Spark expects back for ``struct``."""
    return pa.schema([pa.field(f.name, _column_arrow_type(f, large), f.nullable)
                      for f in struct.fields])


def _conform(batch, schema):
    """``batch`` (RecordBatch or Table) with exactly ``schema``: columns taken by name
    and cast where their types differ (time zones, list field names, fixed-size lists,
    unsigned integers, string sizes)."""
    names = batch.schema.names
    cols = []
    for f in schema:
        col = batch.column(names.index(f.name))
        if col.type != f.type:
            col = col.cast(f.type)
        cols.append(col)
    if isinstance(batch, pa.Table):
        return pa.Table.from_arrays(cols, schema=schema)
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def _large_var_types(spark):
    try:
        v = spark.conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false")
    except Exception:  # noqa: BLE001 - a conf that cannot be read keeps Spark's default
        return False
    return str(v).lower() == "true"


# -- the per-process operator cache and the counters ------------------------------------
# (step name, options JSON, threads) -> _Cached, least recently used first. One per
# Python worker process: Spark runs one task at a time in a worker, so an entry is never
# used by two tasks at once. At most _MAX_OPERATORS stay open (each may hold a model).
_OPERATORS = collections.OrderedDict()
_MAX_OPERATORS = 8
# Spark application id -> (opens accumulator, row errors accumulator), on the driver.
_ACCUMULATORS = {}


class _Cached:
    def __init__(self, op):
        self.op = op
        self.rows = 0  # rows given to op.process() so far (row errors count from here)


def _cached(name, options, threads):
    key = (name, json.dumps(options, sort_keys=True), int(threads))
    entry = _OPERATORS.get(key)
    if entry is None:
        entry = _Cached(_ops.Operator(name, options, threads))
        _OPERATORS[key] = entry
        while len(_OPERATORS) > _MAX_OPERATORS:
            _evict(next(iter(_OPERATORS)))
    _OPERATORS.move_to_end(key)
    return key, entry


def _evict(key):
    entry = _OPERATORS.pop(key, None)
    if entry is not None:
        try:
            entry.op.close()
        except Exception:  # noqa: BLE001 - the task's own error is the one to report
            pass


def _default_threads():
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS") or 1))
    except ValueError:
        return 1


def _accumulators(spark):
    """(opens, row errors) accumulators of a classic SparkSession; (None, None) where
    there is no SparkContext (Spark Connect)."""
    try:
        sc = spark.sparkContext
        app = sc.applicationId
    except Exception:  # noqa: BLE001 - Spark Connect has no SparkContext
        return None, None
    accs = _ACCUMULATORS.get(app)
    if accs is None:
        accs = (sc.accumulator(0), sc.accumulator(0))
        _ACCUMULATORS[app] = accs
    return accs


def _counter(spark, index):
    if spark is None:
        from pyspark.sql import SparkSession
        spark = SparkSession.getActiveSession()
    if spark is None:
        return None
    try:
        app = spark.sparkContext.applicationId
    except Exception:  # noqa: BLE001
        return None
    accs = _ACCUMULATORS.get(app)
    return 0 if accs is None else accs[index].value


def operator_opens(spark=None):
    """How many times the Spark jobs of this application (so far) opened a stateful
    operator (loaded a model): at most one per Python worker process and operator while
    Spark reuses its workers. Counted with an accumulator: tasks that failed are not
    counted, recomputed ones are. None under Spark Connect (no accumulators)."""
    return _counter(spark, 0)


def row_error_count(spark=None):
    """How many rows the stateful operators of this application's jobs reported failed
    (so far); with ``errors="drop"`` these rows were left out. None under Spark Connect."""
    return _counter(spark, 1)


GC_FREEZE_CONF = "spark.dlprep.gcFreeze"


def _gc_freeze(spark):
    """The driver's ``spark.dlprep.gcFreeze`` ("true" by default): whether dlprep's
    tasks freeze the Python worker's heap (see :func:`_freeze_worker_heap`)."""
    try:
        v = spark.conf.get(GC_FREEZE_CONF, "true")
    except Exception:  # noqa: BLE001 - a conf that cannot be read keeps the default
        return True
    v = str(v).strip().lower()
    if v not in ("true", "false"):
        raise _InvalidInput(f"{GC_FREEZE_CONF}: expected true or false, not {v!r}")
    return v == "true"


def _freeze_worker_heap(spec):
    """Called at the start of every map-step task (``audio``, ``score``, ``score_http``,
    ``step``; not the grouped, write or read tasks). PySpark's daemon runs ``gc.collect()``
    after each task of a reused Python worker, and a full collection walks every object
    of the process: the modules (pyarrow, pandas, pyspark: about 20 ms a task), and
    whatever other UDFs in the same worker loaded (librosa with numba: about 55 ms).
    ``gc.freeze()`` (constant time) moves the objects alive at the task's start to the
    collector's permanent generation, so the collections after dlprep's tasks see only
    what was made since. Reference counting still frees frozen objects; only reference
    cycles among objects that were alive at the start of a dlprep task are never
    collected. ``spark.dlprep.gcFreeze=false`` turns it off."""
    if getattr(spec, "gc_freeze", True):
        gc.freeze()


# -- map steps (scalar, batch, stateful) -----------------------------------------------
class _MapSpec:
    """What a mapInArrow task needs (pickled into the task)."""

    def __init__(self, name, options, threads, kind, in_schema, out_schema, errors,
                 accumulators):
        self.name = name
        self.options = options
        self.threads = threads
        self.kind = kind
        self.in_schema = in_schema
        self.out_schema = out_schema  # what Spark expects back
        self.errors = errors
        self.opens_acc, self.errors_acc = accumulators


def _check_partitions(partitions):
    if partitions is not None and (isinstance(partitions, bool) or
                                   not isinstance(partitions, int) or partitions < 1):
        raise _InvalidInput(f"option partitions: expected an integer >= 1, not "
                            f"{partitions!r}")


def _check_errors_mode(errors):
    if errors not in _ERROR_MODES:
        raise _InvalidInput(f"option errors: '{errors}' is not one of "
                            f"{', '.join(_ERROR_MODES)}")


def _map(df, op, *, threads_per_task, errors, read_files=False, listed=None):
    """df.mapInArrow over the operator ``op`` (built on the driver, never opened).
    ``read_files``: the task reads each row's ``content`` from the local file its
    ``path`` names (``df`` has no ``content`` column; see :func:`audio`).
    ``listed``: (paths broadcast, path schema): ``df`` is a ``range`` of row numbers
    into the broadcast list of paths, which the task turns into the ``path`` column."""
    _check_errors_mode(errors)
    if op.kind == "grouped":
        raise _InvalidInput(f"step {op.step_name} is a grouped step: use dlprep.spark."
                            f"{op.step_name}()")
    if threads_per_task is not None and int(threads_per_task) < 1:
        raise _InvalidInput("option threads_per_task: expected an integer >= 1")
    in_schema = arrow_schema(df.schema) if listed is None else listed[1]
    op_schema = in_schema.append(pa.field("content", pa.binary())) if read_files \
        else in_schema
    out = op.output_schema(op_schema)  # bad options, columns and types fail here
    if errors == "column" and op.kind == "stateful":
        if ERROR_COLUMN in out.names:
            raise _InvalidInput(f"errors='column': the output already has a column "
                                f"'{ERROR_COLUMN}'")
        out = out.append(pa.field(ERROR_COLUMN, pa.string()))
        struct = spark_schema(out, nullable=True)
    else:
        struct = spark_schema(out)
    spec = _MapSpec(op.step_name, op.options,
                    None if threads_per_task is None else int(threads_per_task), op.kind,
                    in_schema, _spark_arrow_schema(struct, _large_var_types(df.sparkSession)),
                    errors, _accumulators(df.sparkSession))
    spec.read_files = read_files
    spec.listed = None if listed is None else listed[0]
    spec.gc_freeze = _gc_freeze(df.sparkSession)
    return df.mapInArrow(functools.partial(_map_task, spec), struct)


def _map_task(spec, batches):
    """One Spark task of a map step: the cached operator over the task's batches, then
    its flush (the operator stays open for the worker's next task)."""
    _freeze_worker_heap(spec)
    threads = spec.threads or _default_threads()
    key, entry = _cached(spec.name, spec.options, threads)
    op = entry.op
    opens_before = op.opens
    unread = []  # (batch, [(row, message)]) of files the task could not read
    try:
        if getattr(spec, "listed", None) is not None:
            paths = spec.listed.value  # read once per Python worker
            conformed = (pa.RecordBatch.from_arrays(
                [pa.array([paths[i] for i in b.column(0).to_pylist()],
                          spec.in_schema.field(0).type)],
                schema=spec.in_schema) for b in batches)
        else:
            conformed = (_conform(b, spec.in_schema) for b in batches)
        if getattr(spec, "read_files", False):
            conformed = _with_contents(conformed, unread)
        for batch in _ops.gather(conformed, op.min_batch_rows):
            base = entry.rows
            out = op.process(batch)
            entry.rows += batch.num_rows
            errors, op.row_errors = op.row_errors, []
            for b in out:
                yield _output(spec, b)
            if errors:
                yield from _row_errors(spec, batch, base, errors)
            while unread:
                failed, errs = unread.pop()
                yield from _row_errors(spec, failed, 0, errs)
        while unread:
            failed, errs = unread.pop()
            yield from _row_errors(spec, failed, 0, errs)
        for b in op.flush():
            yield _output(spec, b)
    except GeneratorExit:
        # Spark stopped reading early (a limit): drop what the operator still holds.
        try:
            op.flush()
        except Exception:  # noqa: BLE001
            _evict(key)
        raise
    except BaseException:
        # A failed task may leave rows inside the operator: the next task opens afresh.
        _evict(key)
        raise
    finally:
        opened = op.opens - opens_before
        if opened and spec.opens_acc is not None:
            spec.opens_acc.add(opened)


def _output(spec, batch):
    if spec.errors == "column" and spec.kind == "stateful":
        batch = batch.append_column(ERROR_COLUMN, pa.nulls(batch.num_rows, pa.string()))
    return _conform(batch, spec.out_schema)


def _row_errors(spec, batch, base, errors):
    """Handles the row errors ``process()`` reported for ``batch``."""
    if spec.errors_acc is not None:
        spec.errors_acc.add(len(errors))
    if spec.errors == "drop":
        return
    rows = [row - base for row, _ in errors]
    messages = [msg for _, msg in errors]
    if spec.errors == "fail":
        from pyspark import TaskContext
        ctx = TaskContext.get()
        where = f" (partition {ctx.partitionId()})" if ctx is not None else ""
        raise _InvalidInput(f"{spec.name}: row {rows[0]} of a batch failed{where}: "
                            f"{messages[0]} (errors='fail'; {len(rows)} row(s) of this "
                            "batch failed)")
    indices = pa.array(rows, pa.int64())
    cols = []
    for f in spec.out_schema:
        if f.name == ERROR_COLUMN:
            cols.append(pa.array(messages, pa.string()))
            continue
        i = batch.schema.get_field_index(f.name)
        src = batch.column(i).take(indices) if i >= 0 else None
        if src is not None:
            try:
                cols.append(src.cast(f.type))
                continue
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        cols.append(pa.nulls(len(rows), f.type))
    yield pa.RecordBatch.from_arrays(cols, schema=spec.out_schema)


def step(df, name, *, threads_per_task=None, errors="drop", **options):
    """Any scalar, batch or stateful step by name with its pipeline-file options
    (``dsp.step(df, "filter", expr="x > 3")``), in ``mapInArrow``."""
    return _map(df, _ops.step(name, **options), threads_per_task=threads_per_task,
                errors=errors)


# Files per task at most when dsp.audio chooses the partitions itself: a Python task
# costs about 0.03 CPU-s in PySpark 4.3 whatever it does (0.1-0.2 s in 4.0), 1,000 clips
# about 0.25 s; smaller tasks spread better over the executors.
_FILES_PER_TASK = 1000


def _audio_tasks(files, parallelism):
    """Tasks for ``files`` files read in the task: at most _FILES_PER_TASK files each,
    rounded up to a multiple of ``parallelism`` (Spark's default parallelism, the
    cluster's cores) so that the last round of tasks keeps every core busy."""
    parallelism = max(1, parallelism)
    tasks = max(1, -(-files // _FILES_PER_TASK))
    return -(-tasks // parallelism) * parallelism


def _partition_count(df):
    """The number of partitions of a classic DataFrame; None under Spark Connect."""
    try:
        return df.rdd.getNumPartitions()
    except Exception:  # noqa: BLE001 - Spark Connect DataFrames have no rdd
        return None


def _jvm_seq(seq):
    return [seq.apply(i) for i in range(seq.size())]


def _local_binary_relation(leaf, attr_id):
    """The HadoopFsRelation of ``leaf`` when it is the binaryFile source, holds the
    attribute ``attr_id`` and reads from the local file system only (``file:``); None
    otherwise."""
    if leaf.getClass().getSimpleName() != "LogicalRelation":
        return None
    relation = leaf.relation()
    if relation.getClass().getSimpleName() != "HadoopFsRelation" or \
            relation.fileFormat().getClass().getSimpleName() != "BinaryFileFormat" or \
            not any(a.exprId().id() == attr_id for a in _jvm_seq(leaf.output())):
        return None
    roots = _jvm_seq(relation.location().rootPaths())
    if not roots or any(r.toUri().getScheme() != "file" for r in roots):
        return None
    return relation


def _local_binary_files(df):
    """How many files a DataFrame reads when its ``content`` column is the binaryFile
    source's own (not computed, not from another source) and every root path of that
    source is on the local file system (``file:``); None otherwise, and under Spark
    Connect, whose plans the driver cannot look into."""
    try:
        plan = df._jdf.queryExecution().analyzed()
    except Exception:  # noqa: BLE001 - Spark Connect: no JVM DataFrame here
        return None
    try:
        content = [a for a in _jvm_seq(plan.output()) if a.name() == "content"]
        if len(content) != 1:
            return None
        want = content[0].exprId().id()
        for leaf in _jvm_seq(plan.collectLeaves()):
            relation = _local_binary_relation(leaf, want)
            if relation is not None:
                return len(relation.location().inputFiles())
    except Exception:  # noqa: BLE001 - another Spark version's plan: use content
        return None
    return None


def _listed_binary_files(df):
    """The files of a DataFrame that is the binaryFile source itself (at most a column
    selection above the scan: no filter, join or computed column, so one row per file),
    as its ``path`` column spells them, from the list Spark made when the DataFrame was
    loaded; None otherwise. With it, no Spark task has to scan the files for their
    paths (the binaryFile reader asks the file system for each file's status, even
    when it reads only the path)."""
    try:
        plan = df._jdf.queryExecution().analyzed()
        path = [a for a in _jvm_seq(plan.output()) if a.name() == "path"]
        if len(path) != 1:
            return None
        want = path[0].exprId().id()
        while plan.getClass().getSimpleName() in ("Project", "SubqueryAlias"):
            if plan.getClass().getSimpleName() == "Project" and not all(
                    e.getClass().getSimpleName() == "AttributeReference"
                    for e in _jvm_seq(plan.projectList())):
                return None
            plan = plan.child()
        relation = _local_binary_relation(plan, want)
        if relation is None:
            return None
        jvm = df.sparkSession._jvm
        # One string over py4j, not a call per file (py4j passes a String[] only where
        # an Object is expected); URIs escape control characters, so no name holds
        # the newline.
        uris = jvm.scala.Predef.genericWrapArray(
            relation.location().inputFiles()).mkString("\n")
    except Exception:  # noqa: BLE001 - Spark Connect, or another Spark version's plan
        return None
    return [_hadoop_path(u) for u in uris.split("\n")] if uris else []


def _hadoop_path(uri):
    """Hadoop's ``Path.toString()`` of a file's URI (``file:/a%20b.wav`` -> ``file:/a
    b.wav``): the scheme, the authority and the decoded path, as binaryFile's ``path``
    column spells it."""
    if uri.startswith("file:/") and not uri.startswith("file://") and \
            not any(c in uri for c in "%#?"):
        return uri  # nothing to decode: already its own spelling (most local files)
    from urllib.parse import unquote, urlsplit
    u = urlsplit(uri, allow_fragments=True)
    out = f"{u.scheme}:" if u.scheme else ""
    if u.netloc:
        out += "//" + u.netloc
    out += unquote(u.path, errors="replace")
    if u.fragment:
        out += "#" + unquote(u.fragment, errors="replace")
    return out


def _local_file(path):
    """The local file a binaryFile ``path`` (``file:/x``, ``file:///x``) or a plain
    path names; None for another scheme (hdfs://, s3a://)."""
    if path.startswith("file:"):
        rest = path[5:]
        if rest.startswith("//"):
            host, _, rest = rest[2:].partition("/")
            if host not in ("", "localhost"):
                return None
            rest = "/" + rest
        return rest
    if "://" in path:
        return None
    return path


def _with_contents(batches, unread):
    """Each batch with a ``content`` column read from the files its ``path`` names (by
    the engine, in C++, without the GIL). Rows whose file cannot be read are left out,
    and (input batch, [(row, message)]) is appended to ``unread`` for the caller to
    report. Batches are split so that one holds at most _CONTENT_BYTES of content."""
    for batch in batches:
        paths = batch.column("path").to_pylist()
        local = [None if p is None else _local_file(p) for p in paths]
        errors = [(i, "path is null" if p is None else
                   "not a local file (read_files reads local paths and file: URIs; pass "
                   "read_files=False to use content)")
                  for i, (p, f) in enumerate(zip(paths, local)) if f is None]
        if not paths:
            yield batch.append_column("content", pa.array([], pa.binary()))
        begin = 0
        while begin < len(paths):
            native, end, failed = _dlprep.read_files(local, begin, _CONTENT_BYTES)
            content = pa.record_batch(native).column(0)
            errors.extend((i, why) for i, why in failed)
            part = batch.slice(begin, end - begin)
            if content.null_count:
                read = content.is_valid()
                part, content = part.filter(read), content.filter(read)
            if part.num_rows:
                yield part.append_column("content", content)
            begin = end
        if errors:
            errors.sort()
            unread.append((batch, [(i, f"cannot read '{paths[i]}': {why}")
                                   for i, why in errors]))


# A task holds at most this much file content in one batch (Arrow's binary arrays hold
# up to 2 GiB).
_CONTENT_BYTES = 256 << 20


def audio(df, *, threads_per_task=None, errors="drop", read_files=None, partitions=None,
          **options):
    """Speech features from a ``binaryFile`` DataFrame (``path``, ``content``; Spark's
    ``spark.read.format("binaryFile")``), options as :meth:`dlprep.Dataset.audio`. The
    ``path`` column is Spark's (a URI such as ``file:/data/x.wav``).

    ``read_files``: None (default) reads each file in the task, from the path, when
    ``content`` is the binaryFile source's own column and every input file is local
    (``file:``): Spark then reads only the paths (column pruning), instead of reading
    the bytes in the JVM and handing them to Python; otherwise (other file systems,
    Spark Connect, a DataFrame built otherwise) the ``content`` column is used. When
    ``df`` is the binaryFile source itself (no filter, join or computed column), the
    tasks take their paths from the list Spark made when it was loaded, so no task
    scans the files only to name them. True: always
    read the files named in ``path`` (local paths or ``file:`` URIs; a file that
    cannot be read is a row error); False: always use ``content``.

    ``partitions``: how many Spark tasks featurize the files. None (default): when the
    files are read in the task, the scan's partitions are coalesced to ``files / 1000``
    rounded up to a multiple of ``spark.default.parallelism`` (binaryFile packs about
    30 small files per partition, and each Python task has a fixed cost of about as
    much CPU as featurizing 100 clips), or the listed files split so; otherwise the
    input's partitions.
    An integer: coalesced (fewer) or repartitioned (more) to that many."""
    if read_files not in (None, True, False):
        raise _InvalidInput(f"option read_files: expected None, True or False, not "
                            f"{read_files!r}")
    _check_partitions(partitions)
    op = _ops.audio(**options)
    files = _local_binary_files(df) if read_files is None else None
    if read_files is None:
        read_files = files is not None
    listed = _listed_binary_files(df) if read_files else None
    if read_files:
        if "path" not in df.columns:
            raise _InvalidInput(f"read_files: no column 'path' (columns: "
                                f"{', '.join(df.columns)})")
        if listed:
            # The paths Spark listed, without a scan task asking for each one's status:
            # broadcast once, and each task of a range of row numbers (exactly
            # `partitions` tasks, no shuffle) names its consecutive share.
            spark = df.sparkSession
            tasks = partitions or _audio_tasks(len(listed),
                                               spark.sparkContext.defaultParallelism)
            ids = spark.range(0, len(listed), 1, tasks)
            path_schema = _spark_arrow_schema(df.select("path").schema,
                                              _large_var_types(spark))
            return _map(ids, op, threads_per_task=threads_per_task, errors=errors,
                        read_files=True,
                        listed=(spark.sparkContext.broadcast(listed), path_schema))
        df = df.select("path")
    if partitions is None and files is not None:
        # coalesce() never adds partitions; it costs no planning here, unlike
        # df.rdd.getNumPartitions() (a few tenths of a second)
        df = df.coalesce(_audio_tasks(files,
                                      df.sparkSession.sparkContext.defaultParallelism))
    elif partitions is not None:
        current = _partition_count(df)
        if current is not None and partitions < current:
            df = df.coalesce(partitions)
        elif current != partitions:
            df = df.repartition(partitions)
    return _map(df, op, threads_per_task=threads_per_task, errors=errors,
                read_files=read_files)


def score(df, model, column, *, threads_per_task=None, errors="drop", **options):
    """Batch inference with a TorchScript model loaded once per Python worker, options
    as :meth:`dlprep.Dataset.score`. ``model`` must be readable at the same path on the
    driver (checked there) and on every worker."""
    return _map(df, _ops.score(model, column, **options), threads_per_task=threads_per_task,
                errors=errors)


def score_http(df, url, column, *, errors="drop", **options):
    """Batch inference through an HTTP model server, options as
    :meth:`dlprep.Dataset.score_http`. Each task gathers its Arrow batches
    (``spark.sql.execution.arrow.maxRecordsPerBatch`` rows each) up to ``batch_size`` x
    ``concurrency`` rows, so requests hold ``batch_size`` rows, ``concurrency`` at a time
    in each task."""
    return _map(df, _ops.score_http(url, column, **options), threads_per_task=None,
                errors=errors)


# -- grouped: windows -------------------------------------------------------------------
class _GroupSpec:
    def __init__(self, name, options, key, in_schema, pre_schema, pre_out, out_schema,
                 run_options=None):
        self.name = name
        self.options = options
        self.key = key                # the grouping column's name (for messages)
        self.in_schema = in_schema    # the map side's input
        self.pre_schema = pre_schema  # the map-side step's Arrow output (exact)
        self.pre_out = pre_out        # ... as Spark expects it back
        self.out_schema = out_schema  # the groups' output as Spark expects it back
        # The engine's run options in each reduce task (memory_limit, spill_dir, ...).
        self.run_options = dict(run_options or {})


def _pre_group_task(spec, batches):
    _, entry = _cached(spec.name, spec.options, 1)
    for batch in batches:
        yield _conform(entry.op.pre_group(_conform(batch, spec.in_schema)), spec.pre_out)


def _group_task(spec, batches):
    """One reduce partition after ``repartition(key)``: every row of each of its keys,
    as Spark's Arrow batches. The engine's own grouped executor takes the whole stream
    (hash buckets, spilled to disk over ``memory_limit``; a key larger than
    ``max_group_bytes`` is streamed through the operator in time order), so Spark
    neither sorts the rows nor frames each key. The map-side step already ran; the
    executor's own pass over its output keeps the codes. (No heap freeze here: on a
    two-worker cluster it made the windows job take 8-9 CPU-s more, not understood.)"""
    from .dataset import from_arrow
    source = pa.RecordBatchReader.from_batches(
        spec.pre_schema, (_conform(b, spec.pre_schema) for b in batches))
    ds = from_arrow(source)._step(spec.name, **spec.options)
    opts = dict(spec.run_options)
    opts.setdefault("workers", _default_threads())
    try:
        for out in ds.to_batches(progress=False, **opts):
            yield _conform(out, spec.out_schema)
    except _OutOfMemory as e:
        raise _OutOfMemory(
            f"{spec.name} (a Spark task's grouped run, key {spec.key}): {e}; raise "
            "dsp.windows(memory_limit=...) within the Python worker's memory "
            "(spark.executor.memoryOverhead, spark.executor.pyspark.memory), or give "
            "the shuffle more partitions (spark.sql.shuffle.partitions)") from e


def _time_bounds(df, time, category, step):
    """(until, categories) as dlprep.Dataset.windows finds them, from one Spark
    aggregation: the step after the latest event time, and the distinct categories
    sorted bytewise."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
    field = df.schema[time] if time in df.columns else None
    if field is None:
        raise _InvalidInput(f"option time: no column '{time}' (columns: "
                            f"{', '.join(df.columns)})")
    if isinstance(field.dataType, T.TimestampType):
        t, per_s = F.unix_micros(F.col(time)), 1_000_000
    elif isinstance(field.dataType, (T.LongType, T.IntegerType)):
        t, per_s = F.col(time).cast("long"), 1
    else:
        raise _TypeError(f"option time: column '{time}' has Spark type "
                         f"{field.dataType.simpleString()}; expected a timestamp or "
                         "int64 epoch seconds")
    aggs = [F.max(t).alias("max_t")]
    if category is not None:
        if category not in df.columns:
            raise _InvalidInput(f"option category: no column '{category}'")
        aggs.append(F.collect_set(F.col(category).cast("string")).alias("cats"))
    row = df.agg(*aggs).collect()[0]
    if row["max_t"] is None:
        raise _InvalidInput("the events have no non-null times; pass until=")
    max_s = row["max_t"] // per_s
    from . import _dlprep
    step_s = _dlprep.parse_whole_seconds(str(step), "step")
    until = (max_s // step_s) * step_s + step_s if step_s > 0 else max_s
    cats = sorted(row["cats"], key=lambda s: s.encode("utf-8")) if category else None
    return until, cats


# At most this many categories are coded by Spark's array_position (a linear search per
# row); with more, the category strings cross the shuffle and the engine codes them.
_JVM_CATEGORY_CODES_MAX = 32


def _reduce_columns(events, key, time, category, categories, label_time, values, pre):
    """The columns that cross the shuffle when the operator's map-side step runs after
    it: only those the operator reads, with times as int64 epoch seconds (floored, as the
    step does) and the category as the step's int16 code column (-1: null or not
    listed), both computed by Spark's own expressions. Handing Arrow fewer and narrower
    cells is most of what the reduce side costs (10M events: strings and timestamps
    took about 2.5 CPU-s more). The engine's step passes these columns through."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    def seconds(name):
        t = events.schema[name].dataType
        if isinstance(t, T.TimestampType):
            return F.unix_seconds(F.col(name)).alias(name)  # floorDiv, as the engine
        return F.col(name)  # int64 seconds or a zone-less timestamp: the engine converts

    cols = [F.col(key), seconds(time)]
    if category:
        code = next((f.name for f in pre if pa.types.is_int16(f.type)), None)
        if code is not None and len(categories) <= _JVM_CATEGORY_CODES_MAX:
            listed = F.array(*[F.lit(c) for c in categories]) if categories else \
                F.array().cast("array<string>")
            pos = F.array_position(listed, F.col(category).cast("string")).cast("short")
            cols.append(F.coalesce(F.when(pos > 0, pos - F.lit(1).cast("short")),
                                   F.lit(-1).cast("short")).alias(code))
        else:
            cols.append(F.col(category))
    if label_time:
        cols.append(seconds(label_time))
    cols += [F.col(v) for v in dict.fromkeys(values or [])
             if v not in (key, time, category, label_time)]
    return cols


def windows(df, key, time, window, stride, step, *, labels=None, label_time=None,
            category=None, categories=None, values=None, aggs=None, horizon=None,
            until=None, memory_limit="1GB", max_group_bytes=None, spill_dir=None,
            prepare="reduce", partitions=None):
    """Sliding windows over each key's events (options as
    :meth:`dlprep.Dataset.windows`): the operator's map-side step in ``mapInArrow``,
    ``repartition(key)`` (``spark.sql.shuffle.partitions`` partitions), then a
    ``mapInArrow`` in which the engine's grouped executor takes each partition's rows
    as one stream. ``categories`` and ``until`` default to what the events hold (one
    Spark aggregation, run now). ``labels``: a DataFrame with ``key`` and
    ``label_time`` (at most one row per key), broadcast-joined to the events. Rows with
    a null key are left out.

    ``memory_limit`` (per task; "1GB" or bytes): the engine's memory budget in each
    reduce task; its buckets spill to ``spill_dir`` (default ``$TMPDIR``, else
    ``/tmp``, on the worker) over it, and a key larger than ``max_group_bytes``
    (default: a quarter of ``memory_limit``) is streamed through the operator in time
    order, so one key may hold more events than the task's memory.

    ``prepare``: where the operator's map-side step (projection, times to seconds,
    category codes) runs: ``"reduce"`` (default), after the shuffle, which then
    carries only the operator's columns, with times as epoch seconds and (up to 32
    categories) the int16 category codes already computed by Spark's own
    expressions; ``"map"``, in a ``mapInArrow`` before it, at the cost of a round
    trip of every row through a Python worker. Both give the same rows.

    ``partitions``: how many reduce tasks run the operator. None (default):
    ``spark.sql.shuffle.partitions``, which adaptive query execution may coalesce into
    fewer by shuffle bytes (an estimate that does not see the operator's cost per
    event); an integer: ``repartition(partitions, key)``, exactly that many, not
    coalesced. Each task has a fixed cost: on 10M events and two one-core workers,
    8 tasks took longer than the 4 that adaptive execution made of 8."""
    from pyspark.sql import functions as F
    from . import _dlprep
    if prepare not in ("map", "reduce"):
        raise _InvalidInput(f"option prepare: expected 'map' or 'reduce', got {prepare!r}")
    _check_partitions(partitions)
    run_options = {}
    for name, value in (("memory_limit", memory_limit), ("max_group_bytes", max_group_bytes)):
        if value is not None:
            text = value if isinstance(value, str) else str(int(value))
            run_options[name] = str(_dlprep.parse_byte_size(text, name))
    if spill_dir is not None:
        run_options["spill_dir"] = os.path.abspath(os.fspath(spill_dir))
    if labels is not None and label_time is None:
        raise _InvalidInput("option labels needs label_time (the churn time column of the "
                            "labels)")
    if labels is None and label_time is not None:
        raise _InvalidInput("option label_time needs labels")
    if key not in df.columns:
        raise _InvalidInput(f"option key: no column '{key}' (columns: "
                            f"{', '.join(df.columns)})")
    if category is not None and categories is None or until is None:
        found_until, found_cats = _time_bounds(df, time, category, step)
        if until is None:
            until = found_until
        if category is not None and categories is None:
            categories = found_cats
    events = df
    if labels is not None:
        for c in (key, label_time):
            if c not in labels.columns:
                raise _InvalidInput(f"option labels: no column '{c}' (columns: "
                                    f"{', '.join(labels.columns)})")
        if label_time in df.columns:
            raise _InvalidInput(f"option label_time: the events already have a column "
                                f"'{label_time}'")
        side = labels.select(key, label_time)
        dup = (side.where(F.col(key).isNotNull()).groupBy(key).count()
               .where(F.col("count") > 1).limit(1).collect())
        if dup:
            raise _InvalidInput(f"join: the labels have the key ({key}={dup[0][key]!r}) "
                                f"{dup[0]['count']} times; keys of the labels must be "
                                "unique")
        events = events.join(F.broadcast(side), on=key, how="left")
    events = events.where(F.col(key).isNotNull())
    op = _ops.windows(key, time, window, stride, step, until=until, categories=categories,
                      category=category, values=values, aggs=aggs, horizon=horizon,
                      label_time=label_time)
    in_schema = arrow_schema(events.schema)
    out = op.output_schema(in_schema)  # bad options, columns and types fail here
    pre = op.pre_group(pa.RecordBatch.from_pylist([], schema=in_schema)).schema
    pre_struct = spark_schema(pre)
    out_struct = spark_schema(out)
    spec = _GroupSpec(op.step_name, op.options, key, in_schema, pre,
                      _spark_arrow_schema(pre_struct, _large_var_types(df.sparkSession)),
                      _spark_arrow_schema(out_struct, False), run_options)
    if prepare == "map":
        shuffled = events.mapInArrow(functools.partial(_pre_group_task, spec), pre_struct)
    else:
        # Only the columns the operator reads cross the shuffle, times and category
        # codes computed by Spark; the engine's executor runs the map-side step after
        # it (passing those through).
        shuffled = events.select(*_reduce_columns(events, key, time, category,
                                                  categories, label_time, values, pre))
        spec.pre_schema = arrow_schema(shuffled.schema)
    shuffled = shuffled.repartition(key) if partitions is None else \
        shuffled.repartition(partitions, key)
    return shuffled.mapInArrow(functools.partial(_group_task, spec), out_struct)


# -- writing with a driver-side commit --------------------------------------------------
_SUMMARY = ("partition long, stage int, attempt int, dir string, rows long, bytes long, "
            "files string, features string, nonnull string")


class _WriteSpec:
    def __init__(self, fmt, sink, job_dir, in_schema, threads):
        self.format = fmt
        self.sink = sink
        self.job_dir = job_dir
        self.in_schema = in_schema
        self.threads = threads


def _write_task(spec, batches):
    """One Spark task of a write: the engine writes the task's rows into its own attempt
    folder (with a manifest); the task returns one summary row."""
    from pyspark import TaskContext

    from .dataset import from_arrow
    ctx = TaskContext.get()
    part, stage, attempt = ctx.partitionId(), ctx.stageId(), ctx.attemptNumber()
    name = f"attempt-{stage}-{part}-{attempt}"
    folder = os.path.join(spec.job_dir, name)
    nonnull = [0] * len(spec.in_schema)
    # The driver removes the job folder once it has committed (or failed); an attempt
    # that runs after that (a speculative copy Spark did not kill in time) must not
    # write into the output folder, since the engine's writer creates missing parents.
    template = os.path.join(spec.job_dir, "_template")
    if not os.path.isdir(template):
        return

    def counted():
        for batch in batches:
            batch = _conform(batch, spec.in_schema)
            for i, col in enumerate(batch.columns):
                nonnull[i] += len(col) - col.null_count
            yield batch

    reader = pa.RecordBatchReader.from_batches(spec.in_schema, counted())
    write = getattr(from_arrow(reader), "write_" + spec.format)
    try:
        write(folder, overwrite=True, progress=False,
              workers=spec.threads or _default_threads(), **spec.sink)
    except Exception:
        if os.path.isdir(template):
            raise
    if not os.path.isdir(template):  # the job ended while this attempt wrote
        shutil.rmtree(spec.job_dir, ignore_errors=True)
        _remove_if_empty(os.path.dirname(spec.job_dir))
        return
    with open(os.path.join(folder, "_manifest.json"), encoding="utf-8") as f:
        m = json.load(f)
    yield pa.record_batch({
        "partition": pa.array([part], pa.int64()), "stage": pa.array([stage], pa.int32()),
        "attempt": pa.array([attempt], pa.int32()), "dir": [name],
        "rows": pa.array([m["rows"]], pa.int64()), "bytes": pa.array([m["bytes"]], pa.int64()),
        "files": [json.dumps(m["files"])], "features": [json.dumps(m.get("features"))],
        "nonnull": [json.dumps(nonnull)]})


def _stats_shape(field):
    """True when the manifest's shape of a list column comes from the lengths written
    (not from dlprep.shape metadata), so per-task shapes must be merged."""
    t = field.type
    is_list = pa.types.is_list(t) or pa.types.is_large_list(t)
    return is_list and not (field.metadata and b"dlprep.shape" in field.metadata)


def _merge_features(template, schema, summaries):
    """The feature spec of the whole output from the tasks' specs, as the engine's
    writer would compute it from all rows: a shape measured from the lengths holds if
    every task that wrote a non-null value measured the same one; fixed_length holds
    if it held in every task that wrote rows."""
    if template is None:
        return None
    merged = json.loads(json.dumps(template))
    parts = [(json.loads(s["features"]), json.loads(s["nonnull"])) for s in summaries
             if s["rows"] > 0]
    for i, field in enumerate(schema):
        spec = merged[field.name]
        if not parts:
            continue
        spec["fixed_length"] = all(p[field.name]["fixed_length"] for p, _ in parts)
        if _stats_shape(field):
            shapes = {tuple(p[field.name]["shape"]) for p, nn in parts if nn[i] > 0}
            shape = list(shapes.pop()) if len(shapes) == 1 else [-1]
            spec["shape"] = shape
            if shape == [-1]:
                spec["fixed_length"] = False
        else:
            spec["shape"] = parts[0][0][field.name]["shape"]
    return merged


def _entries(path):
    try:
        return [e for e in os.listdir(path) if e != "_temporary"]
    except FileNotFoundError:
        return []


def _write(df, path, fmt, sink, overwrite, ext):
    from .dataset import from_arrow
    path = os.fspath(path)
    if "://" in path:
        raise _InvalidInput("dlprep.spark writes to a folder every worker sees at the same "
                            f"path (local or NFS), not to '{path}'")
    path = os.path.abspath(os.path.expanduser(path))
    existing = _entries(path)
    if existing and not overwrite:
        raise _InvalidInput(f"output folder '{path}' exists and is not empty; pass "
                            "overwrite=True to replace it")
    created = not os.path.exists(path)
    job = str(uuid.uuid4())
    temporary = os.path.join(path, "_temporary")
    job_dir = os.path.join(temporary, job)
    os.makedirs(job_dir)
    try:
        in_schema = arrow_schema(df.schema)
        # The engine writes the empty dataset on the driver first: options and column
        # types it cannot write fail here, before any task runs, and its manifest is the
        # template of the job's (format, schema, compression, feature specs).
        template_dir = os.path.join(job_dir, "_template")
        empty = pa.RecordBatchReader.from_batches(in_schema, iter([]))
        getattr(from_arrow(empty), "write_" + fmt)(template_dir, overwrite=True,
                                                   progress=False, workers=1, **sink)
        with open(os.path.join(template_dir, "_manifest.json"), encoding="utf-8") as f:
            manifest = json.load(f)
        spec = _WriteSpec(fmt, sink, job_dir, in_schema, None)
        rows = df.mapInArrow(functools.partial(_write_task, spec), _SUMMARY).collect()
        summaries = sorted((r.asDict() for r in rows), key=lambda s: s["partition"])
        _commit(path, job, job_dir, manifest, summaries, in_schema, ext, df.sparkSession)
    except BaseException:
        shutil.rmtree(job_dir, ignore_errors=True)
        _remove_if_empty(temporary)
        if created:
            _remove_if_empty(path)
        raise
    shutil.rmtree(job_dir, ignore_errors=True)
    _remove_if_empty(temporary)
    return {"path": path, "rows": manifest["rows"], "bytes": manifest["bytes"],
            "files": len(manifest["files"]), "partitions": len(summaries), "job": job,
            "attempts": [s["attempt"] for s in summaries]}


def _remove_if_empty(folder):
    try:
        os.rmdir(folder)
    except OSError:
        pass


def _commit(path, job, job_dir, manifest, summaries, schema, ext, spark):
    seen = set()
    moves = []
    for s in summaries:
        if s["partition"] in seen:  # Spark returns one result per partition
            continue
        seen.add(s["partition"])
        files = json.loads(s["files"])
        for k, f in enumerate(files):
            name = f"part-{s['partition']:05d}-{job}-c{k:03d}{ext}"
            moves.append((os.path.join(job_dir, s["dir"], f["name"]), name, f))
    # A task with no rows writes one empty file (as the engine does for an empty job):
    # only a job that wrote no rows at all keeps one, so its dataset still has a file.
    empty = [m for m in moves if m[2]["rows"] == 0]
    if len(empty) < len(moves):
        moves = [m for m in moves if m[2]["rows"] > 0]
    elif empty:
        moves = empty[:1]
    manifest["rows"] = sum(f["rows"] for _, _, f in moves)
    manifest["bytes"] = sum(f["bytes"] for _, _, f in moves)
    manifest["files"] = [{"name": n, "rows": f["rows"], "bytes": f["bytes"]}
                         for _, n, f in sorted(moves, key=lambda m: m[1])]
    if "features" in manifest:
        manifest["features"] = _merge_features(manifest["features"], schema, summaries)
    job_info = {"engine": "spark", "job_id": job, "partitions": len(seen),
                "rows_written": manifest["rows"], "files_written": len(moves)}
    try:
        job_info["spark_application_id"] = spark.conf.get("spark.app.id")
    except Exception:  # noqa: BLE001
        pass
    manifest["job"] = job_info
    # An overwritten output loses its _SUCCESS first: readers never see old and new
    # files together as a complete dataset.
    old = _entries(path)
    if old:
        aside = os.path.join(job_dir, "_old")
        os.makedirs(aside)
        for e in sorted(old, key=lambda e: e != "_SUCCESS"):
            os.rename(os.path.join(path, e), os.path.join(aside, e))
    for src, name, _ in moves:
        os.rename(src, os.path.join(path, name))
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    _write_small(os.path.join(path, "_manifest.json"), text)
    _write_small(os.path.join(path, "_SUCCESS"), "")


def _write_small(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_tfrecord(df, path, *, compression=None, record_type=None, max_rows_per_file=None,
                   max_bytes_per_file=None, overwrite=False):
    """Writes the DataFrame as TFRecord files (``tf.train.Example``, or
    ``record_type="sequence_example"``) to the folder ``path``, one file per Spark
    partition (more with ``max_rows_per_file`` / ``max_bytes_per_file``), committed on
    the driver when the job succeeds: ``part-<partition>-<job>-c<k>.tfrecord[.gz]``,
    ``_manifest.json`` (as the engine writes it: rows, bytes, files, schema, TF feature
    spec) and ``_SUCCESS``. Retried and speculative tasks leave nothing behind; a failed
    job leaves no part file. Returns {path, rows, bytes, files, partitions, job,
    attempts}: ``attempts`` is the committed attempt number of each partition."""
    sink = {k: v for k, v in (("compression", compression), ("record_type", record_type),
                              ("max_rows_per_file", max_rows_per_file),
                              ("max_bytes_per_file", max_bytes_per_file)) if v is not None}
    ext = ".tfrecord" + {"gzip": ".gz", "GZIP": ".gz", "zlib": ".zz",
                         "ZLIB": ".zz"}.get(compression or "none", "")
    return _write(df, path, "tfrecord", sink, overwrite, ext)


def write_parquet(df, path, *, max_rows_per_file=None, max_bytes_per_file=None,
                  overwrite=False):
    """Writes Parquet files with the engine's writer and the same commit as
    :func:`write_tfrecord` (``part-<partition>-<job>-c<k>.parquet``, ``_manifest.json``,
    ``_SUCCESS``); Spark reads the folder back with ``spark.read.parquet``."""
    sink = {k: v for k, v in (("max_rows_per_file", max_rows_per_file),
                              ("max_bytes_per_file", max_bytes_per_file)) if v is not None}
    return _write(df, path, "parquet", sink, overwrite, ".parquet")


# -- reading ----------------------------------------------------------------------------
class _ReadSpec:
    def __init__(self, folder, files, columns, out_schema):
        self.folder = folder
        self.files = files
        self.columns = columns
        self.out_schema = out_schema


def _read_task(spec, batches):
    """Reads the files whose indices arrive, each with the folder's exact schema (the
    engine gives a file its folder's manifest schema when the manifest lists it)."""
    from .dataset import read_tfrecord as engine_read
    for ids in batches:
        for i in ids.column(0).to_pylist():
            path = os.path.join(spec.folder, spec.files[i])
            for b in engine_read(path, columns=spec.columns).to_batches():
                yield _conform(b, spec.out_schema)


def read_tfrecord(spark, path, *, columns=None):
    """A DataFrame over a TFRecord folder written by dlprep (the engine or
    :func:`write_tfrecord`): the schema is the manifest's, one Spark partition per file,
    each file decoded by the engine in ``mapInArrow``."""
    folder = os.path.abspath(os.path.expanduser(os.fspath(path)))
    mpath = os.path.join(folder, "_manifest.json")
    try:
        with open(mpath, encoding="utf-8") as f:
            m = json.load(f)
    except OSError as e:
        raise _InvalidInput(f"cannot read '{mpath}' ({e.strerror}): read_tfrecord reads "
                            "folders written by dlprep") from None
    if m.get("format") != "tfrecord":
        raise _InvalidInput(f"'{folder}' holds {m.get('format')} files, not tfrecord")
    schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(m["arrow_schema"])))
    if columns is not None:
        columns = [columns] if isinstance(columns, str) else list(columns)
        missing = [c for c in columns if c not in schema.names]
        if missing:
            raise _InvalidInput(f"column '{missing[0]}' is not in the TFRecord schema "
                                f"(columns: {', '.join(schema.names)})")
        schema = pa.schema([schema.field(c) for c in columns])
    struct = spark_schema(schema)
    files = [e["name"] for e in m["files"]]
    if not files:
        return spark.createDataFrame([], struct)
    spec = _ReadSpec(folder, files, columns,
                     _spark_arrow_schema(struct, _large_var_types(spark)))
    ids = spark.range(0, len(files), 1, numPartitions=len(files))
    return ids.mapInArrow(functools.partial(_read_task, spec), struct)
