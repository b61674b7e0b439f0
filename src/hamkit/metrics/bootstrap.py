"""Confidence intervals by the cluster bootstrap: resample lesions, not images.

Photos of one lesion are not independent samples: a test split with 3 photos of one
melanoma tells less than one with 3 melanomas. :func:`bootstrap_groups` therefore draws whole
groups (lesions) with replacement and takes every image of each drawn group; the interval is
the percentile interval of the metric over the resamples.

The classification metrics are computed from a confusion matrix per resample
(:func:`classification_intervals`), with the definitions of scikit-learn: balanced accuracy is
the mean recall over the classes present in the resample's true labels, macro F1 the mean over
the classes present in its true labels or predictions.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np

from hamkit.errors import DataError

__all__ = ["bootstrap_groups", "classification_intervals", "mean_intervals", "percentile_interval"]


def bootstrap_groups(groups: Sequence[Hashable], n_resamples: int = 1000, random_state: int = 0) -> list[np.ndarray]:
    """Index arrays of ``n_resamples`` cluster-bootstrap resamples.

    Args:
        groups: The group (lesion) of every sample.
        n_resamples: Number of resamples.
        random_state: Random state of the random draws.

    Returns:
        One array of sample indices per resample (a group drawn twice appears twice).
    """
    if len(groups) == 0:
        raise DataError("no samples to resample")
    _, codes = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(codes.max() + 2))
    members = [order[starts[g] : starts[g + 1]] for g in range(codes.max() + 1)]
    sizes = np.array([m.size for m in members])
    rng = np.random.default_rng(random_state)
    draws = rng.integers(0, len(members), size=(n_resamples, len(members)))
    flat = np.concatenate(members)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    out = []
    for drawn in draws:
        lengths = sizes[drawn]
        starts_ = np.repeat(offsets[drawn], lengths)
        within = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        out.append(flat[starts_ + within])
    return out


def percentile_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The ``confidence`` percentile interval of bootstrap values (NaNs ignored)."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def metrics_from_confusion(matrix: np.ndarray, mel: int | None = None) -> dict[str, float]:
    """Accuracy, balanced accuracy and macro F1 (and melanoma sensitivity when ``mel`` is given)
    from a confusion matrix (rows = true class), with scikit-learn's definitions.

    Examples:
        >>> metrics_from_confusion(np.array([[2, 0], [1, 1]]))["balanced_accuracy"]
        0.75
    """
    true = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    hits = np.diag(matrix)
    present = true > 0
    scored = (true + predicted) > 0
    result = {
        "accuracy": float(hits.sum() / max(matrix.sum(), 1)),
        "balanced_accuracy": float((hits[present] / true[present]).mean()),
        "macro_f1": float((2 * hits[scored] / (true[scored] + predicted[scored])).mean()),
    }
    if mel is not None:
        result["melanoma_sensitivity"] = float(hits[mel] / true[mel]) if true[mel] else float("nan")
    return result


def classification_intervals(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: Sequence[Hashable],
    n_classes: int,
    *,
    mel: int | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    random_state: int = 0,
) -> dict[str, tuple[float, float]]:
    """Bootstrap intervals of accuracy, balanced accuracy, macro F1 (and melanoma sensitivity).

    Args:
        y_true: True class indices.
        y_pred: Predicted class indices.
        groups: Lesion of every sample (the resampling unit).
        n_classes: Number of classes.
        mel: Index of the melanoma class, for its sensitivity; ``None`` leaves it out.
        n_resamples: Number of resamples.
        confidence: Coverage of the interval.
        random_state: Random state of the draws.

    Returns:
        ``{metric: (low, high)}``.
    """
    truth = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    if truth.shape != pred.shape or truth.size != len(groups):
        raise DataError(f"{truth.size} labels, {pred.size} predictions and {len(groups)} groups do not align")
    cells = truth * n_classes + pred
    values: dict[str, list[float]] = {}
    for index in bootstrap_groups(groups, n_resamples, random_state):
        matrix = np.bincount(cells[index], minlength=n_classes * n_classes).reshape(n_classes, n_classes)
        for name, value in metrics_from_confusion(matrix, mel).items():
            values.setdefault(name, []).append(value)
    return {name: percentile_interval(np.array(v), confidence) for name, v in values.items()}


def mean_intervals(
    per_sample: dict[str, np.ndarray],
    groups: Sequence[Hashable],
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    random_state: int = 0,
    statistic: Callable[[np.ndarray], float] = np.nanmean,
) -> dict[str, tuple[float, float]]:
    """Bootstrap intervals of the mean of per-sample scores (e.g. Dice, thresholded Jaccard).

    Args:
        per_sample: ``{metric: one score per sample}``.
        groups: Lesion of every sample.
        n_resamples: Number of resamples.
        confidence: Coverage of the interval.
        random_state: Random state of the draws.
        statistic: The summary of a resample (default: mean ignoring NaN).

    Returns:
        ``{metric: (low, high)}``.
    """
    draws = bootstrap_groups(groups, n_resamples, random_state)
    result = {}
    for name, scores in per_sample.items():
        array = np.asarray(scores, dtype=np.float64)
        if array.size != len(groups):
            raise DataError(f"{name}: {array.size} scores for {len(groups)} groups")
        result[name] = percentile_interval(np.array([statistic(array[i]) for i in draws]), confidence)
    return result
