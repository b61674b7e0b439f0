"""The cross-data-set audit: an "ISIC 2019"-like folder built from a synthetic HAM10000 set (ids
kept and renamed, bytes copied, re-saved, re-encoded, resized) plus images of other lesions; the
matrix must name exactly the shared images, and the CLI exits 3 when the test set shares any."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
from PIL import Image

from hamkit.cli.main import main
from hamkit.data.images import find_images
from hamkit.data.readers import read_dataset
from hamkit.dedup.crossdata import audit_datasets


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory):
    from hamkit.synthetic import make_synthetic

    tmp = tmp_path_factory.mktemp("cross")
    ham = make_synthetic(tmp / "ham", n_lesions=30, random_state=5, image_size=(128, 96), duplicate_fraction=0.0)
    other = make_synthetic(tmp / "other", n_lesions=12, random_state=77, image_size=(128, 96), duplicate_fraction=0.0)
    records = read_dataset(ham.root)
    files = find_images(ham.root)
    isic = tmp / "isic2019" / "ISIC_2019_Training_Input"
    isic.mkdir(parents=True)
    truth: dict[str, str] = {}
    for k, record in enumerate(records[:24]):
        source = files[record.image_id]
        way = ("same", "renamed", "png", "reencoded", "resized", "same")[k % 6]
        new_id = record.image_id if way in ("same", "reencoded") else f"ISIC_9{k:06d}"
        if way in ("same", "renamed"):
            shutil.copyfile(source, isic / f"{new_id}.jpg")
        elif way == "png":
            Image.open(source).save(isic / f"{new_id}.png")
        elif way == "reencoded":
            Image.open(source).save(isic / f"{new_id}.jpg", quality=70)
        else:
            image = Image.open(source)
            image.resize((100, 75), Image.Resampling.LANCZOS).save(isic / f"{new_id}.jpg", quality=90)
        truth[new_id] = way
    for k, path in enumerate(sorted(find_images(other.root).values())[:6]):
        shutil.copyfile(path, isic / f"ISIC_8{k:06d}.jpg")
        truth[f"ISIC_8{k:06d}"] = "other"
    columns = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
    with (isic.parent / "ISIC_2019_Training_GroundTruth.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", *columns])
        for image_id in truth:
            writer.writerow([image_id, *(int(c == "NV") for c in columns)])
    return ham.root, isic.parent, truth


def test_the_matrix_names_exactly_the_shared_images(two_sets):
    ham, isic, truth = two_sets
    records = {"HAM10000": read_dataset(ham), "ISIC 2019": read_dataset(isic)}
    audit = audit_datasets({"HAM10000": ham, "ISIC 2019": isic}, test=["ISIC 2019"], records=records)
    overlap = audit.overlaps[0]
    ids = {criterion: set(found) for criterion, found in overlap.images.items()}
    assert ids["same_id"] == {i for i, w in truth.items() if w in ("same", "reencoded")}
    assert ids["identical_bytes"] == {i for i, w in truth.items() if w in ("same", "renamed")}
    assert ids["identical_pixels"] == {i for i, w in truth.items() if w in ("same", "renamed", "png")}
    copies = {i for i, w in truth.items() if w != "other"}
    assert ids["verified"] == copies and set(overlap.shared) == copies
    assert audit.leaks == len(copies) == 24
    matrix = audit.matrix("verified")
    assert matrix["HAM10000"]["ISIC 2019"] == 24 and matrix["ISIC 2019"]["ISIC 2019"] == 30
    assert "share nothing" not in audit.format_table()


def test_cli_exit_status_and_files(two_sets, tmp_path, capsys):
    ham, isic, _ = two_sets
    argv = ["audit", "--data", f"ham={ham}", "--data", f"isic={isic}", "--method", "exact", "--quiet"]
    assert main([*argv, "--test", "isic", "--out", str(tmp_path / "out")]) == 3
    printed = capsys.readouterr().out
    assert "ham / isic" in printed and "shared between the test set(s) isic and the others" in printed
    saved = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert saved["leaks"] == saved["pairs_of_sets"][0]["any"] > 0
    rows = list(csv.DictReader((tmp_path / "out" / "overlaps.csv").open()))
    assert {r["criterion"] for r in rows} >= {"same_id", "identical_bytes", "identical_pixels"}
    assert main(argv) == 0  # no test set named: a report, not a verdict
    capsys.readouterr()
    assert main(["audit", "--data", str(ham), "--quiet"]) == 2
    assert "two or more --data sets" in capsys.readouterr().err


def test_unrelated_sets_share_nothing(two_sets, tmp_path):
    from hamkit.synthetic import make_synthetic

    ham, _, _ = two_sets
    other = make_synthetic(
        tmp_path / "other", n_lesions=10, random_state=123, image_size=(128, 96), duplicate_fraction=0.0
    )
    renamed = tmp_path / "b"
    renamed.mkdir()
    for k, path in enumerate(sorted(find_images(other.root).values())):
        shutil.copyfile(path, renamed / f"B_{k:04d}.jpg")  # synthetic sets share their id numbering
    audit = audit_datasets({"a": ham, "b": renamed}, test=["b"], verify=False)
    assert audit.leaks == 0 and "share nothing with the others" in audit.format_table()
