"""One flag vocabulary for every command.

The vocabulary: ``--data DIR`` (the dataset folder), ``--split-csv CSV`` and ``--split NAME``
(as the Python API's ``split_csv=`` and ``split=``), ``--out``, ``--quiet`` (no progress) and
``--json`` (the summary as JSON on stdout), and for labels ``--labels FILE``, ``--label-column``,
``--image-column`` and ``--group-by`` (:func:`add_labels`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = [
    "add_fold",
    "add_segmenter",
    "add_json",
    "add_labels",
    "add_quiet",
    "group_columns",
    "labels_for",
    "print_json",
    "segmenter_for",
    "unused_flags",
    "usage_error",
]


def add_segmenter(parser: argparse.ArgumentParser) -> None:
    """Add ``--segmenter MODEL``: the segmenter that places a classifier's lesion-centred crops."""
    parser.add_argument(
        "--segmenter",
        metavar="MODEL",
        help="for a classifier of lesion-centred crops (lesion_crop > 0): a saved LesionSegmenter whose masks "
        "place the crops (a run's RUN_DIR/segmenter/model)",
    )


def segmenter_for(args: argparse.Namespace, lesion_crop: float, model: str = "the classifier") -> Any:
    """The segmenter ``--segmenter`` names, loaded, for a classifier with this ``lesion_crop``;
    ``None`` for a classifier of whole images.

    Raises:
        HamkitError: The flag is missing for a classifier of crops, or given for one of whole images.
    """
    from hamkit.errors import HamkitError

    if not lesion_crop:
        if args.segmenter:
            raise HamkitError(f"--segmenter: {model} takes whole images (lesion_crop=0); leave --segmenter out")
        return None
    if not args.segmenter:
        raise HamkitError(
            f"{model} takes lesion-centred crops (lesion_crop={lesion_crop:g}): give --segmenter MODEL, the saved "
            "segmenter whose masks place them (a run's RUN_DIR/segmenter/model)"
        )
    from hamkit.segment import LesionSegmenter

    return LesionSegmenter.load(args.segmenter, device=getattr(args, "device", "auto"))


def add_quiet(parser: argparse.ArgumentParser, what: str = "no progress bars") -> None:
    """Add ``--quiet``."""
    parser.add_argument("--quiet", action="store_true", help=what)


FOLD_HELP = "with a folds CSV (`hamkit split --folds`): fold K is the val split, the other folds train"
"""What ``--fold K`` means, unless a command says it its own way."""


def add_fold(parser: argparse.ArgumentParser, text: str = FOLD_HELP) -> None:
    """Add ``--fold K`` (a fold of a folds CSV; ``None`` when not given)."""
    from hamkit.cli._types import non_negative_int

    parser.add_argument("--fold", type=non_negative_int, default=None, metavar="K", help=text)


LABEL_COLUMN_HELP = (
    "the labels file's column of class names (default: label, dx, diagnosis, class or target, found by name); "
    "the classes are the ones the file holds, in any number"
)
IMAGE_COLUMN_HELP = (
    "the labels file's column of image ids or file names (default: image_id, image, isic_id, image_name, img_id, "
    "file_name, filename or file, found by name)"
)
GROUP_BY_HELP = (
    "more grouping columns of the labels file, comma-separated (e.g. patient_id): images that share a lesion_id "
    "or any of these values stay in one split"
)


def add_labels(parser: argparse.ArgumentParser, *, file_flag: bool = True) -> None:
    """Add ``--labels FILE``, ``--label-column NAME``, ``--image-column NAME`` and ``--group-by COLUMNS``."""
    if file_flag:
        parser.add_argument(
            "--labels",
            metavar="FILE",
            default=None,
            help="labels file: HAM10000_metadata.csv, an ISIC ground-truth CSV, or any CSV with an image column "
            "and a label column of your own classes (default: the HAM10000 metadata under --data)",
        )
    parser.add_argument("--label-column", metavar="NAME", default=None, help=LABEL_COLUMN_HELP)
    parser.add_argument("--image-column", metavar="NAME", default=None, help=IMAGE_COLUMN_HELP)
    parser.add_argument("--group-by", metavar="COLUMNS", default=None, help=GROUP_BY_HELP)


def group_columns(text: str | None) -> list[str]:
    """``--group-by a,b`` as ``["a", "b"]`` (``[]`` when not given).

    Examples:
        >>> group_columns("patient_id, lesion_id"), group_columns(None)
        (['patient_id', 'lesion_id'], [])
    """
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def labels_for(args: argparse.Namespace, labels: Any = None) -> Any:
    """The records ``--labels`` / ``--label-column`` / ``--image-column`` / ``--group-by`` describe, or ``None`` when
    none is given (the estimators then read the HAM10000 metadata under ``--data``).

    Raises:
        DataError: No labels file given or found, or one the flags do not fit.
    """
    from pathlib import Path

    from hamkit.data.dataset import find_label_file
    from hamkit.data.metadata import read_labels
    from hamkit.errors import DataError

    path = labels if labels is not None else getattr(args, "labels", None)
    column = getattr(args, "label_column", None)
    image_column = getattr(args, "image_column", None)
    groups = group_columns(getattr(args, "group_by", None))
    if path is None and column is None and image_column is None and not groups:
        return None
    if path is None:
        path = find_label_file(Path(args.data))
        if path is None:
            raise DataError(f"{args.data}: no HAM10000_metadata.csv there; pass the labels file with --labels FILE")
    return read_labels(path, label_column=column, image_column=image_column, group_by=groups)


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


def unused_flags(args: argparse.Namespace, flags: Any, where: str, why: str = "") -> str | None:
    """The usage error for ``flags`` given where they do nothing, or ``None`` when none was given.

    Args:
        args: Parsed arguments (``args.given_flags``: the flags typed, see :mod:`hamkit.cli._parser`).
        flags: The flags this mode does not use, e.g. ``("--workers", "--batch-size")``.
        where: The mode, e.g. ``"--merge"`` or ``"--method verified"``.
        why: Why, e.g. ``"it decodes no images"`` (optional).

    Examples:
        >>> args = argparse.Namespace(given_flags=("--out", "--workers"))
        >>> unused_flags(args, ("--workers", "--batch-size"), "--merge", "it decodes no images")
        '--workers does nothing with --merge (it decodes no images); drop it'
    """
    given = [flag for flag in flags if flag in getattr(args, "given_flags", ())]
    if not given:
        return None
    verb, pronoun = ("does", "it") if len(given) == 1 else ("do", "them")
    return f"{', '.join(given)} {verb} nothing with {where}" + (f" ({why})" if why else "") + f"; drop {pronoun}"


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
