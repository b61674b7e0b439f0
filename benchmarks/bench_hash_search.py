"""Hamming duplicate search: hamkit's ``hamming_pairs`` vs imagededup's PHash ``find_duplicates``.

Both get the same random 64-bit hashes with 1% planted near duplicates (a copy with 1 to 8
bits flipped) and imagededup's default threshold (max distance 10). Each measurement runs in a
fresh child process (this script, ``--worker``) and reports the wall time of the search call
alone and its peak RSS (``getrusage``; imagededup's multiprocessing workers separately).

imagededup's search is quadratic with a large constant (per query it re-reads every hash
from its hex string in Python), so it is measured at sizes that finish in about two minutes
(``--imagededup-sizes``) and its time at the larger hamkit sizes is *extrapolated* as
``t(N) = t(N0) * (N / N0) ** 2`` from the largest size N0 it finished; the table marks
extrapolated numbers.

Also checked: hamkit's ``phash`` / ``dhash`` give bit-identical hashes to imagededup's
PHash / DHash on the same 32x32 / 8x9 greyscale arrays.

    python benchmarks/bench_hash_search.py [--sizes 10000 50000 200000]
                                           [--imagededup-sizes 5000 10000 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

import numpy as np
from _shared import run_child

MAX_DISTANCE = 10


def make_hashes(n: int, random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random uint64 hashes with n // 100 planted near duplicates; returns (hashes, planted pairs)."""
    rng = np.random.default_rng(random_state)
    hashes = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, n, dtype=np.int64, endpoint=True).view(
        np.uint64
    )
    k = max(1, n // 100)
    dups = np.arange(n - k, n)
    sources = rng.choice(n - k, k, replace=False)
    flips = rng.integers(1, 9, k)
    bits = rng.random((k, 64)).argsort(axis=1) < flips[:, None]  # `flips` distinct bits per row
    masks = np.packbits(bits, axis=1).view(">u8").reshape(-1).astype(np.uint64)
    hashes[dups] = hashes[sources] ^ masks
    planted = np.stack([np.minimum(sources, dups), np.maximum(sources, dups)], axis=1)
    return hashes, planted


def recall_of(found: set[tuple[int, int]], planted: np.ndarray) -> float:
    return sum((int(a), int(b)) in found for a, b in planted) / len(planted)


def worker(method: str, n: int) -> dict:
    """Run one search (or the hash agreement check) in this fresh process."""
    result: dict = {"method": method, "n": n}
    if method == "agreement":
        from imagededup.methods import DHash, PHash

        from hamkit.dedup.hashing import dhash, hash_to_hex, phash

        rng = np.random.default_rng(0)
        smooth = rng.integers(0, 256, (n, 8, 8)).repeat(4, axis=1).repeat(4, axis=2)
        images32 = np.clip(smooth + rng.integers(-20, 21, (n, 32, 32)), 0, 255).astype(np.uint8)
        images89 = rng.integers(0, 256, (n, 8, 9), dtype=np.uint8)
        p_hasher, d_hasher = PHash(verbose=False), DHash(verbose=False)
        result["phash_equal"] = sum(
            a == p_hasher._hash_func(image) for a, image in zip(hash_to_hex(phash(images32)), images32)
        )
        result["dhash_equal"] = sum(
            a == d_hasher._hash_func(image) for a, image in zip(hash_to_hex(dhash(images89)), images89)
        )
        return result
    hashes, planted = make_hashes(n)
    if method == "hamkit":
        from hamkit.dedup.search import hamming_pairs

        start = time.perf_counter()
        pairs = hamming_pairs(hashes, MAX_DISTANCE)
        result["time_s"] = time.perf_counter() - start
        found = set(zip(pairs.i.tolist(), pairs.j.tolist()))
        result["pairs"] = len(pairs)
    elif method == "imagededup":
        from imagededup.methods import PHash

        from hamkit.dedup.hashing import hash_to_hex

        encoding_map = {str(k): text for k, text in enumerate(hash_to_hex(hashes))}
        hasher = PHash(verbose=False)
        start = time.perf_counter()
        duplicates = hasher.find_duplicates(encoding_map=encoding_map, max_distance_threshold=MAX_DISTANCE)
        result["time_s"] = time.perf_counter() - start
        found = {(min(int(a), int(b)), max(int(a), int(b))) for a, names in duplicates.items() for b in names}
        result["pairs"] = len(found)
    else:
        raise SystemExit(f"unknown method {method}")
    result["recall"] = recall_of(found, planted)
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["children_peak_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return result


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    parser.add_argument("--imagededup-sizes", type=int, nargs="*", default=[5_000, 10_000, 20_000])
    parser.add_argument("--timeout", type=float, default=150, help="seconds per imagededup run")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]))))
        return

    print(f"# Hamming duplicate search, random 64-bit hashes, 1% planted near duplicates, max distance {MAX_DISTANCE}")
    print(f"# {platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}, numpy {np.__version__}")
    agreement = run_child(__file__, "agreement", 500, 300)
    if "skipped" not in agreement:
        print(
            f"# hash agreement with imagededup on 500 arrays: phash {agreement['phash_equal']}/500, "
            f"dhash {agreement['dhash_equal']}/500 identical"
        )

    measured: dict[int, dict] = {}
    for n in sorted(args.imagededup_sizes):
        measured[n] = run_child(__file__, "imagededup", n, args.timeout)
        if "skipped" in measured[n]:
            break
    finished = [n for n, row in measured.items() if "time_s" in row]
    ours: dict[int, dict] = {n: run_child(__file__, "hamkit", n, 600) for n in sorted(set(args.sizes) | set(finished))}

    print()
    print(
        "| N | hamkit time (s) | hamkit peak RSS (MiB) | hamkit pairs | hamkit recall | "
        "imagededup time (s) | imagededup peak RSS (MiB) (workers) | imagededup pairs | "
        "imagededup recall | imagededup time / hamkit | load avg before (hamkit / imagededup) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    largest = max(finished) if finished else None
    for n, row in ours.items():
        if "skipped" in row:
            print(f"| {n:,} | skipped: {row['skipped']} | | | | | | | | | |")
            continue
        theirs = measured.get(n, {})
        if "time_s" in theirs:
            their_time = f"{theirs['time_s']:.2f}"
            their_mem = f"{theirs['peak_mib']:.0f} ({theirs['children_peak_mib']:.0f})"
            their_pairs, their_recall = f"{theirs['pairs']:,}", f"{theirs['recall']:.4f}"
            ratio = f"{theirs['time_s'] / row['time_s']:.0f}"
            their_load = f"{theirs['load_before']:.1f}"
        elif largest is not None:
            estimate = measured[largest]["time_s"] * (n / largest) ** 2
            their_time = f"~{estimate:.0f} (extrapolated from {largest:,})"
            their_mem, their_pairs, their_recall, their_load = "-", "-", "-", "-"
            ratio = f"~{estimate / row['time_s']:.0f} (extrapolated)"
        else:
            their_time = theirs.get("skipped", "not run")
            their_mem, their_pairs, their_recall, ratio, their_load = "-", "-", "-", "-", "-"
        print(
            f"| {n:,} | {row['time_s']:.3f} | {row['peak_mib']:.0f} | {row['pairs']:,} | "
            f"{row['recall']:.4f} | {their_time} | {their_mem} | {their_pairs} | {their_recall} | "
            f"{ratio} | {row['load_before']:.1f} / {their_load} |"
        )
    for n, row in measured.items():
        if "skipped" in row:
            print(f"\nimagededup at N={n:,}: skipped ({row['skipped']})")


if __name__ == "__main__":
    main()
