from __future__ import annotations

import json

from hamkit.cli.main import main
from hamkit.data.metadata import read_metadata
from hamkit.data.splits import split_dataset


def test_dedup_then_split_with_groups_then_clean_audit(synthetic, tmp_path, capsys):
    out = tmp_path / "dedup"
    assert (
        main(["dedup", str(synthetic.root), "--out", str(out), "--method", "exact", "--quiet", "--workers", "0"]) == 0
    )
    text = capsys.readouterr().out
    assert "duplicate pair(s)" in text and (out / "review.png").is_file() and (out / "review.html").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["pairs"] >= 1
    split = tmp_path / "split.csv"
    assert (
        main(["split", str(synthetic.metadata_csv), "--out", str(split), "--group-csv", str(out / "groups.csv")]) == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "audit",
                str(split),
                "--data",
                str(synthetic.root),
                "--method",
                "exact",
                "--quiet",
                "--workers",
                "0",
                "--out",
                str(tmp_path / "audit"),
            ]
        )
        == 0
    )
    assert "total: 0 (clean)" in capsys.readouterr().out


def test_audit_exit_status_flags_leakage(synthetic, tmp_path, capsys):
    records = read_metadata(synthetic.metadata_csv)
    for random_state in range(20):  # a lesion-only split that lets a planted exact copy cross
        split_dataset(records, random_state=random_state).save(tmp_path / "s.csv")
        code = main(
            [
                "audit",
                str(tmp_path / "s.csv"),
                "--data",
                str(synthetic.root),
                "--method",
                "exact",
                "--quiet",
                "--workers",
                "0",
            ]
        )
        if code == 3:
            assert "(LEAKAGE)" in capsys.readouterr().out
            break
    else:
        raise AssertionError("no random_state let a planted duplicate cross; the audit could not be checked")


def test_dedup_errors(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["dedup", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--method", "phash"]) == 1
    assert "no images found" in capsys.readouterr().err
    assert main(["dedup", str(tmp_path), "--out", str(tmp_path / "o"), "--method", "cnn", "--threshold", "2"]) == 1
    assert "cosine similarity in (0, 1]" in capsys.readouterr().err


def test_search_backend_option_reaches_the_deduplicator():
    from hamkit.cli.dedup import dedup_from_args
    from hamkit.cli.main import build_parser

    parser = build_parser()
    args = parser.parse_args(
        ["dedup", "imgs", "--out", "o", "--method", "cnn", "--search-backend", "faiss-ivf", "--ivf-nprobe", "32"]
    )
    dedup = dedup_from_args(args)
    assert dedup.method.search_backend == "faiss-ivf" and dedup.method.ivf.nprobe == 32
    audit = parser.parse_args(["audit", "s.csv", "--data", "r", "--method", "cnn", "--search-backend", "numpy"])
    assert dedup_from_args(audit).method.search_backend == "numpy"
    default = dedup_from_args(parser.parse_args(["dedup", "imgs", "--out", "o", "--method", "cnn"]))
    assert default.method.search_backend == "auto" and default.method.ivf is None
    verified = dedup_from_args(parser.parse_args(["dedup", "imgs", "--out", "o", "--candidates", "20"]))
    assert verified.method.get_params() == {"batch_size": 32, "candidates": 20, "min_inliers": 15, "backend": "auto"}


def test_method_options_the_method_does_not_have_are_refused(tmp_path, capsys):
    for argv, named in (
        (["dedup", str(tmp_path), "--out", str(tmp_path / "o"), "--search-backend", "numpy"], "--search-backend"),
        (["audit", "s.csv", "--data", str(tmp_path), "--method", "phash", "--candidates", "5"], "--candidates"),
        (
            ["dedup", str(tmp_path), "--out", str(tmp_path / "o"), "--method", "exact", "--no-pretrained"],
            "--no-pretrained",
        ),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"error: {named} does not apply to --method" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_warnings_are_printed_as_one_line(tiny_folder, tmp_path, capsys):
    code = main(
        [
            "dedup",
            str(tiny_folder),
            "--out",
            str(tmp_path / "o"),
            "--method",
            "cnn",
            "--no-pretrained",
            "--backbone",
            "mobilenet_v3_small",
            "--image-size",
            "32",
            "--workers",
            "0",
            "--quiet",
            "--embedding-cache",
            str(tmp_path / "cache"),
        ]
    )
    assert code == 0
    err = capsys.readouterr().err
    assert "hamkit dedup: warning: Deduplicator('cnn', backbone='mobilenet_v3_small') has random weights" in err
    assert ".py:" not in err and "UserWarning" not in err  # no file, line or source code


def test_against_refuses_the_flags_it_cannot_honour(tmp_path, capsys):
    (tmp_path / "new").mkdir()
    (tmp_path / "old").mkdir()
    base = ["dedup", str(tmp_path / "new"), "--against", str(tmp_path / "old"), "--out", str(tmp_path / "o")]
    for extra, named in (
        (["--labels", str(tmp_path / "meta.csv")], "--labels"),
        (["--keep", "largest"], "--keep"),
        (["--keep", "first"], "--keep"),  # given, even as the default value, is refused
        (["--strict-groups"], "--strict-groups"),
        (["--no-review"], "--no-review"),
    ):
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith(f"hamkit dedup: error: {named} cannot be used with --against") and err.count("\n") == 1
    assert main([*base, "--keep", "largest", "--no-review"]) == 2
    assert "--keep, --no-review cannot be used with --against" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # refused before any scan
