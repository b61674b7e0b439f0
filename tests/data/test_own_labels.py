"""Your own labels: a labels CSV with another class set and its own column names trains,
calibrates, evaluates, splits and runs end to end, through the API and the CLI.

The data is a small synthetic set (hamkit.synthetic) whose images are reached through a
symlinked folder, with two labels files written from its metadata: binary melanoma-vs-rest
with a patient column, and ISIC 2019's eight classes as one-hot columns."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from hamkit.cli.main import main
from hamkit.data.images import find_images
from hamkit.data.metadata import read_labels, read_metadata

NET = ["--backbone", "mobilenet_v3_small", "--image-size", "32", "--no-pretrained", "--workers", "0"]
NET_FIT = ["--epochs", "1", "--batch-size", "16", "--quiet", "--device", "cpu"]
ISIC2019 = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """A folder with no HAM10000 metadata: its images are a symlink to a synthetic set's, and two
    labels files of other class sets lie beside it."""
    from hamkit.synthetic import make_synthetic

    tmp = tmp_path_factory.mktemp("own")
    synthetic = make_synthetic(
        tmp / "source", n_lesions=40, random_state=3, image_size=(64, 48), duplicate_fraction=0.0
    )
    root = tmp / "clinic"
    (root / "images").mkdir(parents=True)
    for folder in synthetic.image_dirs:
        os.symlink(folder, root / "images" / folder.name, target_is_directory=True)
    records = read_metadata(synthetic.metadata_csv)
    lesions = sorted({r.lesion_id for r in records})
    patient = {lesion: f"P{i // 2:03d}" for i, lesion in enumerate(lesions)}  # two lesions per patient
    binary = tmp / "binary.csv"
    with binary.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "finding", "patient"])
        for r in records:
            finding = "melanoma" if r.dx == "mel" else "other"
            writer.writerow([f"{r.image_id}.jpg", finding, patient[r.lesion_id]])
    eight = tmp / "isic2019.csv"
    with eight.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", *ISIC2019])
        for r in records:
            code = {"akiec": "AK" if lesions.index(r.lesion_id) % 2 else "SCC"}.get(r.dx, r.dx.upper())
            writer.writerow([r.image_id, *(int(c == code) for c in ISIC2019)])
    return {"root": root, "binary": binary, "eight": eight, "records": records, "patient": patient}


def test_the_class_set_comes_from_the_labels(own):
    binary = read_labels(own["binary"], label_column="finding", group_by=["patient"])
    assert binary[0].classes == ("melanoma", "other") and binary[0].image_id.startswith("ISIC_")
    assert {r.group_keys["patient"] for r in binary} == set(own["patient"].values())
    eight = read_labels(own["eight"])
    assert eight[0].classes == ("mel", "nv", "bcc", "bkl", "df", "vasc", "ak", "scc")  # UNK has no image
    assert sorted({r.label for r in eight}) == list(range(8))


def test_api_split_fit_calibrate_evaluate_save_with_binary_labels(own, tmp_path):
    from hamkit.classify import LesionClassifier
    from hamkit.data.splits import split_dataset

    records = read_labels(own["binary"], label_column="finding", group_by="patient")
    split = split_dataset(records, random_state=0)
    patients = {}
    for r, name in zip(records, split.assignment, strict=True):
        assert patients.setdefault(r.group_keys["patient"], name) == name  # a patient never spans two splits
    assert split.classes == ("melanoma", "other") and "melanoma" in split.format_table()
    split.save(tmp_path / "split.csv")
    assert {row["dx"] for row in csv.DictReader((tmp_path / "split.csv").open())} == {"melanoma", "other"}

    clf = LesionClassifier("mobilenet_v3_small", image_size=32, pretrained=False, device="cpu")
    clf.set_params(recipe__epochs=1, recipe__batch_size=16).fit(
        own["root"], split_csv=tmp_path / "split.csv", labels=records, progress=False
    )
    assert clf.classes_ == ["melanoma", "other"] and clf.network_.head.out_features == 2
    assert clf.get_params()["classes"] is None and clf.get_params()["num_classes"] is None  # parameters unchanged
    clf.calibrate(own["root"], split_csv=tmp_path / "split.csv", labels=records)
    assert clf.calibration_["protected"] == ["melanoma"]
    report = clf.evaluate(own["root"], split_csv=tmp_path / "split.csv", labels=records)
    assert report.classes == ["melanoma", "other"] and report.n_samples == int((split.assignment == "test").sum())
    assert not np.isnan(report.melanoma_sensitivity)
    loaded = LesionClassifier.load(clf.save(tmp_path / "model"), device="cpu")
    assert loaded.classes_ == ["melanoma", "other"]
    assert json.loads((tmp_path / "model" / "config.json").read_text())["classes"] == ["melanoma", "other"]
    some = sorted(find_images(own["root"]).values())[:4]
    np.testing.assert_allclose(loaded.predict_proba(some), clf.predict_proba(some), atol=1e-5)


def test_labels_outside_the_models_classes_are_refused(own, tmp_path):
    from hamkit.classify import LesionClassifier
    from hamkit.errors import DataError

    records = read_labels(own["binary"], label_column="finding")
    from hamkit.data.splits import split_dataset

    split_dataset(records, random_state=0).save(tmp_path / "split.csv")
    clf = LesionClassifier("mobilenet_v3_small", image_size=32, pretrained=False, device="cpu", num_classes=7)
    with pytest.raises(DataError, match=r"'melanoma', 'other' are not among the classes \['mel'"):
        clf.set_params(recipe__epochs=1).fit(
            own["root"], split_csv=tmp_path / "split.csv", labels=records, progress=False
        )


def test_cli_split_train_calibrate_evaluate_with_binary_labels(own, tmp_path, capsys):
    labels = ["--labels", str(own["binary"]), "--label-column", "finding", "--group-by", "patient"]
    split = tmp_path / "split.csv"
    assert (
        main(["split", str(own["binary"]), "--label-column", "finding", "--group-by", "patient", "--out", str(split)])
        == 0
    )
    assert "melanoma" in capsys.readouterr().out
    run = tmp_path / "run"
    data = ["--data", str(own["root"]), "--split-csv", str(split)]
    assert main(["train", "classifier", *data, *labels, "--out", str(run), *NET, *NET_FIT]) == 0
    assert "classes (2): melanoma, other" in capsys.readouterr().out
    calibrated = tmp_path / "calibrated"
    assert main(["calibrate", str(run / "model"), *data, *labels, "--out", str(calibrated), "--quiet"]) == 0
    capsys.readouterr()
    predictions = tmp_path / "predictions.csv"
    assert (
        main(["evaluate", str(calibrated), *data, *labels, "--predictions", str(predictions), "--json", "--quiet"]) == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["classes"] == ["melanoma", "other"] and summary["melanoma_sensitivity"] is not None
    header = next(csv.reader(predictions.open()))
    assert header[-2:] == ["p_melanoma", "p_other"]
    # the whole folder as an external data set, with its own labels file
    assert main(["evaluate", str(calibrated), "--data", str(own["root"]), *labels, "--json", "--quiet"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["data_sets"].values()
    assert row["classes"] == ["melanoma", "other"] and row["images"] == len(own["records"])


def test_cli_eight_classes_split_train_evaluate_and_run(own, tmp_path, capsys):
    split = tmp_path / "split.csv"
    assert main(["split", str(own["eight"]), "--out", str(split), "--folds", "2"]) == 0
    assert "scc" in capsys.readouterr().out
    run = tmp_path / "run"
    data = ["--data", str(own["root"]), "--split-csv", str(split), "--fold", "0"]
    labels = ["--labels", str(own["eight"])]
    assert main(["train", "classifier", *data, *labels, "--out", str(run), *NET, *NET_FIT, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["classes"] == ["mel", "nv", "bcc", "bkl", "df", "vasc", "ak", "scc"]
    assert main(["evaluate", str(run / "model"), *data, *labels, "--split", "val", "--json", "--quiet"]) == 0
    assert len(json.loads(capsys.readouterr().out)["classes"]) == 8

    settings = tmp_path / "run.toml"
    settings.write_text(
        '[dedup]\nmethods = ["exact"]\n'
        '[classifier]\nbackbone = "mobilenet_v3_small"\nimage_size = 32\nepochs = 1\nbatch_size = 16\n'
        "pretrained = false\n[segmenter]\nenabled = false\n"
        '[run]\nnum_workers = 0\nprogress = false\ndevice = "cpu"\n'
    )
    out = tmp_path / "pipeline"
    argv = ["run", "--data", str(own["root"]), "--labels", str(own["binary"]), "--label-column", "finding"]
    assert main([*argv, "--group-by", "patient", "--config", str(settings), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    report = (out / "report.html").read_text()
    assert "<th>melanoma</th>" in report and "<th>other</th>" in report and "<th>nv</th>" not in report
    assert json.loads((out / "classifier" / "model" / "config.json").read_text())["classes"] == ["melanoma", "other"]
    written = (out / "config.toml").read_text()
    assert 'label_column = "finding"' in written and 'group_by = ["patient"]' in written
    splits = {r["image_id"]: r["split"] for r in csv.DictReader((out / "split.csv").open())}
    patients: dict[str, str] = {}
    for r in read_labels(own["binary"], label_column="finding", group_by=["patient"]):
        assert patients.setdefault(r.group_keys["patient"], splits[r.image_id]) == splits[r.image_id]


def test_images_are_found_through_symlinked_folders(own):
    found = find_images(own["root"])
    assert len(found) == len(own["records"]) and all(Path(p).is_file() for p in found.values())
    loop = own["root"] / "images" / "loop"
    os.symlink(own["root"] / "images", loop, target_is_directory=True)  # a link loop ends
    try:
        assert find_images(own["root"]).keys() == found.keys()
    finally:
        loop.unlink()
