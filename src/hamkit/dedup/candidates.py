"""Candidate duplicate pairs for the ``"verified"`` method: k nearest neighbours of window thumbnails.

Every image is shrunk to a square greyscale thumbnail (:data:`THUMB`) and described by small,
mean-and-contrast-normalised windows (8 x 8 values each, so brightness and contrast changes do
not matter):

* the **index** holds, per image, 18 windows: 9 of 84 % of the side on a 3 x 3 grid of shifts
  (+-8 %), and 9 of 70 % on a grid of +-6 %; a shifted or cropped copy's centre lines up with
  one of them;
* each image **queries** with its central 84 % window in the 8 orientations of the square
  (4 quarter turns, each mirrored or not), so flips and 90-degree turns of a copy are found.

The search is a k-nearest-neighbour search in faiss (exact below :data:`IVF_MIN_WINDOWS` index
rows, an IVF index above), never an N x N matrix. It is tuned for recall: it proposes about k
partners per image and leaves precision to :mod:`hamkit.dedup.verify`. The comparison of the
descriptors tried on the real HAM10000 images is in ``docs/benchmarks_dedup.md``.

:func:`candidate_pairs` is the search (:func:`window_hits`) followed by the choice of partners
(:func:`candidates_from_hits`). Kept with more hits per query than one set needs, the hits of one
search over all images also give the candidates within any subset of them (``members``), as a
search over that subset alone would: the audit of a split proposes the candidates between two
splits that way, with no second search.

Examples:
    >>> rng = np.random.default_rng(0)
    >>> thumbs = rng.random((30, THUMB, THUMB)).astype(np.float32)
    >>> thumbs[7] = np.rot90(thumbs[3])  # a quarter turn of image 3
    >>> pairs = candidate_pairs(thumbs, k=2)
    >>> bool(((pairs.i == 3) & (pairs.j == 7)).any())
    True
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ADD_BLOCK",
    "IVF_MIN_WINDOWS",
    "PARITY_MARGIN",
    "THUMB",
    "Candidates",
    "WindowHits",
    "candidate_pairs",
    "candidates_from_hits",
    "hits_per_query",
    "index_windows",
    "iter_window_hits",
    "pairs_from_partners",
    "query_partners",
    "query_windows",
    "window_hits",
]

THUMB = 64
"""Side of the square greyscale thumbnail the windows are cut from."""

CELLS = 8
"""Each window is averaged down to CELLS x CELLS values."""

_INDEX_WINDOWS: tuple[tuple[float, float, float], ...] = tuple(
    [(0.84, dx, dy) for dx in (-0.08, 0.0, 0.08) for dy in (-0.08, 0.0, 0.08)]
    + [(0.70, dx, dy) for dx in (-0.06, 0.0, 0.06) for dy in (-0.06, 0.0, 0.06)]
)
_QUERY_WINDOW = (0.84, 0.0, 0.0)

PARITY_MARGIN = 0.02
"""Window similarity by which the other mirror parity may trail and still be verified."""

IVF_MIN_WINDOWS = 60_000
"""Index rows from which the search uses a faiss IVF index instead of an exact flat one."""


@dataclass(frozen=True)
class Candidates:
    """Candidate pairs, each once with ``i < j``.

    Attributes:
        i: First image indices (int64).
        j: Second image indices (int64).
        similarity: Cosine similarity of the best-matching windows (float32).
        mirrored: True where the best match needed a mirror image (an odd number of flips);
            the verifier then mirrors one image before it matches keypoints.
        ambiguous: True where the other mirror parity matched almost as well
            (:data:`PARITY_MARGIN`): a near-symmetric lesion, whose orientation the thumbnails
            cannot tell, so the verifier tries both.
    """

    i: np.ndarray
    j: np.ndarray
    similarity: np.ndarray
    mirrored: np.ndarray
    ambiguous: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.ambiguous is None:
            object.__setattr__(self, "ambiguous", np.zeros(len(self.i), dtype=bool))

    def __len__(self) -> int:
        return len(self.i)


def _windows(thumbs: np.ndarray, windows: tuple[tuple[float, float, float], ...]) -> np.ndarray:
    """``(N, len(windows), CELLS*CELLS)`` normalised window descriptors of ``(N, S, S)`` thumbnails."""
    n, side = thumbs.shape[0], thumbs.shape[1]
    out = np.empty((n, len(windows), CELLS * CELLS), dtype=np.float32)
    for w, (frac, dx, dy) in enumerate(windows):
        size = round(side * frac)
        x0 = round((side - size) / 2 + dx * side)
        y0 = round((side - size) / 2 + dy * side)
        crop = thumbs[:, y0 : y0 + size, x0 : x0 + size]
        # average pooling onto a CELLS x CELLS grid (cell edges at rounded positions)
        edges = np.linspace(0, size, CELLS + 1).round().astype(int)
        rows = np.add.reduceat(crop, edges[:-1], axis=1) / np.diff(edges)[None, :, None]
        cells = np.add.reduceat(rows, edges[:-1], axis=2) / np.diff(edges)[None, None, :]
        out[:, w] = cells.reshape(n, -1)
    out -= out.mean(axis=2, keepdims=True)
    out /= np.linalg.norm(out, axis=2, keepdims=True) + 1e-6
    return out


def index_windows(thumbs: np.ndarray) -> np.ndarray:
    """The 18 indexed windows of each thumbnail.

    Args:
        thumbs: ``(N, THUMB, THUMB)`` greyscale thumbnails (any float or integer type).

    Returns:
        ``(N, 18, 64)`` float32, each row zero-mean with unit norm.
    """
    return _windows(np.asarray(thumbs, dtype=np.float32), _INDEX_WINDOWS)


def query_windows(thumbs: np.ndarray) -> np.ndarray:
    """The central window of each thumbnail in the 8 orientations of the square.

    Args:
        thumbs: ``(N, THUMB, THUMB)`` greyscale thumbnails.

    Returns:
        ``(N, 8, 64)`` float32; orientation ``o`` is ``o // 2`` quarter turns, mirrored when
        ``o`` is odd.
    """
    thumbs = np.asarray(thumbs, dtype=np.float32)
    views = []
    for turns in range(4):
        turned = np.rot90(thumbs, turns, axes=(1, 2))
        views += [turned, turned[:, :, ::-1]]
    return np.stack([_windows(np.ascontiguousarray(v), (_QUERY_WINDOW,))[:, 0] for v in views], axis=1)


def _index(base: np.ndarray, nprobe: int):
    """A faiss inner-product index over ``base``: flat (exact) when small, IVF when large."""
    import faiss

    dim = base.shape[1]
    index: Any
    if len(base) < IVF_MIN_WINDOWS:
        index = faiss.IndexFlatIP(dim)
    else:
        nlist, picked = _ivf_layout(len(base))
        index = _untrained_ivf(dim, nlist, nprobe)
        index.train(base[picked])
    index.add(base)
    return index


def _ivf_layout(rows: int) -> tuple[int, np.ndarray]:
    """The IVF cells of an index over ``rows`` windows and the rows its quantizer trains on
    (sixty-four per cell, drawn the same way every time)."""
    nlist = int(2 ** round(np.log2(4 * np.sqrt(rows))))
    return nlist, np.random.default_rng(0).choice(rows, min(rows, nlist * 64), replace=False)


def _untrained_ivf(dim: int, nlist: int, nprobe: int) -> Any:
    """An inner-product IVF index of ``nlist`` cells, its clustering fixed, not yet trained."""
    import faiss

    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = 0
    index.nprobe = nprobe
    return index


def _top_k(
    query_image: np.ndarray, owner: np.ndarray, sims: np.ndarray, mirrored: np.ndarray, k: int
) -> tuple[np.ndarray, ...]:
    """Per query image, its ``k`` best other images (best window match of each), with the best
    similarity of the other mirror parity (-2 when that parity did not match at all)."""
    # best match per (query, other, parity), sorted by them (one integer key sorts fastest)
    if len(query_image) == 0:
        return query_image, owner, sims, mirrored, sims.copy()
    n = int(max(query_image.max(), owner.max())) + 1
    key = (query_image.astype(np.int64) * n + owner) * 2 + mirrored
    order = np.argsort(key, kind="stable")
    key, sims = key[order], sims[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    sims = np.maximum.reduceat(sims, starts)
    key = key[starts]
    mirrored, query_image, owner = key % 2 == 1, key // 2 // n, key // 2 % n
    # the two parities of one (query, other) are now adjacent: pair each with its neighbour's
    same_next = np.zeros(len(owner), dtype=bool)
    same_next[:-1] = (query_image[1:] == query_image[:-1]) & (owner[1:] == owner[:-1])
    same_prev = np.r_[False, same_next[:-1]]
    other = np.full(len(sims), -2.0, dtype=np.float32)
    other[same_next] = sims[np.flatnonzero(same_next) + 1]
    other[same_prev] = sims[np.flatnonzero(same_prev) - 1]
    best = ~(same_next & (other > sims)) & ~(same_prev & (other >= sims))
    query_image, owner, sims, mirrored, other = (a[best] for a in (query_image, owner, sims, mirrored, other))
    order = np.lexsort((-sims, query_image))
    query_image, owner, sims, mirrored, other = (a[order] for a in (query_image, owner, sims, mirrored, other))
    starts = np.flatnonzero(np.r_[True, query_image[1:] != query_image[:-1]])
    counts = np.diff(np.r_[starts, len(query_image)])
    rank = np.arange(len(query_image)) - np.repeat(starts, counts)
    keep = rank < k
    return query_image[keep], owner[keep], sims[keep], mirrored[keep], other[keep]


def hits_per_query(k: int) -> int:
    """Indexed windows a query window needs among its hits for ``k`` candidates per image: ``3 (k + 1)``."""
    return 3 * (k + 1)


@dataclass(frozen=True)
class WindowHits:
    """The nearest indexed windows of every image's query windows, from one search.

    Attributes:
        owner: ``(N, 8, P)`` int32: per image, query orientation and hit (best first), the image
            the indexed window belongs to (-1: no hit).
        similarity: ``(N, 8, P)`` float32 cosine similarities of the hits.
    """

    owner: np.ndarray
    similarity: np.ndarray

    def __len__(self) -> int:
        return len(self.owner)

    @property
    def per_query(self) -> int:
        """Hits kept per query window (``P``)."""
        return int(self.owner.shape[2])


def window_hits(
    thumbs: Any, *, per_query: int, nprobe: int = 24, chunk: int = 2048, query_chunks: Sequence[int] | None = None
) -> WindowHits:
    """Search the indexed windows of all thumbnails with the query windows of each.

    Args:
        thumbs: ``(N, THUMB, THUMB)`` greyscale thumbnails (``N >= 2``).
        per_query: Hits kept per query window (at most the number of indexed windows);
            :func:`hits_per_query` of ``k`` for the candidates of the whole set, more to choose
            the candidates of subsets from them too.
        nprobe: Cells the IVF index visits per query (large collections only).
        chunk: Images whose windows are built and searched at a time (bounds the memory).
        query_chunks: Only the query windows of these chunks (``0`` is images ``0 .. chunk - 1``,
            and so on), each searched exactly as in a search of all of them: a shard of the
            search (:mod:`hamkit.dedup.shards`). ``None``: every image queries.

    Returns:
        The :class:`WindowHits` (of the images of ``query_chunks``, in order, when given).
    """
    parts = list(iter_window_hits(thumbs, per_query=per_query, nprobe=nprobe, chunk=chunk, query_chunks=query_chunks))
    if not parts:
        empty = np.zeros((0, 8, max(1, min(len(thumbs) * len(_INDEX_WINDOWS), per_query))), dtype=np.int32)
        return WindowHits(empty, empty.astype(np.float32))
    return WindowHits(np.concatenate([p.owner for _, p in parts]), np.concatenate([p.similarity for _, p in parts]))


def iter_window_hits(
    thumbs: Any,
    *,
    per_query: int,
    nprobe: int = 24,
    chunk: int = 2048,
    query_chunks: Sequence[int] | None = None,
    folder: str | os.PathLike[str] | None = None,
) -> Iterator[tuple[int, WindowHits]]:
    """:func:`window_hits` one query chunk at a time: ``(first image, its chunk's hits)``, so
    that only one chunk's hits are in memory (the index is built once, before the first).

    Args:
        folder: An empty folder for the index (``None``: in memory). With a folder, an IVF index
            (:data:`IVF_MIN_WINDOWS` rows and more) keeps its vectors in a memory-mapped file
            there (faiss ``OnDiskInvertedLists``), and the windows are built a chunk at a time,
            so that the process's own (anonymous) memory holds the training sample (sixty-four
            windows per IVF cell: it grows with the square root of the collection) and one
            block of :data:`ADD_BLOCK` images, not the collection. The hits are the same as in
            memory. The caller removes the folder.
    """
    n = len(thumbs)
    windows_per_image = len(_INDEX_WINDOWS)
    rows_total = n * windows_per_image
    per_query = max(1, min(rows_total, per_query))
    index: Any
    if folder is not None and rows_total >= IVF_MIN_WINDOWS:
        index = _index_on_disk(thumbs, nprobe, chunk, Path(folder))
    else:
        base = np.empty((rows_total, CELLS * CELLS), dtype=np.float32)
        for first, rows in _chunk_windows(thumbs, chunk):
            base[first : first + len(rows)] = rows
        index = _index(base, nprobe)
        del base  # the index holds its own copy
    starts = range(0, n, chunk) if query_chunks is None else [c * chunk for c in query_chunks]
    for start in starts:
        queries = query_windows(thumbs[start : start + chunk])
        count, orientations = queries.shape[0], queries.shape[1]
        sims, hits = index.search(np.ascontiguousarray(queries.reshape(-1, CELLS * CELLS)), per_query)
        owner = np.where(hits >= 0, hits // windows_per_image, -1).astype(np.int32)
        yield (
            start,
            WindowHits(
                owner.reshape(count, orientations, per_query),
                sims.astype(np.float32).reshape(count, orientations, per_query),
            ),
        )


ADD_BLOCK = 8192
"""Images whose windows an on-disk index adds at a time (:func:`iter_window_hits` with a
folder): ``8192 * 18 = 147,456`` rows, a multiple of the 4,096 queries that faiss's coarse
assignment computes together and above the size from which it uses BLAS, so that every vector
goes to the same IVF cell as when all are added at once."""


def _chunk_windows(thumbs: Any, chunk: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(first row, rows)`` of the index windows, built ``chunk`` images at a time (as in memory)."""
    for s in range(0, len(thumbs), chunk):
        yield s * len(_INDEX_WINDOWS), index_windows(thumbs[s : s + chunk]).reshape(-1, CELLS * CELLS)


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Standard output (the file descriptor, where C code prints) to nowhere for a while."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as nowhere:
            os.dup2(nowhere.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _index_on_disk(thumbs: Any, nprobe: int, chunk: int, folder: Path) -> Any:
    """The IVF index of :func:`_index` over the windows of ``thumbs``, its inverted lists in a
    memory-mapped file in ``folder``, built without holding every window in memory: the same
    training sample (gathered in one pass over the chunks), the same vectors added in the same
    order, in blocks the coarse assignment treats as it treats one call with all of them."""
    import faiss

    rows_total = len(thumbs) * len(_INDEX_WINDOWS)
    dim = CELLS * CELLS
    nlist, picked = _ivf_layout(rows_total)
    order = np.argsort(picked, kind="stable")
    sorted_rows = picked[order]
    sample = np.empty((len(picked), dim), dtype=np.float32)
    for first, rows in _chunk_windows(thumbs, chunk):
        lo, hi = np.searchsorted(sorted_rows, [first, first + len(rows)])
        sample[order[lo:hi]] = rows[sorted_rows[lo:hi] - first]
    index = _untrained_ivf(dim, nlist, nprobe)
    index.train(sample)
    del sample
    # each block's vectors go to an IVF index of its own on disk, with their ids among all rows;
    # the blocks' inverted lists are then joined, list by list in block order, into one file
    block_rows = ADD_BLOCK * len(_INDEX_WINDOWS)
    blocks: list[str] = []

    def add(rows: np.ndarray, first: int) -> None:
        block = faiss.clone_index(index)
        block.add_with_ids(rows, np.arange(first, first + len(rows), dtype=np.int64))
        blocks.append(str(folder / f"block-{len(blocks):05d}.index"))
        faiss.write_index(block, blocks[-1])

    added, pending = 0, np.zeros((0, dim), dtype=np.float32)
    for _, rows in _chunk_windows(thumbs, chunk):
        pending = np.concatenate([pending, rows])
        # add whole blocks while more than a block would be left after each: the last add
        # takes the rest (one block's rows or more, unless all rows are fewer)
        while len(pending) >= block_rows and rows_total - added - block_rows >= block_rows:
            add(np.ascontiguousarray(pending[:block_rows]), added)
            added += block_rows
            pending = pending[block_rows:]
    if len(pending):
        add(np.ascontiguousarray(pending), added)
    del pending
    parts = [faiss.read_index(name, faiss.IO_FLAG_MMAP) for name in blocks]
    lists = faiss.InvertedListsPtrVector()  # type: ignore[attr-defined]
    for part in parts:
        lists.push_back(faiss.extract_index_ivf(part).invlists)
    invlists = faiss.OnDiskInvertedLists(nlist, index.code_size, str(folder / "windows.ivfdata"))
    with _quiet_stdout():  # faiss reports the file's resizing on standard output
        ntotal = invlists.merge_from_multiple(lists.data(), lists.size(), False)
    del parts, lists
    for name in blocks:
        os.remove(name)
    index.ntotal = ntotal
    index.replace_invlists(invlists, True)
    invlists.this.disown()  # type: ignore[attr-defined]  # the index owns (and frees) them
    return index


def candidates_from_hits(hits: WindowHits, *, k: int = 10, members: np.ndarray | None = None) -> Candidates:
    """The candidates of :func:`candidate_pairs` chosen from hits already searched.

    Args:
        hits: From :func:`window_hits` over all images.
        k: Nearest other images kept per image.
        members: Boolean mask of the images taking part (``None``: all). Per query window the
            first :func:`hits_per_query` hits among them count, as in a search over them alone
            (the same with an exact index as long as the hits hold that many of theirs).

    Returns:
        The :class:`Candidates`, indices into all images, sorted by ``(i, j)``.

    Examples:
        >>> rng = np.random.default_rng(1)
        >>> thumbs = rng.random((40, THUMB, THUMB)).astype(np.float32)
        >>> thumbs[9] = np.rot90(thumbs[4])
        >>> hits = window_hits(thumbs, per_query=4 * hits_per_query(2))
        >>> half = np.arange(40) % 2 == 0  # a subset with image 4 but not image 9
        >>> subset = candidates_from_hits(hits, k=2, members=half)
        >>> bool(np.isin(subset.i, np.flatnonzero(half)).all() and np.isin(subset.j, np.flatnonzero(half)).all())
        True
        >>> pairs = candidates_from_hits(hits, k=2)
        >>> bool(((pairs.i == 4) & (pairs.j == 9)).any())
        True
    """
    return pairs_from_partners(*query_partners(hits, k=k, members=members))


def query_partners(
    hits: WindowHits, *, k: int = 10, members: np.ndarray | None = None, first_row: int = 0
) -> tuple[np.ndarray, ...]:
    """The first half of :func:`candidates_from_hits`: each query image's ``k`` best partners.

    Each query image's partners depend on its own hits only, so the hits of consecutive images
    (``first_row`` onwards, e.g. one shard's) give the same rows as the hits of all images.

    Returns:
        ``(query, partner, similarity, mirrored, other_parity)`` arrays, by query image.
    """
    n = len(hits)
    owner, sims = hits.owner, hits.similarity
    rows = np.arange(first_row, first_row + n, dtype=np.int32)
    if members is not None:  # only the members' own query windows count
        members = np.asarray(members, dtype=bool)
        rows = rows[members]
        owner, sims = owner[rows], sims[rows]
    query = np.broadcast_to(rows[:, None, None], owner.shape)
    take = owner >= 0
    if members is not None:
        take &= members[np.maximum(owner, 0)]
    take &= np.cumsum(take, axis=2, dtype=np.int32) <= hits_per_query(k)  # the first hits among them
    take &= owner != query
    mirrored = np.broadcast_to((np.arange(owner.shape[1]) % 2 == 1)[None, :, None], owner.shape)
    query_image, owner, sims, mirrored = (a[take] for a in (query, owner, sims, mirrored))
    if len(query_image) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, np.float32), np.zeros(0, bool), np.zeros(0, np.float32)
    return _top_k(query_image.astype(np.int64), owner.astype(np.int64), sims, mirrored, k)


def pairs_from_partners(
    query_image: np.ndarray, owner: np.ndarray, sims: np.ndarray, mirrored: np.ndarray, other: np.ndarray
) -> Candidates:
    """The second half of :func:`candidates_from_hits`: the partners of all query images (in
    query order, as :func:`query_partners` gives them) as pairs, a pair found from both ends once.

    Returns:
        The :class:`Candidates`, sorted by ``(i, j)``.
    """
    if len(query_image) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Candidates(empty, empty, np.zeros(0, np.float32), np.zeros(0, bool))
    lo = np.minimum(query_image, owner)
    hi = np.maximum(query_image, owner)
    # a pair found from both ends: keep the end that matched best
    order = np.lexsort((-sims, hi, lo))
    lo, hi, sims, mirrored, other = (a[order] for a in (lo, hi, sims, mirrored, other))
    first = np.ones(len(lo), dtype=bool)
    first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    # both parities are worth a look when the other one matched almost as well, from either end
    close = other >= sims - PARITY_MARGIN
    group = np.cumsum(first) - 1
    ambiguous = np.zeros(int(first.sum()), dtype=bool)
    np.logical_or.at(ambiguous, group, close)
    parity_first = mirrored[first][group]
    np.logical_or.at(ambiguous, group, mirrored != parity_first)
    return Candidates(
        lo[first].astype(np.int64),
        hi[first].astype(np.int64),
        sims[first].astype(np.float32),
        mirrored[first],
        ambiguous,
    )


def candidate_pairs(thumbs: np.ndarray, *, k: int = 10, nprobe: int = 24, chunk: int = 2048) -> Candidates:
    """Propose about ``k`` likely duplicates for every image.

    Args:
        thumbs: ``(N, THUMB, THUMB)`` greyscale thumbnails.
        k: Nearest other images kept per image (over its 8 orientations); a pair found from
            either end is kept once.
        nprobe: Cells the IVF index visits per query (large collections only).
        chunk: Images whose windows are built and searched at a time (bounds the memory).

    Returns:
        The :class:`Candidates`, sorted by ``(i, j)``.
    """
    if len(thumbs) < 2:
        empty = np.zeros(0, dtype=np.int64)
        return Candidates(empty, empty, np.zeros(0, np.float32), np.zeros(0, bool))
    hits = window_hits(thumbs, per_query=hits_per_query(k), nprobe=nprobe, chunk=chunk)
    return candidates_from_hits(hits, k=k)
