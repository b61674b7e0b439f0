"""The decoding workers' heap setting (hamkit._heap)."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

from hamkit import _heap
from hamkit.dedup import inputs

PROBE = """
import ctypes, sys
from hamkit._heap import keep_freed_heap
libc = ctypes.CDLL(None)
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
applied = keep_freed_heap() if sys.argv[1] == "keep" else None
block = libc.malloc(8 << 20)
libc.free(block)
print(applied, libc.mallinfo2().keepcost)
"""


def _glibc_with_mallinfo2() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        ctypes.CDLL(None).mallinfo2  # noqa: B018 - glibc 2.33 or later
    except (OSError, AttributeError):
        return False
    return True


@pytest.mark.skipif(not _glibc_with_mallinfo2(), reason="needs Linux with glibc 2.33 or later")
def test_freed_block_stays_on_the_heap_only_when_kept():
    def probe(mode: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
        applied, keep = out.stdout.split()
        return applied, int(keep)

    applied, kept = probe("keep")
    _, default = probe("default")
    assert applied == "True"
    assert kept >= 8 << 20  # the freed 8 MiB block is still there for the next image
    assert default < 8 << 20  # by default glibc gave it back (a mapping of its own, or trimmed)


def test_not_linux_changes_nothing(monkeypatch):
    monkeypatch.setattr(_heap.sys, "platform", "darwin")
    assert _heap.keep_freed_heap() is False


def test_keypoint_workers_keep_their_freed_heap(monkeypatch):
    calls = []
    monkeypatch.setattr(_heap, "keep_freed_heap", lambda: calls.append(True) or True)
    cv2 = pytest.importorskip("cv2")
    threads = cv2.getNumThreads()
    try:
        inputs._opencv_worker(0)
    finally:
        cv2.setNumThreads(threads)
    assert calls == [True]
