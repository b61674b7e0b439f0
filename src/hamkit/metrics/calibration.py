"""Probability calibration and decision rules for a classifier's outputs.

* :func:`fit_temperature`: temperature scaling (Guo et al., 2017): one scalar ``T`` that divides
  the logits, fitted on validation data by minimising the negative log-likelihood. It changes
  the confidence of the probabilities, never their ranking or the argmax.
* :func:`expected_calibration_error` and :func:`reliability_bins`: how far the confidence of
  the top class is from its accuracy, over equal-width confidence bins.
* :func:`choose_temperature`: :func:`fit_temperature` with a guard: a temperature that makes
  the ECE of the same data worse is not applied (the result says so).
* :func:`fit_prior_offsets`: a decision rule. A model trained with a class-balanced sampler
  behaves as if every class were equally common, which lifts the recall of rare classes and
  costs their precision. Adding ``alpha * log(prior)`` to the log-probabilities before the
  argmax moves the rule between the balanced prior (``alpha = 0``) and the data's prior
  (``alpha = 1``); ``alpha`` is chosen on validation data to maximise the mean of balanced
  accuracy and macro F1, among the alphas that keep the recall of the protected classes
  (melanoma by default) at least at the plain argmax's and reach any stated target recall.
* :func:`fit_calibration`: both on held-out data, with their facts as one record (what
  :meth:`hamkit.classify.LesionClassifier.calibrate` saves with the model).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hamkit.classes import CLASS_CODES, melanoma_index
from hamkit.errors import DataError, HamkitError
from hamkit.metrics.operating_points import OperatingPoint, fit_operating_point

__all__ = [
    "CalibrationFit",
    "PriorRule",
    "ReliabilityBins",
    "TemperatureChoice",
    "choose_temperature",
    "expected_calibration_error",
    "fit_calibration",
    "fit_prior_offsets",
    "fit_temperature",
    "reliability_bins",
    "softmax",
]

_TOL = 1e-12


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


@dataclass(frozen=True)
class TemperatureChoice:
    """What :func:`choose_temperature` found.

    Attributes:
        temperature: The temperature to divide the logits by: ``fitted`` when ``applied``, else 1.
        fitted: The temperature minimising the NLL (:func:`fit_temperature`).
        applied: Whether ``fitted`` is used: it is not when it raises the ECE of the same data.
        ece_before: ECE of ``softmax(logits)``.
        ece_after: ECE of ``softmax(logits / fitted)``.
    """

    temperature: float
    fitted: float
    applied: bool
    ece_before: float
    ece_after: float


def choose_temperature(logits: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> TemperatureChoice:
    """Temperature scaling, kept only where it does not make the expected calibration error worse.

    The NLL and the ECE can disagree: a few confidently wrong samples pull the NLL-optimal
    temperature up and leave the well-calibrated rest under-confident. Then the fitted
    temperature is reported but not applied (``temperature`` is 1).

    Args:
        logits: ``(N, K)`` logits on held-out data.
        labels: ``N`` true class indices.
        n_bins: Bins of the ECE.

    Returns:
        The :class:`TemperatureChoice`.

    Examples:
        >>> # 1,000 images right 90 % of the time at confidence 0.9, and 30 confidently wrong ones
        >>> z = np.vstack([np.tile([np.log(9), 0.0], (1000, 1)), np.tile([12.0, 0.0], (30, 1))])
        >>> y = np.r_[np.zeros(900, int), np.ones(130, int)]
        >>> found = choose_temperature(z, y)
        >>> found.fitted > 1.5, found.ece_after > found.ece_before, found.applied, found.temperature
        (True, True, False, 1.0)
    """
    z, y = _check(logits, labels)
    fitted = fit_temperature(z, y)
    before = expected_calibration_error(softmax(z), y, n_bins)
    after = expected_calibration_error(softmax(z / fitted), y, n_bins)
    applied = bool(after <= before)
    return TemperatureChoice(fitted if applied else 1.0, fitted, applied, before, after)


@dataclass(frozen=True, eq=False)
class PriorRule:
    """The decision rule chosen by :func:`fit_prior_offsets`; unpacks as ``(alpha, offsets)``.

    Per-class dictionaries are keyed by class name; a recall is NaN for a class without samples.

    Attributes:
        alpha: The chosen ``alpha``.
        offsets: ``alpha * log(prior)``, to add to the log-probabilities before the argmax.
        score: The objective (mean of balanced accuracy and macro F1) of ``alpha`` on the data.
        unconstrained_alpha: The ``alpha`` the objective alone would have chosen.
        protected: The classes whose recall the rule may not lower below the plain argmax's.
        min_recall: The target recall asked for, per class.
        recall_raw: Recall per class of the plain argmax (``alpha = 0``).
        recall_rule: Recall per class of the chosen rule.
        targets_met: Per target class, whether the chosen rule reaches its target.
        notes: One line for each thing a reader should know: a constraint that changed the
            choice, a target no candidate reached, a protected class absent from the data.
    """

    alpha: float
    offsets: np.ndarray
    score: float
    unconstrained_alpha: float
    protected: tuple[str, ...] = ()
    min_recall: dict[str, float] = field(default_factory=dict)
    recall_raw: dict[str, float] = field(default_factory=dict)
    recall_rule: dict[str, float] = field(default_factory=dict)
    targets_met: dict[str, bool] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[float | np.ndarray]:
        """``alpha, offsets = fit_prior_offsets(...)``."""
        return iter((self.alpha, self.offsets))


def _class_names(classes: Sequence[str] | None, k: int) -> list[str]:
    if classes is None:
        return list(CLASS_CODES) if k == len(CLASS_CODES) else [str(i) for i in range(k)]
    names = [str(c) for c in classes]
    if len(names) != k:
        raise DataError(f"{len(names)} class names for scores of {k} classes")
    return names


def _class_index(key: str | int, names: list[str], what: str) -> int:
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool) and 0 <= key < len(names):
        return int(key)
    if isinstance(key, str) and key in names:
        return names.index(key)
    raise HamkitError(f"{what}: unknown class {key!r}; the classes are {', '.join(names)}")


def _recall_and_objective(conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class recall ``(A, K)`` and the mean of balanced accuracy and macro F1 ``(A,)`` of a
    stack of confusion matrices (rows = true class; the definitions of
    :func:`hamkit.metrics.bootstrap.metrics_from_confusion`)."""
    true = conf.sum(axis=2)[0]
    predicted = conf.sum(axis=1)
    hits = np.diagonal(conf, axis1=1, axis2=2).astype(np.float64)
    present = true > 0
    recall = np.full(hits.shape, np.nan)
    recall[:, present] = hits[:, present] / true[present]
    balanced = recall[:, present].mean(axis=1)
    denominator = true[None, :] + predicted
    scored = denominator > 0
    f1 = np.where(scored, 2 * hits / np.maximum(denominator, 1), 0.0)
    return recall, (balanced + f1.sum(axis=1) / scored.sum(axis=1)) / 2


def _first_best(score: np.ndarray, allowed: np.ndarray) -> int:
    """The first allowed index (candidates are ordered nearest 0 first) with the highest score."""
    found = np.flatnonzero(allowed)
    best = score[found].max()
    return int(found[np.argmax(score[found] >= best - _TOL)])


def fit_prior_offsets(
    log_proba: np.ndarray,
    labels: np.ndarray,
    prior: np.ndarray,
    alphas: np.ndarray | None = None,
    *,
    classes: Sequence[str] | None = None,
    protect: Sequence[str | int] | None = None,
    min_recall: Mapping[str, float] | Mapping[int, float] | None = None,
) -> PriorRule:
    """Choose ``alpha`` of the rule ``argmax(log_proba + alpha * log(prior))`` on labelled data.

    Among the candidates, only those that keep the recall of every ``protect`` class at least
    at the plain argmax's (``alpha = 0``) on this data are allowed; then, for each class of
    ``min_recall``, only those reaching its target, when any allowed candidate does (when none
    does: those with the highest recall of that class, and a line in ``notes``). Of the allowed
    candidates the one with the highest mean of balanced accuracy and macro F1 is chosen.
    ``alpha = 0`` always keeps the plain argmax's recall, so there is always a choice.

    Args:
        log_proba: ``(N, K)`` log-probabilities (or logits) on validation data.
        labels: ``N`` true class indices.
        prior: ``K`` class frequencies of the training data (zeros are treated as tiny).
        alphas: Candidates (default ``-1, -0.9, ..., 1``; 0 is always added); ties go to the one
            nearest 0.
        classes: The ``K`` class names (default: the HAM10000 codes when ``K`` is 7, else
            ``"0"``, ``"1"``...).
        protect: Classes (names or indices) whose recall may not fall below the plain
            argmax's; default: the melanoma class (``mel`` or ``melanoma``, any case) when
            there is one, else none. ``()`` protects nothing (the rule as it was before).
        min_recall: Target recall per class, e.g. ``{"mel": 0.9}``.

    Returns:
        The :class:`PriorRule`; ``alpha, offsets = fit_prior_offsets(...)`` also works.

    Raises:
        DataError: Scores, labels and prior that do not fit together.
        HamkitError: An unknown class in ``protect`` or ``min_recall``, or a target outside ``[0, 1]``.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> prior = np.array([0.1, 0.8, 0.1])  # mel is rare, nv common
        >>> y = rng.choice(3, size=3000, p=prior)
        >>> z = np.eye(3)[y] + rng.normal(size=(3000, 3))  # a class-balanced model's scores
        >>> rule = fit_prior_offsets(z, y, prior, classes=["mel", "nv", "bcc"])
        >>> rule.unconstrained_alpha > rule.alpha  # the objective alone would cost mel recall
        True
        >>> rule.recall_rule["mel"] >= rule.recall_raw["mel"]
        True
        >>> rule = fit_prior_offsets(z, y, prior, classes=["mel", "nv", "bcc"], min_recall={"mel": 0.7})
        >>> rule.targets_met, rule.alpha < 0  # a target above the argmax's recall: a negative alpha
        ({'mel': True}, True)
    """
    z, y = _check(log_proba, labels)
    k = z.shape[1]
    prior = np.asarray(prior, dtype=np.float64)
    if prior.shape != (k,):
        raise DataError(f"prior needs {k} class frequencies, got shape {prior.shape}")
    names = _class_names(classes, k)
    if protect is None:
        melanoma = melanoma_index(names)
        protect = (names[melanoma],) if melanoma is not None else ()
    protected = list(dict.fromkeys(_class_index(c, names, "protect") for c in protect))
    targets: dict[int, float] = {}
    for key, value in (min_recall or {}).items():
        if not 0.0 <= float(value) <= 1.0:
            raise HamkitError(f"min_recall: the target of {key!r} must be in [0, 1], got {value}")
        targets[_class_index(key, names, "min_recall")] = float(value)
    log_prior = np.log(np.clip(prior / max(prior.sum(), 1e-12), 1e-6, None))
    candidates = np.round(np.linspace(-1, 1, 21), 2) if alphas is None else np.asarray(alphas, dtype=float).ravel()
    if not np.any(candidates == 0):
        candidates = np.append(candidates, 0.0)
    candidates = candidates[np.argsort(np.abs(candidates), kind="stable")]  # nearest 0 first: [0] is 0
    n = len(candidates)
    pred = np.stack([np.argmax(z + alpha * log_prior, axis=1) for alpha in candidates])
    cells = (np.arange(n)[:, None] * k + y[None, :]) * k + pred
    recall, score = _recall_and_objective(np.bincount(cells.ravel(), minlength=n * k * k).reshape(n, k, k))

    notes: list[str] = []
    allowed = np.ones(n, dtype=bool)
    needed: dict[int, float] = {}
    for c in protected:
        if np.isnan(recall[0, c]):
            notes.append(f"{names[c]} has no samples in the calibration data, so its recall is not protected")
            continue
        allowed &= recall[:, c] >= recall[0, c] - _TOL
        needed[c] = recall[0, c]
    for c, target in targets.items():
        if np.isnan(recall[0, c]):
            notes.append(f"{names[c]} has no samples in the calibration data, so its target recall is not checked")
            continue
        reach = allowed & (recall[:, c] >= target - _TOL)
        if reach.any():
            allowed = reach
            needed[c] = max(target, needed.get(c, 0.0))
        else:
            highest = float(recall[allowed, c].max())
            allowed &= recall[:, c] >= highest - _TOL
            needed[c] = highest
            notes.append(
                f"no alpha reaches the target recall {target:.2f} of {names[c]} on the calibration data; "
                f"the highest reachable, {highest:.3f}, was chosen"
            )
    chosen, free = _first_best(score, allowed), _first_best(score, np.ones(n, dtype=bool))
    if chosen != free:
        missed = [
            f"{names[c]} recall {recall[free, c]:.3f} < {floor:.3f}"
            for c, floor in needed.items()
            if recall[free, c] < floor - _TOL
        ]
        notes.append(
            f"alpha {candidates[free] + 0.0:+.2f}, the best by the objective alone ({score[free]:.3f}), would give "
            f"{'; '.join(missed)}; alpha {candidates[chosen] + 0.0:+.2f} ({score[chosen]:.3f}) was chosen"
        )
    alpha = float(candidates[chosen]) + 0.0  # never -0.0
    return PriorRule(
        alpha=alpha,
        offsets=alpha * log_prior + 0.0,
        score=float(score[chosen]),
        unconstrained_alpha=float(candidates[free]) + 0.0,
        protected=tuple(names[c] for c in protected),
        min_recall={names[c]: t for c, t in targets.items()},
        recall_raw={names[c]: float(recall[0, c]) for c in range(k)},
        recall_rule={names[c]: float(recall[chosen, c]) for c in range(k)},
        targets_met={names[c]: bool(recall[chosen, c] >= t - _TOL) for c, t in targets.items()},
        notes=tuple(notes),
    )


def _json_safe(value: Any) -> Any:
    """``value`` with NumPy scalars as Python's and NaN or infinite floats as ``None`` (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


@dataclass(frozen=True, eq=False)
class CalibrationFit:
    """What :func:`fit_calibration` chose on held-out data.

    Attributes:
        temperature: The temperature scaling, applied or not (:class:`TemperatureChoice`).
        rule: The decision rule (:class:`PriorRule`; ``alpha`` 0 for ``decision="argmax"``).
        decision: ``"tuned"`` or ``"argmax"``.
        n_samples: Number of samples it was fitted on.
        missing_classes: Classes without a sample in the data.
        notes: One line for each thing a reader of the decision rule should know (the rule's
            notes, a missing prior).
        operating_point: The stated operating point of one class (``target=`` of
            :func:`fit_calibration`), applied on top of the rule; ``None`` without a target.
    """

    temperature: TemperatureChoice
    rule: PriorRule
    decision: str
    n_samples: int
    missing_classes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    operating_point: OperatingPoint | None = None

    @property
    def offsets(self) -> np.ndarray:
        """The class offsets ``predict`` adds: the rule's, with the operating point's shift when one was asked for."""
        return self.rule.offsets if self.operating_point is None else self.operating_point.offsets

    @property
    def temperature_note(self) -> str | None:
        """Why the fitted temperature was not applied (``None`` when it was)."""
        found = self.temperature
        if found.applied:
            return None
        return (
            f"temperature scaling not applied: T = {found.fitted:.2f} raised the calibration data's ECE "
            f"from {found.ece_before:.3f} to {found.ece_after:.3f}"
        )

    def as_dict(self) -> dict[str, Any]:
        """The facts as a JSON-safe dictionary (NaN as ``None``): what a saved model records as
        ``calibration`` in its ``config.json``."""
        return _json_safe(
            {
                "n_samples": self.n_samples,
                "decision": self.decision,
                "temperature": self.temperature.temperature,
                "temperature_fitted": self.temperature.fitted,
                "temperature_applied": self.temperature.applied,
                "ece_before": self.temperature.ece_before,
                "ece_after": self.temperature.ece_after,
                "temperature_note": self.temperature_note,
                "prior_alpha": self.rule.alpha,
                "unconstrained_alpha": self.rule.unconstrained_alpha,
                "protected": list(self.rule.protected),
                "min_recall": dict(self.rule.min_recall),
                "targets_met": dict(self.rule.targets_met),
                "recall_raw": dict(self.rule.recall_raw),
                "recall_rule": dict(self.rule.recall_rule),
                "missing_classes": list(self.missing_classes),
                "notes": list(self.notes),
                "operating_point": None if self.operating_point is None else self.operating_point.as_dict(),
            }
        )


def fit_calibration(
    logits: np.ndarray,
    labels: np.ndarray,
    *,
    prior: np.ndarray | None = None,
    classes: Sequence[str] | None = None,
    decision: str = "tuned",
    protect: Sequence[str | int] | None = None,
    min_recall: Mapping[str, float] | Mapping[int, float] | None = None,
    target: Mapping[str, Mapping[str, float]] | None = None,
) -> CalibrationFit:
    """Temperature scaling (:func:`choose_temperature`) and the decision rule
    (:func:`fit_prior_offsets`, on the scaled log-probabilities) on labelled held-out data: what
    :meth:`LesionClassifier.calibrate <hamkit.classify.LesionClassifier.calibrate>` does with
    the logits of the validation split.

    Args:
        logits: ``(N, K)`` logits on held-out (validation) data.
        labels: ``N`` true class indices, of at least 2 classes.
        prior: ``K`` training class frequencies; ``None`` keeps the plain argmax.
        classes: The ``K`` class names (default as for :func:`fit_prior_offsets`).
        decision: ``"tuned"`` (the prior-offset rule) or ``"argmax"`` (alpha 0).
        protect: Classes whose recall the rule may not lower below the plain argmax's (default
            ``mel`` when present).
        min_recall: Target recall per class (``decision="tuned"`` only).
        target: One class's operating point, ``{"mel": {"sensitivity": 0.9}}`` or
            ``{"mel": {"specificity": 0.8}}``: after the rule, that class's offset is moved until
            its decisions reach the value on this data
            (:func:`~hamkit.metrics.operating_points.fit_operating_point`).

    Returns:
        The :class:`CalibrationFit`.

    Raises:
        DataError: Fewer than 2 classes in ``labels``.
        HamkitError: A bad ``decision``, or ``min_recall`` with ``decision="argmax"``.

    Warns:
        UserWarning: Some classes have no samples (their recall is not checked).

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> y = rng.choice(3, size=2000, p=[0.1, 0.8, 0.1])
        >>> z = 3 * (np.eye(3)[y] + rng.normal(size=(2000, 3)))  # over-confident
        >>> found = fit_calibration(z, y, prior=np.array([0.1, 0.8, 0.1]), classes=["mel", "nv", "bcc"])
        >>> found.temperature.applied, found.temperature.temperature > 2, found.rule.protected
        (True, True, ('mel',))
    """
    z, y = _check(logits, labels)
    if decision not in ("tuned", "argmax"):
        raise HamkitError(f"decision must be 'tuned' or 'argmax', got {decision!r}")
    if min_recall and decision != "tuned":
        raise HamkitError("min_recall needs decision='tuned': the plain argmax has no operating point to move")
    names = _class_names(classes, z.shape[1])
    present = np.bincount(y, minlength=z.shape[1]) > 0
    if present.sum() < 2:
        raise DataError(
            f"cannot calibrate on samples of one class only ({names[int(np.argmax(present))]}, {y.size} samples): "
            "calibrate on the validation split, with samples of at least 2 classes"
        )
    missing = tuple(name for name, seen in zip(names, present, strict=True) if not seen)
    if missing:
        warnings.warn(
            f"the calibration data has no samples of {', '.join(missing)}: their recall is not checked",
            UserWarning,
            stacklevel=2,
        )
    temperature = choose_temperature(z, y)
    scaled = z / temperature.temperature
    log_proba = scaled - scaled.max(axis=1, keepdims=True)
    log_proba = log_proba - np.log(np.exp(log_proba).sum(axis=1, keepdims=True))
    tuned = decision == "tuned" and prior is not None
    rule = fit_prior_offsets(
        log_proba,
        y,
        prior if tuned and prior is not None else np.ones(z.shape[1]),
        alphas=None if tuned else np.zeros(1),
        classes=names,
        protect=protect,
        min_recall=min_recall,
    )
    notes = list(rule.notes)
    if decision == "tuned" and prior is None:
        notes.append("no training class frequencies: the plain argmax is kept")
    point = None
    if target:
        point = fit_operating_point(log_proba, y, rule.offsets, target, classes=names)
        notes.append(
            f"operating point: {point.cls} {point.measure} {point.target:.2f} asked for; its offset moved by "
            f"{point.shift:+.3f}, giving sensitivity {point.sensitivity:.3f} and specificity {point.specificity:.3f} "
            f"on these {int(y.size)} images"
        )
    return CalibrationFit(temperature, rule, decision, int(y.size), missing, tuple(notes), point)
