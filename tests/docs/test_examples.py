"""Every script in ``examples/`` runs to completion on the synthetic data and does what it says.

Each script runs in a subprocess, as a user runs it (``python examples/NAME.py WORK_DIR``),
with a timeout; the checks read its output and the files it wrote. The scripts use random
weights and tiny sizes, so nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from PIL import Image

EXAMPLES = REPO / "examples"
TIMEOUT_S = 240  # each script takes ~10 s of CPU time; the margin is for a loaded machine


def run_example(name: str, tmp_path: Path) -> tuple[str, Path]:
    """Run ``examples/<name>`` with WORK_DIR under ``tmp_path``; return its stdout and WORK_DIR."""
    work = tmp_path / "work"
    env = {**os.environ, "HAMKIT_CACHE": str(tmp_path / "cache"), "MPLBACKEND": "Agg"}
    env.setdefault("OMP_NUM_THREADS", "1")
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), str(work)],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout, work


def numbers(pattern: str, text: str) -> list[tuple[str, ...]]:
    """All matches of ``pattern`` (multi-line) in ``text``; fails when there is none."""
    found = [m.groups() for m in re.finditer(pattern, text, flags=re.MULTILINE)]
    assert found, f"no line matches {pattern!r} in:\n{text}"
    return found


def check_dedup_folder(out: str, work: Path) -> None:
    rows = {
        name: (int(found), int(total), kinds, int(pairs), int(wrong))
        for name, found, total, kinds, pairs, wrong in numbers(
            r"^(\S+)\s+planted found (\d+) of (\d+) \((.*)\); (\d+) pair\(s\), (\d+) between", out
        )
    }
    assert list(rows) == ["exact", "phash-4", "phash-6", "phash-8"]
    total = rows["exact"][1]
    assert total >= 5  # the synthetic dataset planted duplicates of every kind
    assert "exact 1" in rows["exact"][2] and rows["exact"][4] == 0  # the pixel copy, and nothing else
    assert rows["phash-4"][4] == 0  # a strict threshold: no pair between different lesions
    assert rows["phash-8"][0] == total  # a loose one finds every planted copy...
    pairs = [rows[name][3] for name in ("phash-4", "phash-6", "phash-8")]
    assert pairs == sorted(pairs)  # ...and more pairs as the threshold grows
    for name in rows:
        folder = work / "dedup" / name
        for file in ("kept.txt", "removed.txt", "pairs.csv", "groups.csv", "summary.json", "review.png"):
            assert (folder / file).is_file(), folder / file
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["counts"]["pairs"] == rows[name][3]


def check_split_without_leakage(out: str, work: Path) -> None:
    ((lesions, leaks),) = numbers(r"^naive split by image: (\d+) lesion\(s\) in more than one split, (\d+) near", out)
    assert int(lesions) > 0  # the naive split leaks lesions...
    ((lesions, groups, leaks),) = numbers(
        r"^hamkit split: (\d+) lesion\(s\) and (\d+) duplicate group\(s\) in more than one split, (\d+) near", out
    )
    assert (int(lesions), int(groups), int(leaks)) == (0, 0, 0)  # ...hamkit's does not
    header, *rows = (work / "split.csv").read_text().splitlines()
    assert header == "image_id,lesion_id,dx,split,group"
    assert {row.split(",")[3] for row in rows} == {"train", "val", "test"}
    assert json.loads((work / "audit" / "audit.json").read_text())["leaks"] == 0
    assert re.search(r"^train\s+\d+", out, flags=re.MULTILINE)  # the per-class table


def check_train_classifier(out: str, work: Path) -> None:
    scores = [float(v) for (v,) in numbers(r"^epoch \d+: train loss [\d.]+, val balanced accuracy ([\d.]+)$", out)]
    assert len(scores) == 4
    ((kept,),) = numbers(r"^kept epoch (\d+)$", out)
    assert scores[int(kept) - 1] == max(scores)  # the best validation epoch is the one kept
    assert max(scores) > 0.2  # above chance (1/7) after four epochs
    ((test,),) = numbers(r"^balanced accuracy \(ISIC 2018 Task 3\): ([\d.]+)$", out)
    report = json.loads((work / "test_report.json").read_text())
    assert abs(report["balanced_accuracy"] - float(test)) < 1e-3
    for file in (
        "model/model.safetensors",
        "model/config.json",
        "confusion_matrix.png",
        "run/history.csv",
        "run/best/model.safetensors",
    ):
        assert (work / file).is_file(), file
    predictions = numbers(r"^(ISIC_\d+)\.jpg: (\w+) \(p=([\d.]+)\)$", out)
    assert len(predictions) == 3 and all(code in report["classes"] for _, code, _ in predictions)


def check_train_segmenter(out: str, work: Path) -> None:
    rows = numbers(r"^epoch \d+: train loss [\d.]+, val dice ([\d.]+), val balanced accuracy ([\d.]+)$", out)
    assert len(rows) == 3
    assert max(float(dice) for dice, _ in rows) > 0.3  # the masks are learnt
    ((dice,),) = numbers(r"^mean Dice:\s+([\d.]+)$", out)
    summary = json.loads((work / "test_report.json").read_text())["summary"]
    assert abs(summary["mean_dice"] - float(dice)) < 1e-3 and summary["resolution"] == "original"
    assert "classification head:" in out  # the multi-task head is scored too
    header = (work / "per_image.csv").read_text().splitlines()[0]
    assert header.startswith("image_id,dice,iou") and "predicted" in header
    for file in ("model/model.safetensors", "examples.png", "run/history.csv"):
        assert (work / file).is_file(), file
    masks = sorted((work / "masks").glob("*_segmentation.png"))
    assert len(masks) == 3
    for mask in masks:  # written at the image's own size (96x72), 0/255
        with Image.open(mask) as image:
            assert image.size == (96, 72)
            assert set(np.unique(np.asarray(image)).tolist()) <= {0, 255}
    assert len(numbers(r"^ISIC_\d+_segmentation\.png: 96x72 mask, \d+% lesion, class \w+$", out)) == 3


def check_custom_backbone(out: str, work: Path) -> None:
    assert "registered: ['small_cnn']" in out
    assert "features of two images: (2, 64)" in out
    assert "weights file loaded, same output: True" in out
    assert (work / "small_cnn.safetensors").is_file()
    ((score, n),) = numbers(r"^LesionClassifier\('small_cnn'\): test balanced accuracy ([\d.]+) on (\d+) images$", out)
    assert 0.0 <= float(score) <= 1.0 and int(n) > 0


CHECKS: dict[str, Callable[[str, Path], None]] = {
    "dedup_folder.py": check_dedup_folder,
    "split_without_leakage.py": check_split_without_leakage,
    "train_classifier.py": check_train_classifier,
    "train_segmenter.py": check_train_segmenter,
    "custom_backbone.py": check_custom_backbone,
}


def test_every_example_script_is_checked() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example_runs_and_does_what_it_says(name: str, tmp_path: Path) -> None:
    out, work = run_example(name, tmp_path)
    CHECKS[name](out, work)


def test_example_makes_its_own_temporary_folder_without_an_argument(tmp_path: Path) -> None:
    """Run without WORK_DIR (the documented default): the script picks a new temporary folder."""
    env = {**os.environ, "TMPDIR": str(tmp_path), "HAMKIT_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "dedup_folder.py")],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (folder,) = tmp_path.glob("hamkit-dedup-*")
    assert (folder / "dedup" / "exact" / "kept.txt").is_file()
    assert f"results and review sheets in {folder / 'dedup'}" in done.stdout
