"""dlprep: deep-learning data preparation and batch inference, natively, over Apache Arrow.

Build a lazy pipeline, then run it with a write or a ``to_*`` call::

    import dlprep
    ds = dlprep.read_parquet("events/")
    ds = ds.windows(key="customer_id", time="ts", category="event_type",
                    values=["amount"], aggs=["sum", "max"],
                    window="14d", stride="7d", step="1d", horizon="30d")
    stats = ds.write_tfrecord("out/windows", compression="gzip")

The steps are the engine's operators, the same ones the ``dlprep`` command runs; a
pipeline prints as the pipeline file ``dlprep run`` would execute (``ds.explain()``).
Arrow data enters and leaves through the Arrow PyCapsule interface, without copies:
``from_arrow`` takes pyarrow, Polars or DuckDB objects, ``to_arrow`` returns a
``pyarrow.Table``.

Modules: ``dlprep.tfrecord`` (tf.data over dlprep output), ``dlprep.torch`` (a PyTorch
IterableDataset over dlprep output), ``dlprep.errors`` (the exceptions).
"""
# The extension is linked against the Arrow C++ libraries of exactly this pyarrow
# release (they are loaded from the installed pyarrow package).
PYARROW_VERSION = "21.0.0"
__version__ = "0.1.0"

try:
    import pyarrow as _pa
except ImportError as _e:  # pragma: no cover - pyarrow is a dependency
    raise ImportError(f"dlprep needs pyarrow=={PYARROW_VERSION}: pip install "
                      f"'pyarrow=={PYARROW_VERSION}'") from _e
if _pa.__version__ != PYARROW_VERSION:
    raise ImportError(
        f"dlprep {__version__} was built against pyarrow {PYARROW_VERSION}, but pyarrow "
        f"{_pa.__version__} is installed (from {_pa.__file__}); install the matching "
        f"version: pip install 'pyarrow=={PYARROW_VERSION}'")

from . import errors  # noqa: E402
from .errors import (AlreadyExists, Cancelled, Error, InvalidInput,  # noqa: E402,F401
                     OutOfMemory)

# The engine (the native extension) loads on first use of anything that needs it, so
# that `import dlprep.tfrecord` (pure Python over tf.data) costs nothing more.
_ENGINE_NAMES = ("Dataset", "read_parquet", "read_csv", "read_json", "read_tfrecord",
                 "read_binary_files", "from_arrow", "from_pandas", "run", "steps",
                 "parse_duration", "parse_size")


def __getattr__(name):
    if name in _ENGINE_NAMES:
        from . import dataset
        return getattr(dataset, name)
    raise AttributeError(f"module 'dlprep' has no attribute '{name}'")


def __dir__():
    return sorted(list(globals()) + list(_ENGINE_NAMES))


__all__ = list(_ENGINE_NAMES) + ["Error", "InvalidInput", "Cancelled", "OutOfMemory",
                                 "AlreadyExists", "errors", "PYARROW_VERSION", "__version__"]
