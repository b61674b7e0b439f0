"""Segmentation metrics against hand-computed values, empty-mask edge cases, reports and files."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest

from hamkit.errors import DataError
from hamkit.metrics import (
    SegmentationReport,
    confusion_counts,
    dice_score,
    iou_score,
    report_from_counts,
    scores_from_counts,
    segmentation_report,
    thresholded_jaccard,
)

TRUTH = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]], dtype=bool)
PRED = np.array([[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]], dtype=bool)
# tp = 2 (column 1), fp = 2 (column 2), fn = 2 (column 0), tn = 6


def test_counts_dice_iou_and_pixel_accuracy_by_hand():
    assert confusion_counts(PRED, TRUTH).tolist() == [[2, 2, 2, 6]]
    assert dice_score(PRED, TRUTH).tolist() == [pytest.approx(2 * 2 / (2 * 2 + 2 + 2))]  # 0.5
    assert iou_score(PRED, TRUTH).tolist() == [pytest.approx(2 / 6)]
    scores = scores_from_counts(confusion_counts(PRED, TRUTH))
    assert scores["pixel_accuracy"].tolist() == [pytest.approx(8 / 12)]
    assert dice_score(TRUTH, TRUTH).tolist() == [1.0] and iou_score(TRUTH, TRUTH).tolist() == [1.0]


def test_empty_mask_conventions():
    empty = np.zeros_like(TRUTH)
    assert dice_score(empty, empty).tolist() == [1.0]  # both empty: perfect
    assert iou_score(empty, empty).tolist() == [1.0]
    assert dice_score(PRED, empty).tolist() == [0.0]  # lesion predicted where there is none
    assert iou_score(empty, TRUTH).tolist() == [0.0]  # lesion missed entirely
    assert scores_from_counts(confusion_counts(empty, empty))["pixel_accuracy"].tolist() == [1.0]


def test_stacks_are_scored_per_image_not_pooled():
    stack_pred = np.stack([PRED, np.zeros_like(PRED), TRUTH])
    stack_true = np.stack([TRUTH, np.zeros_like(TRUTH), TRUTH])
    assert dice_score(stack_pred, stack_true).tolist() == pytest.approx([0.5, 1.0, 1.0])
    assert iou_score(stack_pred, stack_true).tolist() == pytest.approx([1 / 3, 1.0, 1.0])


def test_isic_thresholded_jaccard():
    assert thresholded_jaccard([0.9, 0.64, 0.65]) == pytest.approx((0.9 + 0.0 + 0.65) / 3)
    assert thresholded_jaccard([0.5, 0.1]) == 0.0
    assert math.isnan(thresholded_jaccard([]))
    assert thresholded_jaccard([0.7, 0.8], threshold=0.75) == pytest.approx(0.4)


def test_report_from_masks_of_different_sizes():
    big_t = np.zeros((6, 8), bool)
    big_t[1:5, 2:6] = True  # 16 px
    big_p = np.zeros((6, 8), bool)
    big_p[1:5, 3:7] = True  # overlap 12, union 20
    report = segmentation_report(
        [TRUTH, big_t, np.zeros((2, 2), bool)],
        [PRED, big_p, np.zeros((2, 2), bool)],
        ["a", "b", "c"],
        threshold=0.5,
        postprocess="largest",
    )
    assert report.n_images == 3 and report.image_ids == ["a", "b", "c"]
    assert report.dice == pytest.approx([0.5, 24 / 32, 1.0])
    assert report.iou == pytest.approx([1 / 3, 12 / 20, 1.0])
    assert report.true_area == [4, 16, 0] and report.pred_area == [4, 16, 0]
    assert report.mean_dice == pytest.approx((0.5 + 0.75 + 1.0) / 3)
    assert report.thresholded_jaccard == pytest.approx((0 + 0 + 1.0) / 3)  # 1/3 and 0.6 are below 0.65
    assert report.pixel_accuracy[1] == pytest.approx((12 + 48 - 20) / 48)
    assert report.classification is None and "mean Dice" in str(report)


def test_report_errors_name_the_problem():
    with pytest.raises(DataError, match="no masks"):
        segmentation_report([], [])
    with pytest.raises(DataError, match="2 ground-truth masks but 1 predictions"):
        segmentation_report([TRUTH, TRUTH], [PRED])
    with pytest.raises(DataError, match="image b: prediction"):
        segmentation_report([TRUTH, TRUTH], [PRED, PRED[:2]], ["a", "b"])
    with pytest.raises(DataError, match="same size"):
        confusion_counts(PRED, TRUTH[:2])
    with pytest.raises(DataError, match="no images"):
        report_from_counts([], np.zeros((0, 4)))


def _report_with_classes() -> SegmentationReport:
    truths = np.stack([TRUTH, TRUTH, TRUTH])
    preds = np.stack([PRED, TRUTH, np.zeros_like(TRUTH)])
    return segmentation_report(truths, preds, ["x1", "x2", "x3"], labels=[0, 1, -1], classes=["mel", "nv"])


def test_classification_is_joined_by_image_id_not_position():
    report = _report_with_classes()
    # class predictions come in another order, with an extra image the report does not have
    joined = report.with_classification(
        ["x3", "extra", "x2", "x1"], [1, 0, 1, 0], proba=np.array([[0.2, 0.8], [0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    )
    assert joined.predicted == [0, 1, 1]
    assert joined.proba == [[0.6, 0.4], [0.3, 0.7], [0.2, 0.8]]
    assert joined.classification is not None
    assert joined.classification.n_samples == 2  # x3 has no known label
    assert joined.classification.accuracy == 1.0
    rows = {row["image_id"]: row for row in joined.per_image_rows()}
    assert rows["x1"]["label"] == "mel" and rows["x1"]["predicted"] == "mel" and rows["x1"]["correct"] == 1
    assert rows["x3"]["label"] == "" and rows["x3"]["correct"] == "" and rows["x3"]["p_nv"] == 0.8
    assert rows["x2"]["dice"] == 1.0 and rows["x3"]["dice"] == 0.0
    with pytest.raises(DataError, match="no class prediction: x2"):
        report.with_classification(["x1", "x3"], [0, 1])


def test_csv_and_json_outputs(tmp_path):
    report = _report_with_classes().with_classification(
        ["x1", "x2", "x3"], [0, 0, 1], proba=np.array([[0.9, 0.1], [0.6, 0.4], [0.1, 0.9]])
    )
    csv_path = report.save_csv(tmp_path / "out" / "per_image.csv")
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    assert [r["image_id"] for r in rows] == ["x1", "x2", "x3"]
    assert list(rows[0]) == [
        "image_id",
        "dice",
        "iou",
        "jaccard_thresholded",
        "pixel_accuracy",
        "true_area",
        "pred_area",
        "label",
        "predicted",
        "correct",
        "p_mel",
        "p_nv",
    ]
    assert float(rows[0]["dice"]) == pytest.approx(0.5) and rows[1]["correct"] == "0"
    json_path = report.save(tmp_path / "out" / "report.json")
    data = json.loads(json_path.read_text())
    assert data["summary"]["n_images"] == 3
    assert data["summary"]["mean_dice"] == pytest.approx(report.mean_dice)
    assert data["summary"]["balanced_accuracy"] == pytest.approx(0.5)  # mel right, nv wrong
    assert data["classification"]["confusion_matrix"] == [[1, 0], [1, 0]]
    assert data["classification"]["melanoma_sensitivity"] == 1.0
    assert len(data["per_image"]) == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["per_image.csv", "report.json"]  # no temp files
    plain = segmentation_report([TRUTH], [PRED])
    assert json.loads(plain.to_json())["summary"]["threshold"] is None  # NaN written as null
    assert plain.to_csv().splitlines()[0] == "image_id,dice,iou,jaccard_thresholded,pixel_accuracy,true_area,pred_area"
