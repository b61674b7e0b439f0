"""Cluster-bootstrap intervals: lesions are resampled whole, and the numbers match scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from hamkit.metrics.bootstrap import (
    bootstrap_groups,
    classification_intervals,
    mean_intervals,
    percentile_interval,
)


def test_resamples_take_whole_groups():
    groups = ["a", "a", "a", "b", "c", "c"]
    for index in bootstrap_groups(groups, n_resamples=50, random_state=3):
        drawn = [groups[i] for i in index]
        for g in set(drawn):
            assert drawn.count(g) % groups.count(g) == 0  # every image of a drawn lesion, each time
        assert len(set(drawn)) <= 3


def test_same_seed_same_resamples():
    a = bootstrap_groups(list("aabbcd"), 20, random_state=1)
    b = bootstrap_groups(list("aabbcd"), 20, random_state=1)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))


def test_intervals_cover_the_estimate_and_use_sklearn_definitions():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    pred = np.where(rng.random(400) < 0.7, y, rng.integers(0, 4, 400))
    groups = [f"L{i // 2}" for i in range(400)]
    found = classification_intervals(y, pred, groups, 4, mel=1, n_resamples=300)
    bal = balanced_accuracy_score(y, pred)
    f1 = f1_score(y, pred, average="macro")
    assert found["balanced_accuracy"][0] < bal < found["balanced_accuracy"][1]
    assert found["macro_f1"][0] < f1 < found["macro_f1"][1]
    assert 0.05 < found["accuracy"][1] - found["accuracy"][0] < 0.2
    assert set(found) == {"accuracy", "balanced_accuracy", "macro_f1", "melanoma_sensitivity"}


def test_correlated_photos_of_few_lesions_give_wider_intervals():
    rng = np.random.default_rng(0)
    lesion_effect = np.repeat(rng.normal(size=10), 20)  # 10 lesions, 20 similar photos each
    scores = 0.8 + 0.1 * lesion_effect + 0.01 * rng.normal(size=200)
    many = mean_intervals({"dice": scores}, [str(i) for i in range(200)], n_resamples=400)["dice"]
    few = mean_intervals({"dice": scores}, [str(i // 20) for i in range(200)], n_resamples=400)["dice"]
    assert (few[1] - few[0]) > 3 * (many[1] - many[0])


def test_percentile_interval_ignores_nan():
    assert percentile_interval(np.array([np.nan, 1.0, 1.0])) == (1.0, 1.0)
    assert np.isnan(percentile_interval(np.array([np.nan]))[0])
    with pytest.raises(Exception, match="no samples"):
        bootstrap_groups([])
