"""``hamkit evaluate MODEL``: score a saved model on one split of a data folder.

For a classifier it shows what ``hamkit run``'s report shows (:func:`hamkit.metrics.score_decisions`):
the report of the saved decision rule, the raw argmax of the network beside it, 95 % intervals
that resample lesions (the ``lesion_id`` of the metadata), and with ``--out`` the ROC curves;
``--predictions`` writes one row per image.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hamkit.cli._compat import add_fold, add_json, add_quiet
from hamkit.cli._types import output_file, output_folder

_SPLITS = ("train", "val", "test")  # hamkit.data.splits.SPLIT_NAMES, without importing numpy here


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
    parser.add_argument(
        "--split", choices=_SPLITS, default="test", help="which split of --split-csv to score (default: test)"
    )
    add_fold(parser)
    parser.add_argument(
        "--out",
        type=output_folder,
        help="folder for report.json and the figures (classifier: confusion matrix and ROC curves)",
    )
    parser.add_argument(
        "--predictions",
        type=output_file,
        metavar="CSV",
        help="classifier: write image_id,lesion_id,true,predicted,p_<class>... for every image (as hamkit run's "
        "test_predictions.csv)",
    )
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
    if args.predictions and kind != "LesionClassifier":
        return usage_error(
            args, "--predictions applies to a classifier; a segmenter's per-image scores go to OUT/per_image.csv"
        )
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
        return _evaluate_classifier(args, out)
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


def _evaluate_classifier(args: argparse.Namespace, out: Any) -> int:
    """The saved rule's report, the raw argmax beside it, lesion-bootstrap intervals, and the files asked for."""
    import json

    from hamkit._io import atomic_write_text
    from hamkit.classify import LesionClassifier
    from hamkit.cli._compat import print_json
    from hamkit.data.dataset import SkinDataset
    from hamkit.errors import DataError
    from hamkit.metrics import predictions_csv, score_decisions

    model = LesionClassifier.load(args.model, device=args.device)
    data = _data(args, masks=False)
    dataset = (
        data
        if isinstance(data, SkinDataset)
        else SkinDataset.from_folder(data, split_csv=args.split_csv, split=args.split)
    )
    labels = dataset.labels
    if (labels < 0).any():
        raise DataError(f"{(labels < 0).sum()} image(s) of the {args.split} split have no diagnosis to score against")
    proba = model.predict_proba(dataset, tta=args.tta, progress=False if args.quiet else "evaluate")
    decided = model.decide(proba)  # the saved decision rule, as LesionClassifier.evaluate and hamkit predict
    groups = [sample.group or sample.image_id for sample in dataset.samples]
    classes = list(model.classes_)
    report, _, summary = score_decisions(labels, proba, decided, groups, classes=classes)
    summary["decision"] = {
        "alpha": float(getattr(model, "prior_alpha_", 0.0)),
        "temperature": float(getattr(model, "temperature_", 1.0)),
        "calibrated": hasattr(model, "class_offsets_"),
    }
    written = []
    if out:
        from hamkit.figures.classification import plot_roc_curves

        atomic_write_text(out / "report.json", json.dumps(summary, indent=2) + "\n")
        report.plot_confusion_matrix(out / "confusion_matrix.png")
        plot_roc_curves(labels, proba, classes, out / "roc_curves.png")
        written += [out / "report.json", out / "confusion_matrix.png", out / "roc_curves.png"]
    if args.predictions:
        atomic_write_text(args.predictions, predictions_csv(dataset.image_ids, groups, labels, decided, proba, classes))
        written.append(args.predictions)
    if args.json:
        print_json(summary)
        return 0
    print(report.format_table())
    print()
    for line in decision_lines(summary):
        print(line)
    if written:
        print("wrote " + ", ".join(str(path) for path in written))
    return 0


def decision_lines(summary: dict[str, Any]) -> list[str]:
    """The intervals and the raw argmax beside the saved rule, as text (from :func:`~hamkit.metrics.score_decisions`'s
    summary with ``decision``).

    Examples:
        >>> row = {"accuracy": 0.5, "balanced_accuracy": 0.4, "macro_f1": 0.3, "melanoma_sensitivity": None}
        >>> summary = {"accuracy": 0.6, "balanced_accuracy": 0.5, "macro": {"f1": 0.4}, "melanoma_sensitivity": 0.9,
        ...            "n_samples": 10, "test_lesions": 8, "intervals": {"accuracy": [0.4, 0.8]},
        ...            "argmax": row, "decision": {"alpha": 0.5, "calibrated": True}}
        >>> for line in decision_lines(summary):
        ...     print(line)
        95% intervals, 1,000 bootstrap resamples of the 8 lesions of the 10 images:
          accuracy 0.600 [0.400-0.800]
        decision                                          accuracy  balanced acc.  macro F1  mel. sensitivity
        argmax of the network                                0.500          0.400     0.300               n/a
        decision rule saved with the model (alpha +0.50)     0.600          0.500     0.400             0.900
    """

    def number(value: Any) -> str:
        return "n/a" if value is None or value != value else f"{value:.3f}"

    intervals = summary.get("intervals") or {}
    lines = [
        f"95% intervals, 1,000 bootstrap resamples of the {summary['test_lesions']} lesions of the "
        f"{summary['n_samples']} images:"
    ]
    values = {
        "accuracy": summary["accuracy"],
        "balanced_accuracy": summary["balanced_accuracy"],
        "macro_f1": summary["macro"]["f1"],
        "melanoma_sensitivity": summary.get("melanoma_sensitivity"),
    }
    for name, value in values.items():
        if name in intervals:
            low, high = intervals[name]
            lines.append(f"  {name.replace('_', ' ')} {number(value)} [{number(low)}-{number(high)}]")
    decision = summary.get("decision") or {}
    rule = (
        f"decision rule saved with the model (alpha {decision.get('alpha', 0.0):+.2f})"
        if decision.get("calibrated")
        else "the model's decisions (not calibrated: the argmax)"
    )
    width = max(len(rule), len("argmax of the network")) + 2
    lines.append(f"{'decision':<{width}}{'accuracy':>8}{'balanced acc.':>15}{'macro F1':>10}{'mel. sensitivity':>18}")
    for label, row in (("argmax of the network", summary["argmax"]), (rule, values)):
        lines.append(
            f"{label:<{width}}{number(row['accuracy']):>8}{number(row['balanced_accuracy']):>15}"
            f"{number(row['macro_f1']):>10}{number(row['melanoma_sensitivity']):>18}"
        )
    return lines
