"""K-fold cross-validation over a folds CSV: one fresh model per fold, scored on its fold."""

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
    split = split_dataset(read_metadata(synthetic.metadata_csv), folds=3, test=0.2, seed=0)
    return split.save(tmp_path_factory.mktemp("folds") / "folds.csv")


def test_every_fold_is_trained_apart_and_scored_on_itself(synthetic, folds_csv, tmp_path) -> None:
    assert fold_numbers(folds_csv) == [0, 1, 2]
    clf = LesionClassifier("mobilenet_v3_small", image_size=32, pretrained=False, recipe=RECIPE, device="cpu")
    result = cross_validate_folds(clf, synthetic.root, split_csv=folds_csv, out_dir=tmp_path / "cv", progress=False)
    assert result.folds == [0, 1, 2] and len(result.metrics) == 3
    assert not hasattr(clf, "network_")  # the estimator passed in stays unfitted
    for k, report in zip(result.folds, result.reports, strict=True):
        in_fold = [i for i, s in read_split_csv(folds_csv, fold=k).items() if s == "val"]
        assert report.n_samples == len(in_fold)  # scored on exactly its own fold
    mean, std = result.mean(), result.std()
    values = [m["balanced_accuracy"] for m in result.metrics]
    assert mean["balanced_accuracy"] == pytest.approx(np.mean(values))
    assert std["balanced_accuracy"] == pytest.approx(np.std(values, ddof=1))
    saved = json.loads((tmp_path / "cv" / "crossval.json").read_text())
    assert saved["folds"] == [0, 1, 2] and len(saved["per_fold"]) == 3 and "balanced_accuracy" in saved["mean"]
    assert (tmp_path / "cv" / "fold_2" / "model" / "config.json").is_file()
    assert "mean" in result.format_table() and result.format_table().count("\n") == 5


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
