"""``hamkit evaluate MODEL``: score a saved model on one split of a data folder."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from hamkit.cli._compat import add_json, add_quiet, deprecated
from hamkit.cli._types import non_negative_int, output_folder

_SPLITS = ("train", "val", "test")  # hamkit.data.splits.SPLIT_NAMES, without importing numpy here


class SplitName(argparse.Action):
    """``--split NAME``. A CSV given here (or to ``--subset``) is the old spelling and still works."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option_string=None) -> None:
        """Store a split name, or (old spelling) a split CSV as ``split_csv``."""
        if values in _SPLITS:
            if option_string == "--subset":
                deprecated(parser.prog, "--subset", "--split")
            setattr(namespace, self.dest, values)
        elif str(values).endswith(".csv") or os.sep in str(values) or os.path.exists(values):
            deprecated(parser.prog, f"{option_string} CSV", "--split-csv CSV (and --split for the split name)")
            namespace.split_csv = values
        else:
            parser.error(f"argument {option_string}: invalid choice: {values!r} (choose from {', '.join(_SPLITS)})")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a saved model on a split",
        description="Print the report of a saved classifier (or segmenter) on one "
        "split, and optionally save it as JSON and figures.",
    )
    parser.add_argument("model", help="a folder written by save() (e.g. RUN_DIR/model)")
    parser.add_argument("--data", required=True, metavar="DIR", help="data folder (HAM10000 layout)")
    parser.add_argument(
        "--split-csv", metavar="CSV", default=None, help="split CSV written by `hamkit split` (required)"
    )
    split = parser.add_argument(
        "--split",
        action=SplitName,
        default="test",
        metavar="{train,val,test}",
        help="which split of --split-csv to score (default: test); a CSV here is the old spelling of --split-csv",
    )
    parser._option_string_actions["--subset"] = split  # the old spelling, announced by SplitName
    split.old_spellings = ("--subset",)  # type: ignore[attr-defined,unused-ignore]
    parser.add_argument(
        "--fold",
        type=non_negative_int,
        default=None,
        metavar="K",
        help="with a folds CSV (`hamkit split --folds`): fold K is the val split, the other folds train",
    )
    parser.add_argument("--out", type=output_folder, help="folder for report.json and the figures")
    parser.add_argument("--tta", action="store_true", help="flip test-time augmentation (classifier)")
    parser.add_argument("--masks", help="masks folder (segmenter; default: found under --data)")
    parser.add_argument(
        "--skip-missing", action="store_true", help="leave out split images without a file (listed) instead of stopping"
    )
    parser.add_argument("--device", default="auto")
    add_quiet(parser, "no progress messages")
    add_json(parser)
    return parser


def model_kind(path: str) -> str:
    """The ``kind`` recorded in a saved model's config.json."""
    import json
    from pathlib import Path

    from hamkit.errors import HamkitError

    config = Path(path) / "config.json"
    if not config.is_file():
        raise HamkitError(f"{path}: not a saved hamkit model (no config.json)")
    return str(json.loads(config.read_text()).get("kind", "unknown"))


def run(args: argparse.Namespace) -> int:
    """Run ``hamkit evaluate``."""
    import tempfile

    from hamkit.cli._compat import usage_error

    if args.split_csv is None:
        return usage_error(args, "the following arguments are required: --split-csv")
    kind = model_kind(args.model)
    with tempfile.TemporaryDirectory(prefix="hamkit-evaluate-") as folder:
        from hamkit.cli._compat import split_csv_for

        args.split_csv = split_csv_for(args, folder, needs_val=args.split == "val")
        if not args.quiet:
            print(f"hamkit evaluate: scoring {args.model} on the {args.split} split ...", file=sys.stderr)
        return _evaluate(args, kind)


def _data(args: argparse.Namespace, *, masks: bool) -> Any:
    """The data folder, or with ``--skip-missing`` its split as a dataset without the missing images."""
    if not args.skip_missing:
        return args.data
    from hamkit.data.dataset import SkinDataset

    dataset = SkinDataset.from_folder(
        args.data,
        masks=(args.masks or True) if masks else None,
        split_csv=args.split_csv,
        split=args.split,
        on_missing="skip",
    )
    for image_id, reason in sorted(dataset.skipped.items()):
        print(f"skipped {image_id}: {reason}", file=sys.stderr if args.json else sys.stdout)
    return dataset


def _evaluate(args: argparse.Namespace, kind: str) -> int:
    from pathlib import Path

    from hamkit.cli._compat import print_json
    from hamkit.errors import HamkitError

    out = Path(args.out) if args.out else None
    where = {"split_csv": args.split_csv, "split": args.split}
    if kind == "LesionClassifier":
        from hamkit.classify import LesionClassifier

        model = LesionClassifier.load(args.model, device=args.device)
        report = model.evaluate(
            _data(args, masks=False), tta=args.tta, progress=False if args.quiet else "evaluate", **where
        )
        if out:
            report.save(out / "report.json")
            report.plot_confusion_matrix(out / "confusion_matrix.png")
        if args.json:
            print_json(report.as_dict())
            return 0
        print(report.format_table())
        if out:
            print(f"wrote {out / 'report.json'} and {out / 'confusion_matrix.png'}")
        return 0
    if kind == "LesionSegmenter":
        from hamkit.segment import LesionSegmenter

        model = LesionSegmenter.load(args.model, device=args.device)
        data = _data(args, masks=True)
        seg_report = model.evaluate(data, masks=args.masks, progress=False if args.quiet else "evaluate", **where)
        if out:
            seg_report.save(out / "report.json")
            seg_report.save_csv(out / "per_image.csv")
            if seg_report.classification is not None:
                seg_report.classification.plot_confusion_matrix(out / "confusion_matrix.png")
            model.plot_examples(data, out / "examples.png", masks=args.masks, **where)
        if args.json:
            import json

            print_json(json.loads(seg_report.to_json()))
            return 0
        print(seg_report.format_table())
        if out:
            print(f"wrote {out / 'report.json'}, per_image.csv and the figures")
        return 0
    raise HamkitError(f"{args.model}: cannot evaluate a model of kind {kind!r}")
