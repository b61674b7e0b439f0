"""``hamkit run`` on a data folder as a user runs it, timed and with its peak memory measured.

Runs ``hamkit run --data DATA --out OUT [extra flags]`` in a child process, samples the
proportional set size (PSS, from ``/proc/<pid>/smaps_rollup``) of that process and all of its
descendants (the decoding workers) every second, and writes one results file with the wall
time, the peak memory, the seconds of every step, the headline metrics of both models with their
95 % lesion-bootstrap intervals, and the commit, command, date and machine:

    python benchmarks/full_run.py --data ham10000-200px --out /tmp/run \\
        --results benchmarks/results/full_run_cpu.json --rerun

With ``--rerun`` the same command runs again right after, and the results file records its wall
time and what each step did (a run of the same settings should skip every step). The results
also record how much the run added to hamkit's decode cache (``$HAMKIT_CACHE``; set it to a new
folder to measure a first run).

Linux only (``/proc``). The run's own files stay in OUT (``summary.json``, ``report.html``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from _shared import provenance


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _tree(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        current = todo.pop()
        seen.append(current)
        todo += _children(current)
    return seen


def _pss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class PeakMemory:
    """Samples the summed PSS of a process tree in a background thread."""

    def __init__(self, pid: int, every_s: float = 1.0) -> None:
        self.pid, self.every_s, self.peak, self.samples = pid, every_s, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(_pss_bytes(p) for p in _tree(self.pid)))
            self.samples += 1
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _headline(summary: dict[str, Any]) -> dict[str, Any]:
    clf = summary.get("classifier", {})
    seg = summary.get("segmenter", {})
    names = ("balanced_accuracy", "macro_f1", "melanoma_sensitivity", "accuracy")
    found: dict[str, Any] = {}
    if clf:
        found["classifier_rule"] = {n: clf.get(n) for n in names}
        found["classifier_rule"]["macro_f1"] = clf.get("macro", {}).get("f1")  # the report keeps it under "macro"
        found["classifier_rule_intervals"] = {n: clf.get("intervals", {}).get(n) for n in names}
        found["classifier_argmax"] = {n: clf.get("argmax", {}).get(n) for n in names}
        found["classifier_argmax_intervals"] = {n: clf.get("argmax", {}).get("intervals", {}).get(n) for n in names}
        found["classifier_calibration"] = clf.get("calibration")
        found["classifier_decision"] = clf.get("decision")
        found["classifier_warnings"] = clf.get("warnings")
        found["macro_roc_auc"] = clf.get("macro_roc_auc")
        found["test_images"] = clf.get("n_samples")
        found["test_lesions"] = clf.get("test_lesions")
        found["classifier_at_a_glance"] = clf.get("at_a_glance")
        found["classifier_melanoma_operating_points"] = (clf.get("operating_points") or {}).get("mel")
    if seg:
        numbers = seg.get("summary", {})
        found["segmenter"] = {
            "mean_dice": numbers.get("mean_dice"),
            "thresholded_jaccard": numbers.get("thresholded_jaccard"),
            "test_images": numbers.get("n_images"),
            "intervals": seg.get("intervals"),
        }
    return found


def _folder_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder`` (0 when it does not exist)."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


def _rerun(command: list[str]) -> dict[str, Any]:
    """The same command again, at once: its wall time and each step's status (from ``--json``)."""
    started = time.perf_counter()
    again = subprocess.run([*command, "--json"], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if again.returncode != 0:
        raise SystemExit(f"the second hamkit run failed (rc {again.returncode}): {again.stderr[-2000:]}")
    return {"wall_s": round(wall, 1), "steps": json.loads(again.stdout)["steps"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--results", type=Path, required=True, help="JSON file to write")
    parser.add_argument(
        "--rerun", action="store_true", help="then run the same command again and record what it skipped"
    )
    parser.add_argument("extra", nargs="*", help="more hamkit run flags (after --)")
    args = parser.parse_args()
    command = [sys.executable, "-m", "hamkit", "run", "--data", str(args.data), "--out", str(args.out), *args.extra]
    from hamkit.data.cache import shared_decode_cache

    decoded = shared_decode_cache()  # the run's decode cache (under $HAMKIT_CACHE, as the child sees it)
    cache_before = _folder_bytes(decoded)
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with PeakMemory(child.pid) as memory:
        output, _ = child.communicate()
    wall = time.perf_counter() - started
    print(output)
    if child.returncode != 0:
        raise SystemExit(f"hamkit run failed (rc {child.returncode})")
    summary = json.loads((args.out / "summary.json").read_text())
    run = summary.get("summary", {}).get("run", {})
    result = {
        "benchmark": "full_run",
        "hamkit_command": " ".join(["hamkit", *command[3:]]),
        "data_images": summary.get("summary", {}).get("data", {}).get("images"),
        "wall_s": round(wall, 1),
        "peak_pss_bytes": memory.peak,
        "peak_pss_gib": round(memory.peak / 2**30, 2),
        "memory_samples": memory.samples,
        "decode_cache_bytes_added": _folder_bytes(decoded) - cache_before,
        "step_seconds": summary.get("seconds"),
        "steps": summary.get("steps"),
        "initial_weights": run.get("initial_weights"),
        "preset": run.get("preset"),
        **_headline(summary.get("summary", {})),
        **provenance(),
        "cpus": os.cpu_count(),
    }
    if args.rerun:
        result["rerun"] = _rerun(command)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(json.dumps({k: result[k] for k in ("wall_s", "peak_pss_gib", "step_seconds")}, default=str))
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
