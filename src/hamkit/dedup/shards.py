"""Duplicate detection in shards: the ``"verified"`` method's stages, cut so that many processes
or machines share them, each resumable, and joined into the single-process result.

A run over ``N`` shards shares one folder (on a file system every shard can reach). Shard ``I``
(``0 <= I < N``) writes ``shard-I-of-N/`` in it, stage by stage, each stage's files written
before its completion marker (``*.done``), so a shard that dies is rerun alone and starts at its
first stage without a marker:

1. **signatures** (``signatures.done``): shard ``I`` decodes its contiguous block of the images
   (sorted as :func:`~hamkit.dedup.inputs.resolve_images` sorts them) into scenes on disk:
   thumbnails in a ``.npy`` file and the greyscale images and ORB keypoints in flat files with an
   offset table, read back per image later, so no stage holds every scene in memory.
2. **search** (``search.done``): once every shard's signatures are there, shard ``I`` indexes the
   window thumbnails of *all* images (every shard sees the same index as the single process) and
   queries with its share of the query chunks, exactly the chunks the single-process search
   queries with; it keeps each query image's best partners
   (:func:`~hamkit.dedup.candidates.query_partners`). A large index (faiss IVF) keeps its
   vectors in a memory-mapped file in the shard's folder while the stage runs (``.index-*``,
   removed after it), built and searched a chunk of images at a time, so the stage's own memory
   holds a chunk and the index's training sample, not the collection; the hits are the same as
   with the index in memory.
3. **verify** (``verify.done``): once every shard's partners are there, each shard forms the
   same candidate pairs as the single process (partners from both ends, plus identical pixels)
   and verifies its contiguous share of them, in batches of :data:`VERIFY_BATCH` pairs, loading
   only the scenes of one batch; each batch's scores are a file of their own, so a rerun also
   resumes within the stage.

:func:`merge_shards` joins the shards: the same candidates with the same scores, so the same
pairs, groups and kept/removed images as :meth:`hamkit.Deduplicator.find` in one process.
:func:`run_local` and :func:`run_on_ray` run all shards, one process after the other or as Ray
tasks on whatever cluster ``ray.init`` finds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hamkit.dedup.candidates import (
    THUMB,
    Candidates,
    hits_per_query,
    iter_window_hits,
    pairs_from_partners,
    query_partners,
)
from hamkit.dedup.scenes import VerifiedCandidates, with_identical
from hamkit.dedup.verify import SceneFeatures, verify_pairs
from hamkit.errors import DataError, HamkitError

__all__ = [
    "FORMAT",
    "SEARCH_CHUNK",
    "VERIFY_BATCH",
    "SceneStore",
    "ShardNotReady",
    "merge_shards",
    "parse_shard",
    "run_local",
    "run_on_ray",
    "run_shard",
    "shard_folder",
    "shard_range",
    "stage_search",
    "stage_signatures",
    "stage_verify",
]

FORMAT = 1
"""Version of the shard folder layout (recorded in each ``manifest.json``)."""

SEARCH_CHUNK = 2048
"""Query images per search chunk: the chunk of :func:`~hamkit.dedup.candidates.window_hits`,
so that each chunk is searched exactly as the single process searches it."""

VERIFY_BATCH = 4096
"""Candidate pairs verified per batch (and per resumable file)."""

SEARCH_HITS = 4
"""Hits kept per query window, in multiples of what the candidates need: the single process's
:data:`~hamkit.dedup.methods.verified.AUDIT_HITS`, so that ties fall the same way."""


class ShardNotReady(HamkitError):
    """A stage needs the output of shards that have not finished the stage before it yet."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` as ``(I, N)``, with ``0 <= I < N``.

    Examples:
        >>> parse_shard("1/4")
        (1, 4)
        >>> parse_shard("4/4")
        Traceback (most recent call last):
        ...
        hamkit.errors.HamkitError: a shard is I/N with 0 <= I < N (shards are numbered from 0), got '4/4'
    """
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        index, count = -1, 0
    if not 0 <= index < count:
        raise HamkitError(f"a shard is I/N with 0 <= I < N (shards are numbered from 0), got {text!r}")
    return index, count


def shard_range(n: int, index: int, count: int) -> tuple[int, int]:
    """The contiguous block ``[start, stop)`` of ``n`` items that shard ``index`` of ``count`` takes.

    Examples:
        >>> [shard_range(10, i, 3) for i in range(3)]
        [(0, 3), (3, 6), (6, 10)]
    """
    return n * index // count, n * (index + 1) // count


def shard_folder(root: str | os.PathLike[str], index: int, count: int) -> Path:
    """The folder of shard ``index`` of ``count`` inside the run's folder ``root``."""
    return Path(root) / f"shard-{index}-of-{count}"


def _paths_digest(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(os.fsencode(str(path)) + b"\0")
    return digest.hexdigest()


def _peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)


def _done(path: Path, started: float, **extra: Any) -> None:
    """Write a stage's completion marker: its wall time and the process's peak memory so far."""
    _write_json(path, {"seconds": round(time.perf_counter() - started, 3), "peak_rss_mib": _peak_rss_mib(), **extra})


def _write_json(path: Path, value: Any) -> None:
    from hamkit._io import atomic_write_text

    atomic_write_text(path, json.dumps(value, indent=1) + "\n")


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    from hamkit._io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- scene store


class _Flat:
    """Rows of varying length appended to one flat file; ``(start, count)`` per item."""

    def __init__(self, path: Path, width: int, dtype: Any) -> None:
        self.path, self.width, self.dtype = path, width, np.dtype(dtype)
        self.handle = open(path, "wb")  # noqa: SIM115 - closed in close()
        self.rows = 0

    def add(self, values: np.ndarray) -> tuple[int, int]:
        values = np.ascontiguousarray(values, dtype=self.dtype).reshape(-1, self.width)
        self.handle.write(values.tobytes())
        start, self.rows = self.rows, self.rows + len(values)
        return start, len(values)

    def close(self) -> None:
        self.handle.close()


class _Reader:
    """Rows of a flat file read on demand (``os.pread``: no pages of the file stay mapped into
    this process, so reading every scene once does not grow its memory)."""

    def __init__(self, path: Path, width: int, dtype: Any) -> None:
        self.path, self.width, self.dtype = path, width, np.dtype(dtype)
        self.row_bytes = width * self.dtype.itemsize

    def rows(self, start: int, count: int) -> np.ndarray:
        if count == 0:
            return np.zeros((0, self.width), dtype=self.dtype)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            data = os.pread(fd, count * self.row_bytes, start * self.row_bytes)
        finally:
            os.close(fd)
        return np.frombuffer(data, dtype=self.dtype).reshape(count, self.width).copy()


_FLATS = {  # name: (width, dtype)
    "gray": (1, np.uint8),
    "points": (2, np.float32),
    "descriptors": (32, np.uint8),
    "mirror_points": (2, np.float32),
    "mirror_descriptors": (32, np.uint8),
}


class SceneStore:
    """The scenes of one shard, on disk: thumbnails memory-mapped, the rest read per image.

    Attributes:
        folder: The shard's folder.
        paths: The shard's images.
        start: Index of its first image among all images.
        thumbs: ``(n, THUMB, THUMB)`` uint8 thumbnails (memory-mapped; zeros for unreadable images).
        digests: Per image, :attr:`~hamkit.dedup.scenes.Scene.digest` (``""`` when unreadable).
        skipped: ``{index among all images: reason}`` of the unreadable ones.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        manifest = json.loads((folder / "manifest.json").read_text())
        self.start = int(manifest["start"])
        self.paths = [Path(line) for line in (folder / "paths.txt").read_text().splitlines()]
        self.thumbs = np.load(folder / "thumbs.npy", mmap_mode="r")
        self.digests = (folder / "digests.txt").read_text().split("\n")[: len(self.paths)]
        self.skipped = {int(k): v for k, v in json.loads((folder / "skipped.json").read_text()).items()}
        self._offsets = np.load(folder / "offsets.npy")  # (n, 2 * len(_FLATS) + 2): starts, counts, height, width
        self._flats = {name: _Reader(folder / f"{name}.bin", *spec) for name, spec in _FLATS.items()}

    def thumb_rows(self, local: np.ndarray) -> np.ndarray:
        """The thumbnails of the shard's images ``local`` (ascending), read from the file rather
        than through the memory map, so that no page of the file stays in this process's memory."""
        local = np.asarray(local, dtype=np.int64)
        if not len(local):
            return np.zeros((0, THUMB, THUMB), dtype=np.uint8)
        first, last = int(local[0]), int(local[-1])
        size = THUMB * THUMB
        fd = os.open(self.folder / "thumbs.npy", os.O_RDONLY)
        try:
            data = os.pread(fd, (last - first + 1) * size, int(self.thumbs.offset) + first * size)
        finally:
            os.close(fd)
        return np.frombuffer(data, dtype=np.uint8).reshape(-1, THUMB, THUMB)[local - first].copy()

    def _rows(self, name: str, local: int) -> np.ndarray:
        column = list(_FLATS).index(name)
        start, count = self._offsets[local, 2 * column], self._offsets[local, 2 * column + 1]
        return self._flats[name].rows(int(start), int(count))

    def gray(self, local: int) -> np.ndarray:
        """The greyscale image of the shard's image ``local``."""
        height, width = self._offsets[local, -2], self._offsets[local, -1]
        return self._rows("gray", local).reshape(int(height), int(width))

    def features(self, local: int, mirror: bool = False) -> SceneFeatures:
        """The ORB keypoints of the shard's image ``local`` (of its mirror image with ``mirror``)."""
        prefix = "mirror_" if mirror else ""
        return SceneFeatures(self._rows(prefix + "points", local), self._rows(prefix + "descriptors", local))


def _write_store(
    stage: Path, paths: Sequence[Path], start: int, workers: int, progress: bool, batch_size: int = 32
) -> None:
    """Decode ``paths`` into a scene store in ``stage`` (streamed: one decoded batch in memory)."""
    from hamkit.dedup.inputs import DecodeJob, decode_all

    n = len(paths)
    thumbs = np.lib.format.open_memmap(stage / "thumbs.npy", mode="w+", dtype=np.uint8, shape=(n, THUMB, THUMB))
    offsets = np.zeros((n, 2 * len(_FLATS) + 2), dtype=np.int64)
    digests = [""] * n
    skipped: dict[str, str] = {}
    flats = {name: _Flat(stage / f"{name}.bin", *spec) for name, spec in _FLATS.items()}
    try:
        if n:
            for indices, values, bad in decode_all(
                DecodeJob(list(paths), "scene"),
                batch_size=batch_size,
                num_workers=workers,
                progress=progress,
                desc="decode",
            ):
                skipped.update({str(start + i): reason for i, reason in bad.items()})
                for index, scene in zip(indices, values, strict=True):
                    thumbs[index] = scene.thumb
                    digests[index] = scene.digest
                    parts = (
                        scene.gray.reshape(-1, 1),
                        scene.features.points,
                        scene.features.descriptors,
                        scene.mirror_features.points,
                        scene.mirror_features.descriptors,
                    )
                    for column, (flat, values_) in enumerate(zip(flats.values(), parts, strict=True)):
                        offsets[index, 2 * column : 2 * column + 2] = flat.add(values_)
                    offsets[index, -2:] = scene.gray.shape
    finally:
        for flat in flats.values():
            flat.close()
    thumbs.flush()
    del thumbs
    np.save(stage / "offsets.npy", offsets)
    (stage / "digests.txt").write_text("\n".join(digests) + "\n")
    (stage / "skipped.json").write_text(json.dumps(skipped, indent=1) + "\n")
    (stage / "paths.txt").write_text("".join(f"{p}\n" for p in paths))


# ---------------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class _Run:
    """What every shard of one run must agree on."""

    images: int
    paths_sha256: str
    candidates: int
    min_inliers: int

    def check(self, other: dict[str, Any], folder: Path) -> None:
        for key, value in self.__dict__.items():
            if other.get(key) != value:
                raise HamkitError(
                    f"{folder}: this shard was run with {key} = {other.get(key)!r}, this run has {value!r}; "
                    "run every shard with the same images and settings, or give each run its own --out folder"
                )


def _run_of(paths: Sequence[Path], candidates: int, min_inliers: int) -> _Run:
    return _Run(len(paths), _paths_digest(paths), candidates, min_inliers)


def _manifest(folder: Path) -> dict[str, Any] | None:
    try:
        manifest: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
        return manifest
    except (OSError, ValueError):
        return None


def stage_signatures(
    paths: Sequence[Path],
    root: str | os.PathLike[str],
    index: int,
    count: int,
    *,
    candidates: int = 10,
    min_inliers: int = 15,
    workers: int = 0,
    progress: bool = False,
    batch_size: int = 32,
) -> Path:
    """Stage 1: decode shard ``index``'s block of ``paths`` into its scene store (skipped when done).

    Returns:
        The shard's folder.
    """
    started = time.perf_counter()
    run = _run_of(paths, candidates, min_inliers)
    folder = shard_folder(root, index, count)
    if (folder / "signatures.done").exists():
        manifest = _manifest(folder)
        run.check(manifest or {}, folder)
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    start, stop = shard_range(len(paths), index, count)
    for left in folder.glob(".signatures-*"):  # what a killed run of this shard had begun
        shutil.rmtree(left, ignore_errors=True)
    stage = folder / f".signatures-{os.getpid()}"
    stage.mkdir()
    try:
        _write_store(stage, paths[start:stop], start, workers, progress, batch_size)
        manifest = {"format": FORMAT, "shard": index, "of": count, "start": start, "stop": stop, **run.__dict__}
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        for item in stage.iterdir():
            os.replace(item, folder / item.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    _done(folder / "signatures.done", started, images=stop - start)
    return folder


def _stores(root: Path, count: int, run: _Run, stage: str) -> list[SceneStore]:
    """Every shard's scene store, once every shard has finished ``stage``."""
    missing = [i for i in range(count) if not (shard_folder(root, i, count) / f"{stage}.done").exists()]
    if missing:
        raise ShardNotReady(
            f"{root}: shard(s) {', '.join(f'{i}/{count}' for i in missing)} have not finished their {stage} yet: "
            f"run them (hamkit dedup IMAGES --shard I/{count} --out {root})"
        )
    stores = []
    for i in range(count):
        folder = shard_folder(root, i, count)
        run.check(_manifest(folder) or {}, folder)
        stores.append(SceneStore(folder))
    return stores


class _Valid:
    """The readable images of all shards, in order: their thumbnails sliced lazily, and where
    each one's scene is."""

    def __init__(self, stores: Sequence[SceneStore]) -> None:
        self.stores = list(stores)
        owner, local = [], []
        for number, store in enumerate(stores):
            ok = np.array([i for i in range(len(store.paths)) if store.start + i not in store.skipped], dtype=np.int64)
            owner.append(np.full(len(ok), number, dtype=np.int64))
            local.append(ok)
        self.owner = np.concatenate(owner) if owner else np.zeros(0, np.int64)
        self.local = np.concatenate(local) if local else np.zeros(0, np.int64)
        starts = np.array([store.start for store in stores], dtype=np.int64)
        self.index = starts[self.owner] + self.local  # index among all images

    def __len__(self) -> int:
        return len(self.owner)

    def __getitem__(self, where: slice) -> np.ndarray:
        rows = range(len(self))[where]
        out = np.empty((len(rows), THUMB, THUMB), dtype=np.uint8)
        if not len(rows):
            return out
        owner, local = self.owner[rows.start : rows.stop], self.local[rows.start : rows.stop]
        for number in np.unique(owner).tolist():
            mine = owner == number
            out[mine] = self.stores[number].thumb_rows(local[mine])
        return out

    def digests(self) -> np.ndarray:
        return np.array([self.stores[o].digests[x] for o, x in zip(self.owner, self.local, strict=True)], dtype=object)


def _search_chunks(valid: int, index: int, count: int) -> list[int]:
    chunks = -(-valid // SEARCH_CHUNK)
    return list(range(*shard_range(chunks, index, count)))


def stage_search(
    paths: Sequence[Path],
    root: str | os.PathLike[str],
    index: int,
    count: int,
    *,
    candidates: int = 10,
    min_inliers: int = 15,
) -> Path:
    """Stage 2: shard ``index``'s share of the window search over all shards' thumbnails.

    Raises:
        ShardNotReady: Some shard has no signatures yet.
    """
    started = time.perf_counter()
    run, root = _run_of(paths, candidates, min_inliers), Path(root)
    folder = shard_folder(root, index, count)
    if (folder / "search.done").exists():
        return folder
    valid = _Valid(_stores(root, count, run, "signatures"))
    chunks = _search_chunks(len(valid), index, count)
    empty = (np.zeros(0, np.int64),) * 2 + (np.zeros(0, np.float32), np.zeros(0, bool), np.zeros(0, np.float32))
    partners: tuple[np.ndarray, ...] = empty
    if len(valid) >= 2 and chunks:
        for left in folder.glob(".index-*"):  # what a killed run of this shard had begun
            shutil.rmtree(left, ignore_errors=True)
        scratch = folder / f".index-{os.getpid()}"
        scratch.mkdir()
        try:
            parts = [
                query_partners(hits, k=candidates, first_row=first)
                for first, hits in iter_window_hits(
                    valid,
                    per_query=SEARCH_HITS * hits_per_query(candidates),
                    chunk=SEARCH_CHUNK,
                    query_chunks=chunks,
                    folder=scratch,
                )
            ]  # one chunk's hits at a time: each query image's partners depend on its own hits only
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        partners = tuple(np.concatenate([part[c] for part in parts]) for c in range(5))
    names = ("query", "partner", "similarity", "mirrored", "other")
    _save_npz(folder / "partners.npz", **dict(zip(names, partners, strict=True)))
    _done(folder / "search.done", started, chunks=chunks)
    return folder


def _candidates(root: Path, count: int, valid: _Valid) -> Candidates:
    """The candidate pairs of the whole run (indices among the readable images), sorted by ``(i, j)``."""
    parts = []
    for i in range(count):
        with np.load(shard_folder(root, i, count) / "partners.npz") as data:
            parts.append([data[name] for name in ("query", "partner", "similarity", "mirrored", "other")])
    joined = [np.concatenate([part[c] for part in parts]) for c in range(5)]
    if len(valid) < 2:
        empty = np.zeros(0, dtype=np.int64)
        return Candidates(empty, empty, np.zeros(0, np.float32), np.zeros(0, bool))
    found = pairs_from_partners(*joined)
    found = with_identical(found, valid.digests())
    order = np.lexsort((found.j, found.i))
    ambiguous = found.ambiguous if found.ambiguous is not None else np.zeros(len(found), bool)
    return Candidates(found.i[order], found.j[order], found.similarity[order], found.mirrored[order], ambiguous[order])


def stage_verify(
    paths: Sequence[Path],
    root: str | os.PathLike[str],
    index: int,
    count: int,
    *,
    candidates: int = 10,
    min_inliers: int = 15,
    workers: int = 1,
    progress: bool = False,
    after_batch: Callable[[int], None] | None = None,
) -> Path:
    """Stage 3: verify shard ``index``'s share of the candidate pairs, batch by batch.

    Args:
        after_batch: Called with each batch number once its scores are written.

    Raises:
        ShardNotReady: Some shard has not finished its search yet.
    """
    started = time.perf_counter()
    run, root = _run_of(paths, candidates, min_inliers), Path(root)
    folder = shard_folder(root, index, count)
    if (folder / "verify.done").exists():
        return folder
    valid = _Valid(_stores(root, count, run, "signatures"))
    _stores(root, count, run, "search")
    found = _candidates(root, count, valid)
    start, stop = shard_range(len(found), index, count)
    digests = valid.digests()
    batches = range(start, stop, VERIFY_BATCH)
    from tqdm.auto import tqdm

    for number, first in enumerate(tqdm(batches, desc="verify", unit="batch", disable=not progress, leave=False)):
        target = folder / f"verify-{number:06d}.npz"
        if target.exists():
            continue
        rows = np.arange(first, min(first + VERIFY_BATCH, stop))
        i, j = found.i[rows], found.j[rows]
        score = np.ones(len(rows), np.float32)
        inliers = np.full(len(rows), -1, np.int32)
        todo = np.flatnonzero(digests[i] != digests[j])
        if len(todo):
            needed, local = np.unique(np.concatenate([i[todo], j[todo]]), return_inverse=True)
            stores = [valid.stores[o] for o in valid.owner[needed]]
            locals_ = valid.local[needed].tolist()
            grays = [s.gray(x) for s, x in zip(stores, locals_, strict=True)]
            features = [s.features(x) for s, x in zip(stores, locals_, strict=True)]
            mirror = [s.features(x, mirror=True) for s, x in zip(stores, locals_, strict=True)]
            ambiguous = found.ambiguous if found.ambiguous is not None else np.zeros(len(found), bool)
            score[todo], inliers[todo] = verify_pairs(
                grays,
                features,
                mirror,
                local[: len(todo)],
                local[len(todo) :],
                found.mirrored[rows][todo],
                min_inliers=min_inliers,
                workers=workers,
                both=ambiguous[rows][todo],
            )
        _save_npz(target, score=score, inliers=inliers)
        if after_batch is not None:
            after_batch(number)
    _done(folder / "verify.done", started, pairs=int(stop - start))
    return folder


def run_shard(
    paths: Sequence[Path],
    root: str | os.PathLike[str],
    index: int,
    count: int,
    *,
    candidates: int = 10,
    min_inliers: int = 15,
    workers: int = 0,
    threads: int = 1,
    progress: bool = False,
    wait: float | None = None,
    poll: float = 5.0,
    batch_size: int = 32,
) -> Path:
    """All three stages of shard ``index``, waiting for the other shards between them.

    Args:
        wait: Seconds to wait for the other shards at each stage (``None``: as long as it takes;
            0: not at all, raise :class:`ShardNotReady`).
        poll: Seconds between two looks at the other shards' markers.

    Returns:
        The shard's folder.
    """
    stage_signatures(
        paths,
        root,
        index,
        count,
        candidates=candidates,
        min_inliers=min_inliers,
        workers=workers,
        progress=progress,
        batch_size=batch_size,
    )
    for step in (stage_search, stage_verify):
        waited = 0.0
        while True:
            try:
                if step is stage_verify:
                    stage_verify(
                        paths,
                        root,
                        index,
                        count,
                        candidates=candidates,
                        min_inliers=min_inliers,
                        workers=threads,
                        progress=progress,
                    )
                else:
                    stage_search(paths, root, index, count, candidates=candidates, min_inliers=min_inliers)
                break
            except ShardNotReady as err:
                if wait is not None and waited >= wait:
                    raise
                if progress and waited == 0:
                    print(f"waiting: {err}", flush=True)
                time.sleep(poll)
                waited += poll
    return shard_folder(root, index, count)


def merge_shards(
    folders: Sequence[str | os.PathLike[str]],
) -> tuple[dict[str, Any], list[Path], dict[int, str], VerifiedCandidates]:
    """Join the shards of one run.

    Args:
        folders: The run's folder, or shard folders (``shard-I-of-N``), or folders holding them.

    Returns:
        ``(manifest of shard 0, paths, skipped, candidates)``: every candidate with its
        verification, indices among all images (the single process's ``result.candidates``).

    Raises:
        DataError: No shard folder, shards of different runs, a shard missing or unfinished.
    """
    found: dict[int, Path] = {}
    counts = set()
    for given in folders:
        given = Path(given)
        inside = [given] if (given / "manifest.json").exists() else sorted(given.glob("shard-*-of-*"))
        for folder in inside:
            manifest = _manifest(folder)
            if manifest is None:
                continue
            found[int(manifest["shard"])] = folder
            counts.add(int(manifest["of"]))
    if not found:
        raise DataError(
            f"{', '.join(map(str, folders))}: no shard folders (shard-I-of-N) there: give the shards' --out folder"
        )
    if len(counts) != 1:
        raise DataError(
            f"{', '.join(map(str, folders))}: shards of runs with different N ({sorted(counts)}); merge one run"
        )
    count = counts.pop()
    missing = [i for i in range(count) if i not in found or not (found[i] / "verify.done").exists()]
    if missing:
        raise DataError(
            f"shard(s) {', '.join(f'{i}/{count}' for i in missing)} of {count} are missing or unfinished (no "
            "verify.done): rerun them with the same --shard, then merge"
        )
    first = _manifest(found[0]) or {}
    run = _Run(int(first["images"]), str(first["paths_sha256"]), int(first["candidates"]), int(first["min_inliers"]))
    stores = []
    for i in range(count):
        run.check(_manifest(found[i]) or {}, found[i])
        stores.append(SceneStore(found[i]))
    valid = _Valid(stores)
    # the shards' folders may sit in different places: read each one's partners there
    root = found[0].parent
    if any(found[i] != shard_folder(root, i, count) for i in range(count)):
        raise DataError(
            f"the shards of one run must share a folder; found {', '.join(str(found[i]) for i in range(count))}"
        )
    candidates = _candidates(root, count, valid)
    scores, inliers = [], []
    for i in range(count):
        for batch in sorted(found[i].glob("verify-*.npz")):
            with np.load(batch) as data:
                scores.append(data["score"])
                inliers.append(data["inliers"])
    score = np.concatenate(scores) if scores else np.zeros(0, np.float32)
    inlier = np.concatenate(inliers) if inliers else np.zeros(0, np.int32)
    if len(score) != len(candidates):
        raise DataError(f"{root}: the shards verified {len(score)} pairs of {len(candidates)}: rerun the shards")
    paths = [p for store in stores for p in store.paths]
    skipped = {k: v for store in stores for k, v in store.skipped.items()}
    result = VerifiedCandidates(
        valid.index[candidates.i], valid.index[candidates.j], score, inlier, candidates.similarity
    )
    return first, paths, skipped, result


def run_local(
    paths: Sequence[Path],
    root: str | os.PathLike[str],
    count: int = 1,
    *,
    candidates: int = 10,
    min_inliers: int = 15,
    workers: int = 0,
    threads: int = 1,
    progress: bool = False,
    batch_size: int = 32,
) -> tuple[dict[str, Any], list[Path], dict[int, str], VerifiedCandidates]:
    """Every shard in this process, stage by stage, then :func:`merge_shards`: with one shard, the
    single-process run with its scenes on disk (memory bounded by a batch, not the collection).

    Args:
        paths: The images.
        root: The run's folder.
        count: Shards.
        candidates: See :class:`~hamkit.dedup.methods.VerifiedMethod`.
        min_inliers: See :class:`~hamkit.dedup.methods.VerifiedMethod`.
        workers: Decoding processes.
        threads: Verification threads.
        progress: Show progress bars.
        batch_size: Images per decoding batch (the scenes do not depend on it).
    """
    k, m = candidates, min_inliers
    for index in range(count):
        stage_signatures(
            paths,
            root,
            index,
            count,
            candidates=k,
            min_inliers=m,
            workers=workers,
            progress=progress,
            batch_size=batch_size,
        )
    for index in range(count):
        stage_search(paths, root, index, count, candidates=k, min_inliers=m)
    for index in range(count):
        stage_verify(paths, root, index, count, candidates=k, min_inliers=m, workers=threads, progress=progress)
    return merge_shards([root])


def run_on_ray(
    paths: Sequence[Path], root: str | os.PathLike[str], count: int | None = None, **settings: Any
) -> tuple[dict[str, Any], list[Path], dict[int, str], VerifiedCandidates]:
    """The three stages as Ray tasks (one per shard and stage) on whatever cluster ``ray.init``
    finds (a local one when there is none), then :func:`merge_shards` here.

    Args:
        paths: The images.
        root: The run's folder: on a cluster, a folder every node can reach.
        count: Shards (default: the cluster's CPUs).

    Raises:
        HamkitError: Ray is not installed.
    """
    try:
        import ray
    except ImportError as err:
        raise HamkitError("backend 'ray' needs Ray: pip install 'hamkit[ray]'") from err
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    if count is None:
        count = max(1, int(ray.cluster_resources().get("CPU", 1)))
    keys = ("candidates", "min_inliers")
    shared = {k: v for k, v in settings.items() if k in keys}
    decoding = {k: v for k, v in settings.items() if k == "batch_size"}
    paths_ref = ray.put(list(paths))

    @ray.remote(num_cpus=1)
    def signatures(paths: list[Path], index: int) -> str:
        return str(stage_signatures(paths, root, index, count, **shared, **decoding))

    @ray.remote(num_cpus=1)
    def search(paths: list[Path], index: int) -> str:
        import cv2

        cv2.setNumThreads(1)
        return str(stage_search(paths, root, index, count, **shared))

    @ray.remote(num_cpus=1)
    def verify(paths: list[Path], index: int) -> str:
        import cv2

        cv2.setNumThreads(1)
        return str(stage_verify(paths, root, index, count, **shared))

    for task in (signatures, search, verify):
        ray.get([task.remote(paths_ref, index) for index in range(count)])
    return merge_shards([root])
