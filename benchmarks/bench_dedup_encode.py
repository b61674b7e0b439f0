"""Deduplicator throughput on real JPEGs: hamkit vs imagededup, images/s, side by side.

The same folder of 600x450 JPEGs (the 75 HAM10000 sample images copied under new names until
there are ``--n`` files, or the images of ``--data``) goes through both libraries in one
process. Every round runs each measurement once, hamkit and imagededup alternating (and which
goes first alternating between rounds); the best of ``--rounds`` rounds is reported, since other
work on the machine only ever slows a run down. The first round also pays for page cache and
lazy initialisation on both sides; models are built before any clock starts.

Columns: images/s from the wall time of the call, and CPU ms per image (user + system time of
this process and of its finished worker processes, best round): the work done, which other
jobs on a shared machine disturb much less than the wall time.

Rows:

* ``cnn embed``: hamkit ``Deduplicator(CnnMethod(backbone="mobilenet_v3_small", pretrained=False),
  cache_dir=False).embed(folder)`` vs imagededup ``CNN().encode_images(folder)``. Both run
  torchvision's MobileNetV3-small on 224x224 inputs, batch 64, random weights: imagededup's own
  ``MobilenetV3`` wrapper is built while ``torchvision.models.mobilenet_v3_small`` is patched to
  ignore its ``weights=`` argument, so nothing is downloaded and its code path is otherwise
  unchanged (full-size PIL decode, Resize 256, CenterCrop 224).
* ``cnn embed, what-if``: the same hamkit call after swapping the Deduplicator's model for
  ``torch.fx.experimental.optimization.fuse(model)`` (batch norm folded into the convolutions)
  in ``channels_last`` memory format. This is NOT what hamkit does today; it measures a change
  proposed to it (only with ``--what-if``).
* ``<hash> encode``: hamkit ``Deduplicator(<hash>, cache_dir=False).find(folder)`` (decode + hash + pair search +
  groups: strictly more work) vs imagededup ``<Hash>().encode_images(folder)`` (decode + hash).
* ``phash find``: hamkit ``find(folder)`` vs imagededup ``find_duplicates(image_dir=folder)``
  (both decode, hash and search, each at its default threshold).

The second table ("library defaults") repeats ``cnn embed`` and ``phash encode`` only.

Worker processes: the first table gives both sides ``--workers`` decoding processes (default:
the CPU count; hamkit ``num_workers``, imagededup ``num_enc_workers``; imagededup's search
workers keep their default, the CPU count). The second table leaves every worker setting at
each library's default (hamkit: up to 4, leaving one core free; imagededup: no worker process
for CNN encoding, the CPU count for hashing). torch uses ``--threads`` threads on both sides.

    python benchmarks/bench_dedup_encode.py [--n 450] [--rounds 3] [--data FOLDER]
                                            [--workers 2] [--threads 2] [--skip-defaults]
                                            [--what-if] [--only cnn phash dhash]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _shared import random_torchvision_mobilenet

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ham10000-sample" / "images"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
BATCH_SIZE = 64  # imagededup's CNN batch size (fixed in its constructor)


def prepare_folder(source: Path, n: int, dest: Path) -> list[Path]:
    """Copy the images of ``source`` cyclically into ``dest`` under new names until there are ``n``.

    Args:
        source: Folder with the original images (not searched recursively).
        n: Number of files to write.
        dest: An empty folder.

    Returns:
        The written paths, in order.

    Raises:
        SystemExit: ``source`` holds no images.
    """
    originals = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not originals:
        raise SystemExit(f"{source}: no images ({', '.join(IMAGE_SUFFIXES)}) found; pass --data FOLDER")
    written = []
    for k in range(n):
        original = originals[k % len(originals)]
        target = dest / f"copy{k:05d}_{original.stem}{original.suffix.lower()}"
        shutil.copyfile(original, target)
        written.append(target)
    return written


def imagededup_cnn() -> Any:
    """imagededup's default CNN (MobileNetV3-small, its own transform), with random weights."""
    import torch
    from imagededup.methods import CNN

    torch.manual_seed(0)
    with random_torchvision_mobilenet():
        return CNN(verbose=False)


@dataclass
class Row:
    """One side-by-side measurement and the (wall, cpu) seconds of each side per round."""

    name: str
    hamkit_desc: str
    imagededup_desc: str
    hamkit: Callable[[], int]
    imagededup: Callable[[], int]
    hamkit_s: list[tuple[float, float]] = field(default_factory=list)
    imagededup_s: list[tuple[float, float]] = field(default_factory=list)


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(function: Callable[[], int], expected: int) -> tuple[float, float]:
    """``(wall, cpu)`` seconds of one call; checks that it processed ``expected`` images."""
    cpu, start = _cpu_seconds(), time.perf_counter()
    count = function()
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    if count != expected:
        raise SystemExit(f"a benchmark call processed {count} images, expected {expected}")
    return wall, cpu


def cnn_rows(folder: Path, n: int, workers: int | None, what_if: bool) -> list[Row]:
    """The CNN measurements; ``workers=None`` leaves both libraries at their defaults."""
    import torch
    from torch.fx.experimental.optimization import fuse

    from hamkit.dedup.deduplicator import Deduplicator
    from hamkit.dedup.methods import CnnMethod

    hk_workers: dict[str, Any] = {} if workers is None else {"num_workers": workers}
    enc_workers: dict[str, Any] = {} if workers is None else {"num_enc_workers": workers}

    def embedder() -> Deduplicator:
        dedup = Deduplicator(
            CnnMethod(backbone="mobilenet_v3_small", pretrained=False, batch_size=BATCH_SIZE),
            cache_dir=False,
            progress=False,
            **hk_workers,
        )
        dedup.method.network()  # build the model before timing, as imagededup does in CNN()
        return dedup

    plain = embedder()
    cnn = imagededup_cnn()

    def hamkit_embed(dedup: Deduplicator = plain) -> int:
        embeddings = dedup.embed(folder)
        assert embeddings.shape == (n, 576), embeddings.shape
        return len(embeddings)

    def imagededup_embed() -> int:
        return len(cnn.encode_images(folder, **enc_workers))

    rows = [Row("cnn embed", "embed()", "encode_images()", hamkit_embed, imagededup_embed)]
    if what_if:
        tuned = embedder()
        tuned.method.network_ = fuse(tuned.method.network_.eval()).to(memory_format=torch.channels_last)
        rows.append(
            Row(
                "cnn embed, what-if (fused BN + channels_last)",
                "embed()",
                "encode_images()",
                lambda: hamkit_embed(tuned),
                imagededup_embed,
            )
        )
    return rows


def hash_rows(folder: Path, workers: int | None, full: bool) -> list[Row]:
    """The PHash / DHash measurements (``full=False``: phash encode only); ``workers=None`` leaves
    both libraries at their defaults."""
    from imagededup.methods import DHash, PHash

    from hamkit.dedup.deduplicator import Deduplicator

    hk_workers: dict[str, Any] = {} if workers is None else {"num_workers": workers}
    enc_workers: dict[str, Any] = {} if workers is None else {"num_enc_workers": workers}
    rows = []
    hashers = (("phash", PHash(verbose=False)), ("dhash", DHash(verbose=False)))
    for method, hasher in hashers if full else hashers[:1]:
        dedup = Deduplicator(method, progress=False, cache_dir=False, **hk_workers)

        def hamkit_find(dedup: Deduplicator = dedup) -> int:
            result = dedup.find(folder)
            assert result is not None
            return result.counts["readable"]

        def imagededup_encode(hasher: Any = hasher) -> int:
            return len(hasher.encode_images(folder, **enc_workers))

        def imagededup_find(hasher: Any = hasher) -> int:
            return len(hasher.find_duplicates(image_dir=folder, **enc_workers))

        rows.append(Row(f"{method} encode", "find()", "encode_images()", hamkit_find, imagededup_encode))
        if full and method == "phash":
            rows.append(Row(f"{method} find", "find()", "find_duplicates()", hamkit_find, imagededup_find))
    return rows


def run_rows(rows: list[Row], n: int, rounds: int) -> None:
    """``rounds`` rounds, each running every row's two sides, alternating which goes first."""
    for r in range(rounds):
        for row in rows:
            order = [("hamkit", row.hamkit), ("imagededup", row.imagededup)]
            for side, function in order if r % 2 == 0 else order[::-1]:
                getattr(row, f"{side}_s").append(timed(function, n))
        print(f"  round {r + 1}/{rounds} done (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)


def table(rows: list[Row], n: int) -> str:
    """Markdown table: images/s of each side (best round), the ratio, and CPU ms per image."""
    lines = [
        (
            "| measurement | hamkit call | imagededup call | hamkit img/s | imagededup img/s | ratio "
            "| hamkit CPU ms/img | imagededup CPU ms/img | CPU ratio |"
        ),
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        hk = n / min(wall for wall, _ in row.hamkit_s)
        im = n / min(wall for wall, _ in row.imagededup_s)
        hk_cpu = 1000 * min(cpu for _, cpu in row.hamkit_s) / n
        im_cpu = 1000 * min(cpu for _, cpu in row.imagededup_s) / n
        lines.append(
            f"| {row.name} | `{row.hamkit_desc}` | `{row.imagededup_desc}` | {hk:.1f} | {im:.1f} "
            f"| **{hk / im:.2f}x** | {hk_cpu:.2f} | {im_cpu:.2f} | {im_cpu / hk_cpu:.2f}x |"
        )
    return "\n".join(lines)


def hash_agreement(folder: Path) -> str:
    """How far hamkit's hashes (JPEG draft decoding) are from imagededup's on the same files."""
    from imagededup.methods import DHash, PHash

    from hamkit.dedup.deduplicator import Deduplicator
    from hamkit.dedup.hashing import hamming, hex_to_hash
    from hamkit.dedup.inputs import resolve_images

    paths = resolve_images(folder)
    parts = []
    for method, hasher_class in (("phash", PHash), ("dhash", DHash)):
        dedup = Deduplicator(method, progress=False, cache_dir=False)
        ours, _ = dedup._checked().signatures(dedup, paths)  # the raw hashes
        theirs_map = hasher_class(verbose=False).encode_images(folder)
        theirs = hex_to_hash([theirs_map[p.name] for p in paths])
        distance = hamming(ours, theirs)
        parts.append(
            f"{method}: mean {distance.mean():.2f} bits, max {int(distance.max())}, "
            f"identical {np.mean(distance == 0):.0%}"
        )
    return "; ".join(parts)


def main() -> None:
    """Parse the arguments, prepare the folder, run the tables and print them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=SAMPLE, help="folder of images to repeat (default: the sample)")
    parser.add_argument("--n", type=int, default=450, help="number of files (default 450)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds; the best is reported (default 3)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="decoding workers of both sides in the first table (default: CPU count)",
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: CPU count)")
    parser.add_argument("--skip-defaults", action="store_true", help="skip the 'library defaults' table")
    parser.add_argument("--what-if", action="store_true", help="add the fused-model what-if row")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=("cnn", "phash", "dhash"),
        default=None,
        help="measure only these methods (default: all)",
    )
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"{args.data}: no such folder (the HAM10000 sample is missing); pass --data FOLDER")

    import imagededup
    import PIL
    import torch
    import torchvision
    from PIL import Image

    torch.set_num_threads(args.threads)
    logging.disable(logging.INFO)  # imagededup logs every call at INFO level
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_dedup_encode_") as tmp:
        folder = Path(tmp)
        paths = prepare_folder(args.data, args.n, folder)
        sizes = sorted({Image.open(p).size for p in paths})
        print(
            f"# {args.n} files ({len({p.name.split('_', 1)[1] for p in paths})} distinct images, "
            f"sizes {', '.join(f'{w}x{h}' for w, h in sizes[:3])}{'...' if len(sizes) > 3 else ''}) "
            f"from {args.data}"
        )
        print(
            f"# {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} ({args.threads} threads), "
            f"torchvision {torchvision.__version__}, Pillow {PIL.__version__}, imagededup {imagededup.__version__}, "
            f"best of {args.rounds} rounds, 1-min load before: {os.getloadavg()[0]:.1f}"
        )
        plural = "es" if args.workers != 1 else ""
        configs: list[tuple[str, int | None]] = [
            (f"same workers ({args.workers} decoding process{plural} each side)", args.workers)
        ]
        if not args.skip_defaults:
            configs.append(("library defaults", None))
        for title, workers in configs:
            full = workers is not None
            wanted = set(args.only or ("cnn", "phash", "dhash"))
            rows = cnn_rows(folder, args.n, workers, what_if=args.what_if and full) if "cnn" in wanted else []
            rows += [row for row in hash_rows(folder, workers, full=full) if row.name.split()[0] in wanted]
            run_rows(rows, args.n, args.rounds)
            print(f"\n## {title}\n")
            print(table(rows, args.n), flush=True)
        print(
            f"\nhash agreement with imagededup on these files (hamkit decodes JPEGs at reduced size): "
            f"{hash_agreement(folder)}"
        )
        print(f"1-min load after: {os.getloadavg()[0]:.1f}; total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
