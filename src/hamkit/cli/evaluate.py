"""``hamkit evaluate MODEL``: score a saved model on one split of a data folder, or on whole data
sets (external validation: ``--data A --data B`` without ``--split-csv``, one row per set,
:func:`hamkit.metrics.external.external_metrics`).

For a classifier it shows what ``hamkit run``'s report shows (:func:`hamkit.metrics.score_decisions`
and :func:`hamkit.metrics.clinical.clinical_summary`): the saved decision at a glance (balanced accuracy,
melanoma sensitivity and specificity, the operating point it was set to), the report of the
saved decision rule, the raw argmax of the network beside it, the operating points of every
class, the subgroup tables (sex, age band, body site, ``dx_type`` and each ``--by`` column), all
with 95 % intervals that resample lesions (the ``lesion_id`` of the metadata); with ``--out`` the
ROC curves with the operating points marked, the gallery of the costliest mistakes and a model
card with these numbers; ``--predictions`` writes one row per image.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hamkit.cli._compat import add_fold, add_json, add_labels, add_quiet, add_segmenter
from hamkit.cli._types import output_file, output_folder

_SPLITS = ("train", "val", "test")  # hamkit.data.splits.SPLIT_NAMES, without importing numpy here


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a saved model on a split, or on whole data sets (external validation)",
        description="Print the report of a saved classifier (or segmenter) on one "
        "split, and optionally save it as JSON and figures. Without --split-csv, a classifier is scored on "
        "each --data set whole (external validation): one row per set with balanced accuracy, macro F1, "
        "melanoma sensitivity and macro AUC over the classes that set has, with 95%% lesion-bootstrap intervals.",
    )
    parser.add_argument("model", help="a folder written by save() (e.g. RUN_DIR/model)")
    parser.add_argument(
        "--data",
        required=True,
        action="append",
        metavar="DIR",
        help="data folder (HAM10000 layout, or any layout hamkit.data.read_dataset reads); without --split-csv "
        "it may be given several times, as DIR or NAME=DIR, one row each",
    )
    parser.add_argument(
        "--split-csv",
        metavar="CSV",
        default=None,
        help="split CSV written by `hamkit split` (without it: every labelled image of each --data set is scored)",
    )
    parser.add_argument(
        "--split", choices=_SPLITS, default="test", help="which split of --split-csv to score (default: test)"
    )
    add_fold(parser)
    add_labels(parser)
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
    parser.add_argument(
        "--by",
        action="append",
        default=None,
        metavar="COLUMN",
        help="classifier: also break the metrics down by this metadata column (repeatable; sex, age band, "
        "localization and dx_type always are)",
    )
    parser.add_argument("--tta", action="store_true", help="flip test-time augmentation (classifier)")
    parser.add_argument("--masks", help="masks folder (segmenter; default: found under --data)")
    parser.add_argument(
        "--skip-missing", action="store_true", help="leave out split images without a file (listed) instead of stopping"
    )
    parser.add_argument("--device", default="auto")
    add_segmenter(parser)
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

    from hamkit.cli._compat import unused_flags, usage_error

    kind = model_kind(args.model)
    if args.by and kind != "LesionClassifier":
        return usage_error(args, "--by applies to a classifier")
    wrong = (
        unused_flags(args, ("--tta", "--segmenter"), "a segmenter", "it scores masks without test-time flips or crops")
        if kind == "LesionSegmenter"
        else unused_flags(args, ("--masks",), "a classifier", "it scores diagnoses, not masks")
    )
    if wrong:
        return usage_error(args, wrong)
    if args.split_csv is None:
        if kind != "LesionClassifier":
            return usage_error(args, "scoring whole data sets is for a classifier; give a segmenter --split-csv")
        if args.fold is not None:
            return usage_error(args, "--fold reads a folds CSV; give --split-csv")
        wrong = unused_flags(
            args,
            ("--split", "--predictions", "--by"),
            "no --split-csv",
            "each --data set is scored whole, to OUT/external_validation.json",
        )
        if wrong:
            return usage_error(args, wrong)
        return _external(args)
    if len(args.data) > 1:
        return usage_error(args, "a split CSV is scored on one --data folder; give --data once (or drop --split-csv)")
    args.data = args.data[0]
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


def _data(args: argparse.Namespace, *, masks: bool, classes: Any = None) -> Any:
    """The data folder, or its split as a dataset: with ``--skip-missing`` without the missing
    images, with ``--labels`` / ``--label-column`` / ``--group-by`` with those labels."""
    from hamkit.cli._compat import labels_for

    labels = labels_for(args)
    if not args.skip_missing and labels is None:
        return args.data
    from hamkit.data.dataset import SkinDataset

    dataset = SkinDataset.from_folder(
        args.data,
        labels=labels,
        classes=classes,
        masks=(args.masks or True) if masks else None,
        split_csv=args.split_csv,
        split=args.split,
        on_missing="skip" if args.skip_missing else "error",
    )
    for image_id, reason in sorted(dataset.skipped.items()):
        print(f"skipped {image_id}: {reason}", file=sys.stderr if args.json else sys.stdout)
    return dataset


def _evaluate(args: argparse.Namespace, kind: str) -> int:
    import json
    from pathlib import Path

    from hamkit._io import atomic_write_text
    from hamkit.cli._compat import print_json
    from hamkit.errors import HamkitError
    from hamkit.metrics.subgroups import format_subgroups

    out = Path(args.out) if args.out else None
    where = {"split_csv": args.split_csv, "split": args.split}
    if kind == "LesionClassifier":
        return _evaluate_classifier(args, out)
    if kind == "LesionSegmenter":
        from hamkit.segment import LesionSegmenter

        model = LesionSegmenter.load(args.model, device=args.device)
        data = _data(args, masks=True, classes=model.classes_ if model.classify else None)
        seg_report = model.evaluate(data, masks=args.masks, progress=False if args.quiet else "evaluate", **where)
        payload = json.loads(seg_report.to_json())
        subgroups = _segmentation_subgroups(args, data, seg_report)
        if subgroups is not None:
            payload["subgroups"] = _json_ready(subgroups)
        if out:
            from hamkit._io import staged_folder

            with staged_folder(out) as stage:  # the report and its figures, all or nothing
                atomic_write_text(stage / "report.json", json.dumps(payload, indent=2) + "\n")
                seg_report.save_csv(stage / "per_image.csv")
                if seg_report.classification is not None:
                    seg_report.classification.plot_confusion_matrix(stage / "confusion_matrix.png")
                model.plot_examples(data, stage / "examples.png", masks=args.masks, **where)
        if args.json:
            print_json(payload)
            return 0
        print(seg_report.format_table())
        if subgroups is not None:
            print()
            for line in format_subgroups(subgroups):
                print(line)
        if out:
            print(f"wrote {out / 'report.json'}, per_image.csv and the figures")
        return 0
    raise HamkitError(f"{args.model}: cannot evaluate a model of kind {kind!r}")


def _segmentation_subgroups(args: argparse.Namespace, data: Any, seg_report: Any) -> dict[str, Any] | None:
    """Mean Dice and thresholded Jaccard by sex, age band, body site and dx_type (``None`` without metadata)."""
    from pathlib import Path

    import numpy as np

    from hamkit.data.dataset import find_label_file
    from hamkit.errors import DataError
    from hamkit.metrics import ISIC_JACCARD_THRESHOLD
    from hamkit.metrics.subgroups import DEFAULT_COLUMNS, metadata_columns, subgroup_means

    label_file = getattr(data, "label_file", None) or find_label_file(Path(args.data))
    if label_file is None:
        return None
    ids = list(seg_report.image_ids)
    try:
        found = metadata_columns(label_file, ids, [*DEFAULT_COLUMNS, "lesion_id"])
    except DataError:  # no lesion_id (an ISIC ground-truth CSV): each image is its own lesion
        found = metadata_columns(label_file, ids)
    lesions = found.pop("lesion_id", None) or ids
    groups = [lesion if lesion != "unknown" else image for lesion, image in zip(lesions, ids, strict=True)]
    iou = np.asarray(seg_report.iou, dtype=np.float64)
    scores = {
        "dice": np.asarray(seg_report.dice),
        "thresholded_jaccard": np.where(iou >= ISIC_JACCARD_THRESHOLD, iou, 0.0),
    }
    return subgroup_means(found, scores, groups)


def _evaluate_classifier(args: argparse.Namespace, out: Any) -> int:
    """The saved rule's report, the raw argmax beside it, lesion-bootstrap intervals, and the files asked for."""
    import json

    from hamkit._io import atomic_write_text
    from hamkit.classify import LesionClassifier
    from hamkit.cli._compat import print_json, segmenter_for
    from hamkit.data.dataset import SkinDataset
    from hamkit.errors import DataError
    from hamkit.metrics import predictions_csv, score_decisions
    from hamkit.metrics.clinical import clinical_summary, glance_lines, operating_point_lines
    from hamkit.metrics.subgroups import DEFAULT_COLUMNS, metadata_columns

    model = LesionClassifier.load(args.model, device=args.device)
    segmenter = segmenter_for(args, model.lesion_crop, args.model)
    data = _data(args, masks=False, classes=model.classes_)
    dataset = (
        data
        if isinstance(data, SkinDataset)
        else SkinDataset.from_folder(data, split_csv=args.split_csv, split=args.split, classes=model.classes_)
    )
    labels = dataset.labels
    if (labels < 0).any():
        raise DataError(f"{(labels < 0).sum()} image(s) of the {args.split} split have no diagnosis to score against")
    proba = model.predict_proba(
        dataset, tta=args.tta, progress=False if args.quiet else "evaluate", segmenter=segmenter
    )
    decided = model.decide(proba)  # the saved decision rule, as LesionClassifier.evaluate and hamkit predict
    groups = [sample.group or sample.image_id for sample in dataset.samples]
    classes = list(model.classes_)
    report, _, summary = score_decisions(labels, proba, decided, groups, classes=classes)
    calibration = getattr(model, "calibration_", None)
    summary["decision"] = {
        "alpha": float(getattr(model, "prior_alpha_", 0.0)),
        "temperature": float(getattr(model, "temperature_", 1.0)),
        "calibrated": hasattr(model, "class_offsets_"),
        "operating_point": (calibration or {}).get("operating_point"),
    }
    label_file = getattr(dataset, "label_file", None)
    wanted = list(dict.fromkeys([*DEFAULT_COLUMNS, *(args.by or [])]))
    if args.by and label_file is None:
        raise DataError(f"{args.data}: no metadata file to read --by {args.by[0]} from")
    columns = metadata_columns(label_file, dataset.image_ids, wanted) if label_file is not None else None
    clinical = clinical_summary(
        labels, proba, decided, groups, classes=classes, calibration=calibration, columns=columns
    )
    summary.update(clinical)
    written = []
    if out:
        from pathlib import Path

        from hamkit._io import staged_folder
        from hamkit.classify.explain import costliest_mistakes_figure
        from hamkit.figures.classification import plot_roc_curves
        from hamkit.metrics.clinical import costliest_mistakes, roc_marks
        from hamkit.model_card import card_evaluation, data_licence, write_model_card

        with staged_folder(out) as stage:  # the report, its figures and the card, all or nothing
            chosen = costliest_mistakes(labels, decided, proba, classes)
            _, note = costliest_mistakes_figure(
                model, dataset.paths, dataset.image_ids, chosen, labels, decided, proba, stage / "mistakes.png"
            )
            summary["mistakes"] = {"image_ids": [dataset.image_ids[i] for i in chosen], "note": note}
            atomic_write_text(stage / "report.json", json.dumps(_json_ready(summary), indent=2) + "\n")
            report.plot_confusion_matrix(stage / "confusion_matrix.png")
            marks = roc_marks(clinical, labels, decided, classes)
            plot_roc_curves(labels, proba, classes, stage / "roc_curves.png", marks=marks)
            known = data_licence(args.data, label_file)
            tested = {
                "folder": str(args.data),
                "split": args.split,
                "licence": known["licence"],
                "licence_source": known["source"],
            }
            card, _ = write_model_card(stage, model._config(), evaluation=card_evaluation(summary), evaluated_on=tested)
        written += [out / "report.json", out / "confusion_matrix.png", out / "roc_curves.png", out / "mistakes.png"]
        written.append(out / Path(card).name)
    if args.predictions:
        atomic_write_text(args.predictions, predictions_csv(dataset.image_ids, groups, labels, decided, proba, classes))
        written.append(args.predictions)
    if args.json:
        print_json(_json_ready(summary))
        return 0
    for line in glance_lines(clinical):
        print(line)
    print()
    print(report.format_table())
    print()
    for line in decision_lines(summary):
        print(line)
    print()
    for line in operating_point_lines(clinical):
        print(line)
    if written:
        from hamkit._io import written_as

        print("wrote " + ", ".join(written_as(path) for path in written))
    return 0


def _json_ready(value: Any) -> Any:
    """``value`` with NaN and infinite floats as ``None`` (JSON has no NaN)."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


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


def _external(args: argparse.Namespace) -> int:
    """``hamkit evaluate MODEL --data A --data B ...``: one row per data set, each scored whole."""
    import json
    from pathlib import Path

    from hamkit._io import atomic_write_text
    from hamkit.classify import LesionClassifier
    from hamkit.cli._compat import labels_for, print_json, segmenter_for, usage_error
    from hamkit.cli.audit import data_sets
    from hamkit.data.dataset import SkinDataset
    from hamkit.data.readers import read_dataset
    from hamkit.errors import DataError
    from hamkit.metrics.external import external_metrics, format_external_table

    sets = data_sets(args.data)
    own_labels = args.labels is not None or args.label_column is not None or args.image_column is not None
    if own_labels and len(sets) > 1:
        return usage_error(args, "--labels and --label-column describe one data set; give --data once with them")
    model = LesionClassifier.load(args.model, device=args.device)
    segmenter = segmenter_for(args, model.lesion_crop, args.model)
    classes = list(model.classes_)
    rows: dict[str, dict] = {}
    for name, folder in sets.items():
        records = (
            labels_for(argparse.Namespace(**{**vars(args), "data": folder})) if own_labels else read_dataset(folder)
        )
        kept = [r for r in records if r.dx in classes]
        left_out: dict[str, int] = {}
        for r in records:
            if r.dx not in classes:
                left_out[r.dx] = left_out.get(r.dx, 0) + 1
        if not kept:
            raise DataError(f"{folder}: none of its classes ({', '.join(sorted(left_out))}) is a class of the model")
        dataset = SkinDataset.from_folder(
            folder, labels=kept, classes=classes, on_missing="skip" if args.skip_missing else "error"
        )
        if not args.quiet:
            print(f"hamkit evaluate: scoring {args.model} on {name} ({len(dataset)} images) ...", file=sys.stderr)
        proba = model.predict_proba(dataset, tta=args.tta, progress=False if args.quiet else name, segmenter=segmenter)
        groups = [s.group or s.image_id for s in dataset.samples]
        row = external_metrics(dataset.labels, proba, model.decide(proba), groups, classes)
        row["source"] = ", ".join(sorted({r.source for r in kept if r.source})) or name
        row["left_out"] = dict(sorted(left_out.items()))
        row["skipped"] = len(dataset.skipped)
        rows[name] = row
    table = format_external_table(rows)
    if args.out:
        from hamkit._io import staged_folder

        with staged_folder(args.out) as stage:  # both files or neither
            atomic_write_text(stage / "external_validation.json", json.dumps(rows, indent=1, default=str) + "\n")
            atomic_write_text(stage / "external_validation.md", _markdown(rows) + "\n")
    if args.json:
        print_json({"model": args.model, "classes": classes, "data_sets": rows})
        return 0
    print(table)
    for name, row in rows.items():
        if row["left_out"]:
            outside = ", ".join(f"{code} {n}" for code, n in row["left_out"].items())
            print(f"{name}: left out {sum(row['left_out'].values())} image(s) of classes the model lacks ({outside})")
    if args.out:
        print(f"wrote {Path(args.out) / 'external_validation.json'} and external_validation.md")
    return 0


def _markdown(rows: dict[str, dict]) -> str:
    """The rows as a Markdown table (for a report or a paper)."""
    from hamkit.metrics.external import EXTERNAL_METRICS

    lines = [
        "| data set | images | classes | balanced accuracy | macro F1 | melanoma sensitivity | macro AUC |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        cells = []
        for metric in EXTERNAL_METRICS:
            value = row[metric]
            interval = row["intervals"].get(metric)
            cells.append(
                "n/a"
                if value != value
                else f"{value:.3f}" + (f" [{interval[0]:.3f}-{interval[1]:.3f}]" if interval else "")
            )
        lines.append(f"| {name} | {row['images']} | {', '.join(row['classes'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
