"""Keypoint decoding with the freed heap kept against the heap as glibc manages it.

First in one fresh process per round that imports ``cv2`` before ``torch`` (the lesion method's
features of every third of the images, or fewer, about 400-500; one thread), then in worker
processes.

The reference is a decoding worker that only turns OpenCV's thread pool off (what hamkit's
workers did before); the other is hamkit's own (``hamkit.dedup.inputs._opencv_worker``), which also
calls :func:`hamkit._heap.keep_freed_heap`. Both decode the
same images with the same :class:`~hamkit.dedup.inputs.DecodeJob` in ``--workers`` DataLoader
processes started from this one, in alternating rounds; each worker starts after ``cv2`` and
``torch`` were imported here in that order (as a user's script may import them), which is when
glibc returns a freed SIFT pyramid to the system after every image. The results of both are
compared (the same keypoints and descriptors).

    python benchmarks/bench_heap.py --data FOLDER [--images 1500] [--modes lesion-crop scene]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2  # before torch, on purpose (see the docstring)
import numpy as np
import torch
from torch.utils.data import DataLoader

from hamkit._proc import WorkerInit
from hamkit.dedup.inputs import DecodeJob, _collate, _opencv_worker

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ham10000-200px"


def opencv_only(_worker: int) -> None:
    """The reference worker: OpenCV's thread pool off, the heap as glibc manages it."""
    cv2.setNumThreads(0)


CHILD = """
import sys, time
import cv2, torch  # this order: see the docstring
import numpy as np
from PIL import Image
from hamkit._heap import keep_freed_heap
from hamkit.dedup.lesion_match import lesion_features
cv2.setNumThreads(0)
if sys.argv[1] == "kept":
    keep_freed_heap()
images = [Image.open(p).convert("RGB") for p in sys.argv[2:]]
lesion_features(images[0])
started = time.perf_counter()
for image in images:
    lesion_features(image, crop=True)
print(time.perf_counter() - started)
"""


def one_process(paths: list[Path], key: str) -> float:
    """Seconds for the lesion method's features of ``paths`` in a fresh process (``key``: plain or kept)."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, key, *map(str, paths)], capture_output=True, text=True, check=True
    )
    return float(done.stdout.split()[-1])


def decode(paths: list[Path], mode: str, init, workers: int) -> tuple[float, list]:
    loader = DataLoader(
        DecodeJob(paths, mode),
        batch_size=32,
        num_workers=workers,
        collate_fn=_collate,
        worker_init_fn=WorkerInit(init),
    )
    started = time.perf_counter()
    values: list = []
    for _, batch, _ in loader:
        values.extend(batch)
    return time.perf_counter() - started, values


def _fingerprint(value) -> bytes:
    arrays = [getattr(value, name) for name in ("descriptors", "points") if hasattr(value, name)]
    return b"".join(np.ascontiguousarray(a).tobytes() for a in arrays if isinstance(a, np.ndarray))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images", type=int, default=1500, help="images decoded per round (spread over the folder)")
    parser.add_argument("--modes", nargs="+", default=["lesion-crop", "scene"], help="DecodeJob modes")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    paths = sorted(p for p in args.data.rglob("*.jpg") if "segmentation" not in p.name)
    if not paths:
        raise SystemExit(f"no .jpg images under {args.data}: pass --data FOLDER")
    step = max(1, len(paths) // args.images)
    paths = paths[::step][: args.images]
    print(
        f"{len(paths)} images of {args.data.name}, {args.workers} decoding processes, cv2 {cv2.__version__} "
        f"imported before torch {torch.__version__}; {os.cpu_count()} cores; median of {args.rounds} alternating rounds"
    )
    print(
        f"{'mode':<14}{'heap as it is':>15}{'freed heap kept':>17}{'speed-up':>10}{'same output':>13}  every round (ms)"
    )
    seconds: dict[str, list[float]] = {"plain": [], "kept": []}
    few = paths[:: max(1, len(paths) // 400)]
    for _ in range(args.rounds):
        for key in ("plain", "kept"):
            seconds[key].append(one_process(few, key))
    plain, kept = (float(np.median(seconds[key])) for key in ("plain", "kept"))
    rounds = "; ".join(
        f"{key} " + " ".join(f"{1000 * s / len(few):.1f}" for s in seconds[key]) for key in ("plain", "kept")
    )
    label = "one process"
    print(
        f"{label:<14}{1000 * plain / len(few):>12.2f} ms{1000 * kept / len(few):>14.2f} ms"
        f"{plain / kept:>9.2f}x{'':>13}  {rounds}"
    )
    for mode in args.modes:
        seconds: dict[str, list[float]] = {"plain": [], "kept": []}
        outputs: dict[str, list] = {}
        for _ in range(args.rounds):
            for key, init in (("plain", opencv_only), ("kept", _opencv_worker)):
                elapsed, values = decode(paths, mode, init, args.workers)
                seconds[key].append(elapsed)
                outputs[key] = values
        same = [_fingerprint(v) for v in outputs["plain"]] == [_fingerprint(v) for v in outputs["kept"]]
        plain, kept = (float(np.median(seconds[key])) for key in ("plain", "kept"))
        rounds = "; ".join(
            f"{key} " + " ".join(f"{1000 * s / len(paths):.1f}" for s in seconds[key]) for key in ("plain", "kept")
        )
        print(
            f"{mode:<14}{1000 * plain / len(paths):>12.2f} ms{1000 * kept / len(paths):>14.2f} ms"
            f"{plain / kept:>9.2f}x{str(same):>13}  {rounds}"
        )
    print("ms: wall-clock per image (with all decoding processes together for the DataLoader modes)")


if __name__ == "__main__":
    from _shared import recorded

    with recorded():  # --results FILE: also save the output, with its provenance, as JSON
        main()
