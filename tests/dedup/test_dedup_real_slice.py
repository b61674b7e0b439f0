"""Regression test of the default Deduplicator on a slice of the real HAM10000 images.

2,000 real images (200 x 150 copies, the first by image id) plus 6 planted copies of every kind
(:func:`hamkit.synthetic.planting.plant_copies`), with ``lesion_id`` as ground truth. It fails if
pairs across different lesions, planted recall or the largest group drift past the targets of
the full 10,015-image run (``benchmarks/dedup_real.py``) scaled to the slice. Skips where the
real data is absent (a user's clone).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import REAL_200PX

from hamkit import Deduplicator
from hamkit.data.metadata import read_metadata
from hamkit.synthetic.planting import plant_copies, recall_by_family

REAL = REAL_200PX
SLICE = 2000
PER_KIND = 6
MAX_ACROSS = 8  # the 40 of the full set scaled to the slice; 1 when measured (2026-12-01)
TARGET_RECALL = {"exact": 1.0, "photometric": 0.95, "geometric": 0.80}

pytestmark = pytest.mark.skipif(
    not (REAL / "HAM10000_metadata.csv").is_file(), reason="the real HAM10000 folder is absent"
)


@pytest.fixture(scope="module")
def slice_result(tmp_path_factory):
    images = sorted(REAL.glob("HAM10000_images_part_*/*.jpg"))[:SLICE]
    folder = tmp_path_factory.mktemp("real_slice")
    planted = plant_copies(images, folder, per_kind=PER_KIND, seed=0)
    (folder / "planted.csv").unlink()
    result = Deduplicator(progress=False, cache_dir=False).find(folder)
    lesion = {r.image_id: r.lesion_id for r in read_metadata(REAL / "HAM10000_metadata.csv")}
    return result, planted, lesion


def test_pairs_across_lesions_stay_few(slice_result) -> None:
    result, _, lesion = slice_result
    stems = [p.stem for p in result.paths]
    across = [
        (stems[i], stems[j])
        for i, j in zip(result.pairs.i, result.pairs.j, strict=True)
        if stems[i] in lesion and stems[j] in lesion and lesion[stems[i]] != lesion[stems[j]]
    ]
    assert len(across) <= MAX_ACROSS, across


def test_planted_copies_are_found(slice_result) -> None:
    result, planted, _ = slice_result
    group = {result.paths[m].name: g for g, grp in enumerate(result.groups) for m in grp.members}
    recall = recall_by_family(planted, group)
    for family, target in TARGET_RECALL.items():
        assert recall[family] >= target, recall


def test_groups_stay_small(slice_result, tmp_path: Path) -> None:
    result, _, _ = slice_result
    assert max(g.size for g in result.groups) <= 8
    assert result.counts["removed"] <= 0.1 * len(result.paths)  # not a fifth of the data set
    result.save(tmp_path)
    with open(tmp_path / "pairs.csv") as handle:
        assert all(float(row["score"]) >= result.threshold for row in csv.DictReader(handle))
