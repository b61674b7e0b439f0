from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_200PX

from hamkit.classes import CLASS_CODES
from hamkit.data.metadata import ImageRecord, read_metadata
from hamkit.data.splits import merge_groups, read_split_csv, split_dataset
from hamkit.errors import DataError


def small_records(n_lesions: int = 120, random_state: int = 0) -> list[ImageRecord]:
    rng = np.random.default_rng(random_state)
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
    split = split_dataset(records, random_state=3)
    assert split.crossing_groups([r.lesion_id for r in records]) == 0
    assert set(split.assignment) == {"train", "val", "test"}
    for name in ("train", "val", "test"):  # the repair step puts every class in every split
        assert set(split.labels[split.indices(name)]) == set(range(7))
    again = split_dataset(records, random_state=3)
    assert np.array_equal(split.assignment, again.assignment)
    other = split_dataset(records, random_state=4)
    assert not np.array_equal(split.assignment, other.assignment)


def test_extra_groups_keep_duplicates_together():
    records = small_records(random_state=1)
    rng = np.random.default_rng(0)
    dup = [None] * len(records)
    for k, (a, b) in enumerate(rng.choice(len(records), size=(15, 2), replace=False)):
        dup[a] = dup[b] = f"dup{k}"  # planted duplicates across different lesions
    plain = split_dataset(records, random_state=0)
    assert plain.crossing_groups(dup) > 0  # without the extra key some pairs would leak
    split = split_dataset(records, random_state=0, extra_groups=[dup])
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
    split = split_dataset(records, (0.7, 0.15, 0.15), random_state=0)
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
    split = split_dataset(records, random_state=0)
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

    @dataclass
    class FakeResult:  # what split_dataset reads of a DedupResult
        paths: list

        def group_labels(self):
            return ["dup1" if p.stem in ("I0", "I79") else None for p in self.paths]

    recs = [ImageRecord(f"I{i}", "nv" if i % 3 else "mel", f"L{i}") for i in range(80)]
    result = FakeResult([Path(f"x/I{i}.jpg") for i in range(80)])
    for random_state in range(5):
        split = split_dataset(recs, random_state=random_state, duplicates=result)
        assert split.as_dict()["I0"] == split.as_dict()["I79"]
    with pytest.raises(DataError, match="Deduplicator.find"):
        split_dataset(recs, duplicates=[1, 2])


# ---------------------------------------------------------------- K-fold cross-validation folds
REAL_METADATA = REAL_200PX / "HAM10000_metadata.csv"


def _fold_of_each_lesion(records, folds) -> dict:
    seen: dict = {}
    for record, fold in zip(records, folds.tolist(), strict=True):
        seen.setdefault(record.lesion_id, set()).add(fold)
    return seen


def test_folds_are_grouped_stratified_and_reproducible():
    records = small_records(n_lesions=200)
    split = split_dataset(records, folds=4, random_state=1)
    assert split.n_folds == 4 and sorted(set(split.folds.tolist())) == [0, 1, 2, 3]
    assert set(split.assignment) == {"train"}  # every image is in a fold, none held out
    assert all(len(f) == 1 for f in _fold_of_each_lesion(records, split.folds).values())
    for k in range(4):  # every class (each has >= 3 lesions, so the repair step can place it) in every fold
        assert set(split.labels[split.folds == k]) == set(range(7))
    assert np.array_equal(split.folds, split_dataset(records, folds=4, random_state=1).folds)
    assert not np.array_equal(split.folds, split_dataset(records, folds=4, random_state=2).folds)


def test_folds_after_a_held_out_test_split(tmp_path):
    records = small_records(n_lesions=240, random_state=2)
    split = split_dataset(records, folds=3, test=0.125, random_state=0)
    test = split.assignment == "test"
    assert 0.09 < test.mean() < 0.16 and np.all(split.folds[test] == -1) and np.all(split.folds[~test] >= 0)
    assert all(len(f) == 1 for f in _fold_of_each_lesion(records, split.folds).values())
    assert split.fractions == (0.875, 0.0, 0.125)
    one = split.fold(1)
    assert np.array_equal(one.assignment == "val", split.folds == 1)
    assert np.array_equal(one.assignment == "test", test) and one.folds is None
    assert one.crossing_groups([r.lesion_id for r in records]) == 0
    assert "fold 1" in split.summary() and "test" in split.summary()
    assert split.format_table().splitlines()[0].startswith("fold")
    path = split.save(tmp_path / "folds.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "image_id,lesion_id,dx,split,group,fold"
    assert {line.split(",")[3] for line in lines[1:]} == {"train", "test"}
    assert read_split_csv(path) == split.as_dict()  # without fold=: every fold is train
    for k in range(3):
        assert read_split_csv(path, fold=k) == split.fold(k).as_dict()
    with pytest.raises(DataError, match="no fold 3; the file has folds 0..2"):
        read_split_csv(path, fold=3)
    plain = split_dataset(records, random_state=0).save(tmp_path / "plain.csv")
    with pytest.raises(DataError, match="no fold column"):
        read_split_csv(plain, fold=0)


def test_folds_keep_duplicate_groups_together():
    records = small_records(random_state=3)
    rng = np.random.default_rng(1)
    dup = [None] * len(records)
    for k, (a, b) in enumerate(rng.choice(len(records), size=(15, 2), replace=False)):
        dup[a] = dup[b] = f"dup{k}"
    split = split_dataset(records, folds=3, extra_groups=[dup], random_state=0)
    folds = {}
    for key, fold in zip(dup, split.folds.tolist(), strict=True):
        if key is not None:
            folds.setdefault(key, set()).add(fold)
    assert all(len(f) == 1 for f in folds.values())


def test_fold_errors_say_what_to_change():
    records = small_records()
    with pytest.raises(DataError, match="at least 2"):
        split_dataset(records, folds=1)
    with pytest.raises(DataError, match=r"has only \d+; use folds=\d+ or fewer"):
        split_dataset(records, folds=50)
    rarest = min(len({r.lesion_id for r in records if r.label == c}) for c in range(7))
    split_dataset(records, folds=rarest)  # as many folds as the rarest class has lesions: fine
    with pytest.raises(DataError, match=r"after the held-out test split; use folds=\d+ or fewer"):
        split_dataset(records, folds=rarest, test=0.25)
    with pytest.raises(DataError, match="test= needs folds="):
        split_dataset(records, test=0.1)
    with pytest.raises(DataError, match="fractions= does not apply"):
        split_dataset(records, (0.8, 0.1, 0.1), folds=3)
    with pytest.raises(DataError, match="test must be a fraction"):
        split_dataset(records, folds=3, test=1.0)
    with pytest.raises(DataError, match="no folds"):
        split_dataset(records).fold(0)
    with pytest.raises(DataError, match="no fold 3"):
        split_dataset(records, folds=3).fold(3)


def test_from_folder_reads_one_fold(tiny_folder):
    from hamkit.data.dataset import SkinDataset

    ids = [f"ISIC_{i:07d}" for i in range(14)]
    folds = ["0", "0", "1", "1", "0", "0", "1", "1", "0", "0", "1", "1", "", ""]
    rows = [
        f"{i},HAM_{n // 2:07d},nv,{'train' if f else 'test'},g{n // 2},{f}" for n, (i, f) in enumerate(zip(ids, folds))
    ]
    path = tiny_folder / "folds.csv"
    path.write_text("image_id,lesion_id,dx,split,group,fold\n" + "\n".join(rows) + "\n")
    val = SkinDataset.from_folder(tiny_folder, split_csv=path, split="val", fold=1, image_size=32)
    train = SkinDataset.from_folder(tiny_folder, split_csv=path, split="train", fold=1, image_size=32)
    assert val.image_ids == [i for i, f in zip(ids, folds) if f == "1"]
    assert train.image_ids == [i for i, f in zip(ids, folds) if f == "0"]
    with pytest.raises(DataError, match="fold= needs split_csv="):
        SkinDataset.from_folder(tiny_folder, fold=0)


@pytest.mark.skipif(not REAL_METADATA.is_file(), reason="../shared/data/ham10000-200px is not present")
def test_real_metadata_folds_are_grouped_and_balanced():
    records = read_metadata(REAL_METADATA)
    split = split_dataset(records, folds=5, test=0.125, random_state=0)
    assert len({r.lesion_id for r in records}) == 7470
    assert all(len(f) == 1 for f in _fold_of_each_lesion(records, split.folds).values())  # no lesion in two folds
    in_folds = split.folds >= 0
    overall = np.bincount(split.labels[in_folds], minlength=7) / in_folds.sum()
    for k in range(5):
        index = split.folds == k
        assert abs(index.sum() / in_folds.sum() - 0.2) <= 0.005
        shares = np.bincount(split.labels[index], minlength=7) / index.sum()
        assert np.abs(shares - overall).max() <= 0.005  # within half a percentage point of the whole
    assert abs((split.assignment == "test").mean() - 0.125) <= 0.005
