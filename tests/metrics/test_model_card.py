"""A stated operating point saved with the model and used by predict; the model card in every saved
folder and ONNX export; hamkit evaluate's at-a-glance block, operating points, subgroups and gallery."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hamkit import LesionClassifier
from hamkit.cli.main import main
from hamkit.data.dataset import SkinDataset
from hamkit.model_card import describe_training_data

LICENCE = "CC BY-NC-SA 4.0 (stated for this test)"


@pytest.fixture(scope="module")
def calibrated(synthetic, tmp_path_factory) -> tuple[Path, LesionClassifier]:
    """A tiny classifier fitted for one epoch, calibrated to melanoma sensitivity 0.9 on val, saved."""
    split_csv = synthetic.root / "split.csv"
    clf = LesionClassifier("resnet18", image_size=32, pretrained=False, device="cpu")
    clf.set_params(recipe__epochs=1, recipe__batch_size=32, recipe__random_state=0).fit(
        synthetic.root, split_csv=split_csv, num_workers=0, progress=False, data_licence=LICENCE
    )
    clf.calibrate(synthetic.root, split_csv=split_csv, target={"mel": {"sensitivity": 0.9}})
    folder = tmp_path_factory.mktemp("card") / "model"
    clf.save(folder)
    return folder, clf


def test_the_operating_point_is_saved_and_predict_decides_at_it(calibrated, synthetic):
    folder, clf = calibrated
    point = clf.calibration_["operating_point"]
    assert point["class"] == "mel" and point["measure"] == "sensitivity" and point["target"] == 0.9
    assert point["val_sensitivity"] >= 0.9
    model = LesionClassifier.load(folder, device="cpu")
    assert model.calibration_["operating_point"] == point
    val = SkinDataset.from_folder(synthetic.root, split_csv=synthetic.root / "split.csv", split="val")
    decided = model.predict([str(p) for p in val.paths])
    mel = val.labels == 0
    assert np.mean(decided[mel] == 0) == pytest.approx(point["val_sensitivity"])
    assert np.mean(decided[~mel] != 0) == pytest.approx(point["val_specificity"])
    assert np.mean(decided[mel] == 0) >= 0.9  # the target holds after save and load


def test_every_saved_folder_carries_the_card(calibrated, synthetic):
    folder, clf = calibrated
    card = json.loads((folder / "model_card.json").read_text())
    assert card["licence"]["data"] == LICENCE and card["data"]["licence_source"] == "stated by the user"
    assert card["licence"]["weights"] == "none (random initialisation)"
    assert card["split"]["sha256"] and card["data"]["images"]["train"] == len(
        SkinDataset.from_folder(synthetic.root, split_csv=synthetic.root / "split.csv", split="train")
    )
    assert card["calibration"]["operating_point"]["target"] == 0.9
    page = (folder / "MODEL_CARD.md").read_text()
    assert LICENCE in page and "random initialisation" in page and "operating point mel sensitivity 0.90" in page
    # without a stated licence the synthetic data is recognised for what it is
    train = SkinDataset.from_folder(synthetic.root, split_csv=synthetic.root / "split.csv", split="train")
    assert "synthetic" in describe_training_data(train)["licence"]


def test_evaluate_shows_operating_points_subgroups_and_writes_a_card(calibrated, synthetic, tmp_path, capsys):
    folder, _ = calibrated
    out = tmp_path / "eval"
    argv = ["evaluate", str(folder), "--data", str(synthetic.root), "--split-csv", str(synthetic.root / "split.csv")]
    assert main([*argv, "--out", str(out), "--by", "localization", "--quiet", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("at a glance") and "mel sensitivity 0.90 set on the validation split" in text
    assert "sensitivity at specificity 0.80" in text and "by dx_type:" in text and "by age:" in text
    report = json.loads((out / "report.json").read_text())
    glance = report["at_a_glance"]
    for key in ("melanoma_sensitivity_at_specificity_0.80", "melanoma_sensitivity_at_specificity_0.90"):
        assert key in glance and key in glance["intervals"]
    assert set(report["subgroups"]["tables"]) == {"sex", "age", "localization", "dx_type"}
    assert report["operating_points"]["mel"]["values"]["partial_auc"] <= 0.2
    assert all((out / name).is_file() for name in ("roc_curves.png", "mistakes.png", "MODEL_CARD.md"))
    card = json.loads((out / "model_card.json").read_text())
    assert card["evaluation"]["at_a_glance"] == glance
    assert "By localization" in (out / "MODEL_CARD.md").read_text()
    assert main([*argv, "--by", "hospital", "--quiet", "--device", "cpu"]) == 1
    assert "no column hospital" in capsys.readouterr().err


def test_the_gallery_says_when_captum_is_missing(calibrated, synthetic, tmp_path, monkeypatch):
    import hamkit.classify.explain as explain

    _, model = calibrated
    test = SkinDataset.from_folder(synthetic.root, split_csv=synthetic.root / "split.csv", split="test")
    proba = model.predict_proba(test)
    decided = model.decide(proba)
    chosen = [int(i) for i in np.flatnonzero(decided != test.labels)[:3]]

    def missing(*args, **kwargs):
        raise ImportError("No module named 'captum'")

    monkeypatch.setattr(explain, "class_activation_maps", missing)
    png, note = explain.costliest_mistakes_figure(
        model, test.paths, test.image_ids, chosen, test.labels, decided, proba, tmp_path / "m.png"
    )
    assert png.is_file() and note == explain.CAPTUM_MISSING


def test_grad_cam_maps_come_from_captum(calibrated, synthetic):
    pytest.importorskip("captum")
    import torch

    from hamkit.classify.explain import class_activation_maps

    _, model = calibrated
    images = torch.randn(3, 3, 32, 32)
    maps = class_activation_maps(model._check_fitted(), images, [0, 1, 2])
    assert maps.shape == (3, 32, 32) and maps.min() >= 0 and maps.max() <= 1 and maps.max() > 0


def test_the_onnx_export_carries_the_card_and_prints_the_licence(calibrated, tmp_path, capsys):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    folder, _ = calibrated
    assert main(["export", str(folder), "--out", str(tmp_path / "clf.onnx"), "--opset", "17"]) == 0
    printed = capsys.readouterr().out
    assert f"inherited licence (model card: clf.MODEL_CARD.md): data: {LICENCE}" in printed
    card = json.loads((tmp_path / "clf.model_card.json").read_text())
    assert card["model"]["export"]["file"] == "clf.onnx" and card["licence"]["data"] == LICENCE
    assert (tmp_path / "clf.MODEL_CARD.md").is_file()
