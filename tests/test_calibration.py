"""Temperature scaling, ECE, the prior-offset decision rule, and LesionClassifier.calibrate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from hamkit import LesionClassifier
from hamkit.calibration import (
    expected_calibration_error,
    fit_prior_offsets,
    fit_temperature,
    reliability_bins,
    softmax,
)
from hamkit.errors import DataError


def _logits(n=2000, k=4, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    return np.eye(k)[labels] * 1.5 + rng.normal(size=(n, k)), labels


def test_temperature_undoes_overconfidence_and_lowers_ece():
    z, y = _logits()
    base = fit_temperature(z, y)
    assert fit_temperature(z * 4, y) == pytest.approx(4 * base, rel=0.02)
    before = expected_calibration_error(softmax(z * 4), y)
    after = expected_calibration_error(softmax(z * 4 / fit_temperature(z * 4, y)), y)
    assert after < before / 3


def test_ece_and_bins_by_hand():
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    labels = np.array([0, 1, 0, 1])
    bins = reliability_bins(proba, labels, n_bins=10)
    assert bins.count.sum() == 4 and bins.count[8] == 2 and bins.count[5] == 1 and bins.count[6] == 1
    # bin 0.9: accuracy 0.5, gap 0.4 (x2); 0.6: gap 0.4; 0.7: gap 0.3 -> (0.8 + 0.4 + 0.3) / 4
    assert expected_calibration_error(proba, labels, n_bins=10) == pytest.approx(1.5 / 4)


def test_prior_offsets_recover_the_prior_a_balanced_model_forgot():
    rng = np.random.default_rng(1)
    prior = np.array([0.8, 0.1, 0.1])
    labels = rng.choice(3, size=3000, p=prior)
    # a "balanced" model: likelihoods without the prior, so rare classes are over-predicted
    log_lik = np.eye(3)[labels] * 1.0 + rng.normal(scale=1.0, size=(3000, 3))
    alpha, offsets = fit_prior_offsets(log_lik, labels, prior)
    assert 0 < alpha <= 1
    assert np.allclose(offsets, alpha * np.log(prior))
    # the argmax rule (alpha 0) is among the candidates, so the chosen one is at least as good on this data
    raw, tuned = log_lik.argmax(1), (log_lik + offsets).argmax(1)
    assert (tuned == labels).mean() > (raw == labels).mean()


def test_bad_inputs_are_named():
    with pytest.raises(DataError, match="class indices"):
        fit_temperature(np.zeros((3, 2)), np.array([0, 1, 2]))
    with pytest.raises(DataError, match="prior needs 2"):
        fit_prior_offsets(np.zeros((3, 2)), np.array([0, 1, 1]), np.array([1.0]))


@pytest.fixture(scope="module")
def fitted():
    torch.manual_seed(0)
    images = torch.randn(48, 3, 32, 32)
    labels = torch.arange(48) % 3
    images[:, 0] += labels.float()[:, None, None]  # a learnable signal
    data = TensorDataset(images, labels)
    clf = LesionClassifier(
        "mobilenet_v3_small", num_classes=3, classes=["a", "b", "c"], image_size=32, pretrained=False, device="cpu"
    )
    clf.fit(data, data, epochs=2, batch_size=16, lr=1e-3, num_workers=0, progress=False)
    return clf, data


def test_calibrate_sets_temperature_and_keeps_the_argmax(fitted):
    clf, data = fitted
    images = data.tensors[0]
    raw = clf.predict_proba(images)
    clf.calibrate(data, decision="argmax")
    calibrated = clf.predict_proba(images)
    assert clf.temperature_ > 0 and clf.prior_alpha_ == 0.0
    assert np.allclose(calibrated.sum(1), 1, atol=1e-5)
    assert (calibrated.argmax(1) == raw.argmax(1)).all()
    assert (clf.predict(images) == raw.argmax(1)).all()


def test_calibration_is_saved_and_loaded(fitted, tmp_path):
    clf, data = fitted
    clf.calibrate(data)
    clf.save(tmp_path / "m")
    loaded = LesionClassifier.load(tmp_path / "m", device="cpu")
    assert loaded.temperature_ == pytest.approx(clf.temperature_)
    assert np.allclose(loaded.class_offsets_, clf.class_offsets_)
    images = data.tensors[0]
    assert np.allclose(loaded.predict_proba(images), clf.predict_proba(images), atol=1e-6)
    assert (loaded.predict(images) == clf.predict(images)).all()


def test_calibrate_rejects_a_bad_decision(fitted):
    clf, data = fitted
    with pytest.raises(Exception, match="decision must be"):
        clf.calibrate(data, decision="best")
