"""The :class:`SegmentationReport` type: per-image segmentation scores and what is made of them.

A report holds the per-image Dice, IoU and pixel accuracy, their means and the ISIC 2018 Task 1
score; class predictions can be joined to it by ``image_id``
(:meth:`SegmentationReport.with_classification`); it writes JSON, a per-image CSV and a text table.

Build one with :func:`hamkit.seg_metrics.segmentation_report` (from masks) or
:func:`hamkit.seg_metrics.report_from_counts` (from per-image pixel counts).
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

from hamkit._io import atomic_write_text, spreadsheet_safe
from hamkit.classes import CLASS_CODES
from hamkit.errors import DataError
from hamkit.metrics import ClassificationReport, classification_report
from hamkit.seg_metrics.counts import ISIC_JACCARD_THRESHOLD, thresholded_jaccard

__all__ = ["SegmentationReport"]


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

    Build one with :func:`~hamkit.seg_metrics.segmentation_report` or ``LesionSegmenter.evaluate``.

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
