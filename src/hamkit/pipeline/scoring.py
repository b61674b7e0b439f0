"""The test-split evaluation of ``hamkit run``: calibration, decision rule, intervals, figures.

For the classifier: the raw argmax of the trained network is scored first; then temperature
scaling and the decision rule are fitted on the validation split
(:meth:`~hamkit.classify.LesionClassifier.calibrate`), and the calibrated model (the one that is
saved) is scored on the same test images. Both are reported with 95 % cluster-bootstrap intervals
(resampling lesions), with the ECE before and after temperature scaling, and warnings: a class
whose test recall under the saved rule is more than 5 points below the raw argmax's, a temperature
that was not applied because it made the validation ECE worse. For the segmenter: the
intervals of mean Dice and thresholded Jaccard, and the lowest-Dice test images next to typical
ones.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from hamkit._io import atomic_write_text
from hamkit.classes import CLASS_CODES, CLASS_NAMES
from hamkit.metrics import ClassificationReport, predictions_csv, score_decisions
from hamkit.metrics.bootstrap import mean_intervals
from hamkit.metrics.calibration import expected_calibration_error, softmax

__all__ = ["N_RESAMPLES", "RECALL_DROP", "SMALL_CLASS", "evaluate_classifier", "evaluate_segmenter"]

SMALL_CLASS = 10
"""Classes with fewer test images than this are flagged: their per-class numbers are noise."""

N_RESAMPLES = 1000
"""Bootstrap resamples for every interval."""

RECALL_DROP = 0.05
"""A class whose test recall under the saved decision rule is more than this below the raw
argmax's gets a warning."""


def _named(code: str) -> str:
    """``"melanoma (mel)"`` for a HAM10000 code, the code itself otherwise."""
    return f"{CLASS_NAMES[CLASS_CODES.index(code)].lower()} ({code})" if code in CLASS_CODES else code


def _rule_text(calibration: dict[str, Any]) -> str:
    """The decision rule in words, naming the classes whose recall it protects."""
    text = (
        "argmax(log p + alpha * log(training class frequency)), alpha chosen on val to maximise the mean "
        "of balanced accuracy and macro F1"
    )
    protected = calibration.get("protected") or []
    if protected:
        text += (
            f"; {', '.join(_named(c) for c in protected)} recall is protected: "
            "alpha may not lower it below the raw argmax's on val"
        )
    else:
        text += "; no class's recall is protected"
    targets = calibration.get("min_recall") or {}
    if targets:
        text += "; target recall " + ", ".join(f"{_named(c)} {t:.2f}" for c, t in targets.items())
    point = calibration.get("operating_point")
    if point:
        text += (
            f"; then {_named(point['class'])}'s offset moved to the operating point "
            f"{point['measure']} {point['target']:.2f} on val"
        )
    return text


def _warnings(raw: ClassificationReport, rule: ClassificationReport, calibration: dict[str, Any]) -> list[str]:
    """One line per class the saved rule costs more than :data:`RECALL_DROP` of test recall
    against the raw argmax, for a temperature not applied, for classes missing from val, and per
    recall target not met on val."""
    lines = []
    for k, code in enumerate(rule.classes):
        drop = raw.recall[k] - rule.recall[k]
        if rule.support[k] and drop > RECALL_DROP + 1e-9:
            lines.append(
                f"{_named(code)}: test recall {rule.recall[k]:.3f} under the saved decision rule, "
                f"{100 * drop:.1f} points below the raw argmax's {raw.recall[k]:.3f}"
            )
    if calibration.get("temperature_applied") is False:
        lines.append(
            f"temperature scaling not applied: the fitted T = {calibration['temperature_fitted']:.2f} raised the "
            f"validation ECE from {calibration['ece_before']:.3f} to {calibration['ece_after']:.3f}, so T = 1 is kept"
        )
    missing = calibration.get("missing_classes") or []
    if missing:
        lines.append(
            f"the validation split has no images of {', '.join(_named(c) for c in missing)}: the decision rule "
            "could not check their recall"
        )
    for code, met in (calibration.get("targets_met") or {}).items():
        if not met:
            reached = (calibration.get("recall_rule") or {}).get(code)
            lines.append(
                f"{_named(code)}: no alpha reached the target recall {calibration['min_recall'][code]:.2f} on val "
                f"(the rule reaches {reached if reached is None else f'{reached:.3f}'})"
            )
    return lines


def _operating_point(ctx: Any, classes: list[str]) -> tuple[dict[str, dict[str, float]] | None, list[str]]:
    """The run's ``classifier.operating_point`` as ``calibrate``'s ``target``, and a warning when
    its class is not among the model's classes (then no operating point is applied)."""
    from hamkit.metrics.operating_points import parse_operating_point

    text = ctx.settings["classifier"].get("operating_point", "none")
    target = parse_operating_point(text)
    if target is None or all(name in classes for name in target):
        return target, []
    line = (
        f"classifier.operating_point = {text!r} names a class this data does not have "
        f"(classes: {', '.join(classes)}); no operating point was applied"
    )
    print(f"warning: {line}", file=sys.stderr)
    return None, [line]


def evaluate_classifier(ctx: Any, model: Any, folder: Path) -> dict[str, Any]:
    """Calibrate ``model`` on the validation split and score it on the test split.

    Also: ``at_a_glance``, ``operating_points``, ``subgroups`` (sex, age band, body site,
    ``dx_type``; :func:`hamkit.metrics.clinical.clinical_summary`), ``mistakes`` (the gallery
    ``mistakes.png`` of the costliest mistakes with Grad-CAM maps), and the model's
    ``evaluation_`` for its card.

    Writes ``test_report.json`` (the calibrated model's report plus ``argmax`` (the raw
    argmax's headline numbers and per-class recall), ``decision`` (the rule in words, its alpha,
    the protected classes, recall targets and validation recalls), ``intervals``,
    ``calibration`` (temperature fitted and applied, ECE on val and test), ``warnings`` (human
    lines) and ``small_classes``), ``test_predictions.csv``,
    ``roc_curves.png``, ``reliability.png`` and ``confusion_matrix.png`` into ``folder``.

    Returns:
        What was written to ``test_report.json``.
    """
    import json

    from hamkit.classify.explain import costliest_mistakes_figure
    from hamkit.figures.classification import plot_reliability, plot_roc_curves
    from hamkit.metrics.clinical import clinical_summary, costliest_mistakes, roc_marks
    from hamkit.metrics.subgroups import columns_from_records
    from hamkit.model_card import card_evaluation

    mean, std = model.normalisation()
    test, val = (
        ctx.classifier_dataset(name)
        .with_classes(model.classes_)
        .with_options(image_size=model.image_size, mean=mean, std=std, cache=ctx.decode_cache)
        for name in ("test", "val")
    )
    labels = test.labels
    lesion = {r.image_id: str(r.group) for r in ctx.records}
    ids = test.image_ids
    groups = [lesion.get(i, i) for i in ids]
    classes = list(model.classes_)
    raw = model.predict_proba(test)
    target, skipped = _operating_point(ctx, classes)
    model.calibrate(val, target=target)
    calibration = dict(getattr(model, "calibration_", None) or {})
    # softmax(log softmax(z) / T) == softmax(z / T): the calibrated probabilities without a second pass
    proba = softmax(np.log(np.clip(raw, 1e-30, None)) / model.temperature_)
    pred = model.decide(proba)
    report, raw_report, result = score_decisions(
        labels, proba, pred, groups, classes=classes, raw_proba=raw, n_resamples=N_RESAMPLES
    )
    support = np.bincount(labels, minlength=len(classes))
    result["decision"] = {
        "rule": _rule_text(calibration),
        "alpha": model.prior_alpha_,
        "unconstrained_alpha": calibration.get("unconstrained_alpha"),
        "protected": calibration.get("protected", []),
        "min_recall": calibration.get("min_recall", {}),
        "targets_met": calibration.get("targets_met", {}),
        "val_recall_raw": calibration.get("recall_raw", {}),
        "val_recall_rule": calibration.get("recall_rule", {}),
        "notes": calibration.get("notes", []),
    }
    result["calibration"] = {
        "temperature": model.temperature_,
        "temperature_fitted": calibration.get("temperature_fitted", model.temperature_),
        "temperature_applied": calibration.get("temperature_applied", True),
        "val_ece_before": calibration.get("ece_before"),
        "val_ece_after": calibration.get("ece_after"),
        "ece_before": expected_calibration_error(raw, labels),
        "ece_after": expected_calibration_error(proba, labels),
    }
    result["warnings"] = _warnings(raw_report, report, calibration) + skipped
    result["small_classes"] = {c: int(n) for c, n in zip(classes, support, strict=True) if n < SMALL_CLASS}
    columns = columns_from_records(ctx.records, ids)
    clinical = clinical_summary(
        labels, proba, pred, groups, classes=classes, calibration=calibration, columns=columns, n_resamples=N_RESAMPLES
    )
    result.update(clinical)
    chosen = costliest_mistakes(labels, pred, proba, classes)
    _, note = costliest_mistakes_figure(
        model, test.paths, ids, chosen, labels, pred, proba, folder / "mistakes.png", crops=test.crops
    )
    result["mistakes"] = {"image_ids": [ids[i] for i in chosen], "note": note}
    model.evaluation_ = card_evaluation(result)  # saved with the model, for its card
    atomic_write_text(folder / "test_predictions.csv", predictions_csv(ids, groups, labels, pred, proba, classes))
    report.plot_confusion_matrix(folder / "confusion_matrix.png")
    plot_roc_curves(labels, proba, classes, folder / "roc_curves.png", marks=roc_marks(clinical, labels, pred, classes))
    after = (
        f"after (T = {model.temperature_:.2f})"
        if result["calibration"]["temperature_applied"]
        else f"after (fitted T = {result['calibration']['temperature_fitted']:.2f} not applied: T = 1)"
    )
    plot_reliability(labels, {"before temperature scaling": raw, after: proba}, folder / "reliability.png")
    atomic_write_text(folder / "test_report.json", json.dumps(_clean(result), indent=2) + "\n")
    return result


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def evaluate_segmenter(
    ctx: Any, model: Any, folder: Path, report: Any, *, n_worst: int = 3, n_typical: int = 3
) -> dict[str, Any]:
    """Intervals of the segmenter's test metrics, and the worst and typical examples.

    Sets the model's ``evaluation_`` (the test numbers its card gives). Writes
    ``worst_examples.png`` (the ``n_worst`` lowest-Dice test images) and
    ``examples.png`` (``n_typical`` images nearest the median Dice) into ``folder``.

    Returns:
        ``{"intervals": {"mean_dice": [lo, hi], "thresholded_jaccard": [lo, hi]},
        "worst": [[image_id, dice], ...], "subgroups": ...}`` (mean Dice and thresholded Jaccard by
        sex, age band, body site and ``dx_type``: :func:`hamkit.metrics.subgroups.subgroup_means`).
    """
    from hamkit.metrics import ISIC_JACCARD_THRESHOLD
    from hamkit.metrics.subgroups import columns_from_records, subgroup_means
    from hamkit.model_card import card_evaluation

    lesion = {r.image_id: str(r.group) for r in ctx.records}
    groups = [lesion.get(i, i) for i in report.image_ids]
    dice = np.asarray(report.dice, dtype=np.float64)
    iou = np.asarray(report.iou, dtype=np.float64)
    thresholded = np.where(iou >= ISIC_JACCARD_THRESHOLD, iou, 0.0)
    found = mean_intervals({"mean_dice": dice, "thresholded_jaccard": thresholded}, groups, n_resamples=N_RESAMPLES)
    subgroups = subgroup_means(
        columns_from_records(ctx.records, report.image_ids),
        {"mean_dice": dice, "thresholded_jaccard": thresholded},
        groups,
        n_resamples=N_RESAMPLES,
    )
    order = np.argsort(dice, kind="stable")
    worst = [report.image_ids[i] for i in order[:n_worst]]
    middle = len(order) // 2
    typical = [report.image_ids[i] for i in order[max(0, middle - n_typical // 2) :][:n_typical]]
    test = ctx.dataset("test", masks=True)
    model.plot_examples(
        test,
        folder / "worst_examples.png",
        image_ids=worst,
        title=f"The {len(worst)} lowest-Dice test images",
    )
    model.plot_examples(
        test,
        folder / "examples.png",
        image_ids=typical,
        title=f"Typical test images (Dice near the median, {float(np.median(dice)):.3f})",
    )
    result = {
        "intervals": {k: [lo, hi] for k, (lo, hi) in found.items()},
        "worst": [[i, float(dice[report.image_ids.index(i)])] for i in worst],
        "subgroups": _clean(subgroups),
    }
    model.evaluation_ = card_evaluation(
        {
            "n_samples": len(report.image_ids),
            "test_lesions": len(set(groups)),
            "mean_dice": float(np.nanmean(dice)),
            "thresholded_jaccard": float(np.mean(thresholded)),
            **result,
        }
    )  # saved with the model, for its card
    return result
