from __future__ import annotations

from pathlib import Path

import pytest

from hamkit.classes import CLASS_CODES
from hamkit.data.metadata import ImageRecord, labels_of, read_isic_groundtruth, read_labels, read_metadata
from hamkit.errors import DataError

HEADER = "lesion_id,image_id,dx,dx_type,age,sex,localization\n"


def write(tmp_path: Path, text: str, name: str = "meta.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_rows_with_empty_age_and_canonical_labels(tmp_path):
    path = write(tmp_path, HEADER + "HAM_1,ISIC_1,mel,histo,,male,back\nHAM_1,ISIC_2,vasc,consensus,35.0,female,face\n")
    records = read_metadata(path)
    assert records[0] == ImageRecord("ISIC_1", "mel", "HAM_1", "histo", None, "male", "back")
    assert records[1].age == 35.0
    assert labels_of(records) == [0, 6]
    assert records[0].group == "HAM_1"


def test_missing_column_is_named(tmp_path):
    path = write(tmp_path, "lesion_id,image_id\nHAM_1,ISIC_1\n")
    with pytest.raises(DataError, match=r"meta\.csv: missing column\(s\) dx"):
        read_metadata(path)


def test_unknown_dx_names_line_and_value(tmp_path):
    path = write(tmp_path, HEADER + "HAM_1,ISIC_1,nv,histo,1,male,back\nHAM_2,ISIC_2,melanoma,histo,1,male,back\n")
    with pytest.raises(DataError, match=r"line 3: unknown dx code 'melanoma'"):
        read_metadata(path)


def test_duplicate_image_id_names_both_lines(tmp_path):
    path = write(tmp_path, HEADER + "HAM_1,ISIC_1,nv,,,,\nHAM_2,ISIC_1,nv,,,,\n")
    with pytest.raises(DataError, match=r"'ISIC_1' appears twice \(lines 2 and 3\)"):
        read_metadata(path)


def test_bad_age_and_empty_file_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="age 'old' is not a number"):
        read_metadata(write(tmp_path, HEADER + "HAM_1,ISIC_1,nv,histo,old,male,back\n"))
    with pytest.raises(DataError, match="no rows"):
        read_metadata(write(tmp_path, HEADER, "empty.csv"))
    with pytest.raises(DataError, match="file not found"):
        read_metadata(tmp_path / "nope.csv")


def test_isic_groundtruth_argmax_and_one_hot_check(tmp_path):
    text = "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\nISIC_1,0.0,0.0,1.0,0.0,0.0,0.0,0.0\n"
    records = read_isic_groundtruth(write(tmp_path, text))
    assert records == [ImageRecord("ISIC_1", "bcc")]
    assert records[0].group == "ISIC_1"
    bad = text + "ISIC_2,1.0,0.0,1.0,0.0,0.0,0.0,0.0\n"
    with pytest.raises(DataError, match=r"line 3: row for 'ISIC_2' is not one-hot"):
        read_isic_groundtruth(write(tmp_path, bad, "bad.csv"))
    with pytest.raises(DataError, match="must be numbers"):
        read_isic_groundtruth(write(tmp_path, text + "ISIC_3,x,0,0,0,0,0,1\n", "nan.csv"))


def test_read_labels_detects_the_format(tmp_path):
    meta = write(tmp_path, HEADER + "HAM_1,ISIC_1,df,histo,,male,back\n")
    gt = write(tmp_path, "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\nISIC_1,0,0,0,0,0,1,0\n", "gt.csv")
    assert read_labels(meta)[0].dx == read_labels(gt)[0].dx == "df"
    with pytest.raises(DataError, match="which column holds the image ids.*--image-column"):
        read_labels(write(tmp_path, "a,b\n1,2\n", "other.csv"))


def test_real_metadata_and_groundtruth(shared_sample):
    records = read_metadata(shared_sample / "HAM10000_metadata.csv")
    assert len(records) == 10015
    assert len({r.lesion_id for r in records}) == 7470
    counts = {code: 0 for code in CLASS_CODES}
    for r in records:
        counts[r.dx] += 1
    assert counts == {"nv": 6705, "mel": 1113, "bkl": 1099, "bcc": 514, "akiec": 327, "vasc": 142, "df": 115}
    assert sum(r.age is None for r in records) > 0
    for name in ("ISIC2018_Task3_Validation_GroundTruth.csv", "ISIC2018_Task3_Test_GroundTruth.csv"):
        gt = read_isic_groundtruth(shared_sample / name)
        assert len(gt) > 100 and {r.dx for r in gt} == set(CLASS_CODES)


def test_latin1_tab_and_binary_label_files(tmp_path):
    """Spreadsheet exports in Latin-1 and Dataverse's tab-separated file read right; binary is refused."""
    from hamkit.data.metadata import read_labels

    header = "lesion_id,image_id,dx,dx_type,age,sex,localization\n"
    latin = tmp_path / "latin1.csv"
    latin.write_bytes((header + "HAM_1,ISIC_1,nv,histo,45,male,pi\xe8d\n").encode("latin-1"))
    assert read_labels(latin)[0].localization == "pièd"
    tab = tmp_path / "HAM10000_metadata.tab"
    tab.write_text(header.replace(",", "\t") + "HAM_1\tISIC_1\tmel\thisto\t45\tmale\tback\n")
    assert [(r.image_id, r.dx) for r in read_labels(tab)] == [("ISIC_1", "mel")]
    binary = tmp_path / "garbage.csv"
    binary.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(DataError, match="binary file, not a CSV"):
        read_labels(binary)
