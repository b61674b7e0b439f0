"""Atomic output: whole files or none, with the permissions the user's umask gives."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hamkit._io import atomic_path, atomic_write_bytes, atomic_write_text, current_umask


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path: Path, mask: int, mode: int) -> None:
    old = os.umask(mask)
    try:
        assert current_umask() == mask
        text = atomic_write_text(tmp_path / "a.csv", "x\n")
        data = atomic_write_bytes(tmp_path / "b.bin", b"\0")
    finally:
        os.umask(old)
    assert stat.S_IMODE(text.stat().st_mode) == mode
    assert stat.S_IMODE(data.stat().st_mode) == mode


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = atomic_write_text(tmp_path / "kept.txt", "old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"]


def test_names_that_are_not_utf8_are_written_as_their_bytes(tmp_path: Path) -> None:
    name = os.fsdecode(b"ISIC_\xff.jpg")  # Python holds the invalid byte as a surrogate
    written = atomic_write_text(tmp_path / "kept.txt", name + "\n")
    assert written.read_bytes() == b"ISIC_\xff.jpg\n"
