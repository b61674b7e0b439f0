"""Decode-cache benchmark: images/s of one DataLoader epoch with and without the cache.

Reference: the same SkinDataset and DataLoader decoding every 600x450 JPEG each epoch (with JPEG
draft mode, and once more without it, as a plain PIL open+resize would). Everything runs in
this one process, one after the other, on the same files.

    python benchmarks/bench_cache.py [--images 400] [--size 224] [--workers 2] [--data DIR] [--results FILE]

With ``--data`` the JPEGs under DIR are used (e.g. ../shared/data/ham10000-sample/images,
repeated to reach --images); otherwise 600x450 JPEGs are generated in a temporary folder.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from hamkit.data import images as images_module
from hamkit.data.cache import DecodeCache
from hamkit.data.dataset import SkinDataset


def make_jpegs(folder: Path, count: int, source: Path | None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(source.rglob("*.jpg")) if source else []
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"ISIC_{i:07d}.jpg"
        if sources:
            shutil.copyfile(sources[i % len(sources)], path)
        else:
            small = rng.integers(0, 256, (57, 75, 3), dtype=np.uint8)
            Image.fromarray(small).resize((600, 450), Image.Resampling.BICUBIC).save(path, quality=90)
        paths.append(path)
    return paths


def epoch_rate(dataset: SkinDataset, workers: int, batch_size: int = 32) -> float:
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=True, persistent_workers=False)
    start = time.perf_counter()
    seen = 0
    for batch in loader:
        seen += batch["image"].shape[0]
    return seen / (time.perf_counter() - start)


def main() -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_jpegs(Path(tmp) / "images", args.images, args.data)
        labels = [i % 7 for i in range(len(paths))]
        plain = SkinDataset.from_paths(paths, labels, image_size=args.size)
        rows = []
        rows.append(("decode every epoch (JPEG draft)", epoch_rate(plain, args.workers)))

        original = images_module.open_image

        def no_draft(path, size=None):  # the reference a plain PIL open + resize gives
            return original(path, None)

        images_module.open_image = no_draft
        try:
            rows.append(("decode every epoch (no draft)", epoch_rate(plain, args.workers)))
        finally:
            images_module.open_image = original

        cache = DecodeCache(Path(tmp) / "cache", num_workers=args.workers)
        start = time.perf_counter()
        cached = SkinDataset.from_paths(paths, labels, image_size=args.size, cache=cache)
        build = len(paths) / (time.perf_counter() - start)
        rows.append(("build cache (first epoch, once)", build))
        rates = [epoch_rate(cached, args.workers) for _ in range(2)]
        rows.append((f"cached epoch ({args.workers} workers)", max(rates)))
        rows.append(("cached epoch (0 workers, the default)", max(epoch_rate(cached, 0) for _ in range(2))))

    reference = rows[0][1]
    print(
        f"decode cache benchmark: {args.images} JPEGs 600x450 -> {args.size}x{args.size}, "
        f"batch 32, {args.workers} DataLoader workers, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}"
    )
    print(f"{'mode':<40}{'images/s':>10}{'vs decode (draft)':>20}")
    for name, rate in rows:
        print(f"{name:<40}{rate:>10.0f}{rate / reference:>19.2f}x")
    return [{"mode": name, "images_per_s": rate, "vs_decode": rate / reference} for name, rate in rows]


if __name__ == "__main__":
    from _shared import recorded

    with recorded() as record:  # --results FILE: also save the output, with its provenance, as JSON
        record["rows"] = main()
