"""One flag vocabulary for every command.

The vocabulary: ``--data DIR`` (the dataset folder), ``--split-csv CSV`` and ``--split NAME``
(as the Python API's ``split_csv=`` and ``split=``), ``--out``, ``--quiet`` (no progress) and
``--json`` (the summary as JSON on stdout).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_fold", "add_json", "add_quiet", "print_json", "usage_error"]


def add_quiet(parser: argparse.ArgumentParser, what: str = "no progress bars") -> None:
    """Add ``--quiet``."""
    parser.add_argument("--quiet", action="store_true", help=what)


FOLD_HELP = "with a folds CSV (`hamkit split --folds`): fold K is the val split, the other folds train"
"""What ``--fold K`` means, unless a command says it its own way."""


def add_fold(parser: argparse.ArgumentParser, text: str = FOLD_HELP) -> None:
    """Add ``--fold K`` (a fold of a folds CSV; ``None`` when not given)."""
    from hamkit.cli._types import non_negative_int

    parser.add_argument("--fold", type=non_negative_int, default=None, metavar="K", help=text)


def add_json(parser: argparse.ArgumentParser) -> None:
    """Add ``--json``."""
    parser.add_argument(
        "--json", action="store_true", help="print the summary as one JSON object on stdout instead of text"
    )


def print_json(value: Any) -> None:
    """Print ``value`` as JSON (NaN as ``null``; paths and other objects as text)."""

    def clean(item: Any) -> Any:
        if isinstance(item, float) and item != item:
            return None
        if isinstance(item, dict):
            return {str(k): clean(v) for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [clean(v) for v in item]
        return item

    print(json.dumps(clean(value), indent=1, default=str))


def usage_error(args: argparse.Namespace, message: str) -> int:
    """Print ``hamkit COMMAND: error: message`` as argparse does and return its exit status, 2."""
    command = " ".join(str(p) for p in (getattr(args, "command", None), getattr(args, "kind", None)) if p)
    print(f"hamkit {command}: error: {message}", file=sys.stderr)
    return 2


def split_csv_for(args: argparse.Namespace, folder: Any, *, needs_val: bool) -> str:
    """The split CSV a command passes on: ``--split-csv``, or with ``--fold K`` that fold of a folds CSV.

    Fold ``K`` is written as a plain split CSV (``image_id,split``: fold ``K`` as ``val``, the
    other folds as ``train``, the held-out rows as ``test``) to ``folder/split_fold<K>.csv``.

    Args:
        args: Parsed arguments with ``split_csv`` and ``fold``.
        folder: Where the fold's CSV goes (created).
        needs_val: The command reads the ``val`` rows, which a folds CSV has only with ``--fold``.

    Raises:
        DataError: ``--fold`` with a CSV without folds, a fold the file lacks, or a folds CSV
            without ``--fold`` where validation rows are needed.
    """
    import csv
    from pathlib import Path

    from hamkit._io import atomic_write_text
    from hamkit.data.splits import read_split_csv
    from hamkit.errors import DataError

    path = Path(args.split_csv)
    if args.fold is None:
        if needs_val and path.is_file():
            with path.open(newline="", encoding="utf-8-sig") as handle:
                header = [h.strip() for h in next(csv.reader(handle), [])]
            if "fold" in header:
                raise DataError(
                    f"{path} is a folds CSV (hamkit split --folds) with no val rows; add --fold K to validate "
                    "on fold K and train on the other folds"
                )
        return str(path)
    rows = read_split_csv(path, fold=args.fold)
    target = Path(folder) / f"split_fold{args.fold}.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, "image_id,split\n" + "".join(f"{i},{name}\n" for i, name in rows.items()))
    return str(target)
