"""Feed a dlprep output folder to PyTorch: an ``IterableDataset`` over its files.

A folder that dlprep wrote (``write_tfrecord`` / ``write_parquet``, ``dlprep windows``,
``dlprep audio``, ...) holds shards and a ``_manifest.json`` with the file list, the
rows of each file and the exact Arrow schema. :func:`dataset` reads it for training::

    import torch
    import dlprep.torch

    ds = dlprep.torch.dataset("out/windows", batch_size=256, shuffle_buffer=10_000, seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=4)
    for epoch in range(3):
        ds.set_epoch(epoch)                # a new, reproducible order every epoch
        for batch in loader:               # {"features": float32 [256, 14, 13],
            ...                            #  "label": int64 [256], "customer_id": [...]}

``batch_size`` makes the dataset yield whole batches (dicts of tensors), so the
DataLoader gets ``batch_size=None`` and does no collation of its own; this is the fast
way. With ``batch_size=None`` it yields one dict per row, and the DataLoader's
``batch_size`` and ``collate_fn`` batch them as usual.

Columns become:

* a list column with a known per-row shape -> one tensor ``[rows, *shape]``. The shape
  is the field metadata ``dlprep.shape`` (``"[101,64]"``, what the featurizers write),
  else a fixed-size list's size, else the TFRecord manifest's fixed length. A row with
  another number of values, or a null, raises ``ValueError`` naming the column and file.
* other list columns of numbers (lengths vary) -> a Python list of 1-D tensors (``None``
  for a null row); give them a ``collate_fn`` or pad them yourself.
* numeric and bool columns -> a tensor ``[rows]`` of the same dtype (``uint16`` and
  ``uint32`` widen to ``int64``, which torch has; ``uint64`` too, where it fits). Nulls
  become NaN in floating columns; an integer or bool column with nulls raises.
* timestamps, dates and durations -> ``int64`` tensors of their stored value (seconds,
  ms, ... as the type's unit; days for ``date32``).
* strings and binary (and anything else: structs, lists of strings) -> Python lists,
  or nothing with ``strings="drop"``.

Sharding: the folder's files are split across distributed ranks (``rank`` /
``world_size``, by default those of ``torch.distributed`` when it is initialized) and,
within a rank, across DataLoader workers, so every row is read exactly once per epoch by
exactly one worker. Files are the unit: write at least ``world_size x num_workers``
files (``shards=`` of the writers) or some workers stay idle. Ranks get whole files, so
their row counts differ by up to a file's rows; for ``DistributedDataParallel``, which
needs the same number of steps on every rank, write files of equal rows
(``max_rows_per_file=``) and stop every rank at the smallest count
(``rows_per_rank()``).

Shuffling (``shuffle_buffer=N``) permutes the file order with ``seed`` and ``epoch``
(the same permutation on every rank, so the files stay partitioned) and mixes rows
through a buffer of about ``N`` rows per worker. The order depends only on ``seed``,
the epoch, the rank and the number of workers: the same settings give the same order.

Parquet files are read with ``pyarrow.parquet``; TFRecord files with the dlprep engine
(``dlprep.read_tfrecord``), each with the manifest's exact schema. ``import dlprep``
never imports torch; this module does.
"""
import base64
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

try:
    import torch
    import torch.distributed
    import torch.utils.data
except ImportError as _e:  # pragma: no cover - depends on the environment
    raise ImportError(f"dlprep.torch needs PyTorch (pip install torch): {_e}") from _e

from . import errors as _errors
from .tfrecord import manifest as _read_manifest

__all__ = ["dataset", "FolderDataset"]

_STRINGS = ("keep", "drop")
# torch has no uint16/32/64 (1.13); they widen to int64 (a uint64 value that does not fit
# fails the cast with Arrow's message).
_WIDEN = {pa.uint16(): pa.int64(), pa.uint32(): pa.int64(), pa.uint64(): pa.int64()}


def dataset(path, *, batch_size=None, columns=None, strings="keep", shuffle_buffer=0,
            seed=0, drop_last=False, rank=None, world_size=None, read_batch_rows=8192):
    """A :class:`FolderDataset` over the dlprep output folder ``path`` (see the module
    documentation for what each argument does)."""
    return FolderDataset(path, batch_size=batch_size, columns=columns, strings=strings,
                         shuffle_buffer=shuffle_buffer, seed=seed, drop_last=drop_last,
                         rank=rank, world_size=world_size, read_batch_rows=read_batch_rows)


class FolderDataset(torch.utils.data.IterableDataset):
    """A PyTorch ``IterableDataset`` over a dlprep output folder (TFRecord or Parquet).

    Arguments:

    * ``path``: the folder (it has ``_manifest.json``).
    * ``batch_size``: yield dicts of ``batch_size`` rows (the last one of each worker
      may be smaller unless ``drop_last``); ``None`` yields one dict per row.
    * ``columns``: read only these columns, in this order (default: all).
    * ``strings``: ``"keep"`` string and binary columns as Python lists, or ``"drop"``
      them (and every other column that does not become a tensor).
    * ``shuffle_buffer``: rows each worker mixes through (0: no shuffling; files and
      rows come in manifest order). ``seed`` with :meth:`set_epoch` fixes the order.
    * ``rank``, ``world_size``: this process's share of the files; by default those of
      ``torch.distributed`` when it is initialized (read here, in the constructor), else
      0 and 1.
    * ``read_batch_rows``: rows per read from a file (memory vs per-read overhead).

    The dataset is pickled into each DataLoader worker; call :meth:`set_epoch` before
    iterating the DataLoader (with ``persistent_workers=True`` the workers keep the
    epoch they were started with, as with any IterableDataset).
    """

    def __init__(self, path, *, batch_size=None, columns=None, strings="keep",
                 shuffle_buffer=0, seed=0, drop_last=False, rank=None, world_size=None,
                 read_batch_rows=8192):
        super().__init__()
        self.path = os.path.abspath(os.fspath(path))
        if not os.path.exists(os.path.join(self.path, "_manifest.json")):
            raise _errors.IOError(f"'{self.path}' has no _manifest.json (not a dlprep output "
                                  "folder, or its job has not committed)")
        self.manifest = _read_manifest(self.path)
        self.format = self.manifest.get("format", "parquet")
        if self.format not in ("tfrecord", "parquet"):
            raise _errors.InvalidInput(f"'{self.path}' holds {self.format} files; "
                                       "dlprep.torch reads tfrecord and parquet folders")
        if batch_size is not None and int(batch_size) < 1:
            raise _errors.InvalidInput(f"batch_size: expected an integer >= 1 or None, got "
                                       f"{batch_size!r}")
        if strings not in _STRINGS:
            raise _errors.InvalidInput(f"strings: expected one of {', '.join(_STRINGS)}, got "
                                       f"{strings!r}")
        if int(shuffle_buffer) < 0:
            raise _errors.InvalidInput("shuffle_buffer: expected rows >= 0")
        self.batch_size = None if batch_size is None else int(batch_size)
        self.strings = strings
        self.shuffle_buffer = int(shuffle_buffer)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.read_batch_rows = int(read_batch_rows)
        self.epoch = 0
        self.rank, self.world_size = _distributed(rank, world_size)

        schema = _manifest_schema(self.manifest)
        if columns is not None:
            missing = [c for c in columns if schema.get_field_index(c) < 0]
            if missing:
                raise _errors.KeyError(f"column(s) {', '.join(missing)} not in '{self.path}' "
                                       f"(columns: {', '.join(schema.names)})")
            schema = pa.schema([schema.field(c) for c in columns])
        self.schema = schema
        features = self.manifest.get("features", {})
        self._converters = [_Converter(f, features.get(f.name), strings) for f in schema]
        self._read_columns = [c.name for c in self._converters if c.kind != "drop"]

    # -- what this process reads ---------------------------------------------------------
    def set_epoch(self, epoch):
        """Sets the epoch the shuffled order derives from (with ``seed``)."""
        self.epoch = int(epoch)

    def files(self, worker=None, num_workers=None):
        """The files this rank reads this epoch, in reading order, as (path, rows) pairs;
        with ``worker`` and ``num_workers``, that worker's share. Inside a DataLoader
        worker the default is the current worker's share."""
        entries = [(os.path.join(self.path, f["name"]), int(f["rows"]))
                   for f in self.manifest["files"]]
        if self.shuffle_buffer:
            # Identical on every rank and worker: a permutation of the whole folder.
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(entries))
            entries = [entries[i] for i in order]
        mine = entries[self.rank::self.world_size]
        if worker is None:
            worker, num_workers = _worker()
        return mine[worker::num_workers or 1]

    def rows_per_rank(self):
        """Rows each rank reads this epoch (a list of ``world_size`` counts)."""
        rows = []
        for r in range(self.world_size):
            other = _copy_with(self, rank=r)
            rows.append(sum(n for _, n in other.files(0, 1)))
        return rows

    def __iter__(self):
        worker, num_workers = _worker()
        files = self.files(worker, num_workers)
        batches = self._read(files)
        if self.shuffle_buffer:
            rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker])
            batches = _shuffle(batches, self.shuffle_buffer, rng)
        if self.batch_size is not None:
            for b in _rebatch(batches, self.batch_size, self.drop_last):
                yield self._to_torch(b)
            return
        for b in batches:
            cols = self._to_torch(b)
            for i in range(b.num_rows):
                yield {k: v[i] for k, v in cols.items()}

    def __repr__(self):
        return (f"<dlprep.torch.FolderDataset {self.path} ({self.format}, "
                f"{self.manifest.get('rows', '?')} rows in {len(self.manifest['files'])} "
                f"files; rank {self.rank} of {self.world_size})>")

    # -- reading -----------------------------------------------------------------------
    def _read(self, files):
        for path, rows in files:
            if rows == 0:
                continue
            if self.format == "parquet":
                yield from _read_parquet(path, self._read_columns, self.read_batch_rows)
            else:
                yield from _read_tfrecord(path, self.manifest, self._read_columns,
                                          self.read_batch_rows)

    def _to_torch(self, batch):
        out = {}
        for c in self._converters:
            if c.kind == "drop":
                continue
            out[c.name] = c(batch.column(c.name))
        return out


# -- columns -> tensors ------------------------------------------------------------------
class _Converter:
    """Turns one Arrow column into a tensor or a Python list, as the module says."""

    def __init__(self, field, feature, strings):
        self.name = field.name
        t = field.type
        if pa.types.is_dictionary(t):
            t = t.value_type
        self.type = t
        self.shape = None
        if _is_list(t) and _is_number(t.value_type):
            self.shape = _shape_of(field, t, feature)
            self.kind = "fixed" if self.shape is not None else "ragged"
        elif _is_number(t):
            self.kind = "tensor"
        elif pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_duration(t):
            self.kind = "time"
        else:
            self.kind = "python" if strings == "keep" else "drop"

    def __call__(self, col):
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if pa.types.is_dictionary(col.type):
            col = col.dictionary_decode()
        if self.kind == "python":
            return col.to_pylist()
        if self.kind == "time":
            if col.null_count:
                raise ValueError(f"column '{self.name}' has {col.null_count} null time(s); "
                                 "filter them out (Dataset.filter('is_valid(...)'))")
            if col.type != self.type:
                # Parquet has no timestamp[s]: such a column comes back as [ms].
                col = col.cast(self.type)
            if pa.types.is_date32(col.type):
                col = col.cast(pa.int32())
            return _tensor(col.cast(pa.int64()), self.name)
        if self.kind == "tensor":
            return _tensor(col, self.name)
        if self.kind == "fixed":
            return self._fixed(col)
        return self._ragged(col)

    def _fixed(self, col):
        n = len(col)
        size = int(np.prod(self.shape))
        if col.null_count:
            row = col.is_null().to_pylist().index(True)
            raise ValueError(f"column '{self.name}': row {row} of the batch is null; "
                             f"expected {size} values (shape {list(self.shape)})")
        if not pa.types.is_fixed_size_list(col.type):
            lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
            bad = np.flatnonzero(lengths != size)
            if bad.size:
                raise ValueError(f"column '{self.name}': a row of the batch has "
                                 f"{lengths[bad[0]]} values; expected {size} (shape "
                                 f"{list(self.shape)})")
        values = _tensor(col.flatten(), self.name)
        return values.reshape((n,) + tuple(self.shape))

    def _ragged(self, col):
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        values = _tensor(col.flatten(), self.name)
        parts = list(torch.split(values, [int(x) for x in np.nan_to_num(lengths)]))
        if col.null_count:
            valid = col.is_valid().to_pylist()
            parts = [p if ok else None for p, ok in zip(parts, valid)]
        return parts


def _tensor(arr, name):
    """A 1-D tensor with a copy of ``arr``'s values (Arrow buffers are read-only)."""
    if arr.type in _WIDEN:
        arr = arr.cast(_WIDEN[arr.type])
    if arr.null_count:
        if not pa.types.is_floating(arr.type):
            raise ValueError(f"column '{name}' ({arr.type}) has {arr.null_count} null "
                             "value(s), which a tensor cannot hold; filter them out "
                             "(Dataset.filter('is_valid(...)')) or fill them before writing")
    if pa.types.is_boolean(arr.type):
        values = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.bool_)
    else:
        values = arr.to_numpy(zero_copy_only=False)
    return torch.from_numpy(np.array(values, copy=True))


def _is_list(t):
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _is_number(t):
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)


def _shape_of(field, t, feature):
    meta = field.metadata or {}
    text = meta.get(b"dlprep.shape")
    if text is not None:
        shape = json.loads(text)
        return tuple(shape) if all(d >= 0 for d in shape) else None
    if pa.types.is_fixed_size_list(t):
        return (t.list_size,)
    if feature and feature.get("fixed_length") and all(d >= 0 for d in feature["shape"]):
        return tuple(feature["shape"])
    return None


# -- files -> batches ---------------------------------------------------------------------
def _read_parquet(path, columns, batch_rows):
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as f:
        yield from f.iter_batches(batch_size=batch_rows, columns=columns)


def _read_tfrecord(path, manifest, columns, batch_rows):
    """One TFRecord file of a dlprep folder, decoded by the engine with the exact schema
    of the folder's ``_manifest.json`` (the engine uses it for the files it lists)."""
    from . import dataset as _ds

    ds = _ds.read_tfrecord(path, columns=columns, batch_rows=batch_rows)
    yield from ds.to_batches(workers=1)


def _shuffle(batches, buffer_rows, rng):
    """Mixes rows through a buffer: once it holds about 1.5 x ``buffer_rows`` rows, a
    random half-buffer of them goes out; at the end the rest goes out permuted."""
    held, n = [], 0
    release = max(buffer_rows // 2, 1)
    for b in batches:
        if b.num_rows == 0:
            continue
        held.append(b)
        n += b.num_rows
        if n >= buffer_rows + release:
            pool = _concat(held)
            order = rng.permutation(n)
            yield pool.take(pa.array(order[: n - buffer_rows]))
            held, n = [pool.take(pa.array(order[n - buffer_rows:]))], buffer_rows
    if n:
        pool = _concat(held)
        yield pool.take(pa.array(rng.permutation(n)))


def _rebatch(batches, size, drop_last):
    """Re-cuts a stream of batches into batches of exactly ``size`` rows."""
    held, n = [], 0
    for b in batches:
        if b.num_rows == 0:
            continue
        held.append(b)
        n += b.num_rows
        if n >= size:
            pool = _concat(held)
            start = 0
            while n - start >= size:
                yield pool.slice(start, size)
                start += size
            held = [pool.slice(start)] if start < n else []
            n -= start
    if n and not drop_last:
        yield _concat(held)


def _concat(batches):
    if len(batches) == 1:
        return batches[0]
    return pa.concat_batches(batches)


# -- where this process stands -------------------------------------------------------------
def _worker():
    info = torch.utils.data.get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


def _distributed(rank, world_size):
    if rank is None or world_size is None:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            rank = dist.get_rank() if rank is None else rank
            world_size = dist.get_world_size() if world_size is None else world_size
    rank = 0 if rank is None else int(rank)
    world_size = 1 if world_size is None else int(world_size)
    if world_size < 1 or not 0 <= rank < world_size:
        raise _errors.InvalidInput(f"rank {rank} of world_size {world_size}: expected "
                                   "0 <= rank < world_size")
    return rank, world_size


def _copy_with(ds, **changes):
    other = object.__new__(type(ds))
    other.__dict__.update(ds.__dict__)
    other.__dict__.update(changes)
    return other


def _manifest_schema(m):
    """The exact Arrow schema of a manifest (its base64 IPC ``arrow_schema``)."""
    text = m.get("arrow_schema")
    if text is None:
        raise _errors.InvalidInput("_manifest.json has no arrow_schema (written by an "
                                   "older dlprep?); rewrite the folder")
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))
