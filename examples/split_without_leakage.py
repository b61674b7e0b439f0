"""Split a dataset into train / val / test without leakage, and audit the split.

Usage: python examples/split_without_leakage.py [WORK_DIR]

Writes a small synthetic dataset into WORK_DIR (default: a new temporary folder), then compares
two splits of it:

* a naive random split by image, as many published HAM10000 results use: photos of one lesion,
  and near-duplicate copies, land on both sides;
* hamkit's split, grouped by lesion AND by duplicate group (from a perceptual-hash scan) and
  stratified by diagnosis.

Both are audited by searching every pair of splits for near-duplicates again. No network, no
GPU; a few seconds.
"""

from __future__ import annotations

import csv
import io
import sys
import tempfile
from pathlib import Path

import numpy as np

from hamkit import Deduplicator, make_synthetic, read_metadata, split_dataset
from hamkit.data.splits import SPLIT_NAMES


def naive_split_csv(image_ids: list[str], path: Path, random_state: int = 0) -> dict[str, str]:
    """A random 75/12.5/12.5 split by image, written as ``image_id,split`` (what not to do)."""
    order = np.random.default_rng(random_state).permutation(len(image_ids))
    cuts = np.cumsum([int(0.75 * len(order)), int(0.125 * len(order))])
    names = np.empty(len(order), dtype=object)
    for name, part in zip(SPLIT_NAMES, np.split(order, cuts), strict=True):
        names[part] = name
    assignment = dict(zip(image_ids, names.tolist(), strict=True))
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([("image_id", "split"), *assignment.items()])
    path.write_text(buffer.getvalue())
    return assignment


def shared_lesions(lesion_ids: list[str], splits: list[str]) -> int:
    """How many lesions have images in more than one split."""
    seen: dict[str, set[str]] = {}
    for lesion, split in zip(lesion_ids, splits, strict=True):
        seen.setdefault(lesion, set()).add(split)
    return sum(len(names) > 1 for names in seen.values())


def main(work: Path) -> None:
    """Write the dataset into ``work``, compare a naive split with hamkit's, and audit both."""
    work.mkdir(parents=True, exist_ok=True)
    data = make_synthetic(work / "data", n_lesions=60, random_state=0, image_size=(128, 96), overwrite=True)
    records = read_metadata(data.metadata_csv)
    image_ids = [r.image_id for r in records]
    lesion_ids = [str(r.lesion_id) for r in records]
    auditor = Deduplicator(method="phash", threshold=6, num_workers=0, progress=False)

    naive = naive_split_csv(image_ids, work / "naive_split.csv")
    naive_audit = auditor.audit(work / "naive_split.csv", data.root)
    print(
        f"naive split by image: {shared_lesions(lesion_ids, [naive[i] for i in image_ids])} lesion(s) "
        f"in more than one split, {naive_audit.leaks} near-duplicate pair(s) across splits"
    )

    # 1. duplicate groups of the whole dataset, aligned with the metadata rows by image id
    found = auditor.find(data.root)
    assert found is not None  # None only on non-zero ranks under torchrun
    group_of = {path.stem: group for path, group in zip(found.paths, found.group_labels(), strict=True)}
    duplicate_groups = [group_of.get(image_id) for image_id in image_ids]

    # 2. grouped by lesion and duplicate group, stratified by diagnosis, the same split every time
    split = split_dataset(records, (0.75, 0.125, 0.125), random_state=0, extra_groups=[duplicate_groups])
    split.save(work / "split.csv")
    print(split.format_table())

    # 3. audit: search every pair of splits for near-duplicates again
    audit = auditor.audit(work / "split.csv", data.root)
    audit.save(work / "audit")
    print(
        f"hamkit split: {split.crossing_groups(lesion_ids)} lesion(s) and "
        f"{split.crossing_groups(duplicate_groups)} duplicate group(s) in more than one split, "
        f"{audit.leaks} near-duplicate pair(s) across splits"
    )
    print(f"split written to {work / 'split.csv'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="hamkit-split-")))
