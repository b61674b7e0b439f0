"""Helpers shared by the benchmark scripts (run as ``python benchmarks/<script>.py``, so this
module is importable as ``_shared``)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any


def run_child(script: str, method: str, n: int, timeout: float) -> dict:
    """Run ``script --worker METHOD N`` in a fresh process (so its peak memory is its own) and
    return the JSON line it prints last, or a dict saying why it was skipped."""
    command = [sys.executable, os.path.abspath(script), "--worker", method, str(n)]
    load = os.getloadavg()[0]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"method": method, "n": n, "skipped": f"over {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or "").strip().splitlines()[-1:] or ["no output"]
        return {"method": method, "n": n, "skipped": f"failed (rc {done.returncode}): {tail[0]}"}
    result = json.loads(lines[-1])
    result["load_before"] = load
    return result


@contextlib.contextmanager
def random_torchvision_mobilenet() -> Iterator[None]:
    """While active, ``torchvision.models.mobilenet_v3_small`` ignores ``weights=`` (random init),
    so imagededup's CNN can be built without a download."""
    import torchvision.models

    original = torchvision.models.mobilenet_v3_small

    def build(*args: Any, weights: Any = None, **kwargs: Any) -> Any:
        return original(*args, weights=None, **kwargs)

    torchvision.models.mobilenet_v3_small = build
    try:
        yield
    finally:
        torchvision.models.mobilenet_v3_small = original


def provenance() -> dict[str, Any]:
    """Where a result came from: the hamkit commit, the command, the date and the machine.

    Every results file under ``benchmarks/results/`` carries this, so that each published number
    can be traced to the code and the command that produced it.
    """
    import datetime
    import platform
    import shlex

    import torch

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(
            ["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    return {
        "commit": commit + ("+changes" if dirty else ""),
        "command": " ".join(shlex.quote(a) for a in ["python", *sys.argv]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
