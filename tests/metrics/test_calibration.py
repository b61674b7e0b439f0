"""Temperature scaling, ECE, the prior-offset decision rule, and LesionClassifier.calibrate."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from hamkit import LesionClassifier
from hamkit.errors import DataError
from hamkit.metrics.calibration import (
    choose_temperature,
    expected_calibration_error,
    fit_calibration,
    fit_prior_offsets,
    fit_temperature,
    reliability_bins,
    softmax,
)


def _logits(n=2000, k=4, random_state=0):
    rng = np.random.default_rng(random_state)
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
    clf.set_params(recipe__epochs=2, recipe__batch_size=16, recipe__lr=1e-3).fit(
        data, data, num_workers=0, progress=False
    )
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


# ---------------------------------------------------------------------------- melanoma first
def _balanced_model(n=3000, random_state=0):
    """Scores of a class-balanced model on data where mel is rare and nv common."""
    rng = np.random.default_rng(random_state)
    prior = np.array([0.1, 0.8, 0.1])
    labels = rng.choice(3, size=n, p=prior)
    return np.eye(3)[labels] + rng.normal(size=(n, 3)), labels, prior


def _brute_force(z, y, prior, candidates):
    """Per candidate alpha: (old objective, recall per class), by the definitions of hamkit.metrics.bootstrap."""
    from hamkit.metrics.bootstrap import metrics_from_confusion

    log_prior = np.log(prior / prior.sum())
    found = {}
    for alpha in candidates:
        pred = np.argmax(z + alpha * log_prior, axis=1)
        matrix = np.bincount(y * 3 + pred, minlength=9).reshape(3, 3)
        metrics = metrics_from_confusion(matrix)
        found[float(alpha)] = (
            (metrics["balanced_accuracy"] + metrics["macro_f1"]) / 2,
            np.diag(matrix) / matrix.sum(axis=1),
        )
    return found


CANDIDATES = np.round(np.linspace(-1, 1, 21), 2)


def test_the_rule_may_not_lower_melanoma_recall_below_the_argmax():
    z, y, prior = _balanced_model()
    brute = _brute_force(z, y, prior, CANDIDATES)
    raw_mel = brute[0.0][1][0]
    old_alpha = max(sorted(brute, key=abs), key=lambda a: brute[a][0] - 1e-12 * abs(a))
    assert brute[old_alpha][1][0] < raw_mel - 0.05  # the old objective's alpha costs melanoma recall

    unprotected = fit_prior_offsets(z, y, prior, classes=["mel", "nv", "bcc"], protect=())
    assert unprotected.alpha == pytest.approx(old_alpha)  # protect=() is the rule as it was

    rule = fit_prior_offsets(z, y, prior, classes=["mel", "nv", "bcc"])  # mel protected by default
    assert rule.protected == ("mel",) and rule.unconstrained_alpha == pytest.approx(old_alpha)
    assert rule.alpha != pytest.approx(old_alpha)
    assert rule.recall_rule["mel"] >= rule.recall_raw["mel"] == pytest.approx(raw_mel)
    allowed = [a for a in CANDIDATES if brute[float(a)][1][0] >= raw_mel - 1e-12]
    assert rule.score == pytest.approx(max(brute[float(a)][0] for a in allowed))
    assert any("mel recall" in note and "was chosen" in note for note in rule.notes)
    alpha, offsets = rule  # unpacks as before
    assert alpha == rule.alpha and np.allclose(offsets, rule.alpha * np.log(prior / prior.sum()))
    # with HAM10000's seven classes, mel (class 0) is protected without naming the classes
    z7 = np.hstack([z, np.full((len(y), 4), -9.0)])
    prior7 = np.r_[prior, np.full(4, 1e-3)]
    assert fit_prior_offsets(z7, y, prior7).protected == ("mel",)


def test_a_target_recall_is_reached_when_some_alpha_reaches_it():
    z, y, prior = _balanced_model()
    brute = _brute_force(z, y, prior, CANDIDATES)
    rule = fit_prior_offsets(z, y, prior, classes=["mel", "nv", "bcc"], min_recall={"mel": 0.7})
    assert rule.targets_met == {"mel": True} and rule.recall_rule["mel"] >= 0.7
    reaching = [float(a) for a in CANDIDATES if brute[float(a)][1][0] >= 0.7]
    assert rule.score == pytest.approx(max(brute[a][0] for a in reaching))  # the best of those that reach it
    assert rule.min_recall == {"mel": 0.7}


def test_an_unreachable_target_takes_the_highest_recall_and_says_so():
    z, y, prior = _balanced_model()
    brute = _brute_force(z, y, prior, CANDIDATES)
    rule = fit_prior_offsets(z, y, prior, classes=["mel", "nv", "bcc"], min_recall={0: 0.99})
    assert rule.targets_met == {"mel": False}
    assert rule.recall_rule["mel"] == pytest.approx(max(r[1][0] for r in brute.values()))
    assert any("no alpha reaches the target recall 0.99 of mel" in note for note in rule.notes)
    with pytest.raises(Exception, match="unknown class 'melanoma'"):
        fit_prior_offsets(z, y, prior, classes=["mel", "nv", "bcc"], min_recall={"melanoma": 0.9})
    with pytest.raises(Exception, match=r"must be in \[0, 1\]"):
        fit_prior_offsets(z, y, prior, classes=["mel", "nv", "bcc"], min_recall={"mel": 90})


def test_alpha_zero_is_always_a_candidate_and_ties_go_to_zero():
    z, y, prior = _balanced_model()
    rule = fit_prior_offsets(z, y, prior, alphas=[-1.0, 1.0], classes=["mel", "nv", "bcc"])
    assert rule.alpha in (-1.0, 0.0, 1.0) and rule.recall_rule["mel"] >= rule.recall_raw["mel"]
    flat = fit_prior_offsets(z, y, np.ones(3), classes=["mel", "nv", "bcc"])  # every alpha decides alike
    assert flat.alpha == 0.0 and not flat.notes


def test_a_temperature_that_worsens_ece_is_not_applied():
    # 1,000 images right 90 % of the time at confidence 0.9 (calibrated), and 30 confidently wrong
    # ones that pull the NLL-optimal temperature up
    z = np.vstack([np.tile([np.log(9), 0.0], (1000, 1)), np.tile([12.0, 0.0], (30, 1))])
    y = np.r_[np.zeros(900, int), np.ones(130, int)]
    found = choose_temperature(z, y)
    assert found.fitted == pytest.approx(fit_temperature(z, y)) and found.fitted > 1.5
    assert found.ece_after > found.ece_before and not found.applied and found.temperature == 1.0
    # over-confident scores: the fitted temperature helps and is applied
    z2, y2 = _logits()
    helped = choose_temperature(z2 * 4, y2)
    assert helped.applied and helped.temperature == helped.fitted and helped.ece_after < helped.ece_before


def test_calibrate_keeps_t_1_when_the_fitted_one_worsens_ece(fitted, monkeypatch):
    clf, data = fitted
    clf = copy.deepcopy(clf)
    clf.calibrate(data)  # whatever it found, the record is consistent
    record = clf.calibration_
    assert record["temperature_applied"] == (record["ece_after"] <= record["ece_before"])
    assert clf.temperature_ == (record["temperature_fitted"] if record["temperature_applied"] else 1.0)
    monkeypatch.setattr("hamkit.metrics.calibration.fit_temperature", lambda logits, labels: 0.05)  # over-confident
    clf.calibrate(data)
    record = clf.calibration_
    assert clf.temperature_ == 1.0 and record["temperature_fitted"] == 0.05 and not record["temperature_applied"]
    assert record["ece_after"] > record["ece_before"]
    assert "temperature scaling not applied: T = 0.05" in record["temperature_note"]
    raw = clf.predict_proba(data.tensors[0])
    clf.__dict__.pop("temperature_")
    assert np.allclose(raw, clf.predict_proba(data.tensors[0]))  # T = 1: the network's own probabilities


def test_calibrate_refuses_one_class_and_warns_about_missing_ones(fitted):
    clf, data = fitted
    clf = copy.deepcopy(clf)
    images, labels = data.tensors
    only_a = TensorDataset(images[labels == 0], labels[labels == 0])
    with pytest.raises(DataError, match="at least 2 classes") as caught:
        clf.calibrate(only_a)
    assert "\n" not in str(caught.value) and "(a," in str(caught.value)
    with pytest.raises(DataError, match="at least 2 classes"):
        fit_calibration(np.zeros((4, 3)), np.zeros(4, dtype=int))
    no_c = TensorDataset(images[labels < 2], labels[labels < 2])
    with pytest.warns(UserWarning, match=r"no samples of c\b") as warned:
        clf.calibrate(no_c)
    assert len(warned) == 1 and "\n" not in str(warned[0].message)
    assert clf.calibration_["missing_classes"] == ["c"] and clf.calibration_["recall_raw"]["c"] is None


def test_calibrate_rejects_unknown_classes_and_targets_without_a_rule(fitted):
    clf, data = fitted
    with pytest.raises(Exception, match="unknown class 'mel'"):
        clf.calibrate(data, min_recall={"mel": 0.9})
    with pytest.raises(Exception, match="min_recall needs decision='tuned'"):
        copy.deepcopy(clf).calibrate(data, decision="argmax", min_recall={"a": 0.9})


def test_the_operating_point_is_saved_and_loaded(fitted, tmp_path):
    clf, data = fitted
    clf = copy.deepcopy(clf)
    clf.class_prior_ = np.array([0.7, 0.2, 0.1])  # an uneven training prior: alpha moves decisions
    clf.calibrate(data, protect=("b",), min_recall={"c": 0.5})
    record = clf.calibration_
    assert record["protected"] == ["b"] and record["min_recall"] == {"c": 0.5}
    assert set(record["recall_raw"]) == {"a", "b", "c"} and record["prior_alpha"] == clf.prior_alpha_
    assert record["recall_rule"]["b"] >= record["recall_raw"]["b"]
    clf.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["calibration"] == record and config["prior_alpha"] == clf.prior_alpha_
    loaded = LesionClassifier.load(tmp_path / "m", device="cpu")
    assert loaded.calibration_ == record and loaded.prior_alpha_ == clf.prior_alpha_
    assert np.allclose(loaded.class_offsets_, clf.class_offsets_) and loaded.temperature_ == clf.temperature_
    images = data.tensors[0]
    assert (loaded.predict(images) == clf.predict(images)).all()
    assert (loaded.predict(images) == loaded.decide(loaded.predict_proba(images))).all()
    # a new fit forgets the operating point
    clf.set_params(recipe__epochs=1, recipe__batch_size=16).fit(data, data, num_workers=0, progress=False)
    assert not hasattr(clf, "calibration_") and not hasattr(clf, "class_offsets_")


def test_evaluation_warns_about_the_recall_the_rule_costs_and_the_report_shows_it():
    from hamkit.metrics import classification_report
    from hamkit.pipeline.report import _evaluation_html
    from hamkit.pipeline.scoring import _rule_text, _warnings

    classes = ["mel", "nv", "bcc"]
    y = np.array([0] * 10 + [1] * 10 + [2] * 20)
    raw = classification_report(y, y.copy(), classes=classes)
    pred = y.copy()
    pred[:2] = 1  # the rule loses 2 of 10 melanomas: 20 points
    pred[10] = 2  # and 1 of 10 nevi: 10 points
    pred[20] = 0  # and 1 of 20 bcc: 5 points, not more than 5, no warning
    rule = classification_report(y, pred, classes=classes)
    calibration = {
        "temperature_applied": False,
        "temperature_fitted": 2.5,
        "ece_before": 0.04,
        "ece_after": 0.19,
        "protected": ["mel"],
        "min_recall": {"mel": 0.95},
        "targets_met": {"mel": False},
        "recall_rule": {"mel": 0.9},
        "missing_classes": [],
    }
    lines = _warnings(raw, rule, calibration)
    assert lines[0].startswith("melanoma (mel): test recall 0.800") and "20.0 points below" in lines[0]
    assert any(line.startswith("melanocytic nevus (nv)") for line in lines)
    assert not any("(bcc)" in line for line in lines)
    assert any("temperature scaling not applied" in line and "0.040 to 0.190" in line for line in lines)
    assert any("no alpha reached the target recall 0.95" in line for line in lines)
    assert not _warnings(raw, raw, {"temperature_applied": True})
    text = _rule_text(calibration)
    assert "melanoma (mel) recall is protected" in text
    page = _evaluation_html(
        {
            "warnings": lines,
            "argmax": {"accuracy": 1.0, "balanced_accuracy": 1.0, "macro_f1": 1.0, "melanoma_sensitivity": 1.0},
            "decision": {"alpha": 0.3, "rule": text, "protected": ["mel"], "notes": []},
            "accuracy": 0.87,
            "balanced_accuracy": 0.87,
            "macro": {"f1": 0.87},
            "melanoma_sensitivity": 0.8,
            "calibration": {
                "temperature": 1.0,
                "temperature_fitted": 2.5,
                "temperature_applied": False,
                "val_ece_before": 0.04,
                "val_ece_after": 0.19,
                "ece_before": 0.05,
                "ece_after": 0.05,
            },
        }
    )
    assert "<div class='warn'><b>Warnings</b>" in page and "20.0 points below" in page
    assert "not applied" in page and "mel (melanoma)" in page and "decision rule chosen on val" in page
