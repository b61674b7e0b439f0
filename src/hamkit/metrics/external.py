"""External validation: one model scored on several data sets, each restricted to its own classes.

Accuracy measured inside one data set drops on another, so a model trained on HAM10000 is scored
on BCN20000, PH2, DDI and the rest one set at a time. A set rarely has every class of the model
(PH2 has nevi and melanoma only), so each row is restricted to the classes the set has: balanced
accuracy and macro F1 average over those classes (the model may still answer any of its
classes), macro AUC averages the one-vs-rest AUC of those classes, and melanoma sensitivity is
reported where the set has melanoma. Every number has a 95 % interval from a bootstrap that
resamples lesions (images without a lesion id are their own lesion).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hamkit.classes import melanoma_index
from hamkit.errors import DataError
from hamkit.metrics.bootstrap import bootstrap_groups, percentile_interval

__all__ = ["EXTERNAL_METRICS", "external_metrics", "format_external_table"]

EXTERNAL_METRICS: tuple[str, ...] = ("balanced_accuracy", "macro_f1", "melanoma_sensitivity", "macro_auc")
"""The numbers of one row, in column order."""


def _auc(positive: np.ndarray, score: np.ndarray) -> float:
    """One-vs-rest ROC AUC by ranks (ties share their mean rank); NaN without both kinds."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(score.size, dtype=np.float64)
    sorted_scores = score[order]
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    mean_rank = first + (counts + 1) / 2.0  # 1-based mean rank of each tie block
    ranks[order] = np.repeat(mean_rank, counts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _row(truth: np.ndarray, pred: np.ndarray, proba: np.ndarray, present: np.ndarray, mel: int | None) -> dict:
    recalls, f1s, aucs = [], [], []
    for k in present.tolist():
        actual = truth == k
        guessed = pred == k
        hits = float(np.sum(actual & guessed))
        recall = hits / actual.sum() if actual.any() else math.nan
        precision = hits / guessed.sum() if guessed.any() else 0.0
        recalls.append(recall)
        f1s.append(0.0 if hits == 0 else 2 * precision * recall / (precision + recall))
        aucs.append(_auc(actual, proba[:, k]))
    defined = [a for a in aucs if not math.isnan(a)]
    mel_rows = truth == mel if mel is not None else None
    return {
        "balanced_accuracy": float(np.nanmean(recalls)) if recalls else math.nan,
        "macro_f1": float(np.mean(f1s)) if f1s else math.nan,
        "melanoma_sensitivity": float(np.mean(pred[mel_rows] == mel))
        if mel_rows is not None and mel_rows.any()
        else math.nan,
        "macro_auc": float(np.mean(defined)) if defined else math.nan,
    }


def external_metrics(
    y_true: Sequence[int] | np.ndarray,
    proba: np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    groups: Sequence[str],
    classes: Sequence[str],
    *,
    n_resamples: int = 1000,
    random_state: int = 0,
) -> dict[str, Any]:
    """One data set's row: balanced accuracy, macro F1, melanoma sensitivity and macro AUC over
    the classes the set has, with lesion-bootstrap 95 % intervals.

    Args:
        y_true: True class indices (into the model's ``classes``).
        proba: The model's probabilities ``(N, len(classes))``.
        y_pred: The model's decisions.
        groups: The lesion of every image (the resampling unit).
        classes: The model's class names.
        n_resamples: Bootstrap resamples.
        random_state: Random state of the draws.

    Returns:
        ``{"images", "lesions", "classes" (the set's, in model order), <metric>: value,
        "intervals": {metric: [low, high]}}``; a metric the set cannot give (no melanoma, one
        class only for AUC) is NaN.

    Raises:
        DataError: Empty or misaligned inputs.

    Examples:
        >>> proba = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
        >>> row = external_metrics([0, 1, 0, 1], proba, proba.argmax(1), ["a", "b", "c", "d"],
        ...                        ["mel", "nv", "bcc"], n_resamples=20)
        >>> row["classes"], row["balanced_accuracy"], row["macro_auc"], row["melanoma_sensitivity"]
        (['mel', 'nv'], 1.0, 1.0, 1.0)
    """
    truth = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    scores = np.asarray(proba, dtype=np.float64)
    if truth.size == 0:
        raise DataError("no labelled images to score")
    if truth.shape != pred.shape or scores.shape != (truth.size, len(classes)) or len(groups) != truth.size:
        raise DataError(
            f"{truth.size} labels, {pred.size} decisions, probabilities {scores.shape} and {len(groups)} groups "
            f"do not align for {len(classes)} classes"
        )
    present = np.unique(truth)
    mel = melanoma_index(list(classes))
    row: dict[str, Any] = {
        "images": int(truth.size),
        "lesions": len(set(groups)),
        "classes": [str(classes[k]) for k in present.tolist()],
        **_row(truth, pred, scores, present, mel),
    }
    values: dict[str, list[float]] = {name: [] for name in EXTERNAL_METRICS}
    for index in bootstrap_groups(groups, n_resamples, random_state):
        sample = _row(truth[index], pred[index], scores[index], present, mel)
        for name in EXTERNAL_METRICS:
            values[name].append(sample[name])
    intervals: dict[str, list[float]] = {}
    for name, drawn in values.items():
        finite = np.array([v for v in drawn if not math.isnan(v)])
        if math.isnan(row[name]) or finite.size == 0:
            continue
        low, high = percentile_interval(finite, 0.95)
        intervals[name] = [float(low), float(high)]
    row["intervals"] = intervals
    return row


def format_external_table(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """The rows as a plain-text table, one line per data set, intervals in brackets.

    Examples:
        >>> row = {"images": 10, "lesions": 8, "classes": ["mel", "nv"], "balanced_accuracy": 0.75,
        ...        "macro_f1": 0.7, "melanoma_sensitivity": float("nan"), "macro_auc": 0.8,
        ...        "intervals": {"balanced_accuracy": [0.6, 0.9]}}
        >>> print(format_external_table({"PH2": row}))  # doctest: +NORMALIZE_WHITESPACE
        data set  images  classes  balanced accuracy  macro F1  mel. sensitivity  macro AUC
        PH2       10      2        0.750 [0.600-0.900]  0.700   n/a               0.800
    """
    headers = ["data set", "images", "classes", "balanced accuracy", "macro F1", "mel. sensitivity", "macro AUC"]
    table = [headers]
    for name, row in rows.items():
        cells = [name, str(row["images"]), str(len(row["classes"]))]
        for metric in EXTERNAL_METRICS:
            value = row[metric]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                cells.append("n/a")
                continue
            interval = (row.get("intervals") or {}).get(metric)
            cells.append(f"{value:.3f}" + (f" [{interval[0]:.3f}-{interval[1]:.3f}]" if interval else ""))
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip() for r in table
    )
