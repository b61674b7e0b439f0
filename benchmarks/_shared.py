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


CODE = ("src", "benchmarks", ":(exclude)benchmarks/results")  # what a change of marks a run "+changes"


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
                # the code that runs: the library and the scripts (not docs, tests or results files)
                ["git", "-C", root, "status", "--porcelain", "--untracked-files=no", "--", *CODE],
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


SHARED_MACHINE_NOTE = (
    "the machine may have been shared with other jobs (see the load averages): wall-clock times and rates are "
    "upper bounds on the time (lower bounds on the rate) an otherwise idle machine gives"
)


class _Tee:
    """Writes to the terminal and keeps a copy."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.copy: list[str] = []

    def write(self, text: str) -> int:
        self.copy.append(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def write_results(path: str, record: dict[str, Any]) -> None:
    """Write ``record`` as indented JSON to ``path``, through a temporary file (never half written)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary = f"{path}.partial"
    with open(temporary, "w") as handle:
        handle.write(json.dumps(record, indent=1) + "\n")
    os.replace(temporary, path)


@contextlib.contextmanager
def recorded() -> Iterator[dict[str, Any]]:
    """Run a benchmark's ``main()`` and, with ``--results FILE`` on its command line, save what it printed.

    ``--results FILE`` is taken off ``sys.argv`` before the script reads its own options. The file
    (JSON) holds :func:`provenance` (commit, command, date, machine), the 1-minute load average
    before and after, a note that timings on a shared machine are upper bounds, the printed output
    verbatim (``output``) and whatever the script put in the yielded dict (``rows``...). Nothing is
    written when the script fails. ``docs/gen_benchmarks.py`` renders the docs from these files.
    """
    extra: dict[str, Any] = {}
    argv = list(sys.argv)
    path = None
    if "--results" in sys.argv:
        at = sys.argv.index("--results")
        if at + 1 >= len(sys.argv):
            raise SystemExit("--results needs a file name, e.g. --results benchmarks/results/NAME.json")
        path = sys.argv[at + 1]
        del sys.argv[at : at + 2]
    load_before = os.getloadavg()[0]
    tee = _Tee(sys.stdout)
    sys.stdout = tee  # type: ignore[assignment]
    try:
        yield extra
    finally:
        sys.stdout = tee.stream
    if path is None:
        return
    saved = sys.argv
    sys.argv = argv
    try:
        record = provenance()
    finally:
        sys.argv = saved
    record.update(
        {
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "note": SHARED_MACHINE_NOTE,
            "output": "".join(tee.copy).rstrip("\n"),
            **extra,
        }
    )
    write_results(path, record)
    print(f"wrote {path}")
