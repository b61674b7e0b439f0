"""Subgroup tables, the at-a-glance summary and the model card, on small fixed examples."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from hamkit.errors import DataError
from hamkit.metrics.clinical import (
    at_a_glance,
    clinical_summary,
    costliest_mistakes,
    glance_lines,
    operating_point_lines,
)
from hamkit.metrics.subgroups import age_band, metadata_columns, subgroup_means, subgroup_tables
from hamkit.model_card import HAM10000_LICENCE, build_card, card_markdown, data_licence, describe_split, weights_licence


def _decisions(random_state: int = 0, n: int = 240):
    rng = np.random.default_rng(random_state)
    y = rng.choice(3, size=n, p=[0.3, 0.5, 0.2])
    pred = np.where(rng.random(n) < 0.7, y, rng.integers(0, 3, n))
    groups = [f"L{i // 2}" for i in range(n)]  # two images per lesion
    sex = np.where(np.arange(n) % 4 < 2, "male", "female").astype(object)  # both images of a lesion share a sex
    return y, pred, groups, sex


def test_subgroup_cells_match_a_direct_computation():
    y, pred, groups, sex = _decisions()
    sex[:4] = "unknown"  # 2 lesions: a small cell
    found = subgroup_tables({"sex": list(sex)}, y, pred, groups, classes=["mel", "nv", "bcc"], n_resamples=200)
    rows = {r["value"]: r for r in found["tables"]["sex"]["rows"]}
    assert list(rows)[-1] == "unknown" and rows["unknown"]["small"] and not rows["male"]["small"]
    for value, row in rows.items():
        cell = sex == value
        t, p = y[cell], pred[cell]
        assert row["n"] == cell.sum() and row["lesions"] == len({g for g, c in zip(groups, cell) if c})
        recalls = [np.mean(p[t == k] == k) for k in range(3) if (t == k).any()]
        assert row["values"]["balanced_accuracy"] == pytest.approx(np.mean(recalls))
        assert row["values"]["accuracy"] == pytest.approx(np.mean(t == p))
        if (t == 0).any():
            assert row["values"]["melanoma_sensitivity"] == pytest.approx(np.mean(p[t == 0] == 0))
        assert row["values"]["melanoma_specificity"] == pytest.approx(np.mean(p[t != 0] != 0))
        if not row["small"]:
            low, high = row["intervals"]["balanced_accuracy"]
            assert low < row["values"]["balanced_accuracy"] < high
    gap = found["largest_gap"]["balanced_accuracy"]
    scores = {v: rows[v]["values"]["balanced_accuracy"] for v in ("male", "female")}
    assert gap["column"] == "sex" and gap["gap"] == pytest.approx(abs(scores["male"] - scores["female"]))
    assert {gap["low"]["value"], gap["high"]["value"]} == {"male", "female"}  # the small cell is left out


def test_age_bands_and_the_metadata_reader(tmp_path):
    assert [age_band(a) for a in (0, 29.9, 30, 49, 50, 69.5, 70, 85, "", "x", -1)] == [
        "<30",
        "<30",
        "30-49",
        "30-49",
        "50-69",
        "50-69",
        ">=70",
        ">=70",
        "unknown",
        "unknown",
        "unknown",
    ]
    csv_path = tmp_path / "HAM10000_metadata.csv"
    csv_path.write_text(
        "lesion_id,image_id,dx,dx_type,age,sex,localization,site\n"
        "L1,I1,mel,histo,35.0,male,back,A\nL2,I2,nv,follow_up,,female,,B\n"
    )
    found = metadata_columns(csv_path, ["I2", "I1", "I3"], ["sex", "age", "localization", "dx_type", "site"])
    assert found == {
        "sex": ["female", "male", "unknown"],
        "age": ["unknown", "30-49", "unknown"],
        "localization": ["unknown", "back", "unknown"],
        "dx_type": ["follow_up", "histo", "unknown"],
        "site": ["B", "A", "unknown"],
    }
    with pytest.raises(DataError, match=r"HAM10000_metadata.csv: no column hospital .*--by"):
        metadata_columns(csv_path, ["I1"], ["sex", "hospital"])


def test_subgroup_means_of_segmentation_scores():
    rng = np.random.default_rng(1)
    dice = rng.random(40)
    site = np.where(np.arange(40) < 30, "back", "face")
    found = subgroup_means({"site": list(site)}, {"dice": dice}, [str(i) for i in range(40)], n_resamples=100)
    rows = {r["value"]: r for r in found["tables"]["site"]["rows"]}
    assert rows["back"]["values"]["dice"] == pytest.approx(dice[:30].mean())
    assert rows["face"]["values"]["dice"] == pytest.approx(dice[30:].mean())
    assert found["largest_gap"]["dice"]["gap"] == pytest.approx(abs(dice[:30].mean() - dice[30:].mean()))


def test_clinical_summary_numbers_and_text():
    y, pred, groups, sex = _decisions(2)
    rng = np.random.default_rng(2)
    z = 2 * np.eye(3)[y] + rng.normal(size=(len(y), 3))
    proba = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    found = clinical_summary(
        y, proba, pred, groups, classes=["mel", "nv", "bcc"], columns={"sex": list(sex)}, n_resamples=100
    )
    glance = found["at_a_glance"]
    assert glance["melanoma_sensitivity"] == pytest.approx(np.mean(pred[y == 0] == 0))
    assert glance["melanoma_specificity"] == pytest.approx(np.mean(pred[y != 0] != 0))
    assert glance["melanoma_partial_auc"] == found["operating_points"]["mel"]["values"]["partial_auc"]
    assert glance["lesions"] == 120 and glance["largest_gap"] == found["subgroups"]["largest_gap"]
    text = "\n".join(glance_lines(found) + operating_point_lines(found))
    assert "sensitivity at specificity 0.80" in text and "Melanoma (mel)" in text and "by sex:" in text
    json.dumps(found)  # JSON-ready
    assert (
        at_a_glance(y, pred, groups, classes=["a", "b", "c"], decision="x", n_resamples=0)["melanoma_sensitivity"]
        is None
    )


def test_costliest_mistakes_put_melanoma_called_naevus_first():
    classes = ["mel", "nv", "bcc", "bkl"]
    y = np.array([1, 2, 0, 0, 0, 3])
    pred = np.array([0, 1, 3, 1, 1, 3])
    proba = np.full((6, 4), 0.1)
    proba[3, 1], proba[4, 1] = 0.6, 0.9
    assert costliest_mistakes(y, pred, proba, classes) == [4, 3, 2, 1, 0]


def test_model_card_licences_and_split(tmp_path):
    assert data_licence(tmp_path)["licence"].startswith("unknown")
    (tmp_path / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx\n")
    assert data_licence(tmp_path)["licence"] == HAM10000_LICENCE and "CC BY-NC-SA 4.0" in HAM10000_LICENCE
    (tmp_path / "duplicates_groundtruth.csv").write_text("")
    assert "synthetic" in data_licence(tmp_path)["licence"]
    assert weights_licence("ImageNet weights installed with hamkit (in1k)", "timm:tf_efficientnet_lite0").startswith(
        "Apache-2.0"
    )
    assert "not recorded" in weights_licence("pretrained weights 'IMAGENET1K_V1' (downloaded once)", "resnet18")
    split = tmp_path / "split.csv"
    split.write_text("image_id,lesion_id,dx,split,group\nI1,L1,nv,train,g1\nI2,L2,nv,train,g1\nI3,L3,mel,test,g2\n")
    facts = describe_split(split)
    assert facts["sha256"] == hashlib.sha256(split.read_bytes()).hexdigest()
    assert (facts["groups"], facts["duplicate_groups_joining_lesions"], facts["lesions_in_those_groups"]) == (2, 1, 2)
    config = {
        "kind": "LesionClassifier",
        "backbone": "timm:tf_efficientnet_lite0",
        "initial_weights": "ImageNet weights installed with hamkit (in1k)",
        "classes": ["mel", "nv"],
        "training_data": {"licence": HAM10000_LICENCE, "licence_source": "recognised", "split": facts},
    }
    card = build_card(config)
    assert card["licence"]["data"] == HAM10000_LICENCE and card["licence"]["weights"].startswith("Apache-2.0")
    page = card_markdown(card)
    assert "CC BY-NC-SA 4.0" in page and "Apache-2.0" in page and facts["sha256"] in page
    assert "Not evaluated on a test split yet" in page
