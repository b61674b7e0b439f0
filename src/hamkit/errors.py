"""Exceptions raised by hamkit.

Every error that bad input can cause is a subclass of :class:`HamkitError`, so a caller can
catch them all with one ``except`` clause, and the command line prints their message without a
traceback. Messages name the file (or row, or backbone) at fault and say how to fix it.
"""

from __future__ import annotations

__all__ = [
    "HamkitError",
    "DataError",
    "BackboneNotFoundError",
    "PluginError",
    "WeightsError",
    "TrainingError",
    "DiskFullError",
]


class HamkitError(Exception):
    """Base class of every error hamkit raises on purpose.

    Examples:
        >>> try:
        ...     raise DataError("metadata.csv: column 'dx' is missing")
        ... except HamkitError as err:
        ...     print(err)
        metadata.csv: column 'dx' is missing
    """


class DataError(HamkitError, ValueError):
    """Bad input data: a corrupt image, a CSV with wrong columns, a mask of the wrong size, ...

    The message names the file (and row, where there is one) and the problem.
    """


class BackboneNotFoundError(HamkitError, LookupError):
    """A backbone name that is not in the registry; the message suggests close matches."""

    def __str__(self) -> str:  # LookupError would quote the message like a key
        return str(self.args[0]) if self.args else ""


class PluginError(HamkitError, ImportError):
    """A backbone plugin (entry point in the ``hamkit.backbones`` group) failed to load.

    The original exception is chained as ``__cause__``.
    """


class WeightsError(HamkitError, RuntimeError):
    """Pretrained weights could not be downloaded, or a weights file does not fit the model."""


class TrainingError(HamkitError, RuntimeError):
    """Training cannot go on: the loss became NaN or infinite, or the data cannot be trained on.

    The message says where the last good checkpoint is and what to change.
    """


class DiskFullError(HamkitError, OSError):
    """A file could not be written because its disk is full (``ENOSPC``) or the user's disk
    quota is used up (``EDQUOT``).

    The message names the file and says to free space or write elsewhere; the file's earlier
    version, if any, is left as it was. It is also an :class:`OSError`, so code that caught the
    original error still catches it.

    Examples:
        >>> import errno
        >>> err = DiskFullError("out/kept.txt: no space left on the device; free some space")
        >>> isinstance(err, OSError), str(err)
        (True, 'out/kept.txt: no space left on the device; free some space')
    """
