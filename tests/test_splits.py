from __future__ import annotations

import numpy as np
import pytest

from hamkit.classes import CLASS_CODES
from hamkit.data.metadata import ImageRecord, read_metadata
from hamkit.data.splits import merge_groups, read_split_csv, split_dataset
from hamkit.errors import DataError


def small_records(n_lesions: int = 120, seed: int = 0) -> list[ImageRecord]:
    rng = np.random.default_rng(seed)
    shares = np.array([1113, 6705, 514, 327, 1099, 115, 142], dtype=float)
    classes = rng.choice(7, size=n_lesions, p=shares / shares.sum())
    classes[:21] = np.repeat(np.arange(7), 3)  # every class has at least three lesions
    records = []
    for lesion, cls in enumerate(classes):
        for photo in range(int(rng.integers(1, 4))):
            records.append(ImageRecord(f"ISIC_{lesion:04d}_{photo}", CLASS_CODES[cls], f"HAM_{lesion:04d}"))
    return records


def test_merge_groups_unions_keys_transitively():
    lesions = ["A", "A", "B", "C", "D", "E"]
    duplicates = [None, "d1", "d1", "d2", "d2", ""]
    assert merge_groups(lesions, duplicates).tolist() == [0, 0, 0, 1, 1, 2]
    with pytest.raises(DataError, match="differ in length"):
        merge_groups(["a"], ["a", "b"])


def test_split_is_grouped_stratified_and_reproducible():
    records = small_records()
    split = split_dataset(records, seed=3)
    assert split.crossing_groups([r.lesion_id for r in records]) == 0
    assert set(split.assignment) == {"train", "val", "test"}
    for name in ("train", "val", "test"):  # the repair step puts every class in every split
        assert set(split.labels[split.indices(name)]) == set(range(7))
    again = split_dataset(records, seed=3)
    assert np.array_equal(split.assignment, again.assignment)
    other = split_dataset(records, seed=4)
    assert not np.array_equal(split.assignment, other.assignment)


def test_extra_groups_keep_duplicates_together():
    records = small_records(seed=1)
    rng = np.random.default_rng(0)
    dup = [None] * len(records)
    for k, (a, b) in enumerate(rng.choice(len(records), size=(15, 2), replace=False)):
        dup[a] = dup[b] = f"dup{k}"  # planted duplicates across different lesions
    plain = split_dataset(records, seed=0)
    assert plain.crossing_groups(dup) > 0  # without the extra key some pairs would leak
    split = split_dataset(records, seed=0, extra_groups=[dup])
    assert split.crossing_groups(dup) == 0
    assert split.crossing_groups([r.lesion_id for r in records]) == 0


def test_bad_fractions_are_rejected():
    records = small_records()
    with pytest.raises(DataError, match="add up to 1"):
        split_dataset(records, (0.5, 0.2, 0.2))
    with pytest.raises(DataError, match="three numbers"):
        split_dataset(records, (0.5, 0.5))
    with pytest.raises(DataError, match="too few groups"):
        split_dataset(records[:1])


def test_csv_round_trip_and_read_errors(tmp_path):
    records = small_records()
    split = split_dataset(records, (0.7, 0.15, 0.15), seed=0)
    path = split.save(tmp_path / "split.csv")
    assert path.read_text().splitlines()[0] == "image_id,lesion_id,dx,split,group"
    assert read_split_csv(path) == split.as_dict()
    (tmp_path / "bad.csv").write_text("image_id,split\nISIC_1,training\n")
    with pytest.raises(DataError, match="line 2: unknown split 'training'"):
        read_split_csv(tmp_path / "bad.csv")
    (tmp_path / "cols.csv").write_text("image,split\nISIC_1,train\n")
    with pytest.raises(DataError, match="missing column"):
        read_split_csv(tmp_path / "cols.csv")


def test_real_metadata_split_meets_the_tolerances(shared_sample):
    records = read_metadata(shared_sample / "HAM10000_metadata.csv")
    split = split_dataset(records, seed=0)
    assert split.crossing_groups([r.lesion_id for r in records]) == 0
    overall = np.bincount(split.labels, minlength=7) / len(records)
    for name, fraction in zip(("train", "val", "test"), (0.75, 0.125, 0.125), strict=True):
        index = split.indices(name)
        assert abs(len(index) / len(records) - fraction) <= 0.005
        shares = np.bincount(split.labels[index], minlength=7) / len(index)
        assert np.abs(shares - overall).max() <= 0.005


def test_nan_fractions_are_a_data_error():
    recs = [ImageRecord(f"I{i}", "nv" if i % 3 else "mel", f"L{i // 2}") for i in range(40)]
    with pytest.raises(DataError, match="finite"):
        split_dataset(recs, [float("nan"), 0.5, 0.5])


def test_duplicates_from_a_dedup_result_keep_their_images_together():
    from dataclasses import dataclass
    from pathlib import Path

    @dataclass
    class FakeResult:  # what split_dataset reads of a DedupResult
        paths: list

        def group_labels(self):
            return ["dup1" if p.stem in ("I0", "I79") else None for p in self.paths]

    recs = [ImageRecord(f"I{i}", "nv" if i % 3 else "mel", f"L{i}") for i in range(80)]
    result = FakeResult([Path(f"x/I{i}.jpg") for i in range(80)])
    for seed in range(5):
        split = split_dataset(recs, seed=seed, duplicates=result)
        assert split.as_dict()["I0"] == split.as_dict()["I79"]
    with pytest.raises(DataError, match="Deduplicator.find"):
        split_dataset(recs, duplicates=[1, 2])
