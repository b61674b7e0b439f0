"""Which images do several data sets share? :func:`audit_datasets`, the cross-data-set audit.

For every pair of sets it counts, and lists, the images of the second set that the first set
also holds, by five criteria:

* ``same_id``: the same image id (file name without extension), e.g. ``ISIC_0024306`` in
  HAM10000 and in ISIC 2019;
* ``identical_bytes``: byte-identical files (BLAKE2b of the file);
* ``identical_pixels``: the same decoded pixels (a lossless re-save, stripped metadata), which
  includes the byte-identical files;
* ``verified``: duplicates of the content, re-encoded, resized or slightly cropped, found by a
  :class:`~hamkit.dedup.deduplicator.Deduplicator` (``verified`` by default: keypoints aligned
  and the aligned pixels compared); identical pixels count as verified without a search, and the
  search runs on the images of the second set that have no identical twin in the first;
* ``same_lesion``: an image whose lesion or patient id (from the sets' label files, read by
  :func:`~hamkit.data.readers.read_dataset`) also occurs in the first set, or a verified
  duplicate of one of its images (the method can tell that much).

Sets named as test sets must share nothing with the others: :attr:`DatasetAudit.leaks` counts
what they do, and ``hamkit audit --data A --data B --test B`` exits with status 3 when it is not 0.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from hamkit._cpu import available_cpus
from hamkit._io import atomic_write_text
from hamkit._proc import process_pool
from hamkit.data.images import find_images, open_image
from hamkit.data.metadata import ImageRecord
from hamkit.errors import DataError, HamkitError

__all__ = ["CRITERIA", "DatasetAudit", "SetOverlap", "audit_datasets"]

CRITERIA: tuple[str, ...] = ("same_id", "identical_bytes", "identical_pixels", "verified", "same_lesion")
"""The overlap criteria, from the cheapest to the broadest."""


def _digests(path: str) -> tuple[str, str]:
    """``(file digest, pixel digest)`` of one image; the pixel digest is ``""`` when it does not decode."""
    data = Path(path).read_bytes()
    file_digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    try:
        image = open_image(path)
    except DataError:
        return file_digest, ""
    array = np.asarray(image)
    pixels = hashlib.blake2b(repr(array.shape).encode() + array.tobytes(), digest_size=16).hexdigest()
    return file_digest, pixels


@dataclass
class SetOverlap:
    """What one pair of sets shares.

    Attributes:
        first: The name of the first set.
        second: The name of the second set.
        images: ``{criterion: sorted image ids of the second set that have a counterpart in the first}``.
        pairs: ``(criterion, image id in first, image id in second)`` for every pair found.
    """

    first: str
    second: str
    images: dict[str, list[str]] = field(default_factory=dict)
    pairs: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def shared(self) -> list[str]:
        """Images of the second set found by any criterion."""
        return sorted({i for ids in self.images.values() for i in ids})

    def counts(self) -> dict[str, int]:
        """``{criterion: images}`` and ``any``."""
        return {**{c: len(self.images.get(c, [])) for c in CRITERIA}, "any": len(self.shared)}


@dataclass
class DatasetAudit:
    """The result of :func:`audit_datasets`.

    Attributes:
        sizes: ``{set name: images}``, in the order given.
        overlaps: One :class:`SetOverlap` per pair of sets, in order.
        test: The sets named as test sets.
        seconds: Wall time of the audit.
        method: The duplicate search used for ``verified`` (``""`` when it was skipped).
    """

    sizes: dict[str, int]
    overlaps: list[SetOverlap]
    test: tuple[str, ...] = ()
    seconds: float = 0.0
    method: str = ""

    @property
    def leaks(self) -> int:
        """Images shared (by any criterion) between a test set and a set that is not one."""
        return sum(len(o.shared) for o in self.overlaps if (o.first in self.test) != (o.second in self.test))

    def matrix(self, criterion: str = "any") -> dict[str, dict[str, int]]:
        """``{first: {second: images of second found in first}}`` for one criterion (``any`` by default)."""
        names = list(self.sizes)
        table = {a: {b: 0 for b in names} for a in names}
        for a in names:
            table[a][a] = self.sizes[a]
        for overlap in self.overlaps:
            table[overlap.first][overlap.second] = overlap.counts()[criterion]
        return table

    def format_table(self) -> str:
        """One line per pair of sets: images of the second found in the first, per criterion."""
        columns = [*CRITERIA, "any"]
        width = max(8, *(len(f"{o.first} / {o.second}") + 1 for o in self.overlaps)) if self.overlaps else 8
        lines = [f"{'sets (first / second)':<{width}}" + "".join(f"{c:>18}" for c in columns)]
        for overlap in self.overlaps:
            counts = overlap.counts()
            lines.append(
                f"{overlap.first + ' / ' + overlap.second:<{width}}" + "".join(f"{counts[c]:>18,}" for c in columns)
            )
        lines.append(
            "sizes: " + ", ".join(f"{name} {n:,}" for name, n in self.sizes.items()) + f"; {self.seconds:.0f} s"
        )
        if self.test:
            lines.append(
                f"{self.leaks} image(s) shared between the test set(s) {', '.join(self.test)} and the others"
                if self.leaks
                else f"the test set(s) {', '.join(self.test)} share nothing with the others"
            )
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """The counts, the matrices and the settings, as JSON-ready data."""
        return {
            "sizes": self.sizes,
            "test": list(self.test),
            "leaks": self.leaks,
            "method": self.method,
            "seconds": self.seconds,
            "pairs_of_sets": [{"first": o.first, "second": o.second, **o.counts()} for o in self.overlaps],
            "matrix": {c: self.matrix(c) for c in (*CRITERIA, "any")},
        }

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``audit.json`` and ``overlaps.csv`` (``first,second,criterion,image_first,image_second``)."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "audit.json", json.dumps(self.as_dict(), indent=1) + "\n")
        rows = ["first,second,criterion,image_first,image_second"]
        for overlap in self.overlaps:
            rows += [f"{overlap.first},{overlap.second},{c},{a},{b}" for c, a, b in overlap.pairs]
        atomic_write_text(out / "overlaps.csv", "\n".join(rows) + "\n")
        return out


@dataclass
class _Set:
    name: str
    ids: list[str]
    paths: list[Path]
    files: list[str]
    pixels: list[str]
    keys: dict[str, set[str]]  # image id -> its lesion / patient keys


def _images_of(value: Any) -> dict[str, Path]:
    if isinstance(value, (str, os.PathLike)):
        return find_images(value)
    paths = [Path(p) for p in value]
    return {p.stem: p for p in paths}


def _keys(records: Sequence[ImageRecord] | None) -> dict[str, set[str]]:
    if not records:
        return {}
    return {r.image_id: {f"{k}={v}" for k, v in r.group_keys.items()} for r in records}


def audit_datasets(
    sets: Mapping[str, Any],
    *,
    test: Sequence[str] = (),
    records: Mapping[str, Sequence[ImageRecord]] | None = None,
    deduplicator: Any = None,
    verify: bool = True,
    num_workers: int | None = None,
) -> DatasetAudit:
    """Compare every pair of data sets: shared ids, identical files and pixels, verified duplicates,
    shared lesions.

    Args:
        sets: ``{name: folder or list of image paths}``, at least two, in the order to report.
        test: Names of the test sets; :attr:`DatasetAudit.leaks` counts what they share with the
            other sets.
        records: ``{name: records}`` with lesion / patient keys (e.g. from
            :func:`~hamkit.data.readers.read_dataset`) for the ``same_lesion`` criterion; sets
            without records are compared by content only.
        deduplicator: The :class:`~hamkit.dedup.deduplicator.Deduplicator` for the ``verified``
            search (default: ``Deduplicator("verified", progress=False)``).
        verify: Run the duplicate search (``False`` keeps the exact criteria only, in seconds).
        num_workers: Processes that hash and decode the images (default: every available CPU).

    Returns:
        The :class:`DatasetAudit`.

    Raises:
        DataError: Fewer than two sets, an empty set, or a test set that is not among the sets.

    Examples:
        >>> import tempfile, pathlib, shutil
        >>> from hamkit.synthetic import make_synthetic
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> data = make_synthetic(tmp / "a", n_lesions=10, image_size=(64, 48), duplicate_fraction=0)
        >>> first = sorted(data.image_dirs[0].glob("*.jpg"))
        >>> (tmp / "b").mkdir()
        >>> _ = shutil.copy(first[0], tmp / "b" / "copy.jpg")
        >>> audit = audit_datasets({"a": data.root, "b": tmp / "b"}, test=["b"], verify=False)
        >>> audit.overlaps[0].counts()["identical_bytes"], audit.leaks
        (1, 1)
    """
    started = time.perf_counter()
    names = list(sets)
    if len(names) < 2:
        raise DataError(f"a cross-data-set audit needs at least two sets, got {len(names)}")
    unknown = [t for t in test if t not in sets]
    if unknown:
        raise DataError(f"test set(s) {', '.join(unknown)} are not among the sets {', '.join(names)}")
    found = {name: _images_of(value) for name, value in sets.items()}
    for name, images in found.items():
        if not images:
            raise DataError(f"set {name!r}: no images found")
    everything = [str(p) for images in found.values() for p in images.values()]
    workers = max(1, num_workers if num_workers is not None else available_cpus())
    if workers > 1 and len(everything) > 200:
        with process_pool(workers) as pool:  # they die with this process, and at once on an interrupt
            digests = list(pool.map(_digests, everything, chunksize=64))
    else:
        digests = [_digests(p) for p in everything]
    loaded: dict[str, _Set] = {}
    start = 0
    for name in names:
        ids = list(found[name])
        part = digests[start : start + len(ids)]
        start += len(ids)
        loaded[name] = _Set(
            name,
            ids,
            list(found[name].values()),
            [d[0] for d in part],
            [d[1] for d in part],
            _keys((records or {}).get(name)),
        )
    dedup = deduplicator
    if verify and dedup is None:
        from hamkit.dedup.deduplicator import Deduplicator

        dedup = Deduplicator("verified", progress=False, num_workers=num_workers)
    overlaps = [_compare(loaded[a], loaded[b], dedup if verify else None) for a, b in combinations(names, 2)]
    return DatasetAudit(
        sizes={name: len(found[name]) for name in names},
        overlaps=overlaps,
        test=tuple(test),
        seconds=time.perf_counter() - started,
        method=str(getattr(dedup, "method", "")) if verify else "",
    )


def _compare(first: _Set, second: _Set, dedup: Any) -> SetOverlap:
    overlap = SetOverlap(first.name, second.name)
    found: dict[str, set[str]] = {c: set() for c in CRITERIA}

    def add(criterion: str, a: str, b: str) -> None:
        found[criterion].add(b)
        overlap.pairs.append((criterion, a, b))

    ids_first = set(first.ids)
    for b in second.ids:
        if b in ids_first:
            add("same_id", b, b)
    for criterion, column_a, column_b in (
        ("identical_bytes", first.files, second.files),
        ("identical_pixels", first.pixels, second.pixels),
    ):
        index: dict[str, list[str]] = {}
        for image_id, digest in zip(first.ids, column_a, strict=True):
            if digest:
                index.setdefault(digest, []).append(image_id)
        for image_id, digest in zip(second.ids, column_b, strict=True):
            for twin in index.get(digest, []) if digest else []:
                add(criterion, twin, image_id)
    for criterion, a, b in list(overlap.pairs):
        if criterion == "identical_pixels":
            add("verified", a, b)
    if dedup is not None:
        rest = [p for image_id, p in zip(second.ids, second.paths, strict=True) if image_id not in found["verified"]]
        if rest:
            try:
                cross = dedup.find_cross(first.paths, rest)
            except DataError as err:
                raise HamkitError(f"the duplicate search of {first.name} against {second.name} failed: {err}") from err
            if cross is not None:
                for i, j in zip(cross.pairs.i.tolist(), cross.pairs.j.tolist(), strict=True):
                    add("verified", first.paths[i].stem, rest[j].stem)
    keys_first: dict[str, str] = {}
    for image_id, keys in first.keys.items():
        for key in keys:
            keys_first.setdefault(key, image_id)
    for image_id, keys in second.keys.items():
        for key in sorted(keys):
            if key in keys_first:
                add("same_lesion", keys_first[key], image_id)
                break
    for criterion, a, b in list(overlap.pairs):
        if criterion == "verified" and b not in found["same_lesion"]:
            add("same_lesion", a, b)
    overlap.images = {c: sorted(ids) for c, ids in found.items()}
    return overlap
