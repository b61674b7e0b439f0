"""Classification metrics of ISIC 2018 Task 3, computed with scikit-learn.

:class:`ClassificationReport` holds accuracy, the balanced multiclass accuracy (the ISIC 2018
Task 3 ranking metric: the mean of per-class recalls), per-class precision / recall / F1 /
support, their macro and weighted averages, the confusion matrix, one-vs-rest ROC AUC per class
and melanoma sensitivity. Every number comes from :mod:`sklearn.metrics` on the same
predictions, so it equals scikit-learn's.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hamkit._io import atomic_write_text
from hamkit._mpl import pyplot, save_png
from hamkit.classes import CLASS_CODES, melanoma_index
from hamkit.errors import DataError

__all__ = ["ClassificationReport", "classification_report", "headline_metrics", "predictions_csv", "score_decisions"]

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "melanoma_sensitivity")
"""The numbers reported with intervals, for the decisions and for the raw argmax."""


@dataclass
class ClassificationReport:
    """Metrics of a set of predictions (see :func:`classification_report`).

    Attributes:
        classes: Class codes, in index order.
        n_samples: Number of predictions.
        accuracy: Fraction of correct predictions.
        balanced_accuracy: Mean per-class recall over the classes present in ``y_true``
            (ISIC 2018 Task 3's metric; scikit-learn's ``balanced_accuracy_score``).
        precision: Per-class precision.
        recall: Per-class recall (sensitivity).
        f1: Per-class F1.
        support: Per-class number of true samples.
        macro: Macro averages ``{"precision", "recall", "f1"}`` over the classes that occur in
            the true labels or the predictions (scikit-learn's default).
        weighted: Support-weighted averages ``{"precision", "recall", "f1"}``.
        confusion_matrix: Rows = true class, columns = predicted class.
        roc_auc: Per-class one-vs-rest ROC AUC (NaN where a class has no positive or no
            negative sample, or without probabilities).
        macro_roc_auc: Mean of the defined per-class AUCs (NaN if none).
        melanoma_sensitivity: Recall of the melanoma class (``mel`` or ``melanoma``; NaN when the
            classes or the true labels have no melanoma).
    """

    classes: list[str]
    n_samples: int
    accuracy: float
    balanced_accuracy: float
    precision: list[float]
    recall: list[float]
    f1: list[float]
    support: list[int]
    macro: dict[str, float]
    weighted: dict[str, float]
    confusion_matrix: list[list[int]]
    roc_auc: list[float] = field(default_factory=list)
    macro_roc_auc: float = math.nan
    melanoma_sensitivity: float = math.nan

    def as_dict(self) -> dict[str, Any]:
        """The report as plain Python types (NaN kept as ``float('nan')``)."""
        return asdict(self)

    def to_json(self) -> str:
        """The report as JSON text (NaN written as ``null``)."""

        def clean(value: Any) -> Any:
            if isinstance(value, float) and math.isnan(value):
                return None
            if isinstance(value, list):
                return [clean(v) for v in value]
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            return value

        return json.dumps(clean(self.as_dict()), indent=2)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_json` to ``path`` atomically."""
        return atomic_write_text(path, self.to_json() + "\n")

    def format_table(self) -> str:
        """A plain-text table like scikit-learn's ``classification_report`` plus the ISIC metrics."""
        lines = [f"{'':>12}{'precision':>11}{'recall':>9}{'f1-score':>10}{'support':>9}{'roc-auc':>9}", ""]
        aucs = self.roc_auc or [math.nan] * len(self.classes)
        for i, code in enumerate(self.classes):
            auc = "" if math.isnan(aucs[i]) else f"{aucs[i]:.3f}"
            lines.append(
                f"{code:>12}{self.precision[i]:>11.3f}{self.recall[i]:>9.3f}"
                f"{self.f1[i]:>10.3f}{self.support[i]:>9d}{auc:>9}"
            )
        lines.append("")
        lines.append(f"{'accuracy':>12}{'':>11}{'':>9}{self.accuracy:>10.3f}{self.n_samples:>9d}")
        for name, avg in (("macro avg", self.macro), ("weighted avg", self.weighted)):
            lines.append(
                f"{name:>12}{avg['precision']:>11.3f}{avg['recall']:>9.3f}{avg['f1']:>10.3f}{self.n_samples:>9d}"
            )
        lines.append("")
        lines.append(f"balanced accuracy (ISIC 2018 Task 3): {self.balanced_accuracy:.3f}")
        if not math.isnan(self.melanoma_sensitivity):
            lines.append(f"melanoma sensitivity: {self.melanoma_sensitivity:.3f}")
        if not math.isnan(self.macro_roc_auc):
            lines.append(f"macro ROC AUC (one-vs-rest): {self.macro_roc_auc:.3f}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_table()

    def plot_confusion_matrix(
        self, path: str | os.PathLike[str], *, normalize: bool = True, title: str = "Confusion matrix"
    ) -> Path:
        """Save the confusion matrix as a heatmap PNG (rows normalised to recall by default).

        Returns:
            The written path.
        """
        counts = np.asarray(self.confusion_matrix, dtype=float)
        shown = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalize else counts
        figure, axes = pyplot().subplots(figsize=(6.5, 5.5), dpi=100)
        image = axes.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
        figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
        ticks = range(len(self.classes))
        axes.set_xticks(ticks, self.classes)
        axes.set_yticks(ticks, self.classes)
        axes.set_xlabel("predicted")
        axes.set_ylabel("true")
        axes.set_title(f"{title} (balanced accuracy {self.balanced_accuracy:.3f})")
        limit = shown.max() / 2 if shown.size else 0
        for r in ticks:
            for c in ticks:
                text = f"{shown[r, c]:.2f}\n({int(counts[r, c])})" if normalize else f"{int(counts[r, c])}"
                axes.text(
                    c, r, text, ha="center", va="center", fontsize=7, color="white" if shown[r, c] > limit else "black"
                )
        figure.tight_layout()
        return save_png(figure, path)


def _balanced_accuracy(truth: np.ndarray, pred: np.ndarray) -> float:
    """scikit-learn's balanced accuracy, without its warning for predicted classes absent from
    ``truth`` (expected on a small test split; those classes count as scikit-learn counts them)."""
    import warnings

    from sklearn import metrics

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return float(metrics.balanced_accuracy_score(truth, pred))


def classification_report(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    proba: np.ndarray | None = None,
    *,
    classes: Sequence[str] = CLASS_CODES,
) -> ClassificationReport:
    """Compute a :class:`ClassificationReport` with scikit-learn.

    Args:
        y_true: True class indices.
        y_pred: Predicted class indices.
        proba: Predicted probabilities ``(N, n_classes)`` for ROC AUC, or ``None``.
        classes: Class names in index order (default: the seven HAM10000 codes).

    Returns:
        The report.

    Raises:
        DataError: Empty or misaligned inputs, or indices outside the classes.

    Examples:
        >>> r = classification_report([0, 1, 1, 2], [0, 1, 2, 2], classes=["a", "b", "c"])
        >>> round(r.balanced_accuracy, 3), r.confusion_matrix[1]
        (0.833, [0, 1, 1])
    """
    from sklearn import metrics

    truth = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    n_classes = len(classes)
    if truth.size == 0:
        raise DataError("no predictions to evaluate")
    if truth.shape != pred.shape:
        raise DataError(f"{truth.size} true labels but {pred.size} predictions")
    for name, values in (("true labels", truth), ("predictions", pred)):
        if values.min() < 0 or values.max() >= n_classes:
            raise DataError(f"{name} must be class indices 0..{n_classes - 1}")
    labels = list(range(n_classes))
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        truth, pred, labels=labels, zero_division=0
    )
    averages: dict[str, dict[str, float]] = {}
    present = np.union1d(truth, pred)  # as scikit-learn: classes absent from both do not count
    for average in ("macro", "weighted"):
        p, r, f, _ = metrics.precision_recall_fscore_support(
            truth, pred, labels=present, average=average, zero_division=0
        )
        averages[average] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    roc_auc: list[float] = []
    if proba is not None:
        scores = np.asarray(proba, dtype=np.float64)
        if scores.shape != (truth.size, n_classes):
            raise DataError(f"probabilities must have shape ({truth.size}, {n_classes}), got {scores.shape}")
        for k in labels:
            positive = truth == k
            if positive.all() or not positive.any():
                roc_auc.append(math.nan)
            else:
                roc_auc.append(float(metrics.roc_auc_score(positive, scores[:, k])))
    defined = [a for a in roc_auc if not math.isnan(a)]
    mel = melanoma_index(list(classes))
    return ClassificationReport(
        classes=list(classes),
        n_samples=int(truth.size),
        accuracy=float(metrics.accuracy_score(truth, pred)),
        balanced_accuracy=_balanced_accuracy(truth, pred),
        precision=[float(x) for x in precision],
        recall=[float(x) for x in recall],
        f1=[float(x) for x in f1],
        support=[int(x) for x in support],
        macro=averages["macro"],
        weighted=averages["weighted"],
        confusion_matrix=metrics.confusion_matrix(truth, pred, labels=labels).tolist(),
        roc_auc=roc_auc,
        macro_roc_auc=float(np.mean(defined)) if defined else math.nan,
        melanoma_sensitivity=float(recall[mel]) if mel is not None and support[mel] > 0 else math.nan,
    )


def headline_metrics(report: ClassificationReport) -> dict[str, float]:
    """The headline numbers of a report (:data:`HEADLINE`): accuracy, balanced accuracy, macro F1
    and melanoma sensitivity.

    Examples:
        >>> r = classification_report([0, 1, 1], [0, 1, 0], classes=["mel", "nv"])
        >>> {k: round(v, 3) for k, v in headline_metrics(r).items()}
        {'accuracy': 0.667, 'balanced_accuracy': 0.75, 'macro_f1': 0.667, 'melanoma_sensitivity': 1.0}
    """
    return {
        "accuracy": report.accuracy,
        "balanced_accuracy": report.balanced_accuracy,
        "macro_f1": report.macro["f1"],
        "melanoma_sensitivity": report.melanoma_sensitivity,
    }


def score_decisions(
    y_true: Sequence[int] | np.ndarray,
    proba: np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    groups: Sequence[str],
    *,
    classes: Sequence[str] = CLASS_CODES,
    raw_proba: np.ndarray | None = None,
    n_resamples: int = 1000,
) -> tuple[ClassificationReport, ClassificationReport, dict[str, Any]]:
    """Score a model's decisions beside the raw argmax of its network, with lesion-bootstrap intervals.

    What ``hamkit run``'s report and ``hamkit evaluate`` show: the report of the decisions
    ``y_pred`` (e.g. :meth:`~hamkit.classify.LesionClassifier.decide` of ``proba``), the report of
    the plain argmax of the probabilities, and 95 % intervals of the :data:`HEADLINE` numbers of
    both, resampling lesions (:func:`~hamkit.metrics.bootstrap.classification_intervals`, ``random_state=0``).

    Args:
        y_true: True class indices.
        proba: The probabilities the decisions were made from ``(N, n_classes)``.
        y_pred: The decided class indices.
        groups: The lesion of every image (the resampling unit).
        classes: Class names in index order.
        raw_proba: The network's probabilities before calibration: the raw argmax and its
            report are taken of these (temperature scaling does not move the argmax, but it
            changes ROC AUC); default ``proba``.
        n_resamples: Bootstrap resamples.

    Returns:
        ``(report, argmax_report, summary)``: ``summary`` is ``report`` as JSON values (NaN as
        ``None``) plus ``intervals`` (``{metric: [low, high]}``), ``argmax`` (the raw argmax's
        headline numbers, per-class ``recall`` and ``intervals``) and ``test_lesions``.

    Examples:
        >>> proba = np.array([[0.6, 0.4], [0.45, 0.55], [0.3, 0.7], [0.55, 0.45]])
        >>> report, raw, summary = score_decisions([0, 0, 1, 1], proba, [0, 0, 1, 1], ["a", "a", "b", "c"],
        ...                                        classes=["mel", "nv"], n_resamples=50)
        >>> report.accuracy, raw.accuracy, summary["argmax"]["accuracy"], summary["test_lesions"]
        (1.0, 0.5, 0.5, 3)
    """
    from hamkit.metrics.bootstrap import classification_intervals

    truth = np.asarray(y_true, dtype=np.int64)
    decided = np.asarray(y_pred, dtype=np.int64)
    scores = np.asarray(proba, dtype=np.float64)
    raw_scores = scores if raw_proba is None else np.asarray(raw_proba, dtype=np.float64)
    argmax = raw_scores.argmax(1)
    names = list(classes)
    mel = melanoma_index(names)

    def intervals(pred: np.ndarray) -> dict[str, list[float]]:
        found = classification_intervals(truth, pred, groups, len(names), mel=mel, n_resamples=n_resamples)
        return {name: [low, high] for name, (low, high) in found.items()}

    report = classification_report(truth, decided, scores, classes=names)
    raw = classification_report(truth, argmax, raw_scores, classes=names)
    summary: dict[str, Any] = json.loads(report.to_json())
    summary["intervals"] = intervals(decided)
    summary["argmax"] = {**headline_metrics(raw), "recall": list(raw.recall), "intervals": intervals(argmax)}
    summary["test_lesions"] = len(set(groups))
    return report, raw, summary


def predictions_csv(
    image_ids: Sequence[str],
    groups: Sequence[str],
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    proba: np.ndarray,
    classes: Sequence[str] = CLASS_CODES,
) -> str:
    """Per-image predictions as CSV text: ``image_id,lesion_id,true,predicted,p_<class>...``.

    Examples:
        >>> print(predictions_csv(["I1"], ["L1"], [0], [1], np.array([[0.25, 0.75]]), ["mel", "nv"]), end="")
        image_id,lesion_id,true,predicted,p_mel,p_nv
        I1,L1,mel,nv,0.25000,0.75000
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image_id", "lesion_id", "true", "predicted", *[f"p_{c}" for c in classes]])
    for i, image_id in enumerate(image_ids):
        writer.writerow(
            [image_id, groups[i], classes[int(y_true[i])], classes[int(y_pred[i])], *[f"{p:.5f}" for p in proba[i]]]
        )
    return buffer.getvalue()
