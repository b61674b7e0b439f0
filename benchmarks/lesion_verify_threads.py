"""The lesion method's verification in 2 threads, with the BLAS library's own threads left as
they are against limited to one (what ``match_pairs`` does), in one process.

``match_pairs`` matches the pairs of one image in one matrix product per thread; a multi-threaded
BLAS would also split each product over the cores the threads already fill. This times both
ways on the same pairs (each image of the folder against 20 others drawn at random), alternating,
and prints the ratio:

    python benchmarks/lesion_verify_threads.py --data ../shared/data/ham10000-200px --images 1200
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import threadpoolctl
from _shared import recorded
from PIL import Image

import hamkit.dedup.lesion_match as lesion_match
from hamkit.data.images import find_images


def main(record: dict) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a folder of dermoscopic images")
    parser.add_argument("--images", type=int, default=1200)
    parser.add_argument("--partners", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    paths = [path for _, path in sorted(find_images(args.data).items())][: args.images]
    features = [lesion_match.lesion_features(Image.open(path).convert("RGB")) for path in paths]
    rng = np.random.default_rng(0)
    i = np.repeat(np.arange(len(paths)), args.partners)
    j = rng.integers(0, len(paths), i.size)
    i, j = i[i != j], j[i != j]
    blas = [(lib["internal_api"], lib["num_threads"]) for lib in threadpoolctl.threadpool_info()]
    print(f"{len(paths)} images, {i.size} pairs, 2 threads; BLAS libraries and their threads: {blas}")
    limit = lesion_match.threadpool_limits
    seconds: dict[str, list[float]] = {"BLAS threads as they are": [], "BLAS limited to 1 thread": []}
    results = []
    try:
        for _ in range(args.repeats):
            for name in seconds:
                # the reference runs match_pairs with a limit that changes nothing
                lesion_match.threadpool_limits = (  # type: ignore[assignment]
                    limit if "limited" in name else (lambda **_: threadpoolctl.threadpool_limits(limits=None))
                )
                start = time.perf_counter()
                results.append(lesion_match.match_pairs(features, i, j, workers=2))
                seconds[name].append(time.perf_counter() - start)
    finally:
        lesion_match.threadpool_limits = limit
    same = all(np.array_equal(a, b) for run in results[1:] for a, b in zip(run, results[0], strict=True))
    best = {name: min(values) for name, values in seconds.items()}
    for name, value in best.items():
        print(f"{name}: {value:.2f} s (fastest of {args.repeats})")
    ratio = best["BLAS limited to 1 thread"] / best["BLAS threads as they are"]
    print(f"ratio limited / as they are: {ratio:.3f}; the same inliers both ways: {same}")
    record.update(pairs=int(i.size), images=len(paths), seconds=best, ratio=ratio, same=same)


if __name__ == "__main__":
    with recorded() as record:  # --results FILE: also save the output, with its provenance, as JSON
        main(record)
