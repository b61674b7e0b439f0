"""One flag vocabulary (--data, --split-csv, --split, --quiet, --json), K-fold splits on the
command line, and --augment."""

from __future__ import annotations

import csv
import json

import pytest

from hamkit.cli.main import build_parser, in_flags, main

OLD_SPELLINGS = [
    (["audit", "s.csv", "--data", "imgs", "--root", "imgs"], "--root"),
    (["audit", "s.csv", "--data", "imgs", "--cache", "c"], "--cache"),
    (["dedup", "imgs", "--out", "o", "--cache", "c"], "--cache"),
    (["train", "classifier", "--data", "d", "--split-csv", "s.csv", "--out", "o", "--cache", "c"], "--cache"),
    (["evaluate", "m", "--data", "d", "--split-csv", "s.csv", "--subset", "val"], "--subset"),
]


@pytest.mark.parametrize(("argv", "old"), OLD_SPELLINGS, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_the_old_spellings_are_gone(argv, old, capsys):
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(argv)
    assert stop.value.code == 2 and f"unrecognized arguments: {old}" in capsys.readouterr().err


def test_a_csv_is_not_a_split_name(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "m", "--data", "d", "--split", "s.csv"])
    assert "invalid choice: 's.csv'" in capsys.readouterr().err


def test_the_new_spellings_are_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["train", "classifier", "--help"])
    text = capsys.readouterr().out
    assert "--decode-cache" in text and "--split-csv" in text and "--augment" in text


def test_the_subject_is_positional_or_a_flag_but_needed_once(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["dedup", "--out", "o"])
    assert stop.value.code == 2 and "one of the arguments IMAGES --data --merge is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["dedup", "a", "--data", "b", "--out", "o"])
    assert "not allowed with" in capsys.readouterr().err
    assert main(["audit", "--data", "imgs"]) == 2  # one folder: a split CSV is needed; several: compared
    assert "give a split CSV (SPLIT_CSV or --split-csv), or two or more --data sets" in capsys.readouterr().err
    assert main(["evaluate", "m", "--data", "d"]) == 1  # without --split-csv each set is scored whole
    assert "m: not a saved hamkit model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "m", "--data", "d", "--split-csv", "s.csv", "--split", "tset"])
    assert "invalid choice: 'tset'" in capsys.readouterr().err


def test_split_folds_and_json(synthetic, tmp_path, capsys):
    out = tmp_path / "folds.csv"
    assert main(["split", str(synthetic.metadata_csv), "--folds", "3", "--test", "0.125", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "in 3 folds plus" in text and text.splitlines()[0].startswith("fold")
    rows = list(csv.DictReader(out.open()))
    assert {r["fold"] for r in rows if r["split"] == "train"} == {"0", "1", "2"}
    assert {r["fold"] for r in rows if r["split"] == "test"} == {""}
    lesions: dict[str, set[str]] = {}
    for row in rows:
        lesions.setdefault(row["lesion_id"], set()).add(row["fold"])
    assert all(len(folds) == 1 for folds in lesions.values())  # no lesion in two folds (or in a fold and test)

    assert main(["split", str(synthetic.metadata_csv), "--out", str(tmp_path / "s.csv"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["folds"] is None and set(summary["summary"]) == {"train", "val", "test"}
    assert summary["images"] == sum(row["images"] for row in summary["summary"].values())


def test_split_usage_and_fold_errors(synthetic, tmp_path, capsys):
    labels, out = str(synthetic.metadata_csv), str(tmp_path / "f.csv")
    with pytest.raises(SystemExit):
        main(["split", labels, "--out", out, "--folds", "1"])
    assert "argument --folds: must be a whole number of at least 2" in capsys.readouterr().err
    assert main(["split", labels, "--out", out, "--test", "0.1"]) == 2
    assert "--test needs --folds" in capsys.readouterr().err
    assert main(["split", labels, "--out", out, "--folds", "3", "--fractions", "0.5", "0.25", "0.25"]) == 2
    assert "--fractions does not apply with --folds" in capsys.readouterr().err
    assert main(["split", labels, "--out", out, "--folds", "99"]) == 1
    err = capsys.readouterr().err
    assert "use --folds " in err and "folds=" not in err


def test_dedup_and_audit_json(synthetic, tmp_path, capsys):
    out = tmp_path / "dedup"
    argv = ["dedup", "--data", str(synthetic.root), "--out", str(out), "--method", "exact", "--quiet"]
    assert main([*argv, "--workers", "0", "--no-review", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["counts"]["pairs"] >= 1 and summary["out"] == str(out)
    split = tmp_path / "split.csv"
    assert (
        main(["split", str(synthetic.metadata_csv), "--out", str(split), "--group-csv", str(out / "groups.csv")]) == 0
    )
    capsys.readouterr()
    audit = ["audit", "--split-csv", str(split), "--data", str(synthetic.root), "--method", "exact"]
    assert main([*audit, "--quiet", "--workers", "0", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["leaks"] == 0 and set(result["by_split_pair"]) == {"train-val", "train-test", "val-test"}


def test_train_a_fold_then_evaluate_and_predict_with_the_new_flags(synthetic, tmp_path, capsys):
    folds = tmp_path / "folds.csv"
    assert main(["split", str(synthetic.metadata_csv), "--folds", "3", "--test", "0.125", "--out", str(folds)]) == 0
    common = ["--data", str(synthetic.root), "--split-csv", str(folds)]
    train = ["train", "classifier", *common, "--out", str(tmp_path / "run")]
    small = ["--backbone", "mobilenet_v3_small", "--image-size", "32", "--epochs", "1", "--no-pretrained"]
    assert main([*train, *small, "--workers", "0", "--device", "cpu", "--quiet"]) == 1  # a folds CSV needs --fold
    assert "add --fold K" in capsys.readouterr().err
    argv = [*train, "--fold", "1", *small, "--workers", "0", "--device", "cpu", "--augment", "light"]
    assert main([*argv, "--quiet", "--json", "--decode-cache", str(tmp_path / "decoded")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs"] == 1 and summary["best_epoch"] == 1 and "balanced_accuracy" in summary["validation"]
    assert (tmp_path / "decoded").is_dir()
    fold_rows = list(csv.DictReader(open(summary["split_csv"])))
    wanted = {r["image_id"]: r for r in csv.DictReader(folds.open())}
    for row in fold_rows:  # fold 1 is val, the other folds train, the held-out rows test
        fold = wanted[row["image_id"]]["fold"]
        assert row["split"] == ("test" if fold == "" else "val" if fold == "1" else "train")
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert "light" in json.dumps(config)

    model = str(tmp_path / "run" / "model")
    assert main(["evaluate", model, *common, "--fold", "1", "--split", "val", "--json", "--quiet"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["n_samples"] == sum(1 for r in fold_rows if r["split"] == "val") and captured.err == ""
    assert main(["evaluate", model, *common, "--split", "test"]) == 0  # the test rows need no fold
    captured = capsys.readouterr()
    assert "balanced accuracy" in captured.out and "scoring" in captured.err  # a progress line unless --quiet

    images = sorted(synthetic.root.rglob("ISIC_*.jpg"))[:5]
    assert main(["predict", model, *map(str, images), "--batch-size", "2", "--quiet"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6 and lines[0].startswith("image_id,prediction")


def test_errors_speak_in_flags():
    assert in_flags("audit", "approximate: use search_backend='numpy' for an exact audit").endswith(
        "use --search-backend numpy for an exact audit"
    )
    assert in_flags("predict", "CUDA is not available; use device='cpu'").endswith("use --device cpu")
    assert in_flags("split", "class df has only 3; use folds=3 or fewer").endswith("use --folds 3 or fewer")
    assert in_flags("evaluate", "no masks found; pass masks=PATH").endswith("pass --masks PATH")


def test_segmenter_train_evaluate_segment_with_the_new_flags(synthetic, tmp_path, capsys):
    rows = list(csv.DictReader((synthetic.root / "split.csv").open()))
    few = [r for name in ("train", "val", "test") for r in [r for r in rows if r["split"] == name][:8]]
    split = tmp_path / "few.csv"
    split.write_text("image_id,split\n" + "".join(f"{r['image_id']},{r['split']}\n" for r in few))
    common = ["--data", str(synthetic.root), "--split-csv", str(split)]
    run = tmp_path / "seg"
    small = ["--backbone", "smp:Unet:resnet18", "--image-size", "32", "--epochs", "1", "--batch-size", "8"]
    argv = ["train", "segmenter", *common, "--out", str(run), *small, "--no-pretrained", "--workers", "0"]
    assert main([*argv, "--device", "cpu", "--augment", "none", "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "segmenter"
    model = str(run / "model")
    assert main(["evaluate", model, *common, "--split", "val", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["n_images"] == 8
    images = sorted(synthetic.root.rglob("ISIC_*.jpg"))[:2]
    assert main(["segment", model, *map(str, images), "--out", str(tmp_path / "masks")]) == 0
    captured = capsys.readouterr()
    assert "wrote 2 mask(s)" in captured.out and "writing masks" in captured.err
    assert main(["segment", model, *map(str, images), "--out", str(tmp_path / "masks"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""
