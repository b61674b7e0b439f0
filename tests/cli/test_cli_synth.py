"""Tests of the ``hamkit synth`` command."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image

from hamkit.cli import main as cli_main
from hamkit.cli.main import main


@pytest.fixture(autouse=True)
def only_synth(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build the parser with the synth command alone, so these tests exercise it in isolation
    (the full command list is tested with the package)."""
    monkeypatch.setattr(cli_main, "COMMAND_MODULES", ("synth",))


def test_synth_writes_dataset_and_prints_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x"
    assert main(["synth", str(out), "--n-lesions", "30", "--random-state", "1"]) == 0
    printed = capsys.readouterr().out
    with (out / "HAM10000_metadata.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    with (out / "duplicates_groundtruth.csv").open(newline="") as handle:
        planted = list(csv.DictReader(handle))
    images = [p for part in ("HAM10000_images_part_1", "HAM10000_images_part_2") for p in (out / part).iterdir()]
    assert len(images) == len(rows) > 30
    masks = list((out / "HAM10000_segmentations_lesion_tschandl").iterdir())
    assert len(masks) == len(images)
    assert (out / "ISIC2018_Task3_Training_GroundTruth.csv").is_file()
    with Image.open(images[0]) as image:
        assert image.size == (256, 192)
    assert f"images:     {len(rows)}" in printed
    assert "lesions:    30" in printed
    assert "nv " in printed and "df " in printed
    assert f"duplicates: {len(planted)}" in printed and "duplicates_groundtruth.csv" in printed
    assert str(out) in printed


def test_synth_options_and_refusal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "y"
    args = [
        "synth",
        str(out),
        "--n-lesions",
        "7",
        "--image-size",
        "64",
        "48",
        "--photos-per-lesion",
        "1",
        "1",
        "--duplicate-fraction",
        "0",
    ]
    assert main(args) == 0
    with Image.open(next((out / "HAM10000_images_part_1").iterdir())) as image:
        assert image.size == (64, 48)
    assert "images:     7 " in capsys.readouterr().out
    assert main(args) == 1  # non-empty folder
    err = capsys.readouterr().err
    assert "hamkit synth: error:" in err and "--overwrite" in err and "Traceback" not in err
    assert main([*args, "--overwrite", "--random-state", "5"]) == 0
    assert main(["synth", str(tmp_path / "z"), "--n-lesions", "3"]) == 1
    assert "at least 7" in capsys.readouterr().err
    assert not (tmp_path / "z").exists()


def test_synth_help_lists_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["synth", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--n-lesions", "--random-state", "--image-size", "--overwrite", "OUT"):
        assert option in text
