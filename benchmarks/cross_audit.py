"""The cross-data-set audit on an "ISIC 2019"-like folder built from the 10,015 HAM10000 images.

ISIC 2019's training set contains all of HAM10000. This script builds a folder in ISIC 2019's
layout (``ISIC_2019_Training_Input/``, ``ISIC_2019_Training_GroundTruth.csv`` and
``ISIC_2019_Training_Metadata.csv`` with ``lesion_id`` for the images that keep their id) from the
HAM10000 images, each copied in one of these ways (the same every run: a fixed random state):

* 60 % byte for byte under the same id, 10 % byte for byte under a new id;
* 3 % saved again as PNG (the same pixels, other bytes) under a new id;
* 7 % re-encoded as JPEG at quality 75 under the same id, 5 % under a new id;
* 10 % resized to 80 % (160x120) under the same id, 5 % under a new id;

plus ``--others`` images of other lesions (hamkit's synthetic lesions, 200x150) under ids of their
own. It then runs ``hamkit.dedup.crossdata.audit_datasets`` with the HAM10000 folder as the
training set and the new folder as the test set, both read by ``read_dataset``, and checks the
result against what it built: every copy must be found by content (the ``verified`` criterion),
the unchanged ones by ``identical_bytes``, the PNG ones by ``identical_pixels``, the ones that keep
their id by ``same_id``, and no image of another lesion by anything.

    python benchmarks/cross_audit.py --data ../shared/data/ham10000-200px --json benchmarks/results/cross_audit.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _shared import provenance  # noqa: E402

WAYS = (
    ("bytes_same_id", 0.60),
    ("bytes_new_id", 0.10),
    ("png_new_id", 0.03),
    ("reencoded_same_id", 0.07),
    ("reencoded_new_id", 0.05),
    ("resized_same_id", 0.10),
    ("resized_new_id", 0.05),
)


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished worker processes (user + system)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def build(ham: Path, out: Path, n_others: int, random_state: int) -> dict:
    """Write the ISIC-2019-like folder; return what was put where."""
    from hamkit.data.readers import read_dataset
    from hamkit.synthetic import make_synthetic

    records = read_dataset(ham, kind="ham10000")
    from hamkit.data.images import find_images

    files = find_images(ham)
    rng = np.random.default_rng(random_state)
    ways = rng.choice(len(WAYS), size=len(records), p=[share for _, share in WAYS])
    images = out / "ISIC_2019_Training_Input"
    images.mkdir(parents=True)
    truth: dict[str, dict] = {}  # new id -> {"source": HAM id or "", "way": ...}
    rows, meta = [], []
    for k, (record, way_index) in enumerate(zip(records, ways, strict=True)):
        way = WAYS[way_index][0]
        new_id = record.image_id if way.endswith("same_id") else f"ISIC_9{k:06d}"
        source = files[record.image_id]
        if way.startswith("bytes"):
            shutil.copyfile(source, images / f"{new_id}.jpg")
        elif way.startswith("png"):
            Image.open(source).save(images / f"{new_id}.png")
        elif way.startswith("reencoded"):
            Image.open(source).save(images / f"{new_id}.jpg", quality=75)
        else:
            image = Image.open(source)
            image.resize((image.width * 4 // 5, image.height * 4 // 5), Image.Resampling.LANCZOS).save(
                images / f"{new_id}.jpg", quality=90
            )
        truth[new_id] = {"source": record.image_id, "way": way}
        rows.append((new_id, record.dx))
        meta.append((new_id, record.lesion_id if way.endswith("same_id") else ""))
    scratch = Path(tempfile.mkdtemp(prefix="others-"))
    synthetic = make_synthetic(
        scratch / "data",
        n_lesions=n_others,
        random_state=random_state,
        image_size=(200, 150),
        photos_per_lesion=(1, 1),
        duplicate_fraction=0.0,
    )
    others = sorted(p for d in synthetic.image_dirs for p in d.glob("*.jpg"))[:n_others]
    for k, path in enumerate(others):
        new_id = f"ISIC_8{k:06d}"
        shutil.copyfile(path, images / f"{new_id}.jpg")
        truth[new_id] = {"source": "", "way": "other"}
        rows.append((new_id, "nv"))
        meta.append((new_id, f"OTHER_{k:06d}"))
    columns = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
    code = {"mel": "MEL", "nv": "NV", "bcc": "BCC", "akiec": "AK", "bkl": "BKL", "df": "DF", "vasc": "VASC"}
    with (out / "ISIC_2019_Training_GroundTruth.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", *columns])
        for image_id, dx in rows:
            writer.writerow([image_id, *("1.0" if c == code[dx] else "0.0" for c in columns)])
    with (out / "ISIC_2019_Training_Metadata.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "age_approx", "anatom_site_general", "lesion_id", "sex"])
        for image_id, lesion in meta:
            writer.writerow([image_id, "", "", lesion, ""])
    shutil.rmtree(scratch, ignore_errors=True)  # the folder this function made, nothing above it
    return truth


def check(audit: object, truth: dict) -> dict:
    """Each criterion's images against the ones built for it: missed and extra ids."""
    overlap = audit.overlaps[0]  # type: ignore[attr-defined]
    copies = {i for i, t in truth.items() if t["way"] != "other"}
    expected = {
        "same_id": {i for i, t in truth.items() if t["way"].endswith("same_id")},
        "identical_bytes": {i for i, t in truth.items() if t["way"].startswith("bytes")},
        "identical_pixels": {i for i, t in truth.items() if t["way"].startswith(("bytes", "png"))},
        "verified": copies,
        "any": copies,
    }
    found = {**{c: set(ids) for c, ids in overlap.images.items()}, "any": set(overlap.shared)}
    result = {}
    for criterion, wanted in expected.items():
        got = found[criterion]
        result[criterion] = {
            "expected": len(wanted),
            "found": len(got),
            "missed": sorted(wanted - got)[:20],
            "n_missed": len(wanted - got),
            "extra": sorted(got - wanted)[:20],
            "n_extra": len(got - wanted),
        }
    sources_missed = [
        i for i in copies if (truth[i]["source"], i) not in {(a, b) for c, a, b in overlap.pairs if c == "verified"}
    ]
    result["verified_source_missed"] = {"n": len(sources_missed), "ids": sorted(sources_missed)[:20]}
    result["exact"] = all(r["n_missed"] == 0 and r["n_extra"] == 0 for k, r in result.items() if k in expected) and (
        not sources_missed
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the HAM10000 folder (e.g. ham10000-200px)")
    parser.add_argument("--others", type=int, default=500, help="images of other lesions in the new folder")
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--json", help="write the result here")
    parser.add_argument("--keep", help="build the folder here and keep it (default: a temporary folder)")
    parser.add_argument(
        "--note",
        default="machine shared with other jobs; wall times are upper bounds",
        help="how the machine was used while it ran (recorded with the results)",
    )
    args = parser.parse_args()

    from hamkit._cpu import available_cpus
    from hamkit.data.readers import read_dataset
    from hamkit.dedup.crossdata import audit_datasets

    ham = Path(args.data)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="isic2019-like-"))
    clock = time.perf_counter()
    truth = build(ham, work, args.others, args.random_state)
    build_s = time.perf_counter() - clock
    load = os.getloadavg()[0]
    clock = time.perf_counter()
    cpu_before = _cpu_seconds()
    records = {"HAM10000": read_dataset(ham), "ISIC 2019-like": read_dataset(work)}
    audit = audit_datasets({"HAM10000": ham, "ISIC 2019-like": work}, test=["ISIC 2019-like"], records=records)
    audit_s = time.perf_counter() - clock
    cpu_s = _cpu_seconds() - cpu_before
    load_after = os.getloadavg()[0]
    checked = check(audit, truth)
    result = {
        "benchmark": "cross_audit",
        "ham_images": audit.sizes["HAM10000"],
        "new_folder_images": audit.sizes["ISIC 2019-like"],
        "ways": {w: sum(t["way"] == w for t in truth.values()) for w, _ in WAYS} | {"other": args.others},
        "counts": audit.overlaps[0].counts(),
        "check": checked,
        "audit_s": round(audit_s, 1),
        "audit_cpu_s": round(cpu_s, 1),
        "audit_cpu_s_per_core": round(cpu_s / available_cpus(), 1),
        "build_s": round(build_s, 1),
        "cpus": available_cpus(),
        "load_before": load,
        "load_after": load_after,
        "note": args.note,
        **provenance(),
    }
    print(audit.format_table())
    print(json.dumps({k: result[k] for k in ("counts", "audit_s", "audit_cpu_s", "load_before")}, indent=1))
    print("exact:", checked["exact"])
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if checked["exact"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
