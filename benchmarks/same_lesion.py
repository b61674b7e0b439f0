"""Same lesion, another photograph: how many of HAM10000's same-lesion pairs each method finds.

HAM10000's ``lesion_id`` gives 3,207 pairs of images of one lesion (1,956 lesions photographed two
to six times), taken again with another framing, zoom, rotation and light. This script copies
the 10,015 images of ``--data`` into a temporary folder, plants ``--per-kind`` altered copies of
each kind (as ``benchmarks/dedup_real.py`` does: exact, photometric and geometric copies), runs
each method in a fresh process on the whole folder, as ``hamkit dedup FOLDER`` would (its own
seconds and peak memory), and reports per method and threshold:

* ``same_lesion``: the fraction of the 3,207 same-lesion pairs whose two images end up in one
  duplicate group (what keeps them in one split), ``same_lesion_paired``: found as a pair, and
  ``same_lesion_candidates``: among the candidate pairs the method verified (before any threshold);
* ``same_lesion_half_b``: the same on the half of the lesions (by a hash of ``lesion_id``) that no
  threshold was chosen on: the ``calibrated`` rows take the lowest threshold whose pairs across
  different ``lesion_id`` in half A are at most ``--max-across-a``, and report half B;
* copies recall per family (exact, photometric, geometric; a copy is found when it ends up in its
  source's group), pairs across different ``lesion_id`` (planted copies left out; each is listed
  in the results file, to be looked at), the largest group, seconds and peak memory (RSS).

Nothing here fits anything on lesion ids except the ``calibrated`` threshold (on half A only).
The machine may be shared with other jobs; seconds are then upper bounds.

    python benchmarks/same_lesion.py [--data FOLDER] [--per-kind 24] [--only lesion verified]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
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
RESULTS = Path(__file__).resolve().parent / "results" / "same_lesion.json"
SETTINGS: dict[str, dict] = {
    "lesion": {"method": "lesion"},
    "verified": {"method": "verified"},
}
SWEEP = {"lesion": (0.4, 0.45, 0.5, 0.55, 0.6, 0.65), "verified": (0.5,)}


def worker(setting: str, folder: str) -> None:
    """Run one setting on ``folder``; print every candidate (file names, score) and the costs as JSON."""
    import warnings

    warnings.simplefilter("ignore")
    from hamkit import Deduplicator

    config = dict(SETTINGS[setting])
    started = time.perf_counter()
    result = Deduplicator(**config, progress=False, cache_dir=False).find(folder)
    assert result is not None
    names = [p.name for p in result.paths]
    found = result.candidates
    assert found is not None
    rows = [[names[a], names[b], float(s)] for a, b, s in zip(found.i, found.j, found.score, strict=True)]
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"setting": setting, "pairs": rows, "seconds": seconds, "peak_mib": max(peak, children)}))


def half_of(lesion_id: str) -> str:
    """``"a"`` or ``"b"``: a fixed half of the lesions, by a hash of the id."""
    return "ab"[hashlib.sha256(lesion_id.encode()).digest()[0] % 2]


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


def evaluate(
    names: list[str], pairs: list[tuple[str, str, float]], planted: list[dict], lesion: dict[str, str]
) -> dict:
    """Same-lesion recall (overall, per half), copies recall, pairs across lesions, largest group."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from hamkit.synthetic.planting import KIND_FAMILY

    index = {n: k for k, n in enumerate(names)}
    a = np.array([index[p[0]] for p in pairs], dtype=np.int64)
    b = np.array([index[p[1]] for p in pairs], dtype=np.int64)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(names), len(names)))
    labels = connected_components(graph, directed=False)[1]
    sizes = np.bincount(labels)
    copies: dict[str, list[bool]] = {}
    for row in planted:
        copies.setdefault(KIND_FAMILY[row["kind"]], []).append(
            labels[index[row["copy"]]] == labels[index[row["source"]]]
        )
    by_lesion: dict[str, list[str]] = {}
    for name in names:
        if not name.startswith("COPY_") and _stem(name) in lesion:
            by_lesion.setdefault(lesion[_stem(name)], []).append(name)
    direct = {(min(x, y), max(x, y)) for x, y, _ in pairs}
    grouped: dict[str, list[bool]] = {"all": [], "a": [], "b": []}
    paired: list[bool] = []
    for lesion_id, members in by_lesion.items():
        for x, y in itertools.combinations(sorted(members), 2):
            hit = labels[index[x]] == labels[index[y]]
            grouped["all"].append(hit)
            grouped[half_of(lesion_id)].append(hit)
            paired.append((x, y) in direct)
    across = [
        (x, y, s)
        for x, y, s in pairs
        if not x.startswith("COPY_") and not y.startswith("COPY_") and lesion.get(_stem(x)) != lesion.get(_stem(y))
    ]
    across_half = {"a": 0, "b": 0}
    for x, y, _ in across:
        halves = {half_of(lesion.get(_stem(x), "")), half_of(lesion.get(_stem(y), ""))}
        for h in halves:
            across_half[h] += 1
    return {
        "same_lesion_pairs": len(grouped["all"]),
        "same_lesion": float(np.mean(grouped["all"])),
        "same_lesion_paired": float(np.mean(paired)),
        "same_lesion_half_a": float(np.mean(grouped["a"])),
        "same_lesion_half_b": float(np.mean(grouped["b"])),
        "copies": {family: float(np.mean(hits)) for family, hits in copies.items()},
        "across": len(across),
        "across_half_a": across_half["a"],
        "across_half_b": across_half["b"],
        "across_pairs": sorted(([x, y, round(s, 4)] for x, y, s in across), key=lambda r: -r[2]),
        "largest": int(sizes.max()) if len(sizes) else 0,
    }


def main() -> None:
    """Plant copies, run each setting in its own process, evaluate, write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--per-kind", type=int, default=24)
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--only", nargs="*", default=None, help="settings to run (default: all)")
    parser.add_argument("--max-across-a", type=int, default=30, help="calibration: pairs across lesions in half A")
    parser.add_argument("--worker", nargs=2, metavar=("SETTING", "FOLDER"), help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=RESULTS, help="results file")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument(
        "--lesion-fraction",
        type=float,
        default=1.0,
        help="only the images of this share of the lesions (by a hash of lesion_id; default: all)",
    )
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from _shared import provenance

    from hamkit.data.images import find_images
    from hamkit.data.metadata import read_metadata
    from hamkit.synthetic.planting import plant_copies

    lesion = {r.image_id: r.lesion_id for r in read_metadata(args.data / "HAM10000_metadata.csv")}
    images = sorted(
        path
        for image_id, path in find_images(args.data).items()
        if hashlib.sha256(lesion.get(Path(path).stem, "").encode()).digest()[1] < 256 * args.lesion_fraction
    )
    rows: list[dict] = []
    load_before = [round(x, 2) for x in os.getloadavg()]
    source = provenance()  # the code the runs below use (a commit made while they run is not theirs)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        plant_copies(images, folder, per_kind=args.per_kind, random_state=args.random_state)
        with open(folder / "planted.csv") as handle:
            planted = list(csv.DictReader(handle))
        (folder / "planted.csv").unlink()
        names = sorted(p.name for p in folder.iterdir())
        print(f"{len(images)} images + {len(planted)} planted copies ({args.per_kind} per kind)", flush=True)
        for setting in args.only or list(SETTINGS):
            command = [sys.executable, os.path.abspath(__file__), "--worker", setting, str(folder)]
            try:
                done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                print(f"{setting}: stopped after {args.timeout:.0f} s", flush=True)
                continue
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if done.returncode or not lines:
                print(f"{setting}: failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}", flush=True)
                continue
            run = json.loads(lines[-1])
            candidates = run.pop("pairs")
            everything = evaluate(names, candidates, planted, lesion)  # before any threshold: what verification sees
            results = {}
            for threshold in SWEEP[setting]:
                kept = [(x, y, s) for x, y, s in candidates if s >= threshold]
                results[threshold] = evaluate(names, kept, planted, lesion)
            calibrated = min(
                (t for t, r in results.items() if r["across_half_a"] <= args.max_across_a), default=max(results)
            )
            for threshold, found in results.items():
                row = {
                    "setting": setting,
                    "threshold": threshold,
                    "calibrated": threshold == calibrated,
                    "seconds": round(run["seconds"], 1),
                    "peak_mib": round(run["peak_mib"]),
                    "candidates": len(candidates),
                    "same_lesion_candidates": everything["same_lesion_paired"],
                    **found,
                }
                rows.append(row)
                copies = " / ".join(f"{found['copies'].get(f, 0):.2f}" for f in ("exact", "photometric", "geometric"))
                mark = " (calibrated on half A)" if row["calibrated"] else ""
                print(
                    f"| {setting} @ {threshold:g}{mark} | {found['same_lesion']:.3f} | "
                    f"{found['same_lesion_half_b']:.3f} | {copies} | {found['across']} | {found['largest']} | "
                    f"{run['seconds']:.0f} | {run['peak_mib']:.0f} |",
                    flush=True,
                )
    payload = {
        "benchmark": "same_lesion",
        "images": len(images),
        "lesion_fraction": args.lesion_fraction,
        "planted": len(planted),
        "per_kind": args.per_kind,
        "rows": rows,
        **source,
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    if max(load_before[0], payload["load_average_after"][0]) > 0.75 * (os.cpu_count() or 1) + 1:
        payload["note"] = "machine shared with other jobs; wall times are upper bounds"
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {args.json}")


def table(payload: dict) -> str:
    """The Markdown table of a results file (docs/gen_benchmarks.py renders it)."""
    lines = [
        "| method @ threshold | same-lesion pairs grouped (of "
        f"{payload['rows'][0]['same_lesion_pairs']:,}) | held-out half | copies: exact / photometric / geometric | "
        "pairs across lesion_id | largest group | same-lesion pairs among the candidates (candidates) | seconds | "
        "peak MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in payload["rows"]:
        copies = " / ".join(f"{row['copies'].get(f, 0):.2f}" for f in ("exact", "photometric", "geometric"))
        mark = " (calibrated on half A)" if row["calibrated"] and row["setting"] != "verified" else ""
        among = f"{row['same_lesion_candidates']:.3f}" if "same_lesion_candidates" in row else "n/a"
        lines.append(
            f"| `{row['setting']}` @ {row['threshold']:g}{mark} | {row['same_lesion']:.3f} | "
            f"{row['same_lesion_half_b']:.3f} | {copies} | {row['across']} | {row['largest']} | "
            f"{among} ({row['candidates']:,}) | {row['seconds']:.0f} | {row['peak_mib']:,} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
