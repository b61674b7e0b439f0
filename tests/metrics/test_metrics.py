from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image
from sklearn import metrics

from hamkit.errors import DataError
from hamkit.metrics import classification_report


def predictions(random_state: int = 0, n: int = 300):
    rng = np.random.default_rng(random_state)
    y = rng.integers(0, 7, n)
    proba = rng.dirichlet(np.ones(7), n)
    proba[np.arange(n), y] += rng.random(n)  # better than chance
    proba /= proba.sum(1, keepdims=True)
    return y, proba.argmax(1), proba


def test_numbers_equal_scikit_learn():
    y, pred, proba = predictions()
    r = classification_report(y, pred, proba)
    assert r.accuracy == metrics.accuracy_score(y, pred)
    assert r.balanced_accuracy == metrics.balanced_accuracy_score(y, pred)
    p, rc, f, s = metrics.precision_recall_fscore_support(y, pred, labels=range(7), zero_division=0)
    assert np.allclose(r.precision, p) and np.allclose(r.recall, rc) and np.allclose(r.f1, f)
    assert r.support == s.tolist()
    assert r.macro["f1"] == pytest.approx(metrics.f1_score(y, pred, average="macro"))
    assert r.weighted["precision"] == pytest.approx(metrics.precision_score(y, pred, average="weighted"))
    assert r.confusion_matrix == metrics.confusion_matrix(y, pred).tolist()
    assert r.macro_roc_auc == pytest.approx(metrics.roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    assert r.melanoma_sensitivity == rc[0]
    # balanced accuracy is the mean per-class recall (ISIC 2018 Task 3)
    assert r.balanced_accuracy == pytest.approx(np.mean(rc))


def test_majority_class_predictor_is_exposed():
    y = np.array([1] * 67 + [0] * 11 + [2] * 22)
    r = classification_report(y, np.ones_like(y))
    assert r.accuracy == 0.67 and r.balanced_accuracy == pytest.approx(1 / 3)
    assert r.macro["f1"] < 0.3 and r.melanoma_sensitivity == 0.0
    assert math.isnan(r.macro_roc_auc)


def test_missing_classes_give_nan_auc_and_json_null(tmp_path):
    y = np.array([0, 0, 1, 1])
    r = classification_report(y, y, np.eye(7)[y])
    assert r.macro["f1"] == 1.0 == metrics.f1_score(y, y, average="macro")  # absent classes do not count
    assert math.isnan(r.roc_auc[3]) and r.roc_auc[0] == 1.0
    saved = json.loads(r.save(tmp_path / "r.json").read_text())
    assert saved["roc_auc"][3] is None and saved["accuracy"] == 1.0
    assert "balanced accuracy (ISIC 2018 Task 3): 1.000" in r.format_table()


def test_confusion_matrix_png(tmp_path):
    y, pred, proba = predictions(1)
    path = classification_report(y, pred, proba).plot_confusion_matrix(tmp_path / "cm.png")
    assert Image.open(path).format == "PNG"


def test_bad_inputs():
    with pytest.raises(DataError, match="no predictions"):
        classification_report([], [])
    with pytest.raises(DataError, match="3 true labels but 2"):
        classification_report([0, 1, 2], [0, 1])
    with pytest.raises(DataError, match="class indices"):
        classification_report([0, 9], [0, 1])
    with pytest.raises(DataError, match="shape"):
        classification_report([0, 1], [0, 1], np.ones((2, 3)))
