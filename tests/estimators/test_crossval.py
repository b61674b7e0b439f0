"""K-fold cross-validation over a folds CSV: one fresh model per fold, its epoch chosen inside
its training folds, scored once on the held-out fold."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hamkit import LesionClassifier, LesionSegmenter, TrainConfig
from hamkit.crossval import CrossValidationResult, cross_validate_folds, fold_numbers
from hamkit.data.metadata import read_metadata
from hamkit.data.splits import read_split_csv, split_dataset
from hamkit.errors import DataError, HamkitError

RECIPE = TrainConfig(epochs=1, batch_size=16, lr=1e-3, augment=False, num_workers=0, progress=False)


@pytest.fixture(scope="module")
def folds_csv(synthetic, tmp_path_factory):
    split = split_dataset(read_metadata(synthetic.metadata_csv), folds=3, test=0.2, random_state=0)
    return split.save(tmp_path_factory.mktemp("folds") / "folds.csv")


def _spy_on(cls, monkeypatch) -> list[tuple[set[str], set[str]]]:
    """Record the image ids of the training and validation data of every ``cls.fit``."""
    seen: list[tuple[set[str], set[str]]] = []
    original = cls.fit

    def fit(self, train, val=None, **kwargs):
        seen.append((set(train.image_ids), set(val.image_ids)))
        return original(self, train, val, **kwargs)

    monkeypatch.setattr(cls, "fit", fit)
    return seen


def _fold_ids(folds_csv, k: int) -> set[str]:
    return {i for i, s in read_split_csv(folds_csv, fold=k).items() if s == "val"}


def test_every_fold_is_trained_apart_and_scored_on_itself(synthetic, folds_csv, tmp_path, monkeypatch) -> None:
    assert fold_numbers(folds_csv) == [0, 1, 2]
    seen = _spy_on(LesionClassifier, monkeypatch)
    clf = LesionClassifier("mobilenet_v3_small", image_size=32, pretrained=False, recipe=RECIPE, device="cpu")
    result = cross_validate_folds(clf, synthetic.root, split_csv=folds_csv, out_dir=tmp_path / "cv", progress=False)
    assert result.folds == [0, 1, 2] and len(result.metrics) == 3
    assert not hasattr(clf, "network_")  # the estimator passed in stays unfitted
    for k, report, (train, val) in zip(result.folds, result.reports, seen, strict=True):
        held_out, inner = _fold_ids(folds_csv, k), _fold_ids(folds_csv, (k + 1) % 3)
        assert report.n_samples == len(held_out)  # scored on exactly its own fold
        assert not held_out & val and not held_out & train  # the scored fold chose nothing, trained nothing
        assert val == inner and train == _fold_ids(folds_csv, (k + 2) % 3)  # the next fold chose the epoch
    assert result.inner_validation[0] == {
        "chosen_on": "fold 1",
        "images": len(seen[0][1]),
        "training_images": len(seen[0][0]),
    }
    assert "chosen on an inner validation set carved out of its training folds" in result.selection
    mean, std = result.mean(), result.std()
    values = [m["balanced_accuracy"] for m in result.metrics]
    assert mean["balanced_accuracy"] == pytest.approx(np.mean(values))
    assert std["balanced_accuracy"] == pytest.approx(np.std(values, ddof=1))
    saved = json.loads((tmp_path / "cv" / "crossval.json").read_text())
    assert saved["folds"] == [0, 1, 2] and len(saved["per_fold"]) == 3 and "balanced_accuracy" in saved["mean"]
    assert saved["selection"] == result.selection and saved["inner_validation"][2]["chosen_on"] == "fold 0"
    assert (tmp_path / "cv" / "fold_2" / "model" / "config.json").is_file()
    assert "mean" in result.format_table() and result.format_table().count("\n") == 6
    assert result.format_table().endswith(result.selection)


def test_with_two_folds_a_grouped_hold_out_of_the_training_fold_chooses(synthetic, tmp_path, monkeypatch) -> None:
    records = read_metadata(synthetic.metadata_csv)
    two = split_dataset(records, folds=2, random_state=0).save(tmp_path / "two.csv")
    seen = _spy_on(LesionClassifier, monkeypatch)
    calibrated = _spy_on_calibrate(monkeypatch)
    clf = LesionClassifier("mobilenet_v3_small", image_size=32, pretrained=False, recipe=RECIPE, device="cpu")
    result = cross_validate_folds(clf, synthetic.root, split_csv=two, folds=[0], progress=False, calibrate=True)
    (train, val), held_out = seen[0], _fold_ids(two, 0)
    assert not held_out & val and not held_out & train and not train & val
    assert train | val == _fold_ids(two, 1) and 0.1 < len(val) / len(train | val) < 0.35
    lesion = {r.image_id: r.group for r in records}
    assert not {lesion[i] for i in train} & {lesion[i] for i in val}  # the hold-out is lesion-grouped
    assert calibrated == [val]  # calibrated on the inner set too, never on the scored fold
    assert result.inner_validation[0]["chosen_on"] == "grouped hold-out"
    assert "epoch and calibration chosen" in result.selection and "1/5 of the training fold" in result.selection
    assert result.reports[0].n_samples == len(held_out)


def _spy_on_calibrate(monkeypatch) -> list[set[str]]:
    seen: list[set[str]] = []
    original = LesionClassifier.calibrate

    def calibrate(self, data, **kwargs):
        seen.append(set(data.image_ids))
        return original(self, data, **kwargs)

    monkeypatch.setattr(LesionClassifier, "calibrate", calibrate)
    return seen


def test_a_segmenter_is_cross_validated_on_its_masks(synthetic, folds_csv) -> None:
    seg = LesionSegmenter(
        "smp:Unet:resnet18",
        image_size=32,
        pretrained=False,
        recipe=RECIPE,
        device="cpu",
        backbone_kwargs={"encoder_depth": 3, "decoder_channels": [16, 8, 4]},
    )
    result = cross_validate_folds(seg, synthetic.root, split_csv=folds_csv, folds=[1], progress=False)
    assert result.folds == [1] and 0.0 <= result.metrics[0]["mean_dice"] <= 1.0
    assert np.isnan(result.std()["mean_dice"])  # one fold has no spread


def test_bad_inputs_are_reported(synthetic, folds_csv, tmp_path) -> None:
    clf = LesionClassifier("mobilenet_v3_small", image_size=32, pretrained=False, recipe=RECIPE)
    with pytest.raises(DataError, match="no fold 7; it has folds 0, 1, 2"):
        cross_validate_folds(clf, synthetic.root, split_csv=folds_csv, folds=[7])
    with pytest.raises(DataError, match="no fold column"):
        cross_validate_folds(clf, synthetic.root, split_csv=synthetic.root / "split.csv")
    with pytest.raises(HamkitError, match="cannot cross-validate a str"):
        cross_validate_folds("resnet18", synthetic.root, split_csv=folds_csv)


def test_the_result_summarises_nan_folds_honestly() -> None:
    result = CrossValidationResult(folds=[0, 1], metrics=[{"a": 0.5, "b": float("nan")}, {"a": 0.7, "b": 0.2}])
    assert result.mean()["a"] == pytest.approx(0.6) and result.mean()["b"] == pytest.approx(0.2)
    assert result.as_dict()["per_fold"][0]["b"] is None


def test_the_command_line_cross_validates_over_the_folds(synthetic, folds_csv, tmp_path, capsys) -> None:
    from hamkit.cli.main import main

    args = ["train", "classifier", "--data", str(synthetic.root), "--split-csv", str(folds_csv)]
    args += ["--out", str(tmp_path / "cv"), "--cross-validate", "--backbone", "mobilenet_v3_small"]
    args += ["--image-size", "32", "--epochs", "1", "--batch-size", "16", "--no-pretrained", "--workers", "0"]
    assert main([*args, "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["folds"] == [0, 1, 2] and set(summary["mean"]) >= {"balanced_accuracy", "macro_f1"}
    assert (tmp_path / "cv" / "crossval.json").is_file() and (tmp_path / "cv" / "fold_0" / "model").is_dir()
    assert main([*args, "--fold", "1"]) == 1
    assert "drop --fold K" in capsys.readouterr().err
