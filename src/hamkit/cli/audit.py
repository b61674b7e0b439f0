"""``hamkit audit``: near-duplicate pairs across the splits of a split CSV."""

from __future__ import annotations

import argparse

from hamkit.cli._types import output_folder
from hamkit.cli.dedup import _method_options


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``audit`` subcommand."""
    parser = subparsers.add_parser(
        "audit",
        help="count near-duplicate pairs across train/val/test",
        description="Search every pair of splits of a split CSV for duplicates that cross them. Exit status 3 "
        "when any pair crosses (leakage), 0 when the split is clean.",
    )
    parser.add_argument("split_csv", help="split CSV (image_id,...,split), e.g. from `hamkit split`")
    parser.add_argument("--root", required=True, help="folder with the images (searched recursively)")
    parser.add_argument("--out", type=output_folder, help="folder for audit.csv and audit.json")
    _method_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``hamkit audit``."""
    from hamkit.cli.dedup import dedup_from_args

    result = dedup_from_args(args).audit(args.split_csv, args.root)
    print(result.summary())
    if result.missing:
        print(
            f"{len(result.missing)} image(s) of the split CSV are not under {args.root}, e.g. "
            f"{', '.join(result.missing[:5])}"
        )
    if args.out:
        result.save(args.out)
        print(f"wrote {args.out}/audit.csv and audit.json")
    return 3 if result.leaks else 0
