"""Perceptual-hash cache: a second ``Deduplicator("phash").find`` over unchanged files, side by side
with the first (uncached) one, in one process.

Threshold tuning (``find`` at 6, 8, 10) and ``hamkit run`` (dedup, then an audit of the split)
hash the same files more than once. With the cache (``cache_dir``, on by default) the later
calls read the hashes of unchanged files (same path, size and modification time) instead of
decoding every JPEG again. Rows: the uncached call (``cache_dir=False``), the first call with an
empty cache (decodes and writes it), and the next call with the cache filled. Best of
``--rounds``; each round starts from an empty cache folder.

    python benchmarks/bench_hash_cache.py [--n 3000] [--rounds 3] [--data FOLDER]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench_dedup_encode import SAMPLE, prepare_folder


def main() -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="images (the sample copied cyclically)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=SAMPLE, help="folder of images")
    args = parser.parse_args()
    from hamkit import Deduplicator

    best = {"no cache": float("inf"), "empty cache (first run)": float("inf"), "filled cache (next run)": float("inf")}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        prepare_folder(args.data, args.n, folder)
        Deduplicator("phash", cache_dir=False, progress=False).find(folder)  # page cache, worker start-up
        pairs = set()
        for _ in range(args.rounds):
            cache = Path(tmp) / "cache"
            shutil.rmtree(cache, ignore_errors=True)
            for name, cache_dir in (
                ("no cache", False),
                ("empty cache (first run)", cache),
                ("filled cache (next run)", cache),
            ):
                start = time.perf_counter()
                result = Deduplicator("phash", cache_dir=cache_dir, progress=False).find(folder)
                best[name] = min(best[name], time.perf_counter() - start)
                pairs.add(len(result.pairs))
        if len(pairs) != 1:
            raise SystemExit(f"the runs disagree on the number of pairs: {sorted(pairs)}")
    print(
        f"# Deduplicator('phash').find over {args.n} files from {args.data}, {os.cpu_count()} CPUs, "
        f"best of {args.rounds}; {pairs.pop()} pairs in every run"
    )
    reference = best["no cache"]
    print("| call | seconds | images/s | vs no cache |")
    print("|---|---:|---:|---:|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.2f} | {args.n / seconds:.0f} | {reference / seconds:.2f}x |")
    return [{"call": name, "seconds": seconds, "images": args.n} for name, seconds in best.items()]


if __name__ == "__main__":
    from _shared import recorded

    with recorded() as record:  # --results FILE: also save the output, with its provenance, as JSON
        record["rows"] = main()
