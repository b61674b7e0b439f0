"""Argument types for the command line: a bad number fails at once, naming the flag.

argparse turns the ``ArgumentTypeError`` into one line, ``hamkit train classifier: error:
argument --epochs: must be a whole number of at least 1, got '0'``, and exit status 2, before any
work starts (instead of a ``ZeroDivisionError`` or a silent one-epoch run much later).
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "fold_count",
    "non_negative_int",
    "output_file",
    "output_folder",
    "positive_float",
    "rate_share",
    "positive_int",
    "proper_fraction",
]


def _integer(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least {least}, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least {least}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A whole number of at least 1 (epochs, sizes, batch sizes, patience).

    Examples:
        >>> positive_int("3")
        3
    """
    return _integer(text, 1)


def non_negative_int(text: str) -> int:
    """A whole number of at least 0 (worker processes: 0 decodes in the main process).

    Examples:
        >>> non_negative_int("0")
        0
    """
    return _integer(text, 0)


def fold_count(text: str) -> int:
    """A number of cross-validation folds: a whole number of at least 2.

    Examples:
        >>> fold_count("5")
        5
    """
    return _integer(text, 2)


def _number(text: str, accept: Callable[[float], bool], wanted: str) -> float:
    """``text`` as a float that ``accept`` takes, else an argparse error saying it ``must be {wanted}``."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and accept(value)):
        raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
    return value


def proper_fraction(text: str) -> float:
    """A fraction above 0 and below 1 (a held-out share).

    Examples:
        >>> proper_fraction("0.125")
        0.125
    """
    return _number(text, lambda v: 0 < v < 1, "a number above 0 and below 1")


def decay(text: str) -> float:
    """0 (off) or a decay below 1 (a moving average's).

    Examples:
        >>> decay("0.998")
        0.998
    """
    return _number(text, lambda v: 0 <= v < 1, "0 (off) or a number below 1, e.g. 0.998")


def share(text: str) -> float:
    """A share from 0 up to, not including, 1 (the layers ``--freeze`` keeps fixed).

    Examples:
        >>> share("0.3")
        0.3
    """
    return _number(text, lambda v: 0 <= v < 1, "0 or a share below 1, e.g. 0.3")


def rate_share(text: str) -> float:
    """A share above 0 and at most 1 (the input layer's learning rate, ``--input-lr-scale``).

    Examples:
        >>> rate_share("0.1")
        0.1
    """
    return _number(text, lambda v: 0 < v <= 1, "a share above 0 and at most 1, e.g. 0.1")


def crop_margin(text: str) -> float:
    """0 (whole images) or a number of at least 1 (``--lesion-crop``; :func:`hamkit.data.crops.check_lesion_crop`).

    Examples:
        >>> crop_margin("1.25")
        1.25
    """
    from hamkit.data.crops import check_lesion_crop  # the setting's one rule

    return _number(text, lambda v: check_lesion_crop(v) is None, "0 (whole images) or at least 1, e.g. 1.25")


def positive_float(text: str) -> float:
    """A finite number above 0 (learning rates).

    Examples:
        >>> positive_float("1e-3")
        0.001
    """
    return _number(text, lambda v: v > 0, "a finite number above 0")


def non_negative_float(text: str) -> float:
    """A finite number, 0 or above (warm-up epochs).

    Examples:
        >>> non_negative_float("0.5")
        0.5
    """
    return _number(text, lambda v: v >= 0, "a finite number, 0 or above")


def _writable_ancestor(path: Path) -> None:
    """Fail unless the nearest existing folder above ``path`` is a folder we may write in."""
    ancestor = path.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise argparse.ArgumentTypeError(f"{ancestor} is a file, so {path} cannot be created under it")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write in {ancestor} (permission denied); pick a folder you own")


def output_folder(text: str) -> str:
    """An output folder: absent (it is created) or an existing folder, somewhere writable.

    Examples:
        >>> output_folder("runs/new-run")
        'runs/new-run'
    """
    path = Path(text)
    if path.is_symlink() and not path.exists():  # mkdir would fail on it at the end of the work
        raise argparse.ArgumentTypeError(
            f"{text} is a symbolic link to {os.readlink(path)}, which does not exist; create that folder "
            "or give another one"
        )
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder; give a folder name")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise argparse.ArgumentTypeError(f"cannot write in {text} (permission denied); pick a folder you own")
        return text
    _writable_ancestor(path)
    return text


def output_file(text: str, example: str = "out.csv") -> str:
    """An output file: not an existing folder (nor a name ending in ``/``), in a writable place.

    Args:
        text: The value given.
        example: A file name for the message's example (``out.csv``).

    Examples:
        >>> output_file("split.csv")
        'split.csv'
    """
    path = Path(text)
    if path.is_dir() or text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name, e.g. {path / example}")
    if path.exists() and not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot overwrite {text} (permission denied)")
    _writable_ancestor(path)
    return text
