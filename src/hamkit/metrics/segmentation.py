"""Segmentation metrics of ISIC 2018 Task 1: per-image pixel counts, Dice, IoU, thresholded Jaccard.

Every metric is computed per image from the pixel counts of that image (true positives ``tp``,
false positives ``fp``, false negatives ``fn``, true negatives ``tn``), then averaged over
images (the ISIC convention; not pooled over all pixels):

* Dice ``= 2 tp / (2 tp + fp + fn)``, IoU (Jaccard) ``= tp / (tp + fp + fn)``.
* **Empty masks**: when both the truth and the prediction are empty, Dice = IoU = 1.0 (a
  perfect answer); when exactly one of them is empty, both are 0.0.
* **ISIC 2018 Task 1 thresholded Jaccard**: each image's Jaccard, set to 0 when it is below
  0.65, then averaged (the challenge's ranking metric).
* Pixel accuracy ``= (tp + tn) / pixels``.

Masks are compared as boolean arrays; everything here is vectorised NumPy, one call per stack of
equal-sized masks. :class:`SegmentationReport` holds the per-image values, their means and, for a multi-task model,
the :class:`~hamkit.metrics.ClassificationReport` of the classification head and the per-image
class predictions joined by ``image_id`` (:meth:`SegmentationReport.with_classification`); it saves
a JSON summary, a per-image CSV and a text table. Build one from masks
(:func:`segmentation_report`) or from per-image pixel counts gathered batch by batch
(:func:`report_from_counts`, what ``LesionSegmenter.evaluate`` uses).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hamkit._io import atomic_write_text, spreadsheet_safe
from hamkit.classes import CLASS_CODES
from hamkit.errors import DataError
from hamkit.metrics.classification import ClassificationReport, classification_report

__all__ = [
    "ISIC_JACCARD_THRESHOLD",
    "SegmentationReport",
    "confusion_counts",
    "confusion_counts_list",
    "dice_score",
    "iou_score",
    "report_from_counts",
    "scores_from_counts",
    "segmentation_report",
    "thresholded_jaccard",
]

ISIC_JACCARD_THRESHOLD: float = 0.65
"""Per-image Jaccard below this counts as 0 in the ISIC 2018 Task 1 score."""


def _pair(pred: np.ndarray, truth: np.ndarray) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    p, t = np.asarray(pred).astype(bool, copy=False), np.asarray(truth).astype(bool, copy=False)
    if p.shape != t.shape:
        raise DataError(
            f"prediction of shape {p.shape} but ground truth of shape {t.shape}; "
            "masks must be compared at the same size"
        )
    if p.ndim == 2:
        return p[None], t[None]
    if p.ndim != 3:
        raise DataError(f"masks must be (H, W) or (N, H, W), got shape {p.shape}")
    return p, t


def confusion_counts(pred: np.ndarray, truth: np.ndarray) -> npt.NDArray[np.int64]:
    """Pixel counts ``tp, fp, fn, tn`` of each mask.

    Args:
        pred: Predicted mask(s), ``(H, W)`` or ``(N, H, W)`` (non-zero = lesion).
        truth: Ground-truth mask(s) of the same shape.

    Returns:
        An ``int64`` array ``(N, 4)`` with columns ``tp, fp, fn, tn`` (``N = 1`` for one mask).

    Raises:
        DataError: The shapes differ or are not 2-D/3-D.

    Examples:
        >>> confusion_counts(np.array([[1, 1], [0, 0]]), np.array([[1, 0], [1, 0]])).tolist()
        [[1, 1, 1, 1]]
    """
    p, t = _pair(pred, truth)
    n = p.shape[0]
    tp = np.count_nonzero((p & t).reshape(n, -1), axis=1)
    pred_area = np.count_nonzero(p.reshape(n, -1), axis=1)
    true_area = np.count_nonzero(t.reshape(n, -1), axis=1)
    pixels = p[0].size
    fp, fn = pred_area - tp, true_area - tp
    return np.stack([tp, fp, fn, pixels - tp - fp - fn], axis=1).astype(np.int64)


def confusion_counts_list(
    preds: Sequence[np.ndarray], truths: Sequence[np.ndarray], image_ids: Sequence[str] | None = None
) -> npt.NDArray[np.int64]:
    """Counts ``tp, fp, fn, tn`` of aligned lists of masks whose sizes may differ between images.

    Masks of equal size are stacked and counted together (one vectorised call per size).

    Args:
        preds: Predicted masks ``(H, W)``.
        truths: Ground-truth masks, each of its prediction's size.
        image_ids: Names for the error message (default: the position).

    Returns:
        An ``int64`` array ``(N, 4)``.

    Raises:
        DataError: Lists of different lengths, or a prediction of another size than its truth.

    Examples:
        >>> confusion_counts_list([np.ones((2, 2)), np.zeros((1, 3))], [np.eye(2), np.ones((1, 3))]).tolist()
        [[2, 2, 0, 0], [0, 0, 3, 0]]
    """
    if len(preds) != len(truths):
        raise DataError(f"{len(truths)} ground-truth masks but {len(preds)} predictions")
    counts = np.zeros((len(preds), 4), dtype=np.int64)
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, (p, t) in enumerate(zip(preds, truths, strict=True)):
        if np.shape(p) != np.shape(t):
            name = image_ids[index] if image_ids is not None and index < len(image_ids) else index
            raise DataError(
                f"image {name}: prediction {np.shape(p)} but ground truth {np.shape(t)}; "
                "resize the prediction to its image's size"
            )
        groups.setdefault(np.shape(t), []).append(index)
    for indices in groups.values():
        counts[indices] = confusion_counts(
            np.stack([preds[i] for i in indices]), np.stack([truths[i] for i in indices])
        )
    return counts


def scores_from_counts(counts: np.ndarray) -> dict[str, npt.NDArray[np.float64]]:
    """Per-image Dice, IoU and pixel accuracy from ``(N, 4)`` counts ``tp, fp, fn, tn``.

    Both masks empty gives Dice = IoU = 1; exactly one empty gives 0.

    Args:
        counts: Pixel counts, one row ``tp, fp, fn, tn`` per image (see :func:`confusion_counts`).

    Returns:
        ``{"dice": ..., "iou": ..., "pixel_accuracy": ...}``, float64 arrays of length ``N``.

    Examples:
        >>> s = scores_from_counts(np.array([[2, 1, 1, 4], [0, 0, 0, 9], [0, 3, 0, 6]]))
        >>> s["dice"].tolist(), s["iou"].tolist()
        ([0.6666666666666666, 1.0, 0.0], [0.5, 1.0, 0.0])
    """
    c = np.asarray(counts, dtype=np.float64).reshape(-1, 4)
    tp, fp, fn, tn = c.T
    wrong = fp + fn
    empty = (tp + wrong) == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        dice = np.where(empty, 1.0, 2 * tp / (2 * tp + wrong))
        iou = np.where(empty, 1.0, tp / (tp + wrong))
        accuracy = (tp + tn) / np.maximum(c.sum(axis=1), 1)
    return {"dice": dice, "iou": iou, "pixel_accuracy": accuracy}


def dice_score(pred: np.ndarray, truth: np.ndarray) -> npt.NDArray[np.float64]:
    """Per-image Dice coefficient (1.0 when both masks are empty, 0.0 when one is).

    Args:
        pred: Predicted mask(s), ``(H, W)`` or ``(N, H, W)``.
        truth: Ground truth of the same shape.

    Returns:
        A float array of length ``N`` (length 1 for a single mask).

    Examples:
        >>> dice_score(np.array([[1, 1], [0, 0]]), np.array([[1, 0], [0, 0]])).tolist()
        [0.6666666666666666]
    """
    return scores_from_counts(confusion_counts(pred, truth))["dice"]


def iou_score(pred: np.ndarray, truth: np.ndarray) -> npt.NDArray[np.float64]:
    """Per-image intersection over union, the Jaccard index (1.0 when both masks are empty).

    Args:
        pred: Predicted mask(s), ``(H, W)`` or ``(N, H, W)``.
        truth: Ground truth of the same shape.

    Returns:
        A float array of length ``N`` (length 1 for a single mask).

    Examples:
        >>> iou_score(np.array([[1, 1], [0, 0]]), np.array([[1, 0], [0, 0]])).tolist()
        [0.5]
    """
    return scores_from_counts(confusion_counts(pred, truth))["iou"]


def thresholded_jaccard(iou: Sequence[float] | np.ndarray, threshold: float = ISIC_JACCARD_THRESHOLD) -> float:
    """The ISIC 2018 Task 1 score: mean of per-image Jaccard, values below ``threshold`` set to 0.

    Args:
        iou: Per-image Jaccard (IoU) values.
        threshold: The cut-off (0.65 in the challenge).

    Returns:
        The score (NaN for no images).

    Examples:
        >>> thresholded_jaccard([0.9, 0.64, 0.7])
        0.5333333333333333
    """
    values = np.asarray(iou, dtype=np.float64)
    if values.size == 0:
        return math.nan
    return float(np.where(values >= threshold, values, 0.0).mean())


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


@dataclass
class SegmentationReport:
    """Segmentation (and optionally classification) results of a set of images.

    Build one with :func:`~hamkit.metrics.segmentation_report` or ``LesionSegmenter.evaluate``.

    Attributes:
        image_ids: One id per image, in order.
        dice: Per-image Dice.
        iou: Per-image IoU (Jaccard).
        pixel_accuracy: Per-image pixel accuracy.
        true_area: Lesion pixels of each ground-truth mask.
        pred_area: Lesion pixels of each prediction.
        threshold: Probability threshold that made the predicted masks (NaN if unknown).
        postprocess: The post-processing applied to the predictions (``None`` for none).
        resolution: ``"original"`` (scored at each image's own size) or ``"working"`` (at
            the model's input size).
        classification: The :class:`~hamkit.metrics.ClassificationReport` of the class
            predictions, or ``None``.
        classes: Class names, index order (for the class columns of the CSV).
        labels: True class index per image (-1 = unknown), or ``None``.
        predicted: Predicted class index per image, or ``None``.
        proba: Class probabilities per image, or ``None``.
        skipped: Images left out (``on_missing="skip"``), with the reason.
    """

    image_ids: list[str]
    dice: list[float]
    iou: list[float]
    pixel_accuracy: list[float]
    true_area: list[int]
    pred_area: list[int]
    threshold: float = math.nan
    postprocess: str | None = None
    resolution: str = "original"
    classification: ClassificationReport | None = None
    classes: list[str] = field(default_factory=lambda: list(CLASS_CODES))
    labels: list[int] | None = None
    predicted: list[int] | None = None
    proba: list[list[float]] | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    # ------------------------------------------------------------------ summary numbers
    @property
    def n_images(self) -> int:
        """Number of images scored."""
        return len(self.image_ids)

    @property
    def mean_dice(self) -> float:
        """Mean per-image Dice."""
        return _mean(self.dice)

    @property
    def mean_iou(self) -> float:
        """Mean per-image IoU (Jaccard)."""
        return _mean(self.iou)

    @property
    def thresholded_jaccard(self) -> float:
        """The ISIC 2018 Task 1 score (per-image Jaccard below 0.65 counts as 0, then the mean)."""
        return thresholded_jaccard(self.iou)

    @property
    def mean_pixel_accuracy(self) -> float:
        """Mean per-image pixel accuracy."""
        return _mean(self.pixel_accuracy)

    def summary(self) -> dict[str, Any]:
        """The headline numbers as a dict (what ``to_json`` writes under ``"summary"``)."""
        out: dict[str, Any] = {
            "n_images": self.n_images,
            "mean_dice": self.mean_dice,
            "mean_iou": self.mean_iou,
            "thresholded_jaccard": self.thresholded_jaccard,
            "jaccard_threshold": ISIC_JACCARD_THRESHOLD,
            "mean_pixel_accuracy": self.mean_pixel_accuracy,
            "threshold": self.threshold,
            "postprocess": self.postprocess,
            "resolution": self.resolution,
            "n_skipped": len(self.skipped),
        }
        if self.classification is not None:
            out["balanced_accuracy"] = self.classification.balanced_accuracy
            out["accuracy"] = self.classification.accuracy
        return out

    # ------------------------------------------------------------------ joining
    def with_classification(
        self,
        image_ids: Sequence[str],
        predicted: Sequence[int] | np.ndarray,
        *,
        proba: np.ndarray | None = None,
        labels: Sequence[int] | np.ndarray | None = None,
        classes: Sequence[str] | None = None,
    ) -> SegmentationReport:
        """Join class predictions (e.g. of a separate ``LesionClassifier``) by ``image_id``.

        Args:
            image_ids: The ids of the class predictions (any order; must cover this report's ids).
            predicted: Predicted class index per id.
            proba: Class probabilities ``(N, n_classes)`` per id, or ``None``.
            labels: True class index per id (default: this report's ``labels``); images with a
                label of -1 are left out of the classification report.
            classes: Class names (default: this report's).

        Returns:
            A new report with ``predicted``, ``proba``, ``labels`` and ``classification`` set.

        Raises:
            DataError: Misaligned inputs, or an id of this report without a class prediction.
        """
        ids = [str(i) for i in image_ids]
        pred = np.asarray(predicted, dtype=np.int64)
        if pred.shape != (len(ids),):
            raise DataError(f"{pred.size} class predictions for {len(ids)} image ids")
        position = {image_id: i for i, image_id in enumerate(ids)}
        lacking = [i for i in self.image_ids if i not in position]
        if lacking:
            raise DataError(
                f"{len(lacking)} image(s) of the report have no class prediction: "
                f"{', '.join(lacking[:10])}{' ...' if len(lacking) > 10 else ''}"
            )
        order = np.array([position[i] for i in self.image_ids], dtype=np.int64)
        names = list(classes) if classes is not None else list(self.classes)
        if labels is not None:
            truth = np.asarray(labels, dtype=np.int64)
            if truth.shape != (len(ids),):
                raise DataError(f"{truth.size} labels for {len(ids)} image ids")
            truth = truth[order]
        elif self.labels is not None:
            truth = np.asarray(self.labels, dtype=np.int64)
        else:
            truth = np.full(len(self.image_ids), -1, dtype=np.int64)
        scores = None
        if proba is not None:
            scores = np.asarray(proba, dtype=np.float64)
            if scores.shape != (len(ids), len(names)):
                raise DataError(f"probabilities must have shape ({len(ids)}, {len(names)}), got {scores.shape}")
            scores = scores[order]
        pred = pred[order]
        known = truth >= 0
        report = (
            classification_report(
                truth[known], pred[known], scores[known] if scores is not None else None, classes=names
            )
            if known.any()
            else None
        )
        return replace(
            self,
            classification=report,
            classes=names,
            labels=truth.tolist(),
            predicted=pred.tolist(),
            proba=scores.tolist() if scores is not None else None,
        )

    # ------------------------------------------------------------------ output
    def per_image_rows(self) -> list[dict[str, Any]]:
        """One dict per image: the segmentation metrics joined with the class prediction by id."""
        jaccard = np.asarray(self.iou, dtype=np.float64)
        thresholded = np.where(jaccard >= ISIC_JACCARD_THRESHOLD, jaccard, 0.0)
        rows: list[dict[str, Any]] = []
        for i, image_id in enumerate(self.image_ids):
            row: dict[str, Any] = {
                "image_id": image_id,
                "dice": self.dice[i],
                "iou": self.iou[i],
                "jaccard_thresholded": float(thresholded[i]),
                "pixel_accuracy": self.pixel_accuracy[i],
                "true_area": self.true_area[i],
                "pred_area": self.pred_area[i],
            }
            if self.predicted is not None:
                label = self.labels[i] if self.labels is not None else -1
                row["label"] = self.classes[label] if label >= 0 else ""
                row["predicted"] = self.classes[self.predicted[i]]
                row["correct"] = "" if label < 0 else int(label == self.predicted[i])
                if self.proba is not None:
                    row.update({f"p_{name}": self.proba[i][k] for k, name in enumerate(self.classes)})
            rows.append(row)
        return rows

    def to_csv(self) -> str:
        """The per-image table as CSV text (see :meth:`per_image_rows`)."""
        rows = self.per_image_rows()
        buffer = io.StringIO()
        columns = (
            list(rows[0])
            if rows
            else ["image_id", "dice", "iou", "jaccard_thresholded", "pixel_accuracy", "true_area", "pred_area"]
        )
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:  # an image id cannot start a spreadsheet formula
            writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else spreadsheet_safe(v)) for k, v in row.items()})
        return buffer.getvalue()

    def save_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_csv` to ``path`` atomically.

        Returns:
            The written path.
        """
        return atomic_write_text(path, self.to_csv())

    def as_dict(self) -> dict[str, Any]:
        """The summary, the per-image values and the classification report as plain types."""
        return {
            "summary": self.summary(),
            "per_image": self.per_image_rows(),
            "classification": self.classification.as_dict() if self.classification is not None else None,
            "skipped": dict(self.skipped),
        }

    def to_json(self) -> str:
        """The report as JSON text (NaN written as ``null``)."""
        return json.dumps(_clean(self.as_dict()), indent=2)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_json` to ``path`` atomically.

        Returns:
            The written path.
        """
        return atomic_write_text(path, self.to_json() + "\n")

    def format_table(self) -> str:
        """A plain-text summary (and the classification table, when there is one)."""
        lines = [
            f"images: {self.n_images} (scored at the {self.resolution} resolution"
            + (f", postprocess {self.postprocess}" if self.postprocess else "")
            + ")",
            f"mean Dice:                          {self.mean_dice:.4f}",
            f"mean IoU (Jaccard):                 {self.mean_iou:.4f}",
            f"thresholded Jaccard (ISIC 2018 T1): {self.thresholded_jaccard:.4f}",
            f"mean pixel accuracy:                {self.mean_pixel_accuracy:.4f}",
        ]
        if self.skipped:
            lines.append(f"skipped: {len(self.skipped)} image(s) (see the JSON report)")
        if self.classification is not None:
            lines += ["", "classification head:", self.classification.format_table()]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_table()


def report_from_counts(image_ids: Sequence[str], counts: np.ndarray, **fields: Any) -> SegmentationReport:
    """Build a :class:`SegmentationReport` from per-image ``(N, 4)`` counts ``tp, fp, fn, tn``.

    Args:
        image_ids: One id per row of ``counts``.
        counts: The pixel counts (see :func:`~hamkit.metrics.confusion_counts`).
        **fields: Other :class:`SegmentationReport` fields (``threshold``, ``resolution``...).

    Returns:
        The report.

    Raises:
        DataError: No images, or ids and counts misaligned.
    """
    c = np.asarray(counts, dtype=np.int64).reshape(-1, 4)
    if c.shape[0] == 0:
        raise DataError("no images to evaluate")
    if len(image_ids) != c.shape[0]:
        raise DataError(f"{len(image_ids)} image ids for {c.shape[0]} masks")
    scores = scores_from_counts(c)
    return SegmentationReport(
        image_ids=[str(i) for i in image_ids],
        dice=scores["dice"].tolist(),
        iou=scores["iou"].tolist(),
        pixel_accuracy=scores["pixel_accuracy"].tolist(),
        true_area=(c[:, 0] + c[:, 2]).tolist(),
        pred_area=(c[:, 0] + c[:, 1]).tolist(),
        **fields,
    )


def segmentation_report(
    truths: np.ndarray | Sequence[np.ndarray],
    preds: np.ndarray | Sequence[np.ndarray],
    image_ids: Sequence[str] | None = None,
    *,
    labels: Sequence[int] | np.ndarray | None = None,
    predicted: Sequence[int] | np.ndarray | None = None,
    proba: np.ndarray | None = None,
    classes: Sequence[str] = CLASS_CODES,
    threshold: float = math.nan,
    postprocess: str | None = None,
) -> SegmentationReport:
    """Score predicted masks against ground truth, optionally with class predictions.

    Args:
        truths: Ground-truth masks: a stack ``(N, H, W)`` or a list of ``(H, W)`` arrays (sizes
            may differ between images, not between an image's truth and prediction).
        preds: Predicted masks, same structure.
        image_ids: One id per image (default ``"0"``, ``"1"``...).
        labels: True class per image, for the classification part.
        predicted: Predicted class per image (enables the classification part).
        proba: Class probabilities ``(N, n_classes)`` (for ROC AUC).
        classes: Class names.
        threshold: The probability threshold the predictions were made with (recorded only).
        postprocess: The post-processing applied (recorded only).

    Returns:
        The :class:`SegmentationReport`.

    Raises:
        DataError: No masks, misaligned inputs, or a prediction of another size than its truth.

    Examples:
        >>> t = np.zeros((2, 4, 4), bool); t[0, :2] = True
        >>> p = np.zeros((2, 4, 4), bool); p[0, :1] = True
        >>> r = segmentation_report(t, p)
        >>> r.dice, r.iou
        ([0.6666666666666666, 1.0], [0.5, 1.0])
    """
    truth_list = list(truths) if not isinstance(truths, np.ndarray) or truths.ndim == 3 else [truths]
    pred_list = list(preds) if not isinstance(preds, np.ndarray) or preds.ndim == 3 else [preds]
    if len(truth_list) != len(pred_list):
        raise DataError(f"{len(truth_list)} ground-truth masks but {len(pred_list)} predictions")
    if not truth_list:
        raise DataError("no masks to evaluate")
    ids = [str(i) for i in image_ids] if image_ids is not None else [str(i) for i in range(len(truth_list))]
    counts = confusion_counts_list(pred_list, truth_list, ids)
    report = report_from_counts(ids, counts, threshold=threshold, postprocess=postprocess, classes=list(classes))
    if labels is not None:
        truth = np.asarray(labels, dtype=np.int64)
        if truth.shape != (len(ids),):
            raise DataError(f"{truth.size} labels for {len(ids)} images")
        report.labels = truth.tolist()
    if predicted is not None:
        report = report.with_classification(ids, predicted, proba=proba, labels=labels, classes=classes)
    return report
