"""Grouping by any key: splits and folds keep lesion, patient and duplicate groups together,
and hold out a whole source; checked on small tables and on the real HAM10000 metadata."""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import pytest

from hamkit.data.metadata import ImageRecord, read_labels, read_metadata
from hamkit.data.splits import split_dataset
from hamkit.errors import DataError


def assert_disjoint(records, assignment, key) -> int:
    """Every value of ``key`` lies in one split; returns how many values were checked."""
    seen: dict[str, str] = {}
    for record, name in zip(records, assignment, strict=True):
        value = key(record)
        if value:
            assert seen.setdefault(value, name) == name, f"{value} is in {seen[value]} and {name}"
    return len(seen)


def with_patients(records: list[ImageRecord], patients: int) -> list[ImageRecord]:
    """The records with a made-up patient key that puts several lesions under one patient."""
    return [
        dataclasses.replace(r, keys=(("patient_id", f"P{zlib.crc32(r.lesion_id.encode()) % patients}"),))
        for r in records
    ]


def test_lesion_and_patient_keys_are_merged():
    records = [
        ImageRecord("a", "mel", "L1", keys=(("patient_id", "P1"),)),
        ImageRecord("b", "nv", "L2", keys=(("patient_id", "P1"),)),
        ImageRecord("c", "nv", "L3", keys=(("patient_id", "P2"),)),
    ]
    many = [
        ImageRecord(f"I{i}", "mel" if i % 4 == 0 else "nv", f"L{i}", keys=(("patient_id", f"P{i // 3}"),))
        for i in range(120)
    ]
    split = split_dataset(many, random_state=1)
    assert assert_disjoint(many, split.assignment, lambda r: r.group_keys["patient_id"]) == 40
    assert np.unique(split.groups).size == 40  # three lesions per patient: one group per patient
    assert records[0].group_keys == {"lesion_id": "L1", "patient_id": "P1"}


def test_group_by_reads_any_column(tmp_path):
    path = tmp_path / "labels.csv"
    rows = [f"img{i},{'mel' if i % 3 == 0 else 'nv'},S{i % 2},H{i // 4}" for i in range(48)]
    path.write_text("image_id,dx,site,patient\n" + "\n".join(rows) + "\n")
    records = read_labels(path, label_column="dx", group_by="patient,site")
    assert records[0].keys == (("patient", "H0"), ("site", "S0"))
    with pytest.raises(DataError, match="missing column.*clinic"):
        read_labels(path, label_column="dx", group_by=["clinic"])


def test_hold_out_source_takes_whole_sources_and_their_groups():
    records = [
        ImageRecord(f"I{i}", "mel" if i % 3 == 0 else "nv", f"L{i // 2}", source="A" if i < 90 else "B")
        for i in range(120)
    ]
    # one lesion photographed in both sets: it must go with the held-out set
    records[89] = dataclasses.replace(records[89], lesion_id="L45")
    split = split_dataset(records, random_state=0, hold_out_source="B")
    test = set(np.array(split.image_ids)[split.assignment == "test"].tolist())
    assert {r.image_id for r in records if r.source == "B"} <= test and "I89" in test
    assert set(split.assignment[:88].tolist()) == {"train", "val"}
    assert assert_disjoint(records, split.assignment, lambda r: r.lesion_id)
    folds = split_dataset(records, folds=3, hold_out_source="B")
    assert (folds.folds[np.array([r.source == "B" for r in records])] == -1).all()
    with pytest.raises(DataError, match="no image comes from source 'C'; the sources are A, B"):
        split_dataset(records, hold_out_source="C")
    with pytest.raises(DataError, match="not both"):
        split_dataset(records, folds=3, test=0.1, hold_out_source="B")


def test_real_metadata_keeps_every_key_disjoint(shared_sample):
    """On the 10,015 real HAM10000 rows: lesion ids, a patient key joining lesions, and duplicate
    groups across lesions never span two splits or two folds; holding out one confirmation
    method (as a source) puts all its images, and their lesions, in the test split."""
    records = with_patients(read_metadata(shared_sample / "HAM10000_metadata.csv"), 3000)
    rng = np.random.default_rng(0)
    pairs = rng.choice(len(records), size=(200, 2), replace=False)  # duplicate pairs across lesions
    duplicate = [None] * len(records)
    for k, (i, j) in enumerate(pairs.tolist()):
        duplicate[i] = duplicate[j] = f"dup{k}"
    patients = len({r.group_keys["patient_id"] for r in records})
    keys = {
        "lesion": lambda r: r.lesion_id,
        "patient": lambda r: r.group_keys["patient_id"],
    }
    dup_of = dict(zip([r.image_id for r in records], duplicate, strict=True))
    for split in (
        split_dataset(records, random_state=0, extra_groups=[duplicate]),
        split_dataset(records, random_state=0, extra_groups=[duplicate], folds=5, test=0.1),
    ):
        sets = split.assignment if split.folds is None else np.where(split.folds < 0, "test", split.folds.astype(str))
        assert assert_disjoint(records, sets, keys["lesion"]) == 7470
        assert assert_disjoint(records, sets, keys["patient"]) == patients
        assert assert_disjoint(records, sets, lambda r: dup_of[r.image_id]) == 200
    sourced = [dataclasses.replace(r, source=r.dx_type) for r in records]
    held = split_dataset(sourced, random_state=0, hold_out_source="confocal")
    test = held.assignment == "test"
    assert all(name == "test" for r, name in zip(sourced, held.assignment, strict=True) if r.source == "confocal")
    assert 69 <= test.sum() < 1000 and set(held.assignment[~test].tolist()) == {"train", "val"}
    assert assert_disjoint(sourced, held.assignment, keys["lesion"]) == 7470
    assert assert_disjoint(sourced, held.assignment, keys["patient"]) == patients


def test_cli_split_holds_out_a_source_column(tmp_path, capsys):
    import csv

    from hamkit.cli.main import main

    path = tmp_path / "labels.csv"
    rows = [
        f"img{i},{'mel' if i % 3 == 0 else 'nv'},{'clinic_b' if i >= 60 else 'clinic_a'},L{i // 2}" for i in range(80)
    ]
    path.write_text("image_id,diagnosis,source,lesion_id\n" + "\n".join(rows) + "\n")
    out = tmp_path / "split.csv"
    assert (
        main(["split", str(path), "--label-column", "diagnosis", "--hold-out-source", "clinic_b", "--out", str(out)])
        == 0
    )
    capsys.readouterr()
    split = {r["image_id"]: r["split"] for r in csv.DictReader(out.open())}
    assert all(split[f"img{i}"] == "test" for i in range(60, 80))
    assert {split[f"img{i}"] for i in range(60)} == {"train", "val"}
