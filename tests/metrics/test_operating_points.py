"""Operating points and the ISIC 2024 partial AUC, each against an independent computation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from hamkit.errors import DataError, HamkitError
from hamkit.metrics.operating_points import (
    decision_point,
    fit_operating_point,
    operating_points,
    partial_auc,
    sensitivity_at_specificity,
    specificity_at_sensitivity,
)


def _example(random_state: int = 0, n: int = 400, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(random_state)
    y = (rng.random(n) < 0.2).astype(int)
    s = 1 / (1 + np.exp(-(1.5 * y + rng.normal(size=n))))
    return y, (np.round(s, 2) if ties else s)


def _pauc_by_segments(y: np.ndarray, s: np.ndarray, min_tpr: float) -> float:
    """The area between the ROC curve and 'sensitivity = min_tpr', integrated over sensitivity
    segment by segment on the unflipped curve: the integral of specificity d(sensitivity) from
    min_tpr to 1, exact for a piecewise-linear curve."""
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    total = 0.0
    for (f0, t0), (f1, t1) in zip(zip(fpr[:-1], tpr[:-1]), zip(fpr[1:], tpr[1:])):
        lo, hi = max(t0, min_tpr), min(t1, 1.0)
        if hi <= lo or t1 == t0:
            continue
        fa = f0 + (f1 - f0) * (lo - t0) / (t1 - t0)
        fb = f0 + (f1 - f0) * (hi - t0) / (t1 - t0)
        total += (hi - lo) * ((1 - fa) + (1 - fb)) / 2
    return total


def _pauc_by_mcclish(y: np.ndarray, s: np.ndarray, min_tpr: float) -> float:
    """scikit-learn's standardised partial AUC (McClish) of the flipped problem, unstandardised."""
    max_fpr = 1 - min_tpr
    standard = roc_auc_score(1 - y, -s, max_fpr=max_fpr)
    low, high = 0.5 * max_fpr**2, max_fpr
    return low + (high - low) * (2 * standard - 1)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("min_tpr", [0.8, 0.9, 0.5])
def test_partial_auc_agrees_with_two_independent_computations(ties, min_tpr):
    y, s = _example(1, ties=ties)
    found = partial_auc(y, s, min_tpr=min_tpr)
    assert 0 < found < 1 - min_tpr
    assert found == pytest.approx(_pauc_by_segments(y, s, min_tpr), abs=1e-6)
    assert found == pytest.approx(_pauc_by_mcclish(y, s, min_tpr), abs=1e-6)


@pytest.mark.parametrize("random_state", [0, 1, 2, 3])
def test_the_bootstrap_numbers_equal_scikit_learn_and_the_scorer(random_state):
    from hamkit.metrics.operating_points import _point_values

    y, s = _example(random_state, n=150, ties=random_state % 2 == 1)
    values = _point_values(y == 1, s)
    assert values["auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert values["partial_auc"] == pytest.approx(partial_auc(y, s), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    sens, spec = tpr, 1 - fpr
    assert values["sensitivity_at_specificity_0.80"] == pytest.approx(sens[spec >= 0.8].max())


def test_partial_auc_fixed_example():
    # melanomas at 0.9, 0.8, 0.35, 0.3, 0.2; others at 0.7, 0.5, 0.4, 0.1, 0.05: sensitivity 0.8
    # needs the threshold 0.3 (specificity 0.4), sensitivity 1.0 the threshold 0.2 (0.4)
    y = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.35, 0.3, 0.2, 0.7, 0.5, 0.4, 0.1, 0.05])
    assert partial_auc(y, s) == pytest.approx(0.2 * 0.4, abs=1e-12)
    assert partial_auc(y, 1 - s + (y == 1) * 2) == pytest.approx(0.2)  # every positive above every negative


def test_partial_auc_refuses_bad_input():
    with pytest.raises(DataError, match="positive and negative"):
        partial_auc([1, 1], [0.2, 0.3])
    with pytest.raises(HamkitError, match="min_tpr"):
        partial_auc([0, 1], [0.2, 0.3], min_tpr=1.0)


def _brute(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    thresholds = np.r_[np.inf, np.unique(s)]
    sens = np.array([((s >= t) & (y == 1)).sum() / (y == 1).sum() for t in thresholds])
    spec = np.array([((s < t) & (y == 0)).sum() / (y == 0).sum() for t in thresholds])
    return sens, spec, thresholds


@pytest.mark.parametrize("random_state", [0, 1, 2])
def test_sensitivity_and_specificity_at_targets_against_brute_force(random_state):
    y, s = _example(random_state, n=250, ties=random_state == 2)
    sens, spec, _ = _brute(y, s)
    for target in (0.8, 0.9, 0.95):
        found, threshold = sensitivity_at_specificity(y, s, target)
        assert found == pytest.approx(sens[spec >= target].max(), abs=1e-6)
        assert ((s >= threshold) & (y == 0)).sum() / (y == 0).sum() <= 1 - target + 1e-12
        found, threshold = specificity_at_sensitivity(y, s, target)
        assert found == pytest.approx(spec[sens >= target].max(), abs=1e-6)
        assert ((s >= threshold) & (y == 1)).sum() / (y == 1).sum() >= target - 1e-12


def test_operating_points_per_class_with_intervals():
    rng = np.random.default_rng(3)
    y = rng.choice(3, size=300, p=[0.2, 0.6, 0.2])
    z = 1.5 * np.eye(3)[y] + rng.normal(size=(300, 3))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    groups = [f"L{i // 2}" for i in range(300)]
    found = operating_points(y, p, groups, classes=["nv", "mel", "bcc"], n_resamples=200)
    assert list(found) == ["mel", "nv", "bcc"]  # melanoma first
    mel = found["mel"]
    assert mel["values"]["partial_auc"] == pytest.approx(partial_auc(y == 1, p[:, 1]))
    sens80 = mel["values"]["sensitivity_at_specificity_0.80"]
    assert sens80 == pytest.approx(sensitivity_at_specificity(y == 1, p[:, 1], 0.8)[0])
    assert sens80 >= mel["values"]["sensitivity_at_specificity_0.90"]
    for name, (low, high) in mel["intervals"].items():
        assert low <= mel["values"][name] + 1e-9 and mel["values"][name] <= high + 1e-9 and low < high, name


def test_decision_point_and_its_intervals():
    y = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    pred = np.array([0, 0, 1, 1, 1, 1, 0, 1])
    found = decision_point(y, pred, [str(i) for i in range(8)], 0, n_resamples=300)
    assert found["sensitivity"] == pytest.approx(2 / 3) and found["specificity"] == pytest.approx(4 / 5)
    low, high = found["intervals"]["sensitivity"]
    assert 0 <= low < 2 / 3 < high <= 1


@pytest.mark.parametrize("measure,value", [("sensitivity", 0.9), ("sensitivity", 0.5), ("specificity", 0.95)])
def test_fit_operating_point_reaches_the_target_tightly(measure, value):
    rng = np.random.default_rng(4)
    y = rng.choice(3, size=1500, p=[0.1, 0.8, 0.1])
    z = np.eye(3)[y] + rng.normal(size=(1500, 3))
    start = np.array([0.0, 0.3, -0.2])
    point = fit_operating_point(z, y, start, {"mel": {measure: value}}, classes=["mel", "nv", "bcc"])
    called = np.argmax(z + point.offsets, axis=1) == 0
    sens = (called & (y == 0)).sum() / (y == 0).sum()
    spec = (~called & (y != 0)).sum() / (y != 0).sum()
    assert point.offsets[1:] == pytest.approx(start[1:])
    assert (point.sensitivity, point.specificity) == pytest.approx((sens, spec))
    reached = sens if measure == "sensitivity" else spec
    assert reached >= value
    margins = (z + start)[:, 0] - np.delete(z + start, 0, axis=1).max(1)
    assert np.abs(margins + point.shift).min() > 1e-9  # no decision rests on a tie
    # tight: exactly the fewest calls that reach a sensitivity target, the most a specificity target allows
    if measure == "sensitivity":
        assert (margins[y == 0] + point.shift > 0).sum() == int(np.ceil(value * (y == 0).sum()))
    else:
        assert (margins[y != 0] + point.shift > 0).sum() == int(np.floor((1 - value) * (y != 0).sum()))


def test_fit_operating_point_refuses_bad_targets():
    z, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    for bad in ({"mel": {"recall": 0.9}}, {"xx": {"sensitivity": 0.9}}, {"mel": {"sensitivity": 1.5}}, {}):
        with pytest.raises(HamkitError, match="target"):
            fit_operating_point(z, y, np.zeros(2), bad, classes=["mel", "nv"])
    with pytest.raises(DataError, match="0 images"):
        fit_operating_point(z, np.ones(4, int), np.zeros(2), {"mel": {"sensitivity": 0.9}}, classes=["mel", "nv"])
