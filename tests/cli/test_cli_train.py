"""hamkit train / predict / evaluate / split through the command line (main(argv))."""

from __future__ import annotations

import csv
import json

from hamkit.cli.main import main
from hamkit.data.cache import shared_decode_cache


def test_split_command(synthetic, tmp_path, capsys):
    out = tmp_path / "split.csv"
    groups = tmp_path / "groups.csv"
    groups.write_text("image_id,group\n")
    assert (
        main(
            [
                "split",
                str(synthetic.metadata_csv),
                "--out",
                str(out),
                "--random-state",
                "2",
                "--group-csv",
                str(groups),
                "--pie",
                str(tmp_path / "pie.png"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "no lesion in two splits" in printed and (tmp_path / "pie.png").is_file()
    rows = list(csv.DictReader(out.open()))
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    assert main(["split", str(synthetic.metadata_csv), "--out", str(out), "--fractions", "0.5", "0.5", "0.5"]) == 1
    assert "add up to 1" in capsys.readouterr().err


def test_train_predict_evaluate(synthetic, tmp_path, capsys):
    run = tmp_path / "run"
    argv = [
        "train",
        "classifier",
        "--data",
        str(synthetic.root),
        "--split-csv",
        str(synthetic.root / "split.csv"),
        "--out",
        str(run),
        "--backbone",
        "resnet18",
        "--image-size",
        "32",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--lr",
        "2e-3",
        "--weight-decay",
        "0.01",
        "--freeze",
        "0.2",
        "--input-lr-scale",
        "0.5",
        "--no-pretrained",
        "--workers",
        "0",
        "--quiet",
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    assert "best epoch" in capsys.readouterr().out
    assert (run / "model" / "config.json").is_file() and (run / "history.csv").is_file()
    # the decoded images went to the cache that every run and training shares, not into OUT
    assert list(shared_decode_cache().glob("*.images.npy")) and not (run / "cache").exists()
    assert len(json.loads((run / "history.json").read_text())) == 2
    recorded = json.loads((run / "model" / "config.json").read_text())["recipe"]
    assert (recorded["weight_decay"], recorded["freeze"], recorded["input_lr_scale"]) == (0.01, 0.2, 0.5)

    images = sorted(synthetic.root.rglob("ISIC_*.jpg"))[:3]
    assert main(["predict", str(run / "model"), *map(str, images), "--out", str(tmp_path / "p.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [r["image_id"] for r in rows] == [p.stem for p in images]
    assert abs(sum(float(rows[0][c]) for c in ("mel", "nv", "bcc", "akiec", "bkl", "df", "vasc")) - 1) < 1e-4

    assert (
        main(
            [
                "evaluate",
                str(run / "model"),
                "--data",
                str(synthetic.root),
                "--split-csv",
                str(synthetic.root / "split.csv"),
                "--out",
                str(tmp_path / "eval"),
            ]
        )
        == 0
    )
    assert "balanced accuracy" in capsys.readouterr().out
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["n_samples"] > 0 and (tmp_path / "eval" / "confusion_matrix.png").is_file()

    # resuming a finished run does no more epochs and keeps the history
    assert main(argv + ["--resume"]) == 0
    assert len(json.loads((run / "history.json").read_text())) == 2


def test_evaluate_refuses_a_non_model(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path), "--data", str(tmp_path), "--split-csv", "x.csv"]) == 1
    assert "not a saved hamkit model" in capsys.readouterr().err


def test_cross_validate_refuses_resume(tmp_path, capsys):
    args = ["train", "classifier", "--data", str(tmp_path), "--split-csv", str(tmp_path / "folds.csv")]
    assert main([*args, "--out", str(tmp_path / "cv"), "--cross-validate", "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hamkit train classifier: error: --resume cannot be used with --cross-validate")
    assert err.count("\n") == 1


def test_lesion_crops_need_their_segmenter_and_whole_images_refuse_one(synthetic, tmp_path, capsys):
    from hamkit.cli.main import main

    common = ["train", "classifier", "--data", str(synthetic.root), "--split-csv", str(synthetic.root / "split.csv")]
    assert main([*common, "--out", str(tmp_path / "a"), "--lesion-crop", "1.25", "--quiet"]) == 1
    assert "takes lesion-centred crops (lesion_crop=1.25): give --segmenter MODEL" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "b"), "--segmenter", str(tmp_path), "--quiet"]) == 1
    assert "--segmenter: the classifier takes whole images" in capsys.readouterr().err
    assert not (tmp_path / "a" / "model").exists() and not (tmp_path / "b" / "model").exists()
