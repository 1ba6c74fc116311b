"""The exceptions dlprep raises.

Every error of the engine is a :class:`dlprep.Error`; the subclass says whose problem it
is, as Arrow's status codes do, and also derives from the matching built-in exception,
so ``except ValueError`` or ``except OSError`` work as expected. The message is the same
one line the ``dlprep`` command prints: it names the file, row, column or option and
says what was expected.
"""
import builtins

__all__ = ["Error", "InvalidInput", "IOError", "TypeError", "KeyError", "IndexError",
           "NotImplementedError", "Cancelled", "OutOfMemory", "AlreadyExists"]


class Error(Exception):
    """Base class of every error dlprep raises (a failed job, a bad option, bad data)."""


class InvalidInput(Error, builtins.ValueError):
    """Bad input or a bad option value (Arrow's ``Invalid``)."""


class IOError(Error, builtins.OSError):  # noqa: A001 - mirrors the status code's name
    """A file-system or network problem: a missing file, an unwritable folder."""


class TypeError(Error, builtins.TypeError):  # noqa: A001
    """A schema problem: a missing column, a column of the wrong type."""


class KeyError(Error, builtins.KeyError):  # noqa: A001
    """A name that was looked up and not found."""

    def __str__(self):  # builtins.KeyError quotes its argument; keep the message as is
        return Exception.__str__(self)


class IndexError(Error, builtins.IndexError):  # noqa: A001
    """An index out of range."""


class NotImplementedError(Error, builtins.NotImplementedError):  # noqa: A001
    """A feature this build or this operator does not have (e.g. no TorchScript backend)."""


class Cancelled(Error):
    """The run was stopped before it finished; nothing was written."""


class OutOfMemory(Error, builtins.MemoryError):
    """An allocation failed or a memory limit was reached."""


class AlreadyExists(IOError):
    """Something that should not exist does (a non-empty output folder without overwrite)."""


# Status code name (as the extension reports it) -> class.
BY_CODE = {
    "Invalid": InvalidInput,
    "IOError": IOError,
    "TypeError": TypeError,
    "KeyError": KeyError,
    "IndexError": IndexError,
    "NotImplemented": NotImplementedError,
    "Cancelled": Cancelled,
    "OutOfMemory": OutOfMemory,
    "AlreadyExists": AlreadyExists,
    "CapacityError": InvalidInput,
    "Unknown": Error,
}
