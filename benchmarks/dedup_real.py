"""Duplicate detection on the real HAM10000 images with planted copies, next to imagededup.

Copies every image of ``--data`` (the 10,015 HAM10000 images in the official layout) into a
temporary folder, plants ``--per-kind`` altered copies of each kind of
:data:`hamkit.synthetic.planting.PLANT_KINDS` (byte copies, PNG re-saves, JPEG re-encodes,
resizes, brightness and colour shifts, crops, shifts, small rotations, flips, 90-degree turns),
then runs every method in a fresh process (its own peak memory) on the whole folder, as
``hamkit dedup FOLDER`` would, and prints side by side:

* recall per family of copy: a copy is found when it ends up in its source's duplicate group;
* pairs across different ``lesion_id`` (planted copies left out): on HAM10000 these are
  almost all false, except the images that one lesion got under two ids;
* pairs within one lesion, the largest group, the number of images ``removed.txt`` would list;
* seconds and peak memory (RSS) of the scan.

imagededup runs ``PHash().find_duplicates(image_dir=...)`` and ``CNN().find_duplicates(...)`` at
their defaults (max distance 10; min similarity 0.9). Without internet its CNN and hamkit's
``cnn`` have random weights (imagededup's MobileNetV3 built with ``weights=None``; hamkit's with
``pretrained=False``): those rows do not show what the pretrained CNNs do.

    python benchmarks/dedup_real.py [--data FOLDER] [--per-kind 24] [--only verified phash ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ham10000-200px"
SETTINGS: dict[str, dict] = {
    "verified": {"method": "verified"},
    "verified k=20": {"method": "verified", "candidates": 20},
    "phash 8": {"method": "phash"},
    "phash 2": {"method": "phash", "threshold": 2},
    "dhash 4": {"method": "dhash"},
    "exact": {"method": "exact"},
    "imagededup PHash": {"imagededup": "PHash"},
    "imagededup CNN (random weights)": {"imagededup": "CNN"},
    # not run by default: with random weights every pair of images is above 0.93, so the scan
    # collects tens of millions of pairs (7 GiB after 5 minutes); it needs pretrained weights
    "cnn (random weights)": {"method": "cnn", "pretrained": False},
    # the installed ImageNet weights (no download); run at the sweep's lowest threshold, then swept
    "cnn Lite0 (installed ImageNet weights)": {
        "method": "cnn",
        "backbone": "timm:tf_efficientnet_lite0",
        "pretrained": True,
        "threshold": 0.93,
    },
}
DEFAULT_SETTINGS = [name for name in SETTINGS if name != "cnn (random weights)"]
VERIFIED_SWEEP = (0.3, 0.4, 0.5, 0.6, 0.7)
CNN_SWEEP = (0.93, 0.94, 0.95, 0.96, 0.97, 0.98)


def worker(setting: str, folder: str) -> None:
    """Run one setting on ``folder`` and print its pairs (as file names) and costs as JSON."""
    config = dict(SETTINGS[setting])
    started = time.perf_counter()
    extra: dict = {}
    if "imagededup" in config:
        import logging

        logging.disable(logging.WARNING)
        from _shared import random_torchvision_mobilenet

        if config["imagededup"] == "PHash":
            from imagededup.methods import PHash

            found = PHash(verbose=False).find_duplicates(image_dir=folder)
        else:
            with random_torchvision_mobilenet():
                from imagededup.methods import CNN

                found = CNN(verbose=False).find_duplicates(image_dir=folder)
        pairs = sorted({tuple(sorted((a, b))) for a, others in found.items() for b in others})
        rows = [[a, b, 1.0] for a, b in pairs]
    else:
        import warnings

        warnings.simplefilter("ignore")
        from hamkit import Deduplicator

        method = config.pop("method")
        own = {f"method__{key}": config.pop(key) for key in list(config) if key != "threshold"}  # the method's
        dedup = Deduplicator(method, progress=False, cache_dir=False, **config).set_params(**own)
        result = dedup.find(folder)
        names = [p.name for p in result.paths]
        if result.candidates is not None:  # every candidate, so that thresholds can be swept
            c = result.candidates
            rows = [[names[a], names[b], float(s)] for a, b, s in zip(c.i, c.j, c.score, strict=True)]
            extra = {"threshold": result.threshold, "candidates": len(c), "verified": int((c.inliers != 0).sum())}
        else:
            if method == "cnn":  # every pair at or above the run's threshold, swept upwards below
                extra = {"sweep": "cnn"}
            rows = [
                [names[a], names[b], float(s)]
                for a, b, s in zip(result.pairs.i, result.pairs.j, result.pairs.score, strict=True)
            ]
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux: KiB)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"setting": setting, "pairs": rows, "seconds": seconds, "peak_mib": max(peak, children), **extra}))


def _groups(names: list[str], pairs: list[tuple[str, str]]) -> dict[str, int]:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    index = {n: k for k, n in enumerate(names)}
    a = np.array([index[p[0]] for p in pairs], dtype=np.int64)
    b = np.array([index[p[1]] for p in pairs], dtype=np.int64)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(names), len(names)))
    labels = connected_components(graph, directed=False)[1]
    return {n: int(labels[k]) for n, k in index.items()}


def evaluate(names: list[str], pairs: list[tuple[str, str]], planted: list[dict], lesion: dict[str, str]) -> dict:
    """Recall per family, pairs across / within lesions, largest group, removed count."""
    from hamkit.synthetic.planting import KIND_FAMILY

    group = _groups(names, pairs)
    sizes = np.bincount(np.array(list(group.values())))
    found: dict[str, list[bool]] = {}
    by_kind: dict[str, list[bool]] = {}
    for row in planted:
        hit = group[row["copy"]] == group[row["source"]]
        found.setdefault(KIND_FAMILY[row["kind"]], []).append(hit)
        by_kind.setdefault(row["kind"], []).append(hit)
    originals = [(a, b) for a, b in pairs if not a.startswith("COPY_") and not b.startswith("COPY_")]

    def stem(name: str) -> str:
        return name.rsplit(".", 1)[0]

    across = sum(1 for a, b in originals if lesion.get(stem(a)) != lesion.get(stem(b)))
    return {
        "recall": {f: float(np.mean(v)) for f, v in found.items()},
        "found_by_kind": {k: [int(sum(v)), len(v)] for k, v in by_kind.items()},
        "across": across,
        "within": len(originals) - across,
        "largest": int(sizes.max()) if len(sizes) else 0,
        "removed": int((sizes[sizes > 1] - 1).sum()),
    }


def main() -> None:
    """Plant copies, run every setting in its own process, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--per-kind", type=int, default=24)
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--only", nargs="*", default=None, help="settings to run (default: all)")
    parser.add_argument("--worker", nargs=2, metavar=("SETTING", "FOLDER"), help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a setting may take (default 900)")
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    from hamkit.data.images import find_images
    from hamkit.data.metadata import read_metadata
    from hamkit.synthetic.planting import plant_copies

    images = sorted(find_images(args.data).values())
    lesion = {r.image_id: r.lesion_id for r in read_metadata(args.data / "HAM10000_metadata.csv")}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        plant_copies(images, folder, per_kind=args.per_kind, random_state=args.random_state)
        with open(folder / "planted.csv") as handle:
            planted = list(csv.DictReader(handle))
        (folder / "planted.csv").unlink()
        names = sorted(p.name for p in folder.iterdir())
        print(f"{len(images)} images + {len(planted)} planted copies ({args.per_kind} per kind)", flush=True)
        results = []
        for setting in args.only or DEFAULT_SETTINGS:
            command = [sys.executable, os.path.abspath(__file__), "--worker", setting, str(folder)]
            try:
                done = subprocess.run(
                    command,
                    capture_output=True,
                    text=True,
                    check=False,
                    cwd=Path(__file__).parent,
                    timeout=args.timeout,
                )
            except subprocess.TimeoutExpired:
                print(f"| {setting} | stopped after {args.timeout:.0f} s |", flush=True)
                continue
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if done.returncode or not lines:
                print(f"{setting}: failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}", flush=True)
                continue
            run = json.loads(lines[-1])
            rows = run.pop("pairs")
            sweep = CNN_SWEEP if run.get("sweep") == "cnn" else VERIFIED_SWEEP if "threshold" in run else (None,)
            for threshold in sweep:
                kept = [(a, b) for a, b, s in rows if threshold is None or s >= threshold]
                label = setting if threshold is None else f"{setting} @ {threshold:g}"
                results.append(
                    {
                        "setting": label,
                        **evaluate(names, kept, planted, lesion),
                        "seconds": run["seconds"],
                        "peak_mib": run["peak_mib"],
                        **({"candidates": run["candidates"]} if "candidates" in run else {}),
                    }
                )
                _print_row(results[-1])
    if args.json:
        from _shared import provenance

        record = {
            **provenance(),
            "load_average": [load_before, os.getloadavg()[0]],  # 1-minute, before and after
            "images": len(images),
            "planted": len(planted),
            "per_kind": args.per_kind,
            "note": "seconds were measured on a machine shared with other jobs: upper bounds",
            "rows": results,
        }
        args.json.write_text(json.dumps(record, indent=1) + "\n")


def _print_row(row: dict) -> None:
    recall = row["recall"]
    print(
        f"| {row['setting']} | {row['across']:,} | {row['within']:,} | {recall.get('exact', 0):.2f} / "
        f"{recall.get('photometric', 0):.2f} / {recall.get('geometric', 0):.2f} | {row['largest']} | "
        f"{row['removed']:,} | {row['seconds']:.0f} | {row['peak_mib']:,.0f} |",
        flush=True,
    )


if __name__ == "__main__":
    main()
