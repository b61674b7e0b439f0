"""Output paths checked when the command line is read: a file where a folder is wanted, a folder
where a file is wanted, a place the user cannot write. One line naming the flag, exit 2, nothing
written."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import traceback
from pathlib import Path

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


NOBODY = 65534  # the unprivileged user and group of Debian, Ubuntu and most Linux systems


def _main_as_nobody(argv: list[str]) -> tuple[object, str]:
    """``main(argv)`` in a forked child that dropped root for the unprivileged user ``nobody``.

    Root may write in any folder, so a permission check says nothing when the tests run as root
    (as CI does). The child is a fork of this process: the interpreter and hamkit's modules are
    already loaded, so it needs no access to the virtual environment (CI keeps it in a folder
    only root may enter). Returns main's exit status (or ``SystemExit`` code) and what it wrote
    to stderr.
    """
    with contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit):
        main([argv[0], "--help"])  # import what parsing and the usage line need while the files are readable
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        status = 70
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            assert os.geteuid() == NOBODY and not os.access("/root", os.W_OK)
            errors = io.StringIO()
            with contextlib.redirect_stderr(errors):
                try:
                    code: object = main(argv)
                except SystemExit as stop:
                    code = stop.code
            os.write(write_end, json.dumps([code, errors.getvalue()]).encode())
            status = 0
        except BaseException:  # what went wrong, for the assert below
            os.write(write_end, json.dumps([None, traceback.format_exc()]).encode())
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read()
    _, status = os.waitpid(pid, 0)
    code, err = json.loads(answer or b'[null, "no answer"]')
    assert os.waitstatus_to_exitcode(status) == 0, f"the child running as nobody failed: {err}"
    return code, err


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_out_in_a_folder_without_write_permission():
    # a folder every user may enter (pytest's tmp_path lies under a folder only its owner may enter)
    with tempfile.TemporaryDirectory(prefix="hamkit-perm-") as tmp:
        os.chmod(tmp, 0o755)
        locked = Path(tmp) / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        argv = ["dedup", tmp, "--out", str(locked / "out")]
        try:
            if os.geteuid() == 0:  # root writes anywhere: check as the unprivileged user instead
                code, err = _main_as_nobody(argv)
            else:
                errors = io.StringIO()
                with contextlib.redirect_stderr(errors), pytest.raises(SystemExit) as stop:
                    main(argv)
                code, err = stop.value.code, errors.getvalue()
        finally:
            locked.chmod(0o755)
        assert code == 2
        assert f"cannot write in {locked} (permission denied)" in err
        assert not (locked / "out").exists()
