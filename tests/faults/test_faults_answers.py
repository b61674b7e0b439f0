"""Answers that must not be silently wrong: a folds CSV's audit compares the folds, and a verified
threshold cannot let "not verified" (score 0) pairs through."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_image

from hamkit.cli.main import main
from hamkit.dedup.deduplicator import Deduplicator
from hamkit.errors import HamkitError


def _folds_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("image_id,split,fold\n" + "".join(f"{i},{s},{f}\n" for i, s, f in rows))
    return path


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    """Six images; a0 and a1 are the same picture."""
    folder = tmp_path / "images"
    write_image(folder / "a0.png", random_state=7)
    write_image(folder / "a1.png", random_state=7)
    for i in range(4):
        write_image(folder / f"u{i}.png", random_state=20 + i)
    return folder


def test_audit_of_a_folds_csv_compares_every_pair_of_folds(images: Path, tmp_path: Path, capsys) -> None:
    leaking = _folds_csv(
        tmp_path / "folds.csv",
        [("a0", "train", "0"), ("u0", "train", "0"), ("a1", "train", "1"), ("u1", "train", "1")]
        + [("u2", "train", "2"), ("u3", "test", "")],
    )
    status = main(["audit", str(leaking), "--data", str(images), "--method", "exact", "--quiet"])
    out = capsys.readouterr().out
    assert status == 3, out
    assert "fold0-fold1: 1 near-duplicate pair(s)" in out and "fold1-test: 0" in out and "LEAKAGE" in out

    result = Deduplicator("exact", progress=False).audit(leaking, images)
    assert sorted(result.crossings) == sorted(
        ["fold0-fold1", "fold0-fold2", "fold0-test", "fold1-fold2", "fold1-test", "fold2-test"]
    )
    assert result.leaks == 1

    clean = _folds_csv(
        tmp_path / "clean.csv",
        [("a0", "train", "0"), ("a1", "train", "0"), ("u0", "train", "1"), ("u1", "train", "1")]
        + [("u2", "train", "2"), ("u3", "test", "")],
    )
    assert main(["audit", str(clean), "--data", str(images), "--method", "exact", "--quiet"]) == 0
    assert "total: 0 (clean)" in capsys.readouterr().out


def test_a_plain_split_csv_is_still_audited_by_split(images: Path, tmp_path: Path) -> None:
    split = tmp_path / "split.csv"
    split.write_text("image_id,split\na0,train\na1,test\nu0,val\n")
    result = Deduplicator("exact", progress=False).audit(split, images)
    assert sorted(result.crossings) == ["train-test", "train-val", "val-test"]
    assert len(result.crossings["train-test"].pairs) == 1


@pytest.mark.parametrize("threshold", [0, 0.0, -0.5, -1])
def test_a_verified_threshold_of_zero_or_below_is_refused(threshold: float, tmp_path: Path, capsys) -> None:
    with pytest.raises(HamkitError, match=r"in \(0, 1\].*could not be aligned"):
        Deduplicator(threshold=threshold).find([tmp_path / "none.png"])
    status = main(["dedup", str(tmp_path), "--out", str(tmp_path / "out"), "--threshold", str(threshold)])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1 and "(0, 1]" in err
    assert not (tmp_path / "out").exists()


def test_export_refuses_an_opset_newer_than_the_exporter_before_exporting(tmp_path: Path, capsys) -> None:
    pytest.importorskip("onnx")
    from hamkit.export import export_onnx

    with pytest.raises(HamkitError, match="opset 99 is newer"):
        export_onnx(tmp_path / "no-model", tmp_path / "m.onnx", opset=99)  # refused before the model is read
    status = main(["export", str(tmp_path / "no-model"), "--out", str(tmp_path / "m.onnx"), "--opset", "99"])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1 and "pick --opset" in err
    assert not (tmp_path / "m.onnx").exists()


def test_no_threshold_is_suggested_from_zero_pairs_across_lesions() -> None:
    import numpy as np

    from hamkit.dedup.thresholds import calibrate_scores

    table = calibrate_scores(np.array([0.9, 0.6, 0.3]), np.array([True, True, True]), thresholds=[0.1, 0.5, 0.8])
    assert table.suggested is None and "none of the 3 candidate pair(s) is across lesions" in table.reason
    empty = calibrate_scores(np.array([]), np.array([], dtype=bool))
    assert empty.suggested is None


def test_dedup_labels_counts_ids_and_images_that_do_not_match(images: Path, tmp_path: Path, capsys) -> None:
    import json

    from conftest import write_metadata

    metadata = write_metadata(
        tmp_path / "meta.csv",
        [("L0", "a0", "nv"), ("L0", "a1", "nv"), ("L1", "u0", "mel"), ("L2", "gone1", "nv"), ("L3", "gone2", "df")],
    )
    out = tmp_path / "out"
    argv = ["dedup", str(images), "--out", str(out), "--method", "exact", "--quiet", "--labels", str(metadata)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "3 image(s) have no row in" in text and "2 of its image id(s) match no image here" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["labels"] == {"images_without_labels": 3, "labels_without_images": 2}


def test_dedup_against_the_same_images_is_refused(images: Path, tmp_path: Path, capsys) -> None:
    argv = ["dedup", str(images), "--against", str(images), "--out", str(tmp_path / "out"), "--method", "exact"]
    assert main([*argv, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "every file of --against (6, e.g." in err and "also in IMAGES" in err
    assert not (tmp_path / "out" / "pairs.csv").exists()


def test_dedup_against_skips_and_lists_an_unreadable_file(images: Path, tmp_path: Path, capsys) -> None:
    old = tmp_path / "old"
    write_image(old / "a0-copy.png", random_state=7)  # the same picture as images/a0.png and a1.png
    write_image(old / "other.png", random_state=99)
    (old / "broken.png").write_bytes(b"not an image at all")
    out = tmp_path / "out"
    argv = ["dedup", str(images), "--against", str(old), "--out", str(out), "--method", "exact"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "2 duplicate pair(s)" in text and "1 unreadable, skipped, listed in skipped.txt" in text
    assert f"skipped {old / 'broken.png'}: " in text
    assert (out / "skipped.txt").read_text().startswith(f"{old / 'broken.png'}\t")
    assert len((out / "pairs.csv").read_text().splitlines()) == 3  # header + a0 and a1 with the copy
    assert sorted(p.name for p in out.iterdir()) == ["pairs.csv", "skipped.txt"]


def test_dedup_against_a_set_that_cannot_be_read_is_refused(images: Path, tmp_path: Path, capsys) -> None:
    old = tmp_path / "old"
    old.mkdir()
    (old / "broken.png").write_bytes(b"not an image")
    (old / "empty.jpg").write_bytes(b"")
    out = tmp_path / "out"
    assert main(["dedup", str(images), "--against", str(old), "--out", str(out), "--method", "exact", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hamkit dedup: error: none of the 2 image(s) of --against could be read") and "e.g." in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()  # no "0 pairs" answer from nothing compared
    with pytest.raises(HamkitError, match="none of the 2 image"):
        Deduplicator("exact").find_cross(images, old)


@pytest.mark.parametrize(
    ("argv", "advice"),
    [
        (["--folds", "5"], "use --folds 4 or fewer, or more data"),  # mel has 4 lesions
        (["--folds", "3", "--test", "0.5"], "use --folds 2 or fewer, or a smaller held-out test split, e.g. --test "),
        # every class keeps a lesion in the test split: no smaller share leaves mel 4 lesions
        (["--folds", "4", "--test", "0.3"], "use --folds 3 or fewer, or a smaller held-out test split, or more data"),
    ],
)
def test_the_folds_advice_is_advice_that_works(tmp_path: Path, capsys, argv: list[str], advice: str) -> None:
    from conftest import write_metadata

    # lesions per class: mel 4, nv 8, the others 5; two images per lesion
    per_class = {"mel": 4, "nv": 8, "bcc": 5, "akiec": 5, "bkl": 5, "df": 5, "vasc": 5}
    rows = [(f"{dx}{k}", f"{dx}{k}_{j}", dx) for dx, n in per_class.items() for k in range(n) for j in range(2)]
    labels = write_metadata(tmp_path / "meta.csv", rows)
    out = tmp_path / "folds.csv"
    assert main(["split", str(labels), "--out", str(out), *argv]) == 1
    err = capsys.readouterr().err
    assert advice in err and err.count("\n") == 1, err
    assert "--folds 1 " not in err and "folds=" not in err and "test=" not in err
    if "e.g. --test " in err:  # the share it suggests does make the folds
        share = err.split("e.g. --test ")[1].split(",")[0]
        assert float(share) < float(argv[3])
        assert main(["split", str(labels), "--out", str(out), *argv[:2], "--test", share]) == 0
        assert out.is_file()


def test_find_cross_leaves_shared_files_out_of_the_second_set(images: Path) -> None:
    from hamkit.dedup import Deduplicator

    one = sorted(images.iterdir())[0]
    with pytest.warns(UserWarning, match="share 1 file"):
        result = Deduplicator("exact").find_cross([one], images)
    assert one not in result.paths_b and len(result.paths_b) == 5


def test_a_split_says_which_class_a_split_lacks() -> None:
    import warnings

    from hamkit.data.metadata import ImageRecord
    from hamkit.data.splits import split_dataset

    records = [ImageRecord(f"I{i}", "nv" if i % 2 else "mel", f"L{i}") for i in range(80)]
    records.append(ImageRecord("D0", "df", "LD0"))  # one df lesion: two splits go without
    with pytest.warns(UserWarning, match=r"df \(1 lesion\(s\)\) has no image in (train|val|test) or"):
        split_dataset(records, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split_dataset(records[:80], random_state=0)  # every class everywhere: no word


def test_training_on_one_class_says_so_before_the_first_epoch(tiny_folder: Path, tmp_path: Path, monkeypatch) -> None:
    from conftest import write_metadata

    from hamkit import LesionClassifier, SkinDataset
    from hamkit.engine import fitting

    write_metadata(tiny_folder / "HAM10000_metadata.csv", [(f"L{i}", f"ISIC_{i:07d}", "nv") for i in range(14)])

    class Stop(Exception):
        pass

    def stop(self, *args, **kwargs):
        raise Stop

    monkeypatch.setattr(fitting.Trainer, "fit", stop)
    clf = LesionClassifier("resnet18", image_size=32, pretrained=False, device="cpu")
    with pytest.warns(UserWarning, match=r"one class only \(nv, 14 images\)"), pytest.raises(Stop):
        clf.set_params(recipe__epochs=1, recipe__batch_size=4).fit(
            SkinDataset.from_folder(tiny_folder, image_size=32), progress=False
        )
