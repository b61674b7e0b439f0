"""Segmentation metrics of ISIC 2018 Task 1: per-image Dice, IoU (Jaccard), thresholded Jaccard.

Every metric is computed per image from the pixel counts of that image (true positives ``tp``,
false positives ``fp``, false negatives ``fn``, true negatives ``tn``), then averaged over
images (the ISIC convention; not pooled over all pixels):

* Dice ``= 2 tp / (2 tp + fp + fn)``, IoU (Jaccard) ``= tp / (tp + fp + fn)``.
* **Empty masks**: when both the truth and the prediction are empty, Dice = IoU = 1.0 (a
  perfect answer); when exactly one of them is empty, both are 0.0.
* **ISIC 2018 Task 1 thresholded Jaccard**: each image's Jaccard, set to 0 when it is below
  0.65, then averaged (the challenge's ranking metric).
* Pixel accuracy ``= (tp + tn) / pixels``.

:class:`SegmentationReport` holds the per-image values, their means and, for a multi-task
model, the :class:`~hamkit.metrics.ClassificationReport` of the classification head and the
per-image class predictions; it saves a JSON summary and a per-image CSV joining both tasks by
``image_id``.

The modules: :mod:`~hamkit.seg_metrics.counts` (pixel counts and the per-image scores),
:mod:`~hamkit.seg_metrics.report` (the :class:`SegmentationReport` type, its output and the
join with class predictions), :mod:`~hamkit.seg_metrics.evaluate` (masks or counts to a
report). Import the names from ``hamkit.seg_metrics``.
"""

from __future__ import annotations

from hamkit.seg_metrics.counts import (
    ISIC_JACCARD_THRESHOLD,
    confusion_counts,
    confusion_counts_list,
    dice_score,
    iou_score,
    scores_from_counts,
    thresholded_jaccard,
)
from hamkit.seg_metrics.evaluate import report_from_counts, segmentation_report
from hamkit.seg_metrics.report import SegmentationReport

__all__ = [
    "ISIC_JACCARD_THRESHOLD",
    "SegmentationReport",
    "confusion_counts",
    "confusion_counts_list",
    "dice_score",
    "iou_score",
    "thresholded_jaccard",
    "scores_from_counts",
    "report_from_counts",
    "segmentation_report",
]
