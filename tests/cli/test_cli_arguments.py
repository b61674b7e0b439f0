"""Bad numbers on the command line fail at once, in one line that names the flag."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("arguments", "flag"),
    [
        (["train", "classifier", "--data", "d", "--split-csv", "s.csv", "--out", "o", "--epochs", "0"], "--epochs"),
        (
            ["train", "classifier", "--data", "d", "--split-csv", "s.csv", "--out", "o", "--early-stopping", "-1"],
            "--early-stopping",
        ),
        (
            ["train", "segmenter", "--data", "d", "--split-csv", "s.csv", "--out", "o", "--image-size", "0"],
            "--image-size",
        ),
        (["train", "classifier", "--data", "d", "--split-csv", "s.csv", "--out", "o", "--workers", "-2"], "--workers"),
        (["train", "classifier", "--data", "d", "--split-csv", "s.csv", "--out", "o", "--lr", "nan"], "--lr"),
        (["train", "classifier", "--data", "d", "--split-csv", "s.csv", "--out", "o", "--freeze", "1"], "--freeze"),
        (
            ["train", "classifier", "--data", "d", "--split-csv", "s.csv", "--out", "o", "--input-lr-scale", "0"],
            "--input-lr-scale",
        ),
        (
            ["train", "classifier", "--data", "d", "--split-csv", "s.csv", "--out", "o", "--weight-decay", "-1"],
            "--weight-decay",
        ),
        (
            ["train", "classifier", "--data", "d", "--split-csv", "s.csv", "--out", "o", "--lesion-crop", "0.5"],
            "--lesion-crop",
        ),
        (["dedup", "folder", "--out", "o", "--candidates", "0"], "--candidates"),
        (["dedup", "folder", "--out", "o", "--batch-size", "two"], "--batch-size"),
    ],
)
def test_a_bad_number_names_its_flag(arguments: list[str], flag: str, tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hamkit", *arguments],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert f"argument {flag}: must be" in lines[-1] and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing was started, nothing written
