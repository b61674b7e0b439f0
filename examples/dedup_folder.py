"""Find exact and near-duplicate images in a folder, and check them against the planted ones.

Usage: python examples/dedup_folder.py [WORK_DIR]

Writes a small synthetic dataset (HAM10000 layout, with planted duplicates listed in
``duplicates_groundtruth.csv``) into WORK_DIR (default: a new temporary folder), scans its
images for byte-for-byte pixel copies and for perceptual-hash near-duplicates at three
thresholds, saves each result (kept/removed lists, pairs, groups, a contact sheet to review)
and prints, per method and threshold, how many planted duplicates were found and how many
pairs join images of different lesions (false positives). No network, no GPU; a few seconds.
"""

from __future__ import annotations

import csv
import sys
import tempfile
from collections import Counter
from pathlib import Path

from hamkit import Deduplicator, DedupResult, make_synthetic, read_metadata
from hamkit.dedup.review import contact_sheet


def planted_duplicates(csv_path: Path) -> list[tuple[str, str, str]]:
    """The planted duplicates as ``(image_id, duplicate_of, kind)`` rows."""
    with csv_path.open(newline="") as handle:
        return [(row["image_id"], row["duplicate_of"], row["kind"]) for row in csv.DictReader(handle)]


def check(result: DedupResult, planted: list[tuple[str, str, str]], lesion_of: dict[str, str]) -> str:
    """How many planted copies share a group with their source, and how many pairs are wrong."""
    group_of = {path.stem: group for path, group in zip(result.paths, result.group_labels(), strict=True)}
    found = Counter(
        kind for copy, source, kind in planted if group_of[copy] is not None and group_of[copy] == group_of[source]
    )
    ids = [(result.paths[i].stem, result.paths[j].stem) for i, j in zip(result.pairs.i, result.pairs.j, strict=True)]
    wrong = sum(lesion_of[a] != lesion_of[b] for a, b in ids)
    per_kind = ", ".join(f"{kind} {found[kind]}" for kind in sorted({k for _, _, k in planted}))
    return (
        f"planted found {sum(found.values())} of {len(planted)} ({per_kind}); "
        f"{len(ids)} pair(s), {wrong} between different lesions"
    )


def main(work: Path) -> None:
    """Write the dataset into ``work``, scan it with each method and threshold, print the checks."""
    work.mkdir(parents=True, exist_ok=True)
    data = make_synthetic(work / "data", n_lesions=40, random_state=0, image_size=(128, 96), overwrite=True)
    planted = planted_duplicates(data.duplicates_csv)
    # the lesion each image really shows: a planted copy poses as a new lesion in the metadata
    lesion_of = {r.image_id: str(r.lesion_id) for r in read_metadata(data.metadata_csv)}
    lesion_of.update({copy: lesion_of[source] for copy, source, _ in planted})
    print(f"{data.n_images} images of {data.n_lesions} lesions, {len(planted)} planted duplicates")

    for method, threshold in (("exact", None), ("phash", 4), ("phash", 6), ("phash", 8)):
        dedup = Deduplicator(method=method, threshold=threshold, num_workers=0, progress=False)
        result = dedup.find(data.root)  # a folder is searched recursively
        assert result is not None  # None only on non-zero ranks under torchrun
        name = method if threshold is None else f"{method}-{threshold}"
        out = result.save(work / "dedup" / name)  # kept.txt, removed.txt, pairs.csv, groups.csv...
        contact_sheet(result, out / "review.png", max_pairs=12, thumb=96)
        print(f"{name:<8} {check(result, planted, lesion_of)}")
    print(f"results and review sheets in {work / 'dedup'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="hamkit-dedup-")))
