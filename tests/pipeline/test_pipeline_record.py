"""A run is its own recipe: OUT/config.toml names the data it used (absolute paths) and repeats
the run or stops; the report and summary.json say which images the numbers come from, with a
banner when they are the generated synthetic set. Models are disabled: only the data, dedup,
split, audit and report steps run."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

from hamkit.cli.main import main
from hamkit.errors import HamkitError
from hamkit.pipeline.config import load_config, to_toml
from hamkit.pipeline.report import _header_html
from hamkit.pipeline.run import run_pipeline
from hamkit.pipeline.validate import check_settings

NO_MODELS = {
    "data": {"synthetic_lesions": 30, "synthetic_image_size": [96, 64]},
    "dedup": {"methods": ["exact"]},
    "classifier": {"enabled": False},
    "segmenter": {"enabled": False},
    "run": {"num_workers": 0, "progress": False, "device": "cpu"},
}


@pytest.fixture()
def data_copy(synthetic, tmp_path) -> Path:
    """A copy of the synthetic data set, used as a given data folder (it can be deleted)."""
    return Path(shutil.copytree(synthetic.root, tmp_path / "given"))


def test_the_saved_config_names_the_data_and_repeats_the_run(data_copy, tmp_path, capsys) -> None:
    config = tmp_path / "settings.toml"
    config.write_text(to_toml(load_config(overrides=NO_MODELS)))
    first = tmp_path / "first"
    assert main(["run", "--data", str(data_copy), "--config", str(config), "--out", str(first), "--quiet"]) == 0
    assert "measured on " in capsys.readouterr().out
    saved_text = (first / "config.toml").read_text()
    saved = tomllib.loads(saved_text)["data"]
    assert saved["root"] == str(data_copy.resolve())
    assert saved["labels"] == str((data_copy / "HAM10000_metadata.csv").resolve())
    assert Path(saved["masks"]).is_absolute() and Path(saved["masks"]).is_dir()
    assert "--config this-file.toml --out NEW_FOLDER` repeats the run" in saved_text

    again = tmp_path / "again"
    assert main(["run", "--config", str(first / "config.toml"), "--out", str(again), "--quiet"]) == 0
    capsys.readouterr()
    first_summary = json.loads((first / "summary.json").read_text())
    again_summary = json.loads((again / "summary.json").read_text())
    assert again_summary["steps"]["data"] == "given" and not (again / "data").exists()  # no synthetic data made
    assert again_summary["summary"]["data"]["root"] == first_summary["summary"]["data"]["root"]
    assert again_summary["summary"]["split"] == first_summary["summary"]["split"]
    assert tomllib.loads((again / "config.toml").read_text()) == tomllib.loads(saved_text)

    # real data: the number of images and their pixel size, no synthetic banner
    data = first_summary["summary"]["data"]
    assert data["synthetic"] is False and "banner" not in first_summary
    assert (
        first_summary["measured_on"]
        == f"{data['images']} images of 128x96 px (the size of 16 of them read) from {data_copy.resolve()}"
    )
    assert data["resolution"] == {"sampled": 16, "sizes": {"128x96": 16}}
    page = (first / "report.html").read_text()
    assert "Synthetic data:" not in page and f"<td>data</td><td>{data['images']} images of 128x96 px" in page

    shutil.rmtree(data_copy)  # the data is gone: the recipe stops with one line, it does not make data up
    gone = tmp_path / "gone"
    assert main(["run", "--config", str(first / "config.toml"), "--out", str(gone), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hamkit run: error: bad setting: data.root (set in ") and err.count("\n") == 1
    assert f"{data_copy.resolve()} is not a folder" in err and not (gone / "data").exists()


def test_another_data_folder_with_the_recorded_labels_is_refused(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "meta.csv").write_text("lesion_id,image_id,dx\n")
    settings = load_config(
        overrides={"data": {"root": str(tmp_path / "a"), "labels": str(tmp_path / "a" / "meta.csv")}}
    )
    with pytest.raises(
        HamkitError, match=r"--data .*b replaces data.root .* but data.labels still name that run's files"
    ):
        check_settings(settings, tmp_path / "b")
    check_settings(settings, tmp_path / "a")  # the same folder: fine
    root_only = load_config(overrides={"data": {"root": str(tmp_path / "a")}})
    check_settings(root_only, tmp_path / "b")  # a root alone: --data replaces it, as before


def test_a_synthetic_run_says_so_in_the_report_and_the_summary(tmp_path) -> None:
    result = run_pipeline(tmp_path / "demo", config=load_config(overrides=NO_MODELS))
    out = result.out_dir
    summary = json.loads((out / "summary.json").read_text())
    assert summary["banner"].startswith("SYNTHETIC DATA: synthetic data: ")
    assert summary["summary"]["data"]["synthetic"] is True and "96x64 px" in summary["measured_on"]
    page = (out / "report.html").read_text()
    assert "<div class='banner synthetic'><b>Synthetic data:</b>" in page
    assert page.index("Synthetic data:") < page.index("<h2>Dataset</h2>")  # at the top, before any number
    saved = (out / "config.toml").read_text()
    assert tomllib.loads(saved)["data"]["root"] == ""  # generated again from the same settings
    assert '[data] root = "": the synthetic data set' in saved


def test_the_header_banner_comes_only_with_synthetic_data() -> None:
    def header(data: dict) -> str:
        return _header_html(SimpleNamespace(result=SimpleNamespace(summary={"run": {}, "data": data}, seconds={})))

    assert "Synthetic data:" in header({"synthetic": True, "description": "synthetic data: 3 generated images"})
    real = header({"synthetic": False, "description": "3 images of 600x450 px from /d"})
    assert "Synthetic data:" not in real and "<td>data</td><td>3 images of 600x450 px from /d</td>" in real
