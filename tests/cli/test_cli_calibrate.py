"""hamkit calibrate (a saved classifier calibrated as the API calibrates it) and what hamkit evaluate
adds to the report of a classifier: lesion-bootstrap intervals, the raw argmax beside the saved
rule, ROC curves and per-image predictions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from hamkit import LesionClassifier
from hamkit.cli.main import main
from hamkit.data.dataset import SkinDataset


@pytest.fixture(scope="module")
def trained(synthetic, tmp_path_factory) -> Path:
    """A tiny classifier fitted for one epoch and saved, not calibrated."""
    clf = LesionClassifier("resnet18", image_size=32, pretrained=False, device="cpu")
    split_csv = synthetic.root / "split.csv"
    clf.set_params(recipe__epochs=1, recipe__batch_size=32, recipe__random_state=0).fit(
        synthetic.root, split_csv=split_csv, num_workers=0, progress=False
    )
    return clf.save(tmp_path_factory.mktemp("calibrate") / "model")


def test_calibrate_saves_what_the_api_fits(trained, synthetic, tmp_path, capsys) -> None:
    split_csv = str(synthetic.root / "split.csv")
    out = tmp_path / "calibrated"
    argv = ["calibrate", str(trained), "--data", str(synthetic.root), "--split-csv", split_csv]
    assert main([*argv, "--min-recall", "mel=0.9", "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "decision rule: alpha" in printed and "target recall mel 0.90" in printed and str(out) in printed

    expected = LesionClassifier.load(trained, device="cpu").calibrate(
        synthetic.root, split_csv=split_csv, min_recall={"mel": 0.9}
    )
    saved = LesionClassifier.load(out, device="cpu")
    assert saved.temperature_ == pytest.approx(expected.temperature_)
    assert saved.prior_alpha_ == pytest.approx(expected.prior_alpha_)
    np.testing.assert_allclose(saved.class_offsets_, expected.class_offsets_)
    assert saved.calibration_["min_recall"] == {"mel": 0.9} and saved.calibration_["protected"] == ["mel"]
    assert not hasattr(LesionClassifier.load(trained, device="cpu"), "class_offsets_")  # the input is left alone

    # --protect with no class protects none; --json prints the facts
    assert main([*argv, "--protect", "--out", str(tmp_path / "free"), "--quiet", "--json", "--device", "cpu"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["protected"] == [] and facts["split"] == "val" and facts["model"] == str(tmp_path / "free")


def test_calibrate_refuses_the_test_split_and_bad_targets(trained, synthetic, tmp_path, capsys) -> None:
    argv = ["calibrate", str(trained), "--data", str(synthetic.root), "--split-csv", str(synthetic.root / "split.csv")]
    assert main([*argv, "--split", "test", "--out", str(tmp_path / "o")]) == 2
    assert "hamkit calibrate: error: --split test: calibrating on the test split" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--min-recall", "mel=1.5", "--out", str(tmp_path / "o")])
    assert stop.value.code == 2 and "expected CLASS=RECALL" in capsys.readouterr().err
    assert main([*argv, "--min-recall", "melanoma=0.9", "--out", str(tmp_path / "o"), "--quiet"]) == 1
    assert "unknown class 'melanoma'" in capsys.readouterr().err
    segmenter = tmp_path / "seg"
    segmenter.mkdir()
    (segmenter / "config.json").write_text('{"kind": "LesionSegmenter"}')
    assert main(["calibrate", str(segmenter), *argv[2:], "--out", str(tmp_path / "o")]) == 1
    assert "hamkit calibrate calibrates a LesionClassifier" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_evaluate_gives_intervals_the_raw_argmax_and_predictions(trained, synthetic, tmp_path, capsys) -> None:
    split_csv = str(synthetic.root / "split.csv")
    calibrated = tmp_path / "calibrated"
    argv = ["--data", str(synthetic.root), "--split-csv", split_csv, "--quiet", "--device", "cpu"]
    assert main(["calibrate", str(trained), *argv, "--out", str(calibrated)]) == 0
    model = LesionClassifier.load(calibrated, device="cpu")
    model.class_offsets_ = np.array([2.0, -2.0, 0, 0, 0, 0, 0])  # a rule that surely moves decisions
    model.save(calibrated)
    capsys.readouterr()

    out, predictions = tmp_path / "eval", tmp_path / "predictions.csv"
    assert main(["evaluate", str(calibrated), *argv, "--out", str(out), "--predictions", str(predictions)]) == 0
    printed = capsys.readouterr().out
    assert "95% intervals, 1,000 bootstrap resamples" in printed and "argmax of the network" in printed
    assert "decision rule saved with the model (alpha" in printed

    test = SkinDataset.from_folder(synthetic.root, split_csv=split_csv, split="test")
    proba = model.predict_proba(test)
    decided, raw = model.decide(proba), proba.argmax(1)
    assert (decided != raw).any()
    report = json.loads((out / "report.json").read_text())
    assert report["accuracy"] == pytest.approx(np.mean(decided == test.labels))
    assert report["argmax"]["accuracy"] == pytest.approx(np.mean(raw == test.labels))
    assert report["test_lesions"] == len({s.group for s in test.samples}) < report["n_samples"]
    for name in ("accuracy", "balanced_accuracy", "macro_f1"):
        value = report[name] if name != "macro_f1" else report["macro"]["f1"]
        low, high = report["intervals"][name]
        assert low <= value <= high and low < high
    assert report["decision"]["calibrated"] is True and (out / "roc_curves.png").is_file()

    rows = list(csv.DictReader(predictions.open()))
    assert [r["image_id"] for r in rows] == test.image_ids
    assert [r["predicted"] for r in rows] == [model.classes_[i] for i in decided]
    assert [r["lesion_id"] for r in rows] == [s.group for s in test.samples]

    assert main(["evaluate", str(calibrated), *argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["argmax"] == report["argmax"]


def test_evaluate_refuses_predictions_for_a_segmenter(tmp_path, capsys) -> None:
    (tmp_path / "config.json").write_text('{"kind": "LesionSegmenter"}')
    argv = ["evaluate", str(tmp_path), "--data", str(tmp_path), "--split-csv", "s.csv"]
    assert main([*argv, "--predictions", str(tmp_path / "p.csv")]) == 2
    assert "--predictions applies to a classifier" in capsys.readouterr().err
