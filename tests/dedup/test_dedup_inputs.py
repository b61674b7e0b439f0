"""Inputs that once hung or crashed a scan: pipes in a list file, file names that are not UTF-8."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hamkit import Deduplicator

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="FIFOs and byte file names as on Linux")


def _images(folder: Path) -> None:
    for k in range(3):
        pixels = (np.random.default_rng(k).random((60, 80, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"ok{k}.jpg")


@pytest.mark.parametrize("method", ["exact", "phash", "verified"])
def test_a_pipe_in_a_list_file_is_skipped_not_waited_for(tmp_path: Path, method: str) -> None:
    _images(tmp_path)
    os.mkfifo(tmp_path / "pipe.jpg")
    listing = tmp_path / "list.txt"
    listing.write_text("ok0.jpg\nok1.jpg\npipe.jpg\n")
    result = Deduplicator(method=method, progress=False, cache_dir=False, num_workers=0).find(listing)
    assert {result.paths[i].name: reason for i, reason in result.skipped.items()} == {
        "pipe.jpg": "not a regular file (a pipe, device or socket): skipped"
    }
    result.save(tmp_path / "out")
    assert "pipe.jpg" in (tmp_path / "out" / "skipped.txt").read_text()


@pytest.mark.parametrize("method", ["exact", "phash", "verified"])
def test_file_names_that_are_not_utf8_are_scanned_and_written_back_as_bytes(tmp_path: Path, method: str) -> None:
    _images(tmp_path)
    odd = os.fsdecode(b"ISIC_\xff\xfe.jpg")
    Image.open(tmp_path / "ok0.jpg").save(tmp_path / odd)  # a re-encoded copy of ok0
    result = Deduplicator(method=method, progress=False, cache_dir=tmp_path / "cache").find(tmp_path)
    assert len(result.paths) == 4 and not result.skipped
    out = result.save(tmp_path / "out")
    kept = (out / "kept.txt").read_bytes() + (out / "removed.txt").read_bytes()
    assert os.fsencode(str(tmp_path / odd)) in kept  # the very bytes of the name
    assert os.path.exists(os.fsdecode(kept.splitlines()[0]))


@pytest.mark.parametrize("method", ["exact", "verified"])
def test_folder_mode_lists_dangling_links_loops_and_pipes_as_skipped(tmp_path: Path, method: str) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    _images(folder)
    (folder / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    os.mkfifo(folder / "pipe.jpg")
    result = Deduplicator(method=method, progress=False, cache_dir=False, num_workers=0).find(folder)
    skipped = {result.paths[i].name for i in result.skipped}
    assert skipped == {"dangling.jpg", "loop.jpg", "pipe.jpg"}
    assert len(result.paths) == 6  # counted, not vanished
    result.save(tmp_path / "out")
    listed = (tmp_path / "out" / "skipped.txt").read_text()
    assert all(name in listed for name in skipped)
