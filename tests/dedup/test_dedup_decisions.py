"""The review loop: suspect lesion ids, decisions CSV read by dedup and split, a decided pair not asked again."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hamkit import Deduplicator
from hamkit.cli.main import main
from hamkit.dedup.decisions import Decisions, apply_decisions, read_decisions
from hamkit.dedup.pairs import Pairs
from hamkit.dedup.result import DedupResult
from hamkit.dedup.review import review_html, review_items
from hamkit.errors import DataError


def _result(tmp_path: Path) -> DedupResult:
    paths = [tmp_path / f"ISIC_{k}.png" for k in range(4)]
    for k, path in enumerate(paths):
        Image.new("RGB", (8, 8), (40 * k, 0, 0)).save(path)
    pairs = Pairs(np.array([0, 1, 0]), np.array([1, 2, 3]), np.array([0.9, 0.55, 0.7]), "aligned")
    return DedupResult(paths, pairs, [], np.arange(4), np.zeros(0, np.int64), method="lesion", threshold=0.5)


def test_suspects_are_pairs_across_lesion_ids_best_first(tmp_path) -> None:
    result = _result(tmp_path)
    lesions = {"ISIC_0": "L0", "ISIC_1": "L0", "ISIC_2": "L2", "ISIC_3": "L3"}
    assert [(a, b) for a, b, *_ in result.suspect_lesion_ids(lesions)] == [(0, 3), (1, 2)]
    out = result.save_suspects(tmp_path / "s.csv", lesions, {"ISIC_0": "mel", "ISIC_3": "nv"})
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["lesion_id_b"] == "L3" and rows[0]["dx_a"] == "mel" and rows[0]["dx_b"] == "nv"
    assert len(rows) == 2


def test_decisions_drop_different_and_add_same(tmp_path) -> None:
    result = _result(tmp_path)
    decisions = Decisions({("ISIC_1", "ISIC_0"): False, ("ISIC_2", "ISIC_3"): True})
    pairs = apply_decisions(decisions, result.paths, result.pairs)
    assert list(zip(pairs.i.tolist(), pairs.j.tolist())) == [(0, 3), (1, 2), (2, 3)]
    assert pairs.score[-1] == 1.0
    saved = decisions.save(tmp_path / "d.csv")
    assert read_decisions(saved).pairs == decisions.pairs


def test_bad_decisions_file_names_the_line(tmp_path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("image_a,image_b,decision\nISIC_1,ISIC_2,maybe\n")
    with pytest.raises(DataError, match=r"d.csv: line 2: decision must be 'same' or 'different'"):
        read_decisions(path)
    path.write_text("a,b\n")
    with pytest.raises(DataError, match="needs the columns image_a,image_b,decision"):
        read_decisions(path)


def test_review_shows_conflicts_first_and_never_a_decided_pair(tmp_path) -> None:
    result = _result(tmp_path)
    diagnoses = {"ISIC_0": "mel", "ISIC_1": "nv", "ISIC_2": "nv", "ISIC_3": "mel"}
    items = review_items(result, diagnoses=diagnoses)
    assert items[0][:2] == (0, 1) and items[0][3] == "diagnoses differ"
    decided = Decisions({("ISIC_0", "ISIC_1"): True})
    again = review_items(result, diagnoses=diagnoses, decisions=decided)
    assert (0, 1) not in [(i, j) for i, j, *_ in again] and len(again) == 2
    page = review_html(
        result, tmp_path / "r.html", lesions={"ISIC_0": "HAM_7"}, diagnoses=diagnoses, decisions=decided
    ).read_text()
    assert "lesion_id HAM_7" in page and "dx mel" in page and "saveDecisions" in page
    assert '["ISIC_0", "ISIC_1", "same"]' in page  # earlier decisions are kept in the saved CSV


def test_find_honours_decisions(tmp_path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    pixels = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    for name in ("ISIC_a", "ISIC_b"):
        Image.fromarray(pixels).save(folder / f"{name}.png")
    Image.fromarray(255 - pixels).save(folder / "ISIC_c.png")
    dedup = Deduplicator("exact", progress=False, cache_dir=False, num_workers=0)
    assert len(dedup.find(folder).groups) == 1
    rejected = dedup.find(folder, decisions=Decisions({("ISIC_a", "ISIC_b"): False, ("ISIC_a", "ISIC_c"): True}))
    assert [tuple(rejected.paths[m].stem for m in g.members) for g in rejected.groups] == [("ISIC_a", "ISIC_c")]


def test_cli_labels_write_suspects_and_split_takes_decisions(synthetic, tmp_path, capsys) -> None:
    out = tmp_path / "dedup"
    args = ["dedup", str(synthetic.root), "--method", "exact", "--quiet", "--workers", "0"]
    assert main([*args, "--out", str(out), "--labels", str(synthetic.metadata_csv)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "suspect_lesion_ids.csv").is_file() and "suspect_lesion_ids" in summary
    assert "lesion_id" in (out / "review.html").read_text()
    ids = [row["image_id"] for row in csv.DictReader(open(synthetic.metadata_csv))]
    decisions = tmp_path / "decisions.csv"
    Decisions({(ids[0], ids[-1]): True}).save(decisions)
    assert main([*args, "--out", str(tmp_path / "again"), "--decisions", str(decisions)]) == 0
    assert json.loads((tmp_path / "again" / "summary.json").read_text())["decisions"] == 1
    split = tmp_path / "split.csv"
    capsys.readouterr()
    assert main(["split", str(synthetic.metadata_csv), "--out", str(split), "--decisions", str(decisions)]) == 0
    rows = {row["image_id"]: row["split"] for row in csv.DictReader(open(split))}
    assert rows[ids[0]] == rows[ids[-1]]
