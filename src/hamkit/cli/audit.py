"""``hamkit audit``: near-duplicate pairs across the splits of a split CSV, or what several data
sets share (``--data A --data B``, :func:`hamkit.dedup.crossdata.audit_datasets`)."""

from __future__ import annotations

import argparse

from hamkit.cli._compat import add_fold
from hamkit.cli._types import output_folder
from hamkit.cli.dedup import _method_options


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``audit`` subcommand."""
    parser = subparsers.add_parser(
        "audit",
        help="count near-duplicate pairs across train/val/test, or the images several data sets share",
        description="Search every pair of splits of a split CSV for duplicates that cross them (of a folds CSV: "
        "every pair of folds, and each fold against the held-out test split). Exit status 3 when any pair crosses "
        "(leakage), 0 when the split is clean. With two or more --data sets and no split CSV: a matrix of what "
        "every pair of sets shares (same image id, identical bytes, identical pixels, verified duplicates, same "
        "lesion or patient from the sets' label files); exit status 3 when a --test set shares any image with "
        "another set.",
    )
    subject = parser.add_mutually_exclusive_group()
    subject.add_argument(
        "split_csv",
        nargs="?",
        default=argparse.SUPPRESS,
        metavar="SPLIT_CSV",
        help="split CSV (image_id,...,split), e.g. from `hamkit split`",
    )
    subject.add_argument("--split-csv", dest="split_csv", metavar="CSV", help="the same as SPLIT_CSV, as a flag")
    parser.add_argument(
        "--data",
        required=True,
        action="append",
        metavar="DIR",
        help="folder with the images (searched recursively); give it two or more times, as DIR or NAME=DIR, to "
        "compare data sets",
    )
    parser.add_argument(
        "--test",
        action="append",
        default=[],
        metavar="NAME",
        help="with several --data sets: a test set (its NAME, or its folder's name); exit status 3 when it shares "
        "any image with a set that is not a test set. May be repeated.",
    )
    add_fold(
        parser,
        "with a folds CSV (`hamkit split --folds`): audit fold K (as val) against the other folds (train) "
        "and the held-out test split",
    )
    parser.add_argument("--out", type=output_folder, help="folder for audit.csv and audit.json")
    _method_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``hamkit audit``."""
    import tempfile

    from hamkit.cli._compat import print_json, split_csv_for, unused_flags, usage_error
    from hamkit.cli.dedup import dedup_from_args, flags_not_for_method
    from hamkit.cli.main import in_flags

    wrong = flags_not_for_method(args)
    if wrong:
        return usage_error(args, wrong)
    split_given = getattr(args, "split_csv", None) is not None
    if len(args.data) > 1 and not split_given:
        wrong = unused_flags(args, ("--fold",), "several --data sets", "it picks a fold of a folds CSV")
        if wrong:
            return usage_error(args, wrong)
        return _datasets(args)
    if not split_given:
        return usage_error(args, "give a split CSV (SPLIT_CSV or --split-csv), or two or more --data sets to compare")
    if len(args.data) > 1:
        return usage_error(args, "a split CSV is audited in one --data folder; give --data once")
    if args.test:
        return usage_error(args, "--test names a set among several --data sets; a split CSV names its own test rows")
    args.data = args.data[0]
    with tempfile.TemporaryDirectory(prefix="hamkit-audit-") as folder:
        split_csv = split_csv_for(args, folder, needs_val=False)
        result = dedup_from_args(args).audit(split_csv, args.data)
    if args.out:
        result.save(args.out)
    if args.json:
        print_json(
            {
                "leaks": result.leaks,
                "by_split_pair": {name: len(cross.pairs) for name, cross in result.crossings.items()},
                "exact": all(cross.pairs.exact for cross in result.crossings.values()),
                "missing": result.missing,
                "out": args.out,
            }
        )
        return 3 if result.leaks else 0
    print(in_flags("audit", result.summary()))
    if result.missing:
        print(
            f"{len(result.missing)} image(s) of the split CSV are not under {args.data}, e.g. "
            f"{', '.join(result.missing[:5])}"
        )
    if args.out:
        print(f"wrote {args.out}/audit.csv and audit.json")
    return 3 if result.leaks else 0


def data_sets(values: list[str]) -> dict[str, str]:
    """``--data NAME=DIR`` (or ``DIR``, named after the folder) as ``{name: folder}``.

    Raises:
        HamkitError: Two sets with one name.

    Examples:
        >>> data_sets(["train=HAM10000", "data/ISIC2019"])
        {'train': 'HAM10000', 'ISIC2019': 'data/ISIC2019'}
    """
    import os
    from pathlib import Path

    from hamkit.errors import HamkitError

    sets: dict[str, str] = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep or not name or os.path.exists(value):
            name, folder = Path(value).name or value, value
        if name in sets:
            raise HamkitError(f"two --data sets are named {name!r}; name them with --data NAME=DIR")
        sets[name] = folder
    return sets


def _datasets(args: argparse.Namespace) -> int:
    """``hamkit audit --data A --data B ...``: what every pair of data sets shares."""
    import warnings

    from hamkit.cli._compat import print_json
    from hamkit.cli.dedup import dedup_from_args
    from hamkit.data.readers import read_dataset
    from hamkit.dedup.crossdata import audit_datasets
    from hamkit.errors import DataError

    sets = data_sets(args.data)
    records = {}
    for name, folder in sets.items():
        try:
            records[name] = read_dataset(folder)
        except DataError:
            continue  # no known label file: compared by content only
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = audit_datasets(
            sets, test=args.test, records=records, deduplicator=dedup_from_args(args), num_workers=args.workers
        )
    if args.out:
        result.save(args.out)
    if args.json:
        print_json({**result.as_dict(), "read_labels": sorted(records), "out": args.out})
        return 3 if result.leaks else 0
    print(result.format_table())
    unlabelled = [name for name in sets if name not in records]
    if unlabelled:
        print(f"no known label file in {', '.join(unlabelled)}: same_lesion compares the other sets' lesion ids only")
    if args.out:
        print(f"wrote {args.out}/audit.json and overlaps.csv")
    return 3 if result.leaks else 0
