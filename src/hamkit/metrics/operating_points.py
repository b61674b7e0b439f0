"""Operating points of a classifier: what a clinician reads off a ROC curve.

* :func:`partial_auc`: the area under the ROC curve above a minimum sensitivity, as the ISIC 2024
  challenge's scorer computes it (labels and scores flipped, the area up to false positive rate
  ``1 - min_tpr`` with one point added there by linear interpolation; values in ``[0, 1 - min_tpr]``,
  0.2 for a perfect ranking at the default 80 %).
* :func:`sensitivity_at_specificity` and :func:`specificity_at_sensitivity`: the best one of the
  two that a threshold on the score reaches while keeping the other at least at its target.
* :func:`operating_points`: all of them per class (one class against the rest), with 95 %
  intervals that resample lesions (:func:`hamkit.metrics.bootstrap.bootstrap_groups`).
* :func:`fit_operating_point`: moves one class's decision offset so that the decisions of the
  saved rule (``argmax(log p + offsets)``) reach a stated sensitivity or specificity of that class
  on held-out data; :meth:`LesionClassifier.calibrate(target=...)
  <hamkit.classify.LesionClassifier.calibrate>` saves it with the model, so ``predict`` uses it.
* :func:`parse_operating_point`: ``"mel:sensitivity=0.85"`` (the spelling of ``hamkit calibrate
  --operating-point`` and of ``hamkit run``'s ``classifier.operating_point``) as a ``target``.
* :func:`decision_point`: the sensitivity and specificity of one class under given decisions,
  with intervals (the saved rule's point on that class's ROC curve).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hamkit.errors import DataError, HamkitError
from hamkit.metrics.bootstrap import bootstrap_groups, percentile_interval

__all__ = [
    "MIN_TPR",
    "SENSITIVITIES",
    "SPECIFICITIES",
    "OperatingPoint",
    "decision_point",
    "fit_operating_point",
    "operating_points",
    "parse_operating_point",
    "partial_auc",
    "sensitivity_at_specificity",
    "specificity_at_sensitivity",
]

SPECIFICITIES = (0.80, 0.90)
"""The specificities at which sensitivity is read."""

SENSITIVITIES = (0.90,)
"""The sensitivities at which specificity is read."""

MIN_TPR = 0.80
"""The minimum sensitivity of the partial AUC (the ISIC 2024 challenge's)."""


def _binary(y_true: Any, score: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise DataError(f"{y.size} labels but {s.size} scores")
    if y.all() or not y.any():
        raise DataError(f"need positive and negative samples, got {int(y.sum())} positives of {y.size}")
    return y, s


def partial_auc(y_true: Any, score: Any, *, min_tpr: float = MIN_TPR) -> float:
    """The partial AUC above ``min_tpr`` sensitivity, computed as the ISIC 2024 challenge's scorer does.

    The labels are flipped (``1 - y``) and the scores too (``1 - score``), so that the region of
    sensitivity at least ``min_tpr`` becomes the region of false positive rate at most
    ``max_fpr = 1 - min_tpr``; the ROC curve (scikit-learn's ``roc_curve``) is cut there, with one
    point added by linear interpolation, and its area taken with the trapezoidal rule.

    Args:
        y_true: Binary labels (1 = the class of interest, e.g. melanoma).
        score: Scores, higher meaning more likely positive (probabilities in ``[0, 1]``).
        min_tpr: The minimum sensitivity, in ``(0, 1)``.

    Returns:
        The area, in ``[0, 1 - min_tpr]`` (``1 - min_tpr`` for a perfect ranking).

    Raises:
        DataError: Labels of one class only, or labels and scores that do not align.
        HamkitError: ``min_tpr`` outside ``(0, 1)``.

    Examples:
        >>> round(partial_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]), 6)  # perfect: 1 - 0.8
        0.2
        >>> round(partial_auc([0, 1, 0, 1], [0.1, 0.2, 0.8, 0.9]), 6)  # specificity 0.5 above 80 % sensitivity
        0.1
    """
    from sklearn.metrics import auc, roc_curve

    if not 0.0 < float(min_tpr) < 1.0:
        raise HamkitError(f"min_tpr must be in (0, 1), got {min_tpr}")
    y, s = _binary(y_true, score)
    flipped_truth = np.abs(y.astype(np.float64) - 1)
    flipped_score = 1.0 - s
    max_fpr = abs(1 - float(min_tpr))
    fpr, tpr, _ = roc_curve(flipped_truth, flipped_score)
    stop = int(np.searchsorted(fpr, max_fpr, "right"))
    x_interp = [fpr[stop - 1], fpr[stop]]
    y_interp = [tpr[stop - 1], tpr[stop]]
    tpr = np.append(tpr[:stop], np.interp(max_fpr, x_interp, y_interp))
    fpr = np.append(fpr[:stop], max_fpr)
    return float(auc(fpr, tpr))


def _curve(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` of every distinct threshold ``score >= t``, from ``(0, 0)``: scikit-learn's
    ``roc_curve(y, s, drop_intermediate=False)``, in NumPy alone (it runs once per class and resample)."""
    order = np.argsort(-s, kind="mergesort")
    ranked, hits = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(ranked)), ranked.size - 1]
    tps = np.cumsum(hits)[last].astype(np.float64)
    fps = (last + 1) - tps
    return np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]], np.r_[np.inf, ranked[last]]


def _roc(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sensitivity, specificity and threshold of every distinct threshold ``score >= t``."""
    fpr, tpr, thresholds = _curve(y, s)
    return tpr, 1.0 - fpr, thresholds


def _partial_area(fpr: np.ndarray, tpr: np.ndarray, min_tpr: float) -> float:
    """The area of :func:`partial_auc` from the unflipped curve: specificity integrated over sensitivity
    from ``min_tpr`` to 1 along its linear segments (what the scorer's flip and interpolation compute)."""
    t0, t1, f0, f1 = tpr[:-1], tpr[1:], fpr[:-1], fpr[1:]
    low, high = np.maximum(t0, min_tpr), np.minimum(t1, 1.0)
    rising = (t1 > t0) & (high > low)
    step = np.where(rising, t1 - t0, 1.0)
    fa = f0 + (f1 - f0) * (low - t0) / step
    fb = f0 + (f1 - f0) * (high - t0) / step
    return float(np.sum(np.where(rising, (high - low) * (2 - fa - fb) / 2, 0.0)))


def _best(values: np.ndarray, allowed: np.ndarray, thresholds: np.ndarray) -> tuple[float, float]:
    if not allowed.any():
        return float("nan"), float("nan")
    found = np.flatnonzero(allowed)
    best = found[np.argmax(values[found])]
    return float(values[best]), float(thresholds[best])


def sensitivity_at_specificity(y_true: Any, score: Any, specificity: float) -> tuple[float, float]:
    """The highest sensitivity of a threshold ``score >= t`` whose specificity is at least ``specificity``.

    Args:
        y_true: Binary labels (1 = positive).
        score: Scores, higher meaning more likely positive.
        specificity: The minimum specificity, in ``[0, 1]``.

    Returns:
        ``(sensitivity, threshold)``.

    Examples:
        >>> sensitivity_at_specificity([0, 0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.7, 0.6, 0.9], 0.75)
        (1.0, 0.6)
        >>> sensitivity_at_specificity([0, 0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.7, 0.6, 0.9], 0.8)
        (0.5, 0.9)
    """
    y, s = _binary(y_true, score)
    sens, spec, thresholds = _roc(y, s)
    return _best(sens, spec >= float(specificity) - 1e-12, thresholds)


def specificity_at_sensitivity(y_true: Any, score: Any, sensitivity: float) -> tuple[float, float]:
    """The highest specificity of a threshold ``score >= t`` whose sensitivity is at least ``sensitivity``.

    Args:
        y_true: Binary labels (1 = positive).
        score: Scores, higher meaning more likely positive.
        sensitivity: The minimum sensitivity, in ``[0, 1]``.

    Returns:
        ``(specificity, threshold)``.

    Examples:
        >>> specificity_at_sensitivity([0, 0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.7, 0.6, 0.9], 0.9)
        (0.75, 0.6)
    """
    y, s = _binary(y_true, score)
    sens, spec, thresholds = _roc(y, s)
    return _best(spec, sens >= float(sensitivity) - 1e-12, thresholds)


def _point_values(y: np.ndarray, s: np.ndarray) -> dict[str, float]:
    """Every number of one class on one (re)sample, from one ROC curve (AUC and partial AUC as
    scikit-learn's ``roc_auc_score`` and :func:`partial_auc` give them; the tests hold them to it)."""
    if y.all() or not y.any():
        return {}
    fpr, tpr, thresholds = _curve(y, s)
    sens, spec = tpr, 1.0 - fpr
    values = {
        "auc": float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2)),
        "partial_auc": _partial_area(fpr, tpr, MIN_TPR),
    }
    for target in SPECIFICITIES:
        values[f"sensitivity_at_specificity_{target:.2f}"] = _best(sens, spec >= target - 1e-12, thresholds)[0]
    for target in SENSITIVITIES:
        values[f"specificity_at_sensitivity_{target:.2f}"] = _best(spec, sens >= target - 1e-12, thresholds)[0]
    return values


def operating_points(
    y_true: Sequence[int] | np.ndarray,
    proba: np.ndarray,
    groups: Sequence[Hashable],
    *,
    classes: Sequence[str],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    random_state: int = 0,
) -> dict[str, dict[str, Any]]:
    """Per class (one against the rest): AUC, partial AUC above :data:`MIN_TPR` sensitivity,
    sensitivity at each of :data:`SPECIFICITIES`, specificity at each of :data:`SENSITIVITIES`,
    each with a percentile interval over resampled lesions.

    Args:
        y_true: True class indices.
        proba: ``(N, K)`` probabilities (the score of class ``k`` is column ``k``).
        groups: The lesion of every image (the resampling unit).
        classes: The ``K`` class names.
        n_resamples: Bootstrap resamples (0: no intervals).
        confidence: Coverage of the intervals.
        random_state: Random state of the draws.

    Returns:
        ``{class: {"n_positive", "thresholds": {name: t}, "values": {name: v}, "intervals":
        {name: [low, high]}}}``; a class without positive (or negative) images has ``values`` empty.
        Melanoma (``mel``) comes first when present.

    Examples:
        >>> y = np.array([0, 0, 1, 1, 1, 0])
        >>> p = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8], [0.45, 0.55], [0.7, 0.3]])
        >>> found = operating_points(y, p, ["a", "b", "c", "d", "e", "f"], classes=["mel", "nv"], n_resamples=0)
        >>> found["mel"]["values"]["auc"], round(found["mel"]["values"]["partial_auc"], 6)
        (1.0, 0.2)
    """
    truth = np.asarray(y_true, dtype=np.int64)
    scores = np.asarray(proba, dtype=np.float64)
    names = list(classes)
    if scores.shape != (truth.size, len(names)) or len(groups) != truth.size:
        raise DataError(f"{truth.size} labels, scores of shape {scores.shape} and {len(groups)} groups do not align")
    draws = bootstrap_groups(groups, n_resamples, random_state) if n_resamples > 0 else []
    order = sorted(range(len(names)), key=lambda k: names[k] != "mel")
    result: dict[str, dict[str, Any]] = {}
    for k in order:
        y, s = truth == k, scores[:, k]
        values = _point_values(y, s)
        entry: dict[str, Any] = {"n_positive": int(y.sum()), "values": values, "intervals": {}, "thresholds": {}}
        if values:
            sens, spec, thresholds = _roc(y, s)
            for target in SPECIFICITIES:
                entry["thresholds"][f"sensitivity_at_specificity_{target:.2f}"] = _best(
                    sens, spec >= target - 1e-12, thresholds
                )[1]
            for target in SENSITIVITIES:
                entry["thresholds"][f"specificity_at_sensitivity_{target:.2f}"] = _best(
                    spec, sens >= target - 1e-12, thresholds
                )[1]
            samples: dict[str, list[float]] = {name: [] for name in values}
            for index in draws:
                for name, value in _point_values(y[index], s[index]).items():
                    samples[name].append(value)
            if draws:
                entry["intervals"] = {
                    name: list(percentile_interval(np.array(v), confidence)) for name, v in samples.items()
                }
        result[names[k]] = entry
    return result


def decision_point(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    groups: Sequence[Hashable],
    k: int,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    random_state: int = 0,
) -> dict[str, Any]:
    """Sensitivity and specificity of class ``k`` under the decisions ``y_pred``, with lesion-bootstrap intervals.

    Examples:
        >>> decision_point([0, 0, 1, 1], [0, 1, 1, 1], ["a", "b", "c", "d"], 0, n_resamples=0)["sensitivity"]
        0.5
    """
    truth = np.asarray(y_true, dtype=np.int64) == k
    called = np.asarray(y_pred, dtype=np.int64) == k

    def rates(index: np.ndarray) -> tuple[float, float]:
        t, c = truth[index], called[index]
        sens = float((t & c).sum() / t.sum()) if t.any() else float("nan")
        spec = float((~t & ~c).sum() / (~t).sum()) if (~t).any() else float("nan")
        return sens, spec

    sens, spec = rates(np.arange(truth.size))
    found: dict[str, Any] = {"sensitivity": sens, "specificity": spec, "intervals": {}}
    if n_resamples > 0:
        values = np.array([rates(i) for i in bootstrap_groups(groups, n_resamples, random_state)])
        found["intervals"] = {
            "sensitivity": list(percentile_interval(values[:, 0], confidence)),
            "specificity": list(percentile_interval(values[:, 1], confidence)),
        }
    return found


@dataclass(frozen=True)
class OperatingPoint:
    """A decision offset moved so that one class reaches a target (:func:`fit_operating_point`).

    Attributes:
        cls: The class.
        measure: ``"sensitivity"`` or ``"specificity"``.
        target: The value asked for.
        offsets: The new per-class offsets (only ``cls``'s differs from the ones given).
        shift: How much ``cls``'s offset moved.
        sensitivity: The class's sensitivity under the new offsets on the data it was fitted on.
        specificity: Its specificity there.
        n_positive: Number of images of the class in that data.
    """

    cls: str
    measure: str
    target: float
    offsets: np.ndarray
    shift: float
    sensitivity: float
    specificity: float
    n_positive: int

    def as_dict(self) -> dict[str, Any]:
        """JSON values, as saved in ``calibration["operating_point"]`` of a model's ``config.json``."""
        return {
            "class": self.cls,
            "measure": self.measure,
            "target": self.target,
            "shift": self.shift,
            "val_sensitivity": self.sensitivity,
            "val_specificity": self.specificity,
            "n_positive": self.n_positive,
        }


def parse_target(target: Mapping[str, Any], classes: Sequence[str]) -> tuple[str, str, float]:
    """``{"mel": {"sensitivity": 0.9}}`` as ``("mel", "sensitivity", 0.9)``, checked.

    Raises:
        HamkitError: More than one class or measure, an unknown class or measure, or a value outside ``(0, 1]``.
    """
    if len(target) != 1:
        raise HamkitError(
            f"target: one class with one operating point, e.g. {{'mel': {{'sensitivity': 0.9}}}}; got {dict(target)}"
        )
    ((name, wanted),) = target.items()
    if name not in classes:
        raise HamkitError(f"target: unknown class {name!r}; the classes are {', '.join(classes)}")
    if not isinstance(wanted, Mapping) or len(wanted) != 1:
        raise HamkitError(f"target: give one of sensitivity or specificity for {name!r}, e.g. {{'sensitivity': 0.9}}")
    ((measure, value),) = wanted.items()
    if measure not in ("sensitivity", "specificity"):
        raise HamkitError(f"target: {measure!r} is not 'sensitivity' or 'specificity'")
    if not 0.0 < float(value) <= 1.0:
        raise HamkitError(f"target: the {measure} of {name!r} must be in (0, 1], got {value}")
    return str(name), str(measure), float(value)


def fit_operating_point(
    log_proba: np.ndarray,
    labels: np.ndarray,
    offsets: np.ndarray,
    target: Mapping[str, Any],
    *,
    classes: Sequence[str],
) -> OperatingPoint:
    """Move one class's decision offset so that the rule ``argmax(log_proba + offsets)`` reaches
    ``target`` for that class (one against the rest) on labelled held-out data.

    The class is decided where its margin ``log p_k + o_k - max_{j != k}(log p_j + o_j)`` is above
    0; shifting ``o_k`` moves that threshold. For a sensitivity target the shift is the smallest
    one calling at least that share of the class's images (the highest specificity that reaches
    it); for a specificity target the largest one leaving at least that share of the other images
    uncalled (the highest sensitivity). The threshold is put half-way between two margins, so no
    decision rests on a tie.

    Args:
        log_proba: ``(N, K)`` log-probabilities (after temperature scaling) on held-out data.
        labels: ``N`` true class indices.
        offsets: The ``K`` offsets of the rule so far (e.g. :func:`~hamkit.metrics.calibration.fit_prior_offsets`').
        target: ``{class: {"sensitivity": value}}`` or ``{class: {"specificity": value}}``.
        classes: The ``K`` class names.

    Returns:
        The :class:`OperatingPoint`.

    Raises:
        DataError: The data has no image of the class, or none of the others.
        HamkitError: A malformed target.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> y = rng.choice(3, size=2000, p=[0.1, 0.8, 0.1])
        >>> z = np.eye(3)[y] + rng.normal(size=(2000, 3))
        >>> point = fit_operating_point(z, y, np.zeros(3), {"mel": {"sensitivity": 0.9}}, classes=["mel", "nv", "bcc"])
        >>> point.sensitivity >= 0.9, point.shift > 0
        (True, True)
    """
    names = list(classes)
    name, measure, value = parse_target(target, names)
    k = names.index(name)
    z = np.asarray(log_proba, dtype=np.float64) + np.asarray(offsets, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    positive = y == k
    if not positive.any() or positive.all():
        raise DataError(
            f"cannot set the {measure} of {name}: the calibration data has {int(positive.sum())} images of it "
            f"and {int((~positive).sum())} of the other classes"
        )
    others = np.delete(z, k, axis=1).max(axis=1)
    margin = z[:, k] - others
    distinct = np.unique(margin)
    if measure == "sensitivity":
        keep = math.ceil(value * positive.sum() - 1e-9)
        edge = np.sort(margin[positive])[::-1][keep - 1]  # the keep-th highest margin of the class
        below = distinct[distinct < edge]
        cut = (edge + below[-1]) / 2 if below.size else edge - 1.0
    else:
        allowed = math.floor((1 - value) * (~positive).sum() + 1e-9)
        edge = np.sort(margin[~positive])[::-1][allowed]  # the highest margin of the others that stays uncalled
        above = distinct[distinct > edge]
        cut = (edge + above[0]) / 2 if above.size else edge + 1.0
    shift = float(-cut)
    moved = np.asarray(offsets, dtype=np.float64).copy()
    moved[k] += shift
    called = np.argmax(np.asarray(log_proba, dtype=np.float64) + moved, axis=1) == k
    return OperatingPoint(
        cls=name,
        measure=measure,
        target=value,
        offsets=moved,
        shift=shift,
        sensitivity=float((called & positive).sum() / positive.sum()),
        specificity=float((~called & ~positive).sum() / (~positive).sum()),
        n_positive=int(positive.sum()),
    )


def parse_operating_point(text: str) -> dict[str, dict[str, float]] | None:
    """``"CLASS:sensitivity=VALUE"`` (or ``specificity``) as the ``target`` of
    :func:`fit_operating_point`; ``"none"`` (or an empty text) as ``None``.

    Raises:
        HamkitError: Any other text, with an example of the right one.

    Examples:
        >>> parse_operating_point("mel:sensitivity=0.85")
        {'mel': {'sensitivity': 0.85}}
        >>> parse_operating_point("none") is None
        True
    """
    if not str(text).strip() or str(text).strip() == "none":
        return None
    name, _, rest = str(text).partition(":")
    measure, sep, value = rest.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not sep or not name.strip() or measure.strip() not in ("sensitivity", "specificity") or not 0 < number <= 1:
        raise HamkitError(
            "expected CLASS:sensitivity=VALUE or CLASS:specificity=VALUE with a value in (0, 1], "
            f"e.g. mel:sensitivity=0.9, or none; got {text!r}"
        )
    return {name.strip(): {measure.strip(): number}}
