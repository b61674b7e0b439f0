"""Probability calibration and decision rules for a classifier's outputs.

* :func:`fit_temperature`: temperature scaling (Guo et al., 2017): one scalar ``T`` that divides
  the logits, fitted on validation data by minimising the negative log-likelihood. It changes
  the confidence of the probabilities, never their ranking or the argmax.
* :func:`expected_calibration_error` and :func:`reliability_bins`: how far the confidence of
  the top class is from its accuracy, over equal-width confidence bins.
* :func:`fit_prior_offsets`: a decision rule. A model trained with a class-balanced sampler
  behaves as if every class were equally common, which lifts the recall of rare classes and
  costs their precision. Adding ``alpha * log(prior)`` to the log-probabilities before the
  argmax moves the rule between the balanced prior (``alpha = 0``) and the data's prior
  (``alpha = 1``); ``alpha`` is chosen on validation data to maximise the mean of balanced
  accuracy and macro F1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hamkit.errors import DataError

__all__ = [
    "ReliabilityBins",
    "expected_calibration_error",
    "fit_prior_offsets",
    "fit_temperature",
    "reliability_bins",
    "softmax",
]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(N, K)`` logits, computed stably in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _check(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if z.ndim != 2 or y.shape != (z.shape[0],):
        raise DataError(f"need (N, K) scores and N labels, got {z.shape} and {y.shape}")
    if y.size == 0:
        raise DataError("no samples to calibrate on")
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise DataError(f"labels must be class indices 0..{z.shape[1] - 1}")
    return z, y


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature ``T`` minimising the NLL of ``softmax(logits / T)`` on labelled data.

    Args:
        logits: ``(N, K)`` logits (or log-probabilities).
        labels: ``N`` true class indices.

    Returns:
        ``T`` in ``[0.05, 20]`` (1 means the probabilities were already calibrated in NLL).

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> y = rng.integers(0, 3, 500)
        >>> z = np.eye(3)[y] * 2 + rng.normal(size=(500, 3))
        >>> round(fit_temperature(z * 5, y) / fit_temperature(z, y), 1)  # over-confident by 5x
        5.0
    """
    from scipy.optimize import minimize_scalar

    z, y = _check(logits, labels)

    def nll(log_t: float) -> float:
        scaled = z / np.exp(log_t)
        scaled = scaled - scaled.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(scaled).sum(axis=1))
        return float(np.mean(log_norm - scaled[np.arange(y.size), y]))

    found = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(found.x))


@dataclass(frozen=True)
class ReliabilityBins:
    """Equal-width bins of top-class confidence.

    Attributes:
        edges: ``n_bins + 1`` bin edges on ``[0, 1]``.
        confidence: Mean confidence of the samples in each bin (NaN where empty).
        accuracy: Their accuracy (NaN where empty).
        count: Number of samples per bin.
    """

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray

    @property
    def ece(self) -> float:
        """Expected calibration error: the count-weighted mean of ``|accuracy - confidence|``."""
        used = self.count > 0
        if not used.any():
            return float("nan")
        gaps = np.abs(self.accuracy[used] - self.confidence[used])
        return float(np.sum(gaps * self.count[used]) / self.count.sum())


def reliability_bins(proba: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> ReliabilityBins:
    """Bin predictions by top-class confidence (the data of a reliability diagram).

    Args:
        proba: ``(N, K)`` probabilities.
        labels: ``N`` true class indices.
        n_bins: Number of equal-width bins.
    """
    p, y = _check(proba, labels)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, confidence, minlength=n_bins) / count
        accuracy = np.bincount(which, correct, minlength=n_bins) / count
    return ReliabilityBins(edges, mean_conf, accuracy, count)


def expected_calibration_error(proba: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the top-class confidence over ``n_bins`` equal-width bins.

    Examples:
        >>> expected_calibration_error(np.array([[0.9, 0.1], [0.9, 0.1]]), np.array([0, 1]))
        0.4
    """
    return round(reliability_bins(proba, labels, n_bins).ece, 12)


def _balanced_accuracy_and_macro_f1(labels: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    from hamkit.bootstrap import metrics_from_confusion

    matrix = np.bincount(labels * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    found = metrics_from_confusion(matrix)
    return (found["balanced_accuracy"] + found["macro_f1"]) / 2


def fit_prior_offsets(
    log_proba: np.ndarray, labels: np.ndarray, prior: np.ndarray, alphas: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """Choose ``alpha`` of the rule ``argmax(log_proba + alpha * log(prior))`` on labelled data.

    Args:
        log_proba: ``(N, K)`` log-probabilities (or logits) on validation data.
        labels: ``N`` true class indices.
        prior: ``K`` class frequencies of the training data (zeros are treated as tiny).
        alphas: Candidates (default ``-1, -0.9, ..., 1``); ties go to the one nearest 0.

    Returns:
        ``(alpha, offsets)``, ``offsets = alpha * log(prior)``, to add before the argmax.
    """
    z, y = _check(log_proba, labels)
    prior = np.asarray(prior, dtype=np.float64)
    if prior.shape != (z.shape[1],):
        raise DataError(f"prior needs {z.shape[1]} class frequencies, got shape {prior.shape}")
    log_prior = np.log(np.clip(prior / max(prior.sum(), 1e-12), 1e-6, None))
    candidates = np.round(np.linspace(-1, 1, 21), 2) if alphas is None else np.asarray(alphas, dtype=float)
    order = np.argsort(np.abs(candidates), kind="stable")
    best_alpha, best_score = 0.0, -np.inf
    for alpha in candidates[order]:
        pred = np.argmax(z + alpha * log_prior, axis=1)
        score = _balanced_accuracy_and_macro_f1(y, pred, z.shape[1])
        if score > best_score + 1e-12:
            best_alpha, best_score = float(alpha), score
    return best_alpha, best_alpha * log_prior
