"""Processes end with hamkit's: ``kill PID`` on ``hamkit dedup`` leaves no decoding worker behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import REPO, write_image

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _children(pid: int) -> set[int]:
    """Every process below ``pid`` (children, their children...)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = {int(k) for k in (task / "children").read_text().split()}
            except OSError:
                continue
            todo.extend(kids - found)
            found |= kids
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# hamkit dedup as the console script runs it, with a decode slow enough to be killed in the middle
SCRIPT = textwrap.dedent(
    """
    import sys, time
    from hamkit.dedup import inputs

    original = inputs.DecodeJob.__getitem__

    def slow(self, index):
        time.sleep(0.5)
        return original(self, index)

    inputs.DecodeJob.__getitem__ = slow
    from hamkit.cli.main import main

    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.mark.parametrize("method", ["phash", "verified"])
def test_sigterm_on_dedup_leaves_no_worker_alive(tmp_path: Path, method: str) -> None:
    for i in range(40):
        write_image(tmp_path / "images" / f"img{i:03d}.png", size=(40, 30), seed=i)
    env = {**os.environ, "HAMKIT_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO / "src")}
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, "dedup", str(tmp_path / "images"), "--out", str(tmp_path / "out")]
        + ["--method", method, "--workers", "2", "--batch-size", "2", "--quiet", "--no-review"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        workers: set[int] = set()
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
            workers = _children(process.pid)
        assert len(workers) >= 2, "the decoding workers never started"
        time.sleep(0.5)  # the workers are busy decoding
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = [pid for pid in workers if _alive(pid)]
    finally:
        if process.poll() is None:
            process.kill()
    for pid in survivors:  # do not leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"worker processes alive 5 s after SIGTERM: {survivors}"
    assert process.returncode == 143
    assert "terminated" in process.stderr.read().decode()
    assert not (tmp_path / "out" / "kept.txt").exists()
