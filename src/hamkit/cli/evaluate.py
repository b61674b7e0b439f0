"""``hamkit evaluate MODEL``: score a saved model on one split of a data root."""

from __future__ import annotations

import argparse

from hamkit.cli._types import output_folder


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a saved model on a split",
        description="Print the report of a saved classifier (or segmenter) on one "
        "split, and optionally save it as JSON and figures.",
    )
    parser.add_argument("model", help="a folder written by save() (e.g. RUN_DIR/model)")
    parser.add_argument("--data", required=True, help="data root")
    parser.add_argument("--split", required=True, help="split CSV written by `hamkit split`")
    parser.add_argument("--subset", default="test", choices=("train", "val", "test"), help="default: test")
    parser.add_argument("--out", type=output_folder, help="folder for report.json and the figures")
    parser.add_argument("--tta", action="store_true", help="flip test-time augmentation (classifier)")
    parser.add_argument("--masks", help="masks folder (segmenter; default: found under --data)")
    parser.add_argument("--device", default="auto")
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
    from pathlib import Path

    from hamkit.errors import HamkitError

    kind = model_kind(args.model)
    if kind == "LesionClassifier":
        from hamkit.classify import LesionClassifier

        model = LesionClassifier.load(args.model, device=args.device)
        report = model.evaluate(args.data, split_csv=args.split, split=args.subset, tta=args.tta)
        print(report.format_table())
        if args.out:
            out = Path(args.out)
            report.save(out / "report.json")
            report.plot_confusion_matrix(out / "confusion_matrix.png")
            print(f"wrote {out / 'report.json'} and {out / 'confusion_matrix.png'}")
        return 0
    if kind == "LesionSegmenter":
        from hamkit.segment import LesionSegmenter

        model = LesionSegmenter.load(args.model, device=args.device)
        report = model.evaluate(args.data, masks=args.masks, split_csv=args.split, split=args.subset)
        print(report.format_table())
        if args.out:
            out = Path(args.out)
            report.save(out / "report.json")
            report.save_csv(out / "per_image.csv")
            if report.classification is not None:
                report.classification.plot_confusion_matrix(out / "confusion_matrix.png")
            model.plot_examples(
                args.data, out / "examples.png", masks=args.masks, split_csv=args.split, split=args.subset
            )
            print(f"wrote {out / 'report.json'}, per_image.csv and the figures")
        return 0
    raise HamkitError(f"{args.model}: cannot evaluate a model of kind {kind!r}")
