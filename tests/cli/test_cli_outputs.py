"""Output paths checked when the command line is read: a file where a folder is wanted, a folder
where a file is wanted, a place the user cannot write. One line naming the flag, exit 2, nothing
written."""

from __future__ import annotations

import os

import pytest

from hamkit.cli.main import main

FOLDER_COMMANDS = [
    ["dedup", "IMAGES", "--out", "OUT"],
    ["train", "classifier", "--data", "IMAGES", "--split-csv", "split.csv", "--out", "OUT"],
    ["run", "--out", "OUT"],
    ["audit", "split.csv", "--data", "IMAGES", "--out", "OUT"],
]
FILE_COMMANDS = [
    ["split", "meta.csv", "--out", "OUT"],
    ["predict", "MODEL", "IMAGES", "--out", "OUT"],
]


def _argv(template: list[str], tmp_path, out) -> list[str]:
    (tmp_path / "IMAGES").mkdir(exist_ok=True)
    return [
        str(out) if a == "OUT" else (str(tmp_path / a) if a.isupper() or a.endswith(".csv") else a) for a in template
    ]


@pytest.mark.parametrize("template", FOLDER_COMMANDS, ids=lambda t: t[0])
def test_out_that_is_a_file(template, tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("keep me")
    with pytest.raises(SystemExit) as exit_:
        main(_argv(template, tmp_path, out))
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "argument --out" in err and "is a file, not a folder" in err
    assert out.read_text() == "keep me"


@pytest.mark.parametrize("template", FILE_COMMANDS, ids=lambda t: t[0])
def test_out_that_is_a_folder(template, tmp_path, capsys):
    out = tmp_path / "folder"
    out.mkdir()
    with pytest.raises(SystemExit) as exit_:
        main(_argv(template, tmp_path, out))
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "argument --out" in err and "is a folder; give a file name" in err
    assert list(out.iterdir()) == []


def test_out_under_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit):
        main(["split", str(tmp_path / "meta.csv"), "--out", str(tmp_path / "file" / "split.csv")])
    assert "is a file, so" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root may write anywhere")
def test_out_in_a_folder_without_write_permission(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(SystemExit):
            main(["dedup", str(tmp_path), "--out", str(locked / "out")])
        assert "permission denied" in capsys.readouterr().err
    finally:
        locked.chmod(0o755)
