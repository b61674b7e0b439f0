"""``hamkit audit``: near-duplicate pairs across the splits of a split CSV."""

from __future__ import annotations

import argparse

from hamkit.cli._compat import add_fold
from hamkit.cli._types import output_folder
from hamkit.cli.dedup import _method_options


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``audit`` subcommand."""
    parser = subparsers.add_parser(
        "audit",
        help="count near-duplicate pairs across train/val/test",
        description="Search every pair of splits of a split CSV for duplicates that cross them (of a folds CSV: "
        "every pair of folds, and each fold against the held-out test split). Exit status 3 when any pair crosses "
        "(leakage), 0 when the split is clean.",
    )
    subject = parser.add_mutually_exclusive_group(required=True)
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
        metavar="DIR",
        help="folder with the images (searched recursively)",
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

    from hamkit.cli._compat import print_json, split_csv_for, usage_error
    from hamkit.cli.dedup import dedup_from_args, flags_not_for_method
    from hamkit.cli.main import in_flags

    wrong = flags_not_for_method(args)
    if wrong:
        return usage_error(args, wrong)
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
