"""Argument types for the command line: a bad number fails at once, naming the flag.

argparse turns the ``ArgumentTypeError`` into one line, ``hamkit train classifier: error:
argument --epochs: must be a whole number of at least 1, got '0'``, and exit status 2, before any
work starts (instead of a ``ZeroDivisionError`` or a silent one-epoch run much later).
"""

from __future__ import annotations

import argparse
import math

__all__ = ["positive_int", "non_negative_int", "positive_float"]


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


def positive_float(text: str) -> float:
    """A finite number above 0 (learning rates).

    Examples:
        >>> positive_float("1e-3")
        0.001
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text!r}")
    return value
