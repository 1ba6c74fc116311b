"""The engine's operators one batch at a time, without the executor.

This is how dlprep runs inside other engines (Spark's ``mapInArrow`` and
``applyInArrow``, a Ray task, a hand-written loop): make an operator once, then call it
on an iterator of batches::

    import dlprep.ops
    op = dlprep.ops.audio(clip_seconds=1, mfcc=13, label_regex=r"([^/]+)/[^/]+$")
    for out in op(batches):          # pyarrow.RecordBatch in, pyarrow.RecordBatch out
        ...
    op.close()

Each function takes the same options as the :class:`dlprep.Dataset` method of the same
name. A stateful operator (``audio``, ``score``, ``score_http``) is opened on its first
batch (the model loads once) and stays open across calls until ``close()``; rows that
fail are left out of the output and kept in ``op.row_errors`` as (row, message), rows
counted over every batch the operator has seen. ``op(batches)`` also gathers small
batches up to the operator's ``min_batch_rows`` (``score_http``'s ``batch_size``: one
request per ``batch_size`` rows even when the batches come smaller, as from Spark with a
small ``spark.sql.execution.arrow.maxRecordsPerBatch``). A grouped operator (``windows``) takes
whole groups: ``op.pre_group(batch)`` on the map side, ``op.apply_group(rows)`` per key.
"""
import os

import pyarrow as pa

from . import _dlprep
from .dataset import Dataset, _yaml_value

__all__ = ["Operator", "gather", "step", "select", "rename", "cast", "filter", "regex_extract",
           "split", "windows", "audio", "score", "score_http"]


class Operator:
    """One operator, callable on batches. Not thread-safe: one per thread or task."""

    def __init__(self, name, options, threads=1):
        self.step_name = name
        self.options = options
        text = "steps:\n  - " + name + ": " + _yaml_value(options) + "\n"
        self._op = _dlprep.Operator(text, os.getcwd(), int(threads))
        self.row_errors = []

    @property
    def kind(self):
        """"scalar", "batch", "stateful" or "grouped"."""
        return self._op.kind

    @property
    def opens(self):
        """How many times a stateful operator was opened (its model loaded)."""
        return self._op.opens

    @property
    def min_batch_rows(self):
        """The batch size a stateful operator works best with (0: any): ``op(batches)``
        gathers consecutive smaller batches up to it; ``process()`` takes what it gets."""
        return self._op.min_batch_rows

    def output_schema(self, schema):
        """The output schema for input of ``schema`` (a pyarrow.Schema)."""
        return pa.schema(self._op.output_schema(schema))

    def process(self, batch):
        """One batch in, a list of output batches out (empty while rows are held back)."""
        out = [pa.record_batch(b) for b in self._op.process(batch)]
        self.row_errors.extend(self._op.take_row_errors())
        return out

    def flush(self):
        """The rows a stateful operator still holds (call after the last batch)."""
        return [pa.record_batch(b) for b in self._op.flush()]

    def __call__(self, batches):
        """Processes an iterator of batches lazily (consecutive small batches gathered up
        to :attr:`min_batch_rows`); flushes at its end."""
        for batch in gather(batches, self.min_batch_rows):
            yield from self.process(batch)
        yield from self.flush()

    def pre_group(self, batch):
        """A grouped operator's map-side step on one batch (run before the shuffle)."""
        return pa.record_batch(self._op.pre_group(batch))

    def apply_group(self, rows):
        """A grouped operator on one whole group: ``rows`` is a Table, RecordBatch list or
        any Arrow stream of the group's rows after ``pre_group``. Returns batches."""
        if isinstance(rows, list):
            rows = pa.Table.from_batches(rows)
        elif isinstance(rows, pa.RecordBatch):
            rows = pa.Table.from_batches([rows])
        return [pa.record_batch(b) for b in self._op.apply_group(rows)]

    def close(self):
        """Closes a stateful operator (releases its model); idempotent."""
        self._op.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<dlprep.ops.Operator {self.step_name} ({self.kind})>"


def gather(batches, min_rows):
    """Consecutive batches of one schema concatenated until each has at least
    ``min_rows`` rows (the last one may have fewer); batches that are large enough pass
    through as they are. ``min_rows`` <= 0 passes everything through."""
    if min_rows <= 0:
        yield from batches
        return
    held, rows = [], 0
    for batch in batches:
        if not held and batch.num_rows >= min_rows:
            yield batch
            continue
        held.append(batch)
        rows += batch.num_rows
        if rows >= min_rows:
            yield held[0] if len(held) == 1 else pa.concat_batches(held)
            held, rows = [], 0
    if held:
        yield held[0] if len(held) == 1 else pa.concat_batches(held)


def _from_dataset_step(ds, threads=1):
    kind, name, options = ds._steps[-1]
    return Operator(name, options, threads)


def step(name, threads=1, **options):
    """Any registered step by name, with its pipeline-file options."""
    return _from_dataset_step(Dataset()._step(name, **options), threads)


def select(columns):
    return _from_dataset_step(Dataset().select(columns))


def rename(columns):
    return _from_dataset_step(Dataset().rename(columns))


def cast(columns):
    return _from_dataset_step(Dataset().cast(columns))


def filter(expr):  # noqa: A001 - the step's name
    return _from_dataset_step(Dataset().filter(expr))


def regex_extract(column, pattern, output, on_mismatch=None):
    return _from_dataset_step(Dataset().regex_extract(column, pattern, output, on_mismatch))


def split(key, fractions, seed=None, output=None):
    return _from_dataset_step(Dataset().split(key, fractions, seed, output))


def windows(key, time, window, stride, step, *, until, categories=None, category=None,
            values=None, aggs=None, horizon=None, label_time=None):
    """The windows featurizer as a grouped operator. ``until`` (and ``categories`` when
    ``category`` is set) must be given: an operator does not see the whole input."""
    if category is not None and categories is None:
        from .errors import InvalidInput
        raise InvalidInput("option categories: required with category in dlprep.ops."
                           "windows (the operator sees one group at a time)")
    ds = Dataset().windows(key, time, window, stride, step, category=category,
                           categories=categories, values=values, aggs=aggs,
                           horizon=horizon, until=until,
                           labels=None, label_time=None)
    op = _from_dataset_step(ds)
    if label_time is not None:
        opts = dict(op.options, label_time=label_time)
        op = Operator("windows", opts)
    return op


def audio(threads=1, **options):
    return _from_dataset_step(Dataset().audio(**options), threads)


def score(model, column, threads=1, **options):
    return _from_dataset_step(Dataset().score(model, column, **options), threads)


def score_http(url, column, **options):
    return _from_dataset_step(Dataset().score_http(url, column, **options))
