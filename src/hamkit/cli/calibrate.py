"""``hamkit calibrate MODEL``: fit a saved classifier's temperature and decision rule on held-out data.

A thin layer over :meth:`LesionClassifier.calibrate <hamkit.classify.LesionClassifier.calibrate>`:
load the model, calibrate it on one split (the validation split by default; never the test
split), save it. ``hamkit run`` calibrates its classifier the same way, so a model trained with
``hamkit train`` and calibrated here decides as the run's does.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hamkit.cli._compat import add_fold, add_json, add_labels, add_quiet, add_segmenter
from hamkit.cli._types import output_folder, positive_int
from hamkit.errors import HamkitError


def class_recall(text: str) -> tuple[str, float]:
    """``--min-recall CLASS=RECALL`` as ``(class, recall)``, the recall in (0, 1].

    Examples:
        >>> class_recall("mel=0.9")
        ('mel', 0.9)
    """
    name, sep, value = text.partition("=")
    try:
        recall = float(value)
    except ValueError:
        recall = float("nan")
    if not sep or not name.strip() or not 0 < recall <= 1:
        raise argparse.ArgumentTypeError(f"expected CLASS=RECALL with a recall in (0, 1], e.g. mel=0.9; got {text!r}")
    return name.strip(), recall


def operating_point(text: str) -> dict[str, dict[str, float]]:
    """``--operating-point CLASS:sensitivity=VALUE`` (or ``specificity``) as ``calibrate``'s ``target``
    (:func:`hamkit.metrics.operating_points.parse_operating_point`).

    Examples:
        >>> operating_point("mel:sensitivity=0.9")
        {'mel': {'sensitivity': 0.9}}
    """
    from hamkit.metrics.operating_points import parse_operating_point

    try:
        found = parse_operating_point(text)
    except HamkitError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if found is None:
        raise argparse.ArgumentTypeError("leave --operating-point out for no operating point")
    return found


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``calibrate`` subcommand."""
    parser = subparsers.add_parser(
        "calibrate",
        help="fit a saved classifier's temperature and decision rule on the validation split",
        description="Calibrate a saved classifier on one split of a data folder (default: val; never test) and "
        "save it: temperature scaling (a temperature that makes the ECE worse is not applied) and the decision "
        "rule argmax(log p + alpha * log(training class frequency)), alpha chosen to maximise the mean of "
        "balanced accuracy and macro F1 without lowering the recall of the protected classes below the "
        "argmax's. hamkit predict, hamkit evaluate and the ONNX recipe then decide with it, as hamkit run's "
        "calibrated models do.",
    )
    parser.add_argument("model", help="a folder written by LesionClassifier.save (e.g. RUN_DIR/model)")
    parser.add_argument("--data", required=True, metavar="DIR", help="data folder (HAM10000 layout)")
    parser.add_argument("--split-csv", required=True, metavar="CSV", help="split CSV written by `hamkit split`")
    parser.add_argument(
        "--split",
        default="val",
        choices=("train", "val", "test"),
        help="which split of --split-csv to calibrate on (default: val; test is refused)",
    )
    add_fold(parser)
    add_labels(parser)
    parser.add_argument(
        "--protect",
        nargs="*",
        default=None,
        metavar="CLASS",
        help="classes whose recall the rule may not lower below the argmax's on this split (default: the melanoma "
        "class, mel or melanoma, when the model has one; "
        "--protect with no class protects none)",
    )
    parser.add_argument(
        "--min-recall",
        type=class_recall,
        action="append",
        default=None,
        metavar="CLASS=RECALL",
        help="a target recall, e.g. mel=0.9 (repeatable): met when any alpha meets it on this split, else the "
        "highest recall of that class is taken (the notes say so)",
    )
    parser.add_argument(
        "--operating-point",
        type=operating_point,
        default=None,
        metavar="CLASS:MEASURE=VALUE",
        help="after the rule, move one class's offset until its decisions on this split reach a sensitivity or "
        "specificity, e.g. mel:sensitivity=0.9; saved with the model, so predict decides at it",
    )
    parser.add_argument(
        "--decision",
        default="tuned",
        choices=("tuned", "argmax"),
        help="tuned (the decision rule, default) or argmax (temperature only, the plain argmax)",
    )
    parser.add_argument("--out", type=output_folder, required=True, help="folder for the calibrated model")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--device", default="auto")
    add_segmenter(parser)
    add_quiet(parser, "no progress messages")
    add_json(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``hamkit calibrate``."""
    import tempfile

    from hamkit.cli._compat import labels_for, segmenter_for, split_csv_for, unused_flags, usage_error
    from hamkit.cli.evaluate import model_kind
    from hamkit.errors import HamkitError

    if args.decision == "argmax":
        wrong = unused_flags(args, ("--protect", "--min-recall"), "--decision argmax", "the plain argmax has no rule")
        if wrong:
            return usage_error(args, wrong)
    if args.split == "test":
        return usage_error(
            args,
            "--split test: calibrating on the test split fits the decision rule to the images it is then scored "
            "on; calibrate on val (the default)",
        )
    kind = model_kind(args.model)
    if kind != "LesionClassifier":
        raise HamkitError(f"{args.model}: a {kind}; hamkit calibrate calibrates a LesionClassifier")
    from hamkit.classify import LesionClassifier

    model = LesionClassifier.load(args.model, device=args.device)
    segmenter = segmenter_for(args, model.lesion_crop, args.model)
    with tempfile.TemporaryDirectory(prefix="hamkit-calibrate-") as folder:
        split_csv = split_csv_for(args, folder, needs_val=args.split == "val")
        if not args.quiet:
            print(f"hamkit calibrate: calibrating {args.model} on the {args.split} split ...", file=sys.stderr)
        model.calibrate(
            args.data,
            split_csv=split_csv,
            split=args.split,
            labels=labels_for(args),
            decision=args.decision,
            protect=None if args.protect is None else tuple(args.protect),
            min_recall=dict(args.min_recall) if args.min_recall else None,
            target=args.operating_point,
            batch_size=args.batch_size,
            segmenter=segmenter,
        )
    out = model.save(args.out)
    facts = dict(getattr(model, "calibration_", {}))
    if args.json:
        from hamkit.cli._compat import print_json

        print_json({"model": str(out), "split": args.split, "temperature": model.temperature_, **facts})
        return 0
    for line in describe(facts):
        print(line)
    print(f"calibrated model saved to {out}")
    return 0


def describe(facts: dict[str, Any]) -> list[str]:
    """What a calibration fitted, in lines (from ``calibration_``).

    Examples:
        >>> describe({"n_samples": 40, "temperature": 1.5, "temperature_fitted": 1.5, "temperature_applied": True,
        ...           "ece_before": 0.2, "ece_after": 0.05, "decision": "tuned", "prior_alpha": 0.3,
        ...           "protected": ["mel"], "recall_raw": {"mel": 0.8}, "recall_rule": {"mel": 0.8}})[:2]
        ['temperature 1.50 on 40 images (ECE 0.200 -> 0.050)', 'decision rule: alpha +0.30 (tuned)']
    """

    def number(value: Any) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = []
    if facts.get("temperature_applied", True):
        lines.append(
            f"temperature {facts.get('temperature', 1.0):.2f} on {facts.get('n_samples', '?')} images "
            f"(ECE {number(facts.get('ece_before'))} -> {number(facts.get('ece_after'))})"
        )
    else:
        lines.append(
            f"temperature not applied: the fitted T = {facts.get('temperature_fitted', 1.0):.2f} raised the ECE from "
            f"{number(facts.get('ece_before'))} to {number(facts.get('ece_after'))}, so T = 1 is kept"
        )
    lines.append(f"decision rule: alpha {facts.get('prior_alpha', 0.0):+.2f} ({facts.get('decision', 'tuned')})")
    raw, rule = facts.get("recall_raw") or {}, facts.get("recall_rule") or {}
    for name in facts.get("protected") or []:
        lines.append(
            f"protected {name}: recall {number(raw.get(name))} under the argmax, "
            f"{number(rule.get(name))} under the rule"
        )
    for name, target in (facts.get("min_recall") or {}).items():
        met = (facts.get("targets_met") or {}).get(name)
        lines.append(f"target recall {name} {target:.2f}: {'met' if met else 'not met'} ({number(rule.get(name))})")
    lines += [f"note: {note}" for note in facts.get("notes") or []]
    return lines
