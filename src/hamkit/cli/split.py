"""``hamkit split``: a lesion-grouped, class-stratified train / val / test split CSV, or K folds."""

from __future__ import annotations

import argparse

from hamkit.cli._compat import add_json, add_labels
from hamkit.cli._types import fold_count, output_file, proper_fraction


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``split`` subcommand."""
    parser = subparsers.add_parser(
        "split",
        help="write a leakage-free train/val/test split CSV, or K cross-validation folds",
        description=(
            "Split images into train/val/test so that no lesion is in two splits (grouped by "
            "lesion_id, plus the --group-by columns, e.g. patient_id, and any --group-csv) and every class keeps "
            "its share (stratified by label). Writes image_id,lesion_id,dx,split,group (dx: the class name). "
            "With --folds K it writes K such folds instead, as a fold column (0..K-1; split is train), after "
            "keeping a held-out test split apart with --test (split test, no fold) or --hold-out-source."
        ),
    )
    parser.add_argument(
        "labels",
        help="labels file: HAM10000_metadata.csv, an ISIC ground-truth CSV, or any CSV with an image column and a "
        "label column of your own classes",
    )
    add_labels(parser, file_flag=False)
    parser.add_argument(
        "--hold-out-source",
        metavar="NAME",
        default=None,
        help="make the test split a whole data set or institution: the rows whose source column is NAME (and "
        "every image grouped with one of them); the rest is split into train and val",
    )
    parser.add_argument("--out", type=output_file, required=True, help="output split CSV")
    parser.add_argument(
        "--fractions",
        nargs=3,
        type=float,
        default=(0.75, 0.125, 0.125),
        metavar=("TRAIN", "VAL", "TEST"),
        help="split fractions (default: 0.75 0.125 0.125)",
    )
    parser.add_argument(
        "--folds",
        type=fold_count,
        default=None,
        metavar="K",
        help="write K cross-validation folds (a fold column) instead of a train/val/test split",
    )
    parser.add_argument(
        "--test",
        type=proper_fraction,
        default=None,
        metavar="FRACTION",
        help="with --folds: first keep this share apart as a held-out test split, e.g. 0.125 (default: none)",
    )
    parser.add_argument(
        "--random-state", type=int, default=0, help="random state: the same value gives the same result (default: 0)"
    )
    parser.add_argument(
        "--group-csv",
        action="append",
        default=[],
        metavar="CSV",
        help="extra grouping: a CSV with columns image_id,group (e.g. duplicate groups); "
        "images sharing a group stay in one split. May be repeated.",
    )
    parser.add_argument(
        "--decisions",
        metavar="CSV",
        help="decisions saved from hamkit dedup's review.html (image_a,image_b,decision): the two images of "
        "every pair decided same stay in one split",
    )
    parser.add_argument("--pie", metavar="PNG", help="also draw the class-balance pie chart")
    add_json(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``hamkit split``."""
    import csv
    from pathlib import Path

    from hamkit._io import written_as
    from hamkit.cli._compat import labels_for, print_json, usage_error
    from hamkit.data.splits import DEFAULT_FRACTIONS, split_dataset
    from hamkit.errors import DataError

    if args.folds is not None and tuple(args.fractions) != DEFAULT_FRACTIONS:
        return usage_error(args, "--fractions does not apply with --folds; use --test for a held-out test split")
    if args.folds is None and args.test is not None:
        return usage_error(args, "--test needs --folds; for a train/val/test split use --fractions")
    if args.hold_out_source is not None and args.test is not None:
        return usage_error(args, "--test and --hold-out-source both choose the test split; give one of them")
    records = labels_for(args, args.labels) or []
    if not records:
        from hamkit.data.metadata import read_labels

        records = read_labels(args.labels)
    extra = []
    for group_csv in args.group_csv:
        path = Path(group_csv)
        if not path.is_file():
            raise DataError(f"{path}: grouping CSV not found")
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if not {"image_id", "group"} <= set(reader.fieldnames or []):
                raise DataError(f"{path}: needs columns image_id,group; found {reader.fieldnames}")
            mapping = {row["image_id"]: row["group"] for row in reader}
        extra.append([mapping.get(r.image_id) for r in records])
    if args.decisions:
        from hamkit.dedup.decisions import read_decisions

        extra.append(read_decisions(args.decisions).same_groups([r.image_id for r in records]))
    split = split_dataset(
        records,
        tuple(args.fractions),
        random_state=args.random_state,
        extra_groups=extra,
        folds=args.folds,
        test=args.test,
        hold_out_source=args.hold_out_source,
    )
    split.save(args.out)
    if args.pie:
        from hamkit.data.plots import plot_class_balance

        plot_class_balance(split.labels, args.pie, classes=split.classes)
    if args.json:
        print_json(
            {
                "out": args.out,
                "images": len(records),
                "random_state": args.random_state,
                "folds": args.folds,
                "fractions": list(split.fractions),
                "classes": list(split.classes),
                "hold_out_source": args.hold_out_source,
                "summary": split.summary(),
                "pie": args.pie,
            }
        )
        return 0
    print(split.format_table())
    if args.folds is None:
        print(
            f"wrote {written_as(args.out)}: {len(records)} images, no lesion in two splits "
            f"(random state {args.random_state})"
        )
    else:
        held_out = int((split.assignment == "test").sum())
        test = f" plus {held_out} held-out test images" if held_out else ""
        print(
            f"wrote {written_as(args.out)}: {len(records)} images in {args.folds} folds{test}, no lesion in two "
            f"(random state {args.random_state})"
        )
    if args.pie:
        print(f"wrote {args.pie}")
    return 0
