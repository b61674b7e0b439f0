"""What a clinician reads first: the saved decision at a glance, operating points and subgroups.

:func:`clinical_summary` is the one function behind the top of ``hamkit run``'s report, the
``hamkit evaluate`` output and the model card: the saved decision's balanced accuracy and
melanoma sensitivity and specificity with lesion-bootstrap intervals and the operating point it
was set to (:func:`at_a_glance`), the per-class operating points
(:func:`hamkit.metrics.operating_points.operating_points`) and the subgroup tables
(:func:`hamkit.metrics.subgroups.subgroup_tables`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from hamkit.classes import CLASS_CODES, CLASS_NAMES
from hamkit.metrics.bootstrap import classification_intervals
from hamkit.metrics.classification import classification_report
from hamkit.metrics.operating_points import decision_point, operating_points
from hamkit.metrics.subgroups import format_subgroups, subgroup_tables

__all__ = [
    "at_a_glance",
    "clinical_summary",
    "decision_text",
    "full_name",
    "glance_lines",
    "operating_point_lines",
    "roc_marks",
]


def full_name(code: str) -> str:
    """``"Melanoma (mel)"`` for a HAM10000 code, the code itself otherwise.

    Examples:
        >>> full_name("nv"), full_name("other")
        ('Melanocytic nevus (nv)', 'other')
    """
    return f"{CLASS_NAMES[CLASS_CODES.index(code)]} ({code})" if code in CLASS_CODES else code


def decision_text(calibration: Mapping[str, Any] | None) -> str:
    """The saved decision's operating point in words (from a model's ``calibration_``).

    Examples:
        >>> decision_text(None)
        'the argmax of the network (not calibrated)'
        >>> decision_text({"prior_alpha": 0.0, "operating_point": {"class": "mel", "measure": "sensitivity",
        ...                "target": 0.9, "val_sensitivity": 0.91, "val_specificity": 0.7}})
        'mel sensitivity 0.90 set on the validation split (there: sensitivity 0.910, specificity 0.700)'
    """
    if not calibration:
        return "the argmax of the network (not calibrated)"
    point = calibration.get("operating_point")
    if point:
        return (
            f"{point['class']} {point['measure']} {point['target']:.2f} set on the validation split (there: "
            f"sensitivity {point['val_sensitivity']:.3f}, specificity {point['val_specificity']:.3f})"
        )
    alpha = calibration.get("prior_alpha", 0.0) or 0.0
    protected = ", ".join(calibration.get("protected") or []) or "no class"
    return (
        f"decision rule alpha {alpha:+.2f}, chosen on the validation split for the mean of balanced accuracy and "
        f"macro F1 ({protected} recall protected); no sensitivity or specificity was set"
    )


def at_a_glance(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    groups: Sequence[Hashable],
    *,
    classes: Sequence[str],
    decision: str,
    n_resamples: int = 1000,
) -> dict[str, Any]:
    """The saved decision's balanced accuracy, melanoma sensitivity and specificity with intervals.

    Returns:
        ``{"balanced_accuracy", "melanoma_sensitivity", "melanoma_specificity", "intervals": {...},
        "decision": text, "n_samples", "lesions"}`` (melanoma numbers ``None`` without a ``mel`` class).
    """
    names = list(classes)
    truth = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    mel = names.index("mel") if "mel" in names else None
    report = classification_report(truth, pred, classes=names)
    found = (
        classification_intervals(truth, pred, groups, len(names), mel=mel, n_resamples=n_resamples)
        if n_resamples > 0
        else {}
    )
    glance: dict[str, Any] = {
        "balanced_accuracy": report.balanced_accuracy,
        "melanoma_sensitivity": None,
        "melanoma_specificity": None,
        "intervals": {"balanced_accuracy": list(found["balanced_accuracy"])} if found else {},
        "decision": decision,
        "n_samples": int(truth.size),
        "lesions": len({str(g) for g in groups}),
    }
    if mel is not None:
        point = decision_point(truth, pred, groups, mel, n_resamples=n_resamples)
        glance["melanoma_sensitivity"] = point["sensitivity"]
        glance["melanoma_specificity"] = point["specificity"]
        glance["intervals"].update({f"melanoma_{k}": v for k, v in point["intervals"].items()})
    return glance


def clinical_summary(
    y_true: Sequence[int] | np.ndarray,
    proba: np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    groups: Sequence[Hashable],
    *,
    classes: Sequence[str],
    calibration: Mapping[str, Any] | None = None,
    columns: Mapping[str, Sequence[str]] | None = None,
    n_resamples: int = 1000,
) -> dict[str, Any]:
    """At a glance, operating points and subgroups of one set of decisions (see the module).

    Args:
        y_true: True class indices.
        proba: The probabilities the decisions were made from.
        y_pred: The saved rule's decisions.
        groups: The lesion of every image.
        classes: Class names.
        calibration: The model's ``calibration_`` (names the chosen operating point).
        columns: Metadata per image to break the decisions down by (``None``: no subgroups).
        n_resamples: Bootstrap resamples of every interval.

    Returns:
        ``{"at_a_glance", "operating_points", "subgroups"}`` (``subgroups`` ``None`` without columns).
    """
    names = list(classes)
    glance = at_a_glance(
        y_true, y_pred, groups, classes=names, decision=decision_text(calibration), n_resamples=n_resamples
    )
    points = operating_points(y_true, proba, groups, classes=names, n_resamples=n_resamples)
    if "mel" in points and points["mel"]["values"]:
        glance["melanoma_partial_auc"] = points["mel"]["values"]["partial_auc"]
        glance["intervals"]["melanoma_partial_auc"] = points["mel"]["intervals"].get("partial_auc")
        for key in ("sensitivity_at_specificity_0.80", "sensitivity_at_specificity_0.90"):
            glance[f"melanoma_{key}"] = points["mel"]["values"][key]
            glance["intervals"][f"melanoma_{key}"] = points["mel"]["intervals"].get(key)
    subgroups = (
        subgroup_tables(columns, y_true, y_pred, groups, classes=names, n_resamples=n_resamples) if columns else None
    )
    if subgroups:
        glance["largest_gap"] = subgroups["largest_gap"]
    return {"at_a_glance": glance, "operating_points": points, "subgroups": subgroups}


def roc_marks(
    summary: Mapping[str, Any],
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    classes: Sequence[str],
) -> dict[str, list[tuple[float, float, str]]]:
    """The points to mark on each class's ROC curve: the saved decision of every class and, for
    melanoma, the sensitivity at specificity 0.80 and 0.90 (``{class: [(fpr, tpr, label)]}``)."""
    truth = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    marks: dict[str, list[tuple[float, float, str]]] = {}
    for k, code in enumerate(classes):
        entry = summary["operating_points"].get(code) or {}
        if not entry.get("values"):
            continue
        positive, called = truth == k, pred == k
        sens = float((positive & called).sum() / positive.sum())
        fpr = float((~positive & called).sum() / (~positive).sum())
        marks[code] = [(fpr, sens, "saved decision")]
        if code == "mel":
            for spec in (0.80, 0.90):
                value = entry["values"][f"sensitivity_at_specificity_{spec:.2f}"]
                marks[code].append((1 - spec, value, f"sensitivity at specificity {spec:.2f}"))
    return marks


_MALIGNANT = ("mel", "bcc", "akiec")


def costliest_mistakes(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    proba: np.ndarray,
    classes: Sequence[str],
    n: int = 8,
) -> list[int]:
    """The ``n`` costliest wrong decisions, costliest first: melanomas called naevus, then melanomas
    called another benign class, then other malignant lesions (bcc, akiec) called benign, then the
    rest; within each, the most confident wrong call first.

    Examples:
        >>> p = np.array([[0.2, 0.8], [0.4, 0.6], [0.7, 0.3], [0.9, 0.1]])
        >>> costliest_mistakes([0, 0, 1, 1], [1, 1, 0, 0], p, ["mel", "nv"])
        [0, 1, 3, 2]
    """
    names = list(classes)
    truth = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)

    def tier(i: int) -> int:
        true, called = names[truth[i]], names[pred[i]]
        if true == "mel":
            return 0 if called == "nv" else (1 if called not in _MALIGNANT else 3)
        return 2 if true in _MALIGNANT and called not in _MALIGNANT else 3

    wrong = [int(i) for i in np.flatnonzero(truth != pred)]
    return sorted(wrong, key=lambda i: (tier(i), -float(proba[i, pred[i]]), i))[:n]


def _n(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.3f}"


def _ci(glance: Mapping[str, Any], key: str) -> str:
    interval = (glance.get("intervals") or {}).get(key)
    text = _n(glance.get(key))
    if interval and interval[0] is not None:
        text += f" [{_n(interval[0])}-{_n(interval[1])}]"
    return text


def glance_lines(summary: Mapping[str, Any]) -> list[str]:
    """The at-a-glance block as text (from :func:`clinical_summary`'s result)."""
    glance = summary["at_a_glance"]
    lines = [
        f"at a glance ({glance['n_samples']} images of {glance['lesions']} lesions; 95% intervals resample lesions):",
        f"  decision: {glance['decision']}",
        f"  balanced accuracy {_ci(glance, 'balanced_accuracy')}",
    ]
    if glance.get("melanoma_sensitivity") is not None:
        lines.append(
            f"  melanoma: sensitivity {_ci(glance, 'melanoma_sensitivity')}, "
            f"specificity {_ci(glance, 'melanoma_specificity')} (the saved decision)"
        )
    if glance.get("melanoma_partial_auc") is not None:
        lines.append(
            "  melanoma score: sensitivity at specificity 0.80 "
            f"{_ci(glance, 'melanoma_sensitivity_at_specificity_0.80')}, at 0.90 "
            f"{_ci(glance, 'melanoma_sensitivity_at_specificity_0.90')}; partial AUC above 80% sensitivity "
            f"{_ci(glance, 'melanoma_partial_auc')} (of 0.200)"
        )
    return lines


def operating_point_lines(summary: Mapping[str, Any]) -> list[str]:
    """The per-class operating points as a text table, then the subgroup tables."""
    keys = (
        ("auc", "AUC"),
        ("partial_auc", "pAUC>=0.8 sens."),
        ("sensitivity_at_specificity_0.80", "sens.@spec.0.80"),
        ("sensitivity_at_specificity_0.90", "sens.@spec.0.90"),
        ("specificity_at_sensitivity_0.90", "spec.@sens.0.90"),
    )
    lines = ["operating points (one class against the rest, 95% intervals resample lesions):"]
    lines.append(f"  {'class':<52}" + "".join(f"{label:>22}" for _, label in keys))
    for code, entry in summary["operating_points"].items():
        values, intervals = entry["values"], entry["intervals"]
        cells = ""
        for key, _ in keys:
            text = _n(values.get(key))
            if intervals.get(key):
                text += f" [{_n(intervals[key][0])}-{_n(intervals[key][1])}]"
            cells += f"{text:>22}"
        lines.append(f"  {full_name(code):<52}{cells if values else '  not defined (no positive image)'}")
    if summary.get("subgroups"):
        lines += format_subgroups(summary["subgroups"])
    return lines
