"""Lazy datasets: a source, a chain of steps, and a terminal call that runs them.

A :class:`Dataset` is a description, not data: nothing is read until a ``write_*`` or
``to_*`` call. Every step is one of the engine's operators, configured with the same
options as the pipeline-file step of the same name (``dlprep run --help``);
``explain()`` prints the pipeline file a dataset runs.
"""
import json
import os
import sys

import pyarrow as pa

from . import _dlprep, errors as _errors

_dlprep.set_error_classes(_errors.BY_CODE)

__all__ = ["Dataset", "read_parquet", "read_csv", "read_json", "read_tfrecord",
           "read_binary_files", "from_arrow", "from_pandas", "run", "parse_duration",
           "parse_size"]

# Keyword arguments of every terminal call (how a run runs, not what it computes).
_RUN_OPTIONS = ("workers", "memory_limit", "max_group_bytes", "spill_dir", "unordered",
                "fail_on_error", "max_error_rate", "max_errors", "errors", "progress",
                "threads_per_worker")


def _paths(paths):
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out = []
    for p in paths:
        p = os.fspath(p)
        out.append(p if "://" in p else os.path.abspath(os.path.expanduser(p)))
    if not out:
        raise _error("InvalidInput", "expected at least one path")
    return out


def _error(kind, message):
    from . import errors
    return getattr(errors, kind)(message)


def _clean(options):
    """Drops options left at None (the engine's default applies) and turns tuples and
    path-like values into what JSON can carry."""
    out = {}
    for k, v in options.items():
        if v is None:
            continue
        if isinstance(v, tuple):
            v = list(v)
        if isinstance(v, os.PathLike):
            v = os.fspath(v)
        out[k] = v
    return out


def _yaml_value(v):
    # JSON is YAML: flow mappings with quoted keys and strings parse the same in both.
    return json.dumps(v, ensure_ascii=False)


def _python_step_label(fn):
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if name is None:
        name = type(fn).__qualname__
    module = getattr(fn, "__module__", None)
    return f"{module}.{name}" if module and module != "__main__" else name


class _RunKwargs:
    @staticmethod
    def split(kwargs, where):
        unknown = sorted(set(kwargs) - set(_RUN_OPTIONS))
        if unknown:
            raise _error("InvalidInput",
                         f"{where}: unknown option(s) {', '.join(unknown)}; run options are "
                         f"{', '.join(_RUN_OPTIONS)}")
        opts = {}
        for k, v in kwargs.items():
            if v is None:
                continue
            if k in ("memory_limit", "max_group_bytes") and not isinstance(v, str):
                v = str(int(v))
            if k in ("unordered", "fail_on_error"):
                v = 1 if v else 0
            if k == "progress":
                v = 1 if v else 0
            if k in ("errors", "spill_dir"):
                v = os.path.abspath(os.fspath(v))
            opts[k] = v
        return opts


class Dataset:
    """A lazy pipeline: a source and a chain of steps.

    Make one with a reader (:func:`read_parquet`, :func:`read_csv`, :func:`read_json`,
    :func:`read_tfrecord`, :func:`read_binary_files`) or from Arrow data
    (:func:`from_arrow`, :func:`from_pandas`). Each step method returns a new Dataset;
    the original is unchanged. Run it with ``write_tfrecord`` / ``write_parquet`` /
    ``write_csv`` (files, with the atomic commit and ``_manifest.json``) or
    ``to_arrow`` / ``to_batches`` / ``to_pandas`` (in memory, without copies).

    Every terminal call takes the run options as keywords:

    * ``workers`` (int): worker threads; default all cores. A Python step runs on
      them too, taking the GIL only around its call.
    * ``memory_limit`` ("4GB" or bytes): memory budget of the run: the Arrow data the
      engine allocates (readers, steps, grouped steps' buckets, the output queue) stays
      under it; grouped steps (``windows``) spill to disk to stay under it, and what
      cannot fit raises ``dlprep.OutOfMemory`` naming it (writes; ``to_arrow`` holds
      its whole result, so there only grouped steps' spilling follows the limit).
      ``max_group_bytes``, ``spill_dir`` refine it. Data passed in from Python and
      Python steps' own memory are not counted.
    * ``fail_on_error`` (bool): fail on the first row a step reports failed (a corrupt
      WAV, a failed HTTP call) instead of counting it and going on.
    * ``max_error_rate`` (float, 0 to 1; default 0.01) and ``max_errors`` (int; default
      no limit): writes only. A write in which more than this fraction of the input
      rows, or more than this many rows, failed raises and writes nothing; so does one
      in which every row failed, whatever the limits.
    * ``errors`` (path): keep the failed rows with their messages in this JSON-lines
      file (written when the job succeeds; writes only).
    * ``progress`` (bool): progress of writes: a line on stderr when it is a terminal,
      a tqdm bar in Jupyter (when tqdm is installed); default: on in those two places.
    * ``unordered`` (bool): output in the order batches finish instead of input order.
    * ``threads_per_worker`` (int): threads each stateful step (a model) may use.

    Ctrl-C (KeyboardInterrupt) stops a run; a write then leaves nothing behind.
    """

    def __init__(self, *, source=None, arrow=None, steps=(), one_shot=None):
        self._source = source
        self._arrow = arrow
        self._steps = tuple(steps)
        # [consumed] shared by every dataset derived from one one-shot stream.
        self._one_shot = one_shot

    # -- building -------------------------------------------------------------------
    def _with(self, step):
        return Dataset(source=self._source, arrow=self._arrow, steps=self._steps + (step,),
                       one_shot=self._one_shot)

    def _step(self, name, **options):
        return self._with(("native", name, _clean(options)))

    def _pipeline_text(self, sink=None):
        """(YAML text, python steps): the pipeline file of this dataset."""
        lines = []
        if self._source is not None:
            lines.append("source: " + _yaml_value(self._source))
        else:
            lines.append("# source: an Arrow stream (from_arrow)")
        lines.append("steps:")
        py = []
        for st in self._steps:
            if st[0] == "python":
                _, label, factory, schema, batch_size = st
                lines.append("  - map_batches: " + _yaml_value({"index": len(py), "fn": label}) +
                             "  # a Python step: runs only from Python")
                py.append((label, factory, schema, batch_size))
            else:
                lines.append(f"  - {st[1]}: " + _yaml_value(st[2]))
        if not self._steps:
            lines[-1] = "steps: []"
        if sink is not None:
            lines.append("sink: " + _yaml_value(sink))
        return "\n".join(lines) + "\n", py

    def _plan(self):
        text, py = self._pipeline_text()
        stream = None
        if self._arrow is not None:
            stream = _arrow_stream_capsule(self)
        return _dlprep.Plan(text, "pipeline", os.getcwd(), stream, py)

    def explain(self):
        """The pipeline file this dataset runs, as text (also printed).

        Paths are absolute; options left out take the engine's defaults. A dataset
        without Python steps or Arrow sources runs the same with ``dlprep run``.
        """
        text, _ = self._pipeline_text()
        print(text, end="")
        return text

    @property
    def schema(self):
        """The output schema (a ``pyarrow.Schema``), computed without reading data.

        A Python step without a declared ``schema`` is called once on an empty batch.
        """
        return pa.schema(self._plan().schema())

    def __repr__(self):
        names = [st[1] if st[0] == "native" else f"map_batches({st[1]})" for st in self._steps]
        src = self._source.get("format") if self._source else "arrow"
        return f"<dlprep.Dataset {src}{''.join(' -> ' + n for n in names)}>"

    # -- built-in steps ---------------------------------------------------------------
    def select(self, columns):
        """Keeps only ``columns``, in this order."""
        return self._step("select", columns=list(columns))

    def rename(self, columns):
        """Renames columns: ``{"old": "new"}``."""
        return self._step("rename", columns=dict(columns))

    def cast(self, columns):
        """Casts columns: ``{"x": "float32", "ts": "timestamp[us]"}`` (Arrow type names)."""
        return self._step("cast", columns=dict(columns))

    def filter(self, expr):
        """Keeps the rows where ``expr`` is true, e.g. ``"x > 3 and kind == 'a'"``,
        ``"is_valid(label)"`` (the expression language of ``dlprep run --help``)."""
        return self._step("filter", expr=expr)

    def regex_extract(self, column, pattern, output, on_mismatch=None):
        """Adds ``output``: the first group of ``pattern`` in ``column`` (null, or an
        error with ``on_mismatch="error"``, where it does not match)."""
        return self._step("regex_extract", column=column, pattern=pattern, output=output,
                          on_mismatch=on_mismatch)

    def split(self, key, fractions, seed=None, output=None):
        """Adds a column (default ``split``) naming a split per row, by a stable hash of
        ``key``: ``fractions={"train": 0.8, "test": 0.2}``."""
        return self._step("split", key=key, fractions=dict(fractions), seed=seed, output=output)

    def join(self, other, on, max_bytes=None):
        """Broadcast join with a small table read from files: ``other`` is a file-backed
        Dataset without steps (e.g. ``dlprep.read_csv("labels.csv")``); its rows are
        held in memory (up to ``max_bytes``)."""
        return self._step("join", source=_source_of(other, "join"), on=_list(on),
                          max_bytes=max_bytes)

    # -- featurizers -----------------------------------------------------------------
    def windows(self, key, time, window, stride, step, *, category=None, categories=None,
                values=None, aggs=None, horizon=None, until=None, labels=None,
                label_time=None):
        """Sliding windows over each key's event history: one row per (key, window end).

        Groups rows by ``key`` and sorts them by ``time`` (a timestamp or int64 epoch
        seconds), then, every ``stride`` until ``until``, summarises the last
        ``window`` of events in buckets of ``step``: per ``category`` value the event
        count and, per ``values`` column, each of ``aggs`` (sum, mean, max, min, count).
        Durations are text such as "14d", "7d", "1h", "30s". With ``labels`` (a
        file-backed Dataset with ``key`` and ``label_time``), each window gets the label
        "churned within ``horizon`` after the window end".

        ``categories`` and ``until`` default to what the data holds: the distinct
        ``category`` values and the step after the latest event time. Finding them
        scans the input once, now; pass both to skip the scan.
        """
        if category is not None and categories is None or until is None:
            found_until, found_cats = _scan_events(self, time, category, step)
            if until is None:
                until = found_until
            if category is not None and categories is None:
                categories = found_cats
        ds = self
        if labels is not None:
            if label_time is None:
                raise _error("InvalidInput", "option labels needs label_time (the churn "
                                             "time column of the labels)")
            src = dict(_source_of(labels, "labels"))
            src["columns"] = [key, label_time]
            ds = ds._step("join", source=src, on=[key])
        elif label_time is not None:
            raise _error("InvalidInput", "option label_time needs labels")
        ds = ds._step("filter", expr=f"is_valid(`{key}`)")
        return ds._step("windows", key=key, time=time, window=window, stride=stride,
                        step=step, category=category, categories=categories,
                        values=_list(values), aggs=_list(aggs), horizon=horizon,
                        until=str(until), label_time=label_time)

    def audio(self, *, sample_rate=None, clip_seconds=None, max_seconds=None, n_fft=None,
              win_length=None, hop_length=None, n_mels=None, fmin=None, fmax=None,
              top_db=None, mfcc=None, waveform=None, label_regex=None, noise=None,
              copies=None, snr_db=None, seed=None):
        """Speech features from audio files: log-mel spectrograms (librosa-equal), and
        MFCC with ``mfcc=N``, from a :func:`read_binary_files` dataset (``path``,
        ``content``). Files are decoded (libsndfile), resampled to ``sample_rate``, cut
        or padded to ``clip_seconds``; ``label_regex`` takes the label from the path;
        ``noise`` (a folder of WAVs) with ``copies`` and ``snr_db`` adds noisy copies,
        seeded by ``seed``. A file that cannot be decoded is a row error (counted, or
        fatal with ``fail_on_error``). See ``dlprep audio --help`` for every default.
        """
        return self._step("audio", sample_rate=sample_rate, clip_seconds=clip_seconds,
                          max_seconds=max_seconds, n_fft=n_fft, win_length=win_length,
                          hop_length=hop_length, n_mels=n_mels, fmin=fmin, fmax=fmax,
                          top_db=top_db, mfcc=mfcc, waveform=waveform,
                          label_regex=label_regex,
                          noise=os.path.abspath(noise) if noise else None, copies=copies,
                          snr_db=None if snr_db is None else str(snr_db), seed=seed)

    # -- inference -------------------------------------------------------------------
    def score(self, model, column, *, shapes=None, batch_size=None, argmax=None,
              softmax=None, output_names=None, keep=None, device=None,
              threads_per_worker=None):
        """Batch inference with a TorchScript model (``torch.jit.save``), loaded once per
        worker. ``column`` is the model input (a ``list<float32>`` column, or a list of
        columns for a model with several inputs); shapes come from the column's
        ``dlprep.shape`` metadata unless ``shapes`` gives them ("101,64" per column).
        ``argmax`` adds ``prediction``; ``softmax`` normalises the outputs. Needs the
        TorchScript backend (libtorch: Debian ``apt-get install libtorch-dev``); without
        it this raises :class:`dlprep.errors.NotImplementedError` when the pipeline is
        planned. For other model libraries use :meth:`map_batches`.
        """
        return self._step("score", model=os.path.abspath(model), columns=_list(column),
                          shapes=_list(shapes), batch_size=batch_size, argmax=argmax,
                          softmax=softmax, output_names=_list(output_names), keep=_list(keep),
                          device=device, threads_per_worker=threads_per_worker)

    def score_http(self, url, column, *, protocol=None, outputs=None, batch_size=None,
                   concurrency=None, timeout=None, connect_timeout=None, rate_limit=None,
                   headers=None, header_env=None, retries=None, backoff=None,
                   max_backoff=None, max_wait=None, max_response_size=None, ca_cert=None,
                   client_cert=None, client_key=None, insecure=None, seed=None):
        """Batch inference through an HTTP model server (``protocol``: "kserve-v2",
        "tf-serving" or "records"): rows are sent in batches of ``batch_size`` with
        ``concurrency`` requests in flight, retried with backoff; every row gets exactly
        one result or one row error, in order. Options as ``dlprep score-http --help``.
        """
        return self._step("score_http", url=url, protocol=protocol, columns=_list(column),
                          outputs=_list(outputs), batch_size=batch_size,
                          concurrency=concurrency, timeout=timeout,
                          connect_timeout=connect_timeout, rate_limit=rate_limit,
                          headers=headers, header_env=header_env, retries=retries,
                          backoff=backoff, max_backoff=max_backoff, max_wait=max_wait,
                          max_response_size=max_response_size, ca_cert=ca_cert,
                          client_cert=client_cert, client_key=client_key, insecure=insecure,
                          seed=seed)

    def step(self, name, **options):
        """Appends any registered pipeline step by name with its pipeline-file options
        (``dlprep.steps()`` lists them)."""
        return self._step(name, **options)

    # -- Python steps ----------------------------------------------------------------
    def map_batches(self, fn, *, schema=None, batch_size=None, fn_args=(), fn_kwargs=None,
                    fn_constructor_args=(), fn_constructor_kwargs=None):
        """Runs a Python function on every batch: ``fn(pyarrow.RecordBatch) -> batch``.

        ``fn`` is a function, or a class whose instances are callables: a class is
        constructed once per worker (load a model in ``__init__``), with
        ``fn_constructor_args`` / ``fn_constructor_kwargs``, and called per batch, as
        Ray Data's ``map_batches`` does; the statistics count the constructions. The
        result may be a ``pyarrow.RecordBatch`` or ``Table``, a ``pandas.DataFrame``, a
        dict of columns, or anything with ``__arrow_c_array__``. Batches arrive without
        copying; ``batch_size`` gathers/splits them to exactly that many rows (the last
        of each input partition may be smaller).

        ``schema`` declares the output schema; without it ``fn`` is called once on an
        empty batch to learn it. Every batch must have exactly that schema.

        Row errors: return a string column named ``_error`` (one row per input row);
        rows where it is not null are reported as failed rows with that message (counted,
        kept with ``errors=``, fatal with ``fail_on_error``) and dropped; the column
        itself is removed. An exception fails the job with its traceback in the message.

        The executor holds the GIL only around the call; native steps keep running in
        parallel on the other workers.
        """
        fn_kwargs = dict(fn_kwargs or {})
        ctor_kwargs = dict(fn_constructor_kwargs or {})
        label = _python_step_label(fn)
        if isinstance(fn, type):
            def factory(cls=fn, a=tuple(fn_constructor_args), kw=ctor_kwargs):
                return _adapter(cls(*a, **kw), fn_args, fn_kwargs)
        else:
            if fn_constructor_args or ctor_kwargs:
                raise _error("InvalidInput", "fn_constructor_args apply only when fn is a "
                                             "class")

            def factory(f=fn):
                return _adapter(f, fn_args, fn_kwargs)
        if schema is not None and not hasattr(schema, "__arrow_c_schema__"):
            schema = pa.schema(schema)
        if batch_size is not None and int(batch_size) < 1:
            raise _error("InvalidInput", "option batch_size: expected an integer >= 1")
        return self._with(("python", label, factory, schema, int(batch_size or 0)))

    # -- terminal calls --------------------------------------------------------------
    def _write(self, sink, run_options, where):
        opts = _RunKwargs.split(run_options, where)
        plan = self._plan()
        sink_text = "sink: " + _yaml_value(_clean(sink)) + "\n"
        with _Progress(opts, where) as opts:
            stats = json.loads(plan.write(sink_text, where, os.getcwd(), opts))
        return stats

    def write_tfrecord(self, path, *, compression=None, record_type=None, shards=None,
                       max_rows_per_file=None, max_bytes_per_file=None, overwrite=False,
                       **run_options):
        """Writes ``tf.train.Example`` (or ``record_type="sequence_example"``) TFRecord
        files to the folder ``path`` with the atomic commit: files appear only when the
        job succeeds, with ``_SUCCESS`` and ``_manifest.json`` (schema, TF feature spec).
        ``compression``: "none", "gzip", "zlib". ``shards`` gives exactly that many
        files; else one per input partition, rolled at ``max_rows_per_file`` /
        ``max_bytes_per_file``. Returns the run statistics as a dict.
        """
        return self._write({"format": "tfrecord", "path": _paths(path)[0],
                            "compression": compression, "record_type": record_type,
                            "shards": shards, "max_rows_per_file": max_rows_per_file,
                            "max_bytes_per_file": max_bytes_per_file,
                            "overwrite": bool(overwrite)}, run_options, "write_tfrecord")

    def write_parquet(self, path, *, shards=None, max_rows_per_file=None,
                      max_bytes_per_file=None, overwrite=False, **run_options):
        """Writes Parquet files to the folder ``path`` (atomic commit, manifest);
        see :meth:`write_tfrecord`. Returns the run statistics."""
        return self._write({"format": "parquet", "path": _paths(path)[0], "shards": shards,
                            "max_rows_per_file": max_rows_per_file,
                            "max_bytes_per_file": max_bytes_per_file,
                            "overwrite": bool(overwrite)}, run_options, "write_parquet")

    def write_csv(self, path, *, shards=None, max_rows_per_file=None,
                  max_bytes_per_file=None, overwrite=False, **run_options):
        """Writes CSV files to the folder ``path`` (atomic commit, manifest)."""
        return self._write({"format": "csv", "path": _paths(path)[0], "shards": shards,
                            "max_rows_per_file": max_rows_per_file,
                            "max_bytes_per_file": max_bytes_per_file,
                            "overwrite": bool(overwrite)}, run_options, "write_csv")

    def to_batches(self, **run_options):
        """Runs the pipeline and streams its output: a ``pyarrow.RecordBatchReader``
        (itself an ``__arrow_c_stream__`` producer for any Arrow consumer). The run
        goes on in the background while batches are read, a few batches ahead; closing
        the reader early stops it. Errors of the run are raised by the read that
        reaches them.
        """
        stream = _BatchStream(self, run_options)
        return pa.RecordBatchReader.from_batches(stream.schema, stream)

    def to_arrow(self, **run_options):
        """Runs the pipeline and returns its output as a ``pyarrow.Table`` (the engine's
        buffers, not copies)."""
        stream = _BatchStream(self, run_options)
        batches = list(stream)
        table = pa.Table.from_batches(batches, schema=stream.schema)
        return table

    def to_pandas(self, **run_options):
        """Runs the pipeline and returns a ``pandas.DataFrame`` (through ``to_arrow``)."""
        return self.to_arrow(**run_options).to_pandas()

    def count(self, **run_options):
        """Runs the pipeline and returns its number of output rows."""
        return sum(b.num_rows for b in _BatchStream(self, run_options))

    def __arrow_c_stream__(self, requested_schema=None):
        """Runs the pipeline; the output as an Arrow C stream (any consumer reads it)."""
        return self.to_batches().__arrow_c_stream__(requested_schema)


def _adapter(fn, args, kwargs):
    """The per-worker callable the engine calls: NativeBatch -> RecordBatch-like."""
    def call(native):
        batch = pa.record_batch(native)
        out = fn(batch, *args, **kwargs)
        return _as_batch(out)
    return call


def _as_batch(out):
    if isinstance(out, pa.RecordBatch):
        return out
    if isinstance(out, pa.Table):
        return out.combine_chunks().to_batches()[0] if out.num_rows else \
            pa.RecordBatch.from_pylist([], schema=out.schema)
    if isinstance(out, dict):
        return pa.RecordBatch.from_pydict(out)
    if hasattr(out, "__arrow_c_array__"):
        return out
    mod = type(out).__module__
    if mod.startswith("pandas"):
        return pa.RecordBatch.from_pandas(out, preserve_index=False)
    return out  # the engine names the type in its error


def _in_notebook():
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class _Progress:
    """Chooses how a write shows progress: the engine's line on a terminal, a tqdm bar
    in Jupyter (when tqdm is installed), nothing otherwise unless asked (progress=True
    without a terminal uses tqdm when it can)."""

    def __init__(self, opts, label):
        self.opts = dict(opts)
        self.label = label
        self.bar = None

    def __enter__(self):
        asked = self.opts.pop("progress", None)
        tty = sys.stderr.isatty()
        if asked == 0:
            self.opts["progress"] = 0
            return self.opts
        if tty:
            self.opts["progress"] = 1
            return self.opts
        self.opts["progress"] = 0
        if asked == 1 or _in_notebook():
            try:
                from tqdm.auto import tqdm
            except ImportError:
                return self.opts
            self.tqdm = tqdm
            self.opts["on_progress"] = self._update
        return self.opts

    def _update(self, rows, nbytes, parts, total):
        if self.bar is None:
            self.bar = self.tqdm(total=total if total > 0 else None, desc=self.label,
                                 unit="part")
        self.bar.n = parts
        self.bar.set_postfix(rows=rows, MB=round(nbytes / 1e6, 1), refresh=False)
        self.bar.refresh()

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


class _BatchStream:
    """Iterates the batches of a running pipeline (the engine's Stream)."""

    def __init__(self, ds, run_options):
        opts = _RunKwargs.split(run_options, "to_batches")
        if "errors" in opts:
            raise _error("InvalidInput", "option errors= applies to writes; in memory, "
                                         "failed rows are counted in the statistics")
        for k in ("max_error_rate", "max_errors"):
            if k in opts:
                raise _error("InvalidInput", f"option {k}= applies to writes (what they "
                                             "commit); in memory, failed rows are counted "
                                             "in the statistics")
        opts.setdefault("progress", 0)
        self._plan = ds._plan()
        self._stream = _dlprep.Stream(self._plan, opts)
        self.schema = pa.schema(self._stream.schema())
        self.stats = None

    def __iter__(self):
        return self

    def __next__(self):
        b = self._stream.next()
        if b is None:
            text = self._stream.stats_json()
            self.stats = json.loads(text) if text else None
            self._stream.close()
            raise StopIteration
        return pa.record_batch(b)

    def __del__(self):
        stream = getattr(self, "_stream", None)
        if stream is not None:
            stream.close()


def _list(v):
    if v is None:
        return None
    if isinstance(v, str):
        return [v]
    return list(v)


def _source_of(ds, what):
    if isinstance(ds, (str, os.PathLike)):
        return {"format": _format_of(os.fspath(ds)), "paths": _paths(ds)}
    if not isinstance(ds, Dataset) or ds._source is None or ds._steps:
        raise _error("InvalidInput", f"option {what}: expected a path or a file-backed "
                                     "dataset without steps (e.g. dlprep.read_csv(...))")
    return ds._source


def _format_of(path):
    p = path.lower()
    for ext, fmt in ((".parquet", "parquet"), (".csv", "csv"), (".jsonl", "json"),
                     (".json", "json"), (".tfrecord", "tfrecord"), (".tfrecord.gz", "tfrecord")):
        if p.endswith(ext):
            return fmt
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "_manifest.json")):
        with open(os.path.join(path, "_manifest.json"), encoding="utf-8") as f:
            return json.load(f).get("format", "parquet")
    return "parquet"


def _scan_events(ds, time, category, step):
    """(until, categories) as `dlprep windows` finds them: the step after the latest
    event time (seconds), and the distinct categories sorted bytewise."""
    import pyarrow.compute as pc
    cols = [time] + ([category] if category else [])
    max_s = None
    cats = set()
    step_s = _dlprep.parse_whole_seconds(str(step), "step")
    for batch in ds.select(cols).to_batches():
        t = batch.column(0)
        if pa.types.is_timestamp(t.type):
            per_s = {"s": 1, "ms": 1000, "us": 1000000, "ns": 1000000000}[t.type.unit]
            t = pc.cast(t, pa.int64())
        elif pa.types.is_int64(t.type):
            per_s = 1
        else:
            raise _error("TypeError", f"option time: column '{time}' has type {t.type}; "
                                      "expected a timestamp or int64 epoch seconds")
        m = pc.max(t).as_py()
        if m is not None:
            m //= per_s
            max_s = m if max_s is None else max(max_s, m)
        if category:
            u = pc.unique(batch.column(1)).cast(pa.string())
            cats.update(v for v in u.to_pylist() if v is not None)
    if max_s is None:
        raise _error("InvalidInput", "the events have no non-null times; pass until=")
    until = (max_s // step_s) * step_s + step_s if step_s > 0 else max_s
    return until, sorted(cats, key=lambda s: s.encode("utf-8"))


_VIEW_TYPES = {"string_view": pa.string(), "binary_view": pa.binary()}


def _without_views(t):
    """The type with string_view / binary_view (Polars' strings) made string / binary:
    the engine's kernels take the classic layouts."""
    if pa.types.is_string_view(t):
        return pa.large_string()
    if pa.types.is_binary_view(t):
        return pa.large_binary()
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        inner = _without_views(t.value_type)
        if inner == t.value_type:
            return t
        field = t.value_field.with_type(inner)
        if pa.types.is_list(t):
            return pa.list_(field)
        if pa.types.is_large_list(t):
            return pa.large_list(field)
        return pa.list_(field, t.list_size)
    if pa.types.is_struct(t):
        fields = [t.field(i) for i in range(t.num_fields)]
        new = [f.with_type(_without_views(f.type)) for f in fields]
        return t if new == fields else pa.struct(new)
    return t


def _arrow_stream_capsule(ds):
    obj = ds._arrow
    if ds._one_shot is not None:
        if ds._one_shot[0]:
            raise _error("InvalidInput",
                         "from_arrow: this dataset reads a one-shot stream "
                         f"({type(obj).__name__}) that an earlier run already consumed; "
                         "pass a Table (or call from_arrow again on a new stream)")
        ds._one_shot[0] = True
    if hasattr(obj, "__arrow_c_stream__"):
        reader = pa.RecordBatchReader.from_stream(obj)
    elif hasattr(obj, "__arrow_c_array__"):
        # A single batch / struct array: read it as a one-batch stream.
        reader = pa.RecordBatchReader.from_batches(*_one_batch(obj))
    else:
        raise _error("TypeError", f"from_arrow: {type(obj).__name__} is not Arrow data (it "
                                  "has neither __arrow_c_stream__ nor __arrow_c_array__)")
    schema = reader.schema
    target = pa.schema([f.with_type(_without_views(f.type)) for f in schema],
                       metadata=schema.metadata)
    if target != schema:
        # Only the view columns are converted (a copy of those); the rest stays as is.
        reader = pa.RecordBatchReader.from_batches(
            target, (b.cast(target) for b in reader))
    return reader.__arrow_c_stream__()


def _one_batch(obj):
    b = pa.record_batch(obj)
    return b.schema, [b]


# -- sources ---------------------------------------------------------------------------
def _number_text(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.9f}" if isinstance(value, float) else str(value)
    return str(value)


def parse_duration(text, option="duration"):
    """Seconds (a float) in a duration, by the grammar of every duration option of
    dlprep (flags, pipeline files and this package): ``"500ms"``, ``"30s"``, ``"90m"``,
    ``"1.5h"``, ``"14d"``, ``"2w"``, or a bare number of seconds. Raises InvalidInput
    naming ``option`` for anything else."""
    return _dlprep.parse_duration(_number_text(text), option)


def parse_size(text, option="size"):
    """Bytes (an int) in a size: ``4096``, ``"64KB"``, ``"512MiB"``, ``"1.5GB"``. KB, MB,
    GB and TB are powers of 1024, the same as KiB, MiB, GiB and TiB; units are
    case-insensitive. Raises InvalidInput naming ``option`` for anything else."""
    return _dlprep.parse_byte_size(_number_text(text), option)


def read_parquet(paths, *, columns=None, hive_partitioning=None, batch_rows=None):
    """Parquet files, folders or glob patterns (``**`` for any depth); one partition per
    file or row group. ``columns`` reads only those, in that order; hive-style
    ``key=value`` folders become columns."""
    return Dataset(source=_clean({"format": "parquet", "paths": _paths(paths),
                                  "columns": _list(columns),
                                  "hive_partitioning": hive_partitioning,
                                  "batch_rows": batch_rows}))


def read_csv(paths, *, columns=None, hive_partitioning=None, batch_rows=None):
    """CSV files (with a header row; types inferred by Arrow)."""
    return Dataset(source=_clean({"format": "csv", "paths": _paths(paths),
                                  "columns": _list(columns),
                                  "hive_partitioning": hive_partitioning,
                                  "batch_rows": batch_rows}))


def read_json(paths, *, columns=None, hive_partitioning=None, batch_rows=None):
    """JSON-lines files (one object per line)."""
    return Dataset(source=_clean({"format": "json", "paths": _paths(paths),
                                  "columns": _list(columns),
                                  "hive_partitioning": hive_partitioning,
                                  "batch_rows": batch_rows}))


def read_tfrecord(paths, *, columns=None, compression=None, record_type=None,
                  skip_corrupt=None, batch_rows=None):
    """TFRecord files of ``tf.train.Example`` (or ``record_type="sequence_example"``).
    A folder written by dlprep is read with the exact schema of its ``_manifest.json``;
    other files get a schema inferred from their first records. ``skip_corrupt`` counts
    and skips damaged records instead of failing."""
    return Dataset(source=_clean({"format": "tfrecord", "paths": _paths(paths),
                                  "columns": _list(columns), "compression": compression,
                                  "record_type": record_type, "skip_corrupt": skip_corrupt,
                                  "batch_rows": batch_rows}))


def read_binary_files(paths, *, name_filter=None, recursive=None, read_content=None,
                      max_file_size=None, files_per_partition=None, batch_rows=None):
    """Raw files as Spark's ``binaryFile`` table: ``path``, ``modificationTime``,
    ``length``, ``content``. ``name_filter`` is a glob on the file name ("*.wav");
    ``recursive`` walks folders; ``read_content=False`` lists without reading."""
    return Dataset(source=_clean({"format": "binary", "paths": _paths(paths),
                                  "name_filter": name_filter, "recursive": recursive,
                                  "read_content": read_content,
                                  "max_file_size": max_file_size,
                                  "files_per_partition": files_per_partition,
                                  "batch_rows": batch_rows}))


def from_arrow(obj):
    """A dataset over Arrow data from any library: an object with
    ``__arrow_c_stream__`` (pyarrow Table or RecordBatchReader, Polars DataFrame, DuckDB
    relation, another Dataset) or ``__arrow_c_array__`` (a RecordBatch). Nothing is
    copied. The object is asked for a fresh stream at every run, so a Table can be
    run many times, a one-shot reader once."""
    if not (hasattr(obj, "__arrow_c_stream__") or hasattr(obj, "__arrow_c_array__")):
        raise _error("TypeError", f"from_arrow: {type(obj).__name__} is not Arrow data (it "
                                  "has neither __arrow_c_stream__ nor __arrow_c_array__)")
    one_shot = None
    if isinstance(obj, pa.RecordBatchReader) or hasattr(obj, "read_next_batch") or \
            hasattr(obj, "__next__"):
        one_shot = [False]
    return Dataset(arrow=obj, one_shot=one_shot)


def from_pandas(df, *, preserve_index=False):
    """A dataset over a pandas DataFrame (converted once with pyarrow)."""
    return from_arrow(pa.Table.from_pandas(df, preserve_index=preserve_index))


def run(pipeline, **run_options):
    """Runs a pipeline file (YAML, as ``dlprep run``) and returns the run statistics.
    Relative paths in it are relative to the file's folder."""
    path = os.path.abspath(os.fspath(pipeline))
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise _error("IOError", f"cannot read pipeline file '{path}': {e.strerror}") from None
    opts = _RunKwargs.split(run_options, "run")
    plan = _dlprep.Plan(text, path, os.path.dirname(path), None, [])
    with _Progress(opts, "run") as opts:
        return json.loads(plan.write("", path, os.path.dirname(path), opts))


def steps():
    """Names of the pipeline steps this build has."""
    return list(_dlprep.registered_steps())
