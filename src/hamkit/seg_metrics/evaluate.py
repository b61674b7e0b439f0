"""Scoring masks into a :class:`~hamkit.seg_metrics.SegmentationReport`.

From the masks themselves (:func:`segmentation_report`), or from per-image pixel counts that were
gathered batch by batch (:func:`report_from_counts`, what ``LesionSegmenter.evaluate`` uses).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from hamkit.classes import CLASS_CODES
from hamkit.errors import DataError
from hamkit.seg_metrics.counts import confusion_counts_list, scores_from_counts
from hamkit.seg_metrics.report import SegmentationReport

__all__ = ["report_from_counts", "segmentation_report"]


def report_from_counts(image_ids: Sequence[str], counts: np.ndarray, **fields: Any) -> SegmentationReport:
    """Build a :class:`SegmentationReport` from per-image ``(N, 4)`` counts ``tp, fp, fn, tn``.

    Args:
        image_ids: One id per row of ``counts``.
        counts: The pixel counts (see :func:`~hamkit.seg_metrics.confusion_counts`).
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
