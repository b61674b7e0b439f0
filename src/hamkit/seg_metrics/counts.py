"""Per-image pixel counts of predicted against true masks, and the scores made from them.

Every score is computed per image from that image's counts ``tp, fp, fn, tn`` (see
:mod:`hamkit.seg_metrics` for the conventions, empty masks included). Masks are compared as
boolean arrays; everything here is vectorised NumPy, one call per stack of equal-sized masks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from hamkit.errors import DataError

__all__ = [
    "ISIC_JACCARD_THRESHOLD",
    "confusion_counts",
    "confusion_counts_list",
    "scores_from_counts",
    "dice_score",
    "iou_score",
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
