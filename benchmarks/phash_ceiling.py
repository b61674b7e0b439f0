"""How fast can any PHash on these JPEGs be? CPU time per image of decoding alone, against
hamkit's and imagededup's whole per-image PHash work, in one process.

The 3x-imagededup PHash target of issue 3 is bounded by JPEG decoding: a perceptual hash
needs the pixels, and a baseline JPEG's pixels sit behind Huffman-coded data that must be
decoded in full (no scale factor skips it: reduced-size decoding only shortens the inverse DCT
and colour conversion that follow). This script measures, per image, in CPU milliseconds of
this single process (``time.process_time``, one thread, files in the page cache, best of
``--rounds`` interleaved rounds):

* ``decode 1/8 RGB``: ``Image.open`` + ``draft("RGB", (32, 32))`` + ``load``: libjpeg decodes at
  1/8 scale, the least any Pillow/libjpeg decoder can do for a 32x32 target.
* ``decode 1/8 L``: the same, asking for greyscale (no chroma inverse DCT, no colour conversion).
* ``decode full``: a plain full-size decode, what imagededup does.
* ``hamkit phash``: hamkit's per-image decode job (``DecodeJob(mode="gray")``) plus its batched
  PHash, divided per image.
* ``imagededup phash``: ``PHash().encode_image(image_file=...)`` per image.

The ceiling printed last is ``imagededup / decode 1/8 L``: the speed-up a PHash would have if
everything but the decode cost nothing. With the same number of processes on both sides the
images/s ratio cannot exceed it.

    python benchmarks/phash_ceiling.py [--n 150] [--rounds 5] [--data FOLDER]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from bench_dedup_encode import SAMPLE, prepare_folder
from PIL import Image, features


def decode(paths: list[Path], mode: str | None) -> None:
    for path in paths:
        with Image.open(path) as image:
            if mode is not None:
                image.draft(mode, (32, 32))
            image.load()


def hamkit_phash(paths: list[Path]) -> None:
    from hamkit.dedup.hashing import phash
    from hamkit.dedup.inputs import DecodeJob

    job = DecodeJob(paths, "gray", (32, 32))
    gray = np.stack([job[k][1] for k in range(len(paths))])
    phash(gray)


def imagededup_phash(paths: list[Path]) -> Callable[[list[Path]], None] | None:
    try:
        from imagededup.methods import PHash
    except ImportError:
        return None
    hasher = PHash(verbose=False)

    def run(files: list[Path]) -> None:
        for path in files:
            hasher.encode_image(image_file=path)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=150, help="images (the sample copied cyclically)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data", type=Path, default=SAMPLE, help="folder of JPEGs")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        paths = prepare_folder(args.data, args.n, Path(tmp))
        size_kb = np.mean([p.stat().st_size for p in paths]) / 1024
        with Image.open(paths[0]) as first:
            shape, layers = first.size, getattr(first, "layer", None)
        measurements: dict[str, Callable[[list[Path]], None]] = {
            "decode 1/8 RGB": lambda ps: decode(ps, "RGB"),
            "decode 1/8 L": lambda ps: decode(ps, "L"),
            "decode full": lambda ps: decode(ps, None),
            "hamkit phash": hamkit_phash,
        }
        theirs = imagededup_phash(paths)
        if theirs is not None:
            measurements["imagededup phash"] = theirs
        best = {name: float("inf") for name in measurements}
        for function in measurements.values():  # warm up: page cache, imports
            function(paths[:10])
        for round_ in range(args.rounds):
            names = list(measurements)
            for name in names if round_ % 2 == 0 else reversed(names):
                start = time.process_time()
                measurements[name](paths)
                best[name] = min(best[name], (time.process_time() - start) / len(paths) * 1000)
    print(
        f"# {len(paths)} JPEGs, {shape[0]}x{shape[1]}, mean {size_kb:.0f} KB, components "
        f"(id, h, v, table) {layers}; libjpeg-turbo {features.version('libjpeg_turbo')}, Pillow "
        f"{Image.__version__}; {platform.processor() or platform.machine()}, 1 thread"
    )
    print("| measurement | CPU ms / image (best of rounds) |")
    print("|---|---:|")
    for name, value in best.items():
        print(f"| {name} | {value:.2f} |")
    if "imagededup phash" in best:
        ref = best["imagededup phash"]
        print(f"\nimagededup / hamkit phash: {ref / best['hamkit phash']:.2f}x")
        print(
            f"ceiling, imagededup / decode 1/8 L: {ref / best['decode 1/8 L']:.2f}x "
            f"(1/8 RGB: {ref / best['decode 1/8 RGB']:.2f}x)"
        )


if __name__ == "__main__":
    from _shared import recorded

    with recorded():  # --results FILE: also save the output, with its provenance, as JSON
        main()
