"""hamkit run checks every setting before its first step, naming the setting and where it was set."""

from __future__ import annotations

import time

import pytest

from hamkit import HamkitError
from hamkit.cli.main import main
from hamkit.pipeline.config import default_preset, load_config
from hamkit.pipeline.run import run_pipeline
from hamkit.pipeline.validate import check_masks, check_settings


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"classifier": {"class_balance": "oversample"}}, "classifier.class_balance"),
        ({"classifier": {"epochs": 0}}, "classifier.epochs"),
        ({"segmenter": {"lr": float("nan")}}, "segmenter.lr"),
        ({"segmenter": {"batch_size": 1}}, "segmenter.batch_size"),
        ({"dedup": {"methods": ["verified", "sha1"]}}, "dedup.methods"),
        ({"dedup": {"verified_threshold": 1.5}}, "dedup.verified_threshold"),
        ({"split": {"fractions": [0.8, 0.1, float("nan")]}}, "split.fractions"),
        ({"split": {"fractions": [0.8, 0.3, 0.1]}}, "split.fractions"),
        ({"run": {"num_workers": -3}}, "run.num_workers"),
        ({"run": {"device": "tpu"}}, "run.device"),
        ({"classifier": {"backbone": "resnet19"}}, "classifier.backbone"),
        ({"segmenter": {"backbone": "resnet18"}}, "segmenter.backbone"),
        ({"data": {"labels": "/nonexistent/meta.csv"}}, "data.labels"),
    ],
)
def test_each_bad_setting_is_named(override, expected):
    settings = load_config(overrides=override)
    with pytest.raises(HamkitError, match=expected.replace(".", r"\.")) as err:
        check_settings(settings)
    assert "set in command line" in str(err.value)


def test_every_problem_at_once_with_the_file_that_set_it(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text("[classifier]\nepochs = 0\n[segmenter]\nepochs = 0\n")
    with pytest.raises(HamkitError) as err:
        check_settings(load_config(toml))
    text = str(err.value)
    assert text.startswith("2 bad settings")
    assert f"classifier.epochs (set in {toml}) = 0" in text and f"segmenter.epochs (set in {toml})" in text


def test_the_presets_and_defaults_are_valid():
    for preset in ("demo", "cpu", "report", "gpu"):
        check_settings(load_config(preset=preset))


def test_a_config_error_stops_the_run_before_any_step_and_fast(tmp_path, capsys):
    toml = tmp_path / "run.toml"
    toml.write_text('[classifier]\nclass_balance = "oversample"\n')
    started = time.perf_counter()
    assert main(["run", "--config", str(toml), "--out", str(tmp_path / "out"), "--quiet"]) == 1
    assert time.perf_counter() - started < 10  # seconds, not a dedup + split + audit later
    err = capsys.readouterr().err
    assert "classifier.class_balance" in err and str(toml) in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_missing_data_folder_is_named(tmp_path):
    with pytest.raises(HamkitError, match="--data: .* is not a folder"):
        run_pipeline(tmp_path / "out", data=tmp_path / "nowhere")


def test_masks_must_match_the_images(tmp_path):
    (tmp_path / "ISIC_1_segmentation.png").write_bytes(b"")
    check_masks(tmp_path, ["ISIC_1"])
    with pytest.raises(HamkitError, match="1 of 2 images have no mask .*ISIC_2"):
        check_masks(tmp_path, ["ISIC_1", "ISIC_2"])


def test_default_preset_follows_the_data():
    assert default_preset(None) == "demo"
    assert default_preset("/data/ham") == "cpu"
    assert default_preset(None, {"data": {"root": "/data/ham"}}) == "cpu"


def test_the_old_preset_name_is_gone():
    with pytest.raises(HamkitError, match="unknown preset 'seed'; choose one of demo, cpu, report, gpu"):
        load_config(preset="seed")
