"""The Hamming duplicate search: every pair of 64-bit hashes within a number of differing bits.

The same tile walk as the cosine search (:mod:`hamkit.dedup.tiles`) over packed uint64 hashes:
XOR of a tile (``np.bitwise_xor.outer``) then popcount, row blocks spread over a thread pool
(numpy releases the GIL). :mod:`hamkit.dedup.search` re-exports the public names.

Examples:
    >>> h = np.array([0b0000, 0b0111, 0b0001], dtype=np.uint64)
    >>> hamming_pairs(h, 1).j.tolist()
    [2]
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from hamkit._cpu import available_cpus
from hamkit.dedup.hashing import HASH_BITS, popcount64
from hamkit.dedup.pairs import PairCollector, Pairs
from hamkit.dedup.tiles import DEFAULT_MAX_PAIRS, check_block_size, check_max_pairs, row_blocks, tile_pairs
from hamkit.errors import DataError

__all__ = ["hamming_pairs", "hamming_cross_pairs"]


def _check_hashes(hashes: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(hashes)
    if array.ndim != 1:
        raise DataError(f"{name}: expected a 1-D array of uint64 hashes, got shape {array.shape}")
    if array.dtype == np.int64:
        return np.ascontiguousarray(array).view(np.uint64)
    if array.dtype != np.uint64:
        raise DataError(
            f"{name}: expected uint64 hashes (as hamkit.dedup.hashing.phash returns), got dtype "
            f"{array.dtype}; convert hex strings with hamkit.dedup.hashing.hex_to_hash()"
        )
    return np.ascontiguousarray(array)


def _check_max_distance(max_distance: int) -> int:
    if isinstance(max_distance, bool) or not isinstance(max_distance, (int, np.integer)):
        raise DataError(f"max_distance must be an integer in 0..{HASH_BITS}, got {max_distance!r}")
    if not 0 <= max_distance <= HASH_BITS:
        raise DataError(
            f"max_distance must be in 0..{HASH_BITS} (bits of a hash), got {max_distance}; "
            "near-duplicates are typically within 4 to 10"
        )
    return int(max_distance)


def _default_jobs(n_jobs: int | None) -> int:
    if n_jobs is None:
        return available_cpus()
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1:
        raise DataError(f"n_jobs must be a positive integer or None, got {n_jobs!r}")
    return int(n_jobs)


def _hamming_row_block(
    a: np.ndarray,
    b: np.ndarray,
    a0: int,
    block: int,
    max_distance: int,
    self_search: bool,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rows_a = a[a0 : a0 + block]
    xor = np.empty((len(rows_a), min(block, len(b))), dtype=np.uint64)
    found = []
    start = a0 if self_search else 0
    for b0 in range(start, len(b), block):
        cols_b = b[b0 : b0 + block]
        tile = np.bitwise_xor.outer(rows_a, cols_b, out=xor[:, : len(cols_b)])
        dist = popcount64(tile)
        keep = dist.min(axis=1) <= max_distance
        if keep.any():
            i, j, d = tile_pairs(dist, keep, lambda t: t <= max_distance, a0, b0, self_search and b0 == a0)
            found.append((i, j, d.astype(np.int32)))
    return found


def _hamming_search(
    a: np.ndarray,
    b: np.ndarray,
    max_distance: int,
    *,
    block: int,
    n_jobs: int,
    self_search: bool,
    max_pairs: int | None,
    what: str,
    progress: bool,
) -> Pairs:
    collector = PairCollector(max_pairs, what, progress=progress)
    if len(a) == 0 or len(b) == 0:
        return Pairs.empty("hamming")

    def task(a0: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return _hamming_row_block(a, b, a0, block, max_distance, self_search)

    starts = row_blocks(len(a), block)
    collector.start(len(starts), "block")
    try:
        if n_jobs == 1 or len(starts) == 1:
            for a0 in starts:
                for part in task(a0):
                    collector.add(part)
                collector.advance()
        else:
            with ThreadPoolExecutor(max_workers=min(n_jobs, len(starts))) as pool:
                try:
                    for parts in pool.map(task, starts):
                        for part in parts:
                            collector.add(part)
                        collector.advance()
                except DataError:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    finally:
        collector.close()
    return collector.result("hamming")


def hamming_pairs(
    hashes: np.ndarray,
    max_distance: int,
    *,
    block_size: int = 512,
    n_jobs: int | None = None,
    max_pairs: int | None = DEFAULT_MAX_PAIRS,
    progress: bool = False,
) -> Pairs:
    """Every pair ``i < j`` of 64-bit hashes within ``max_distance`` differing bits.

    Tiles of ``block_size x block_size`` hashes are XORed and popcounted; row blocks run on
    ``n_jobs`` threads (each holding one tile, ``9 * block_size**2`` bytes).

    Args:
        hashes: ``(N,)`` uint64 hashes (int64 is reinterpreted bit for bit).
        max_distance: Largest Hamming distance that counts as a duplicate, in ``0..64``
            (see :mod:`hamkit.dedup.hashing` for typical values).
        block_size: Tile edge.
        n_jobs: Threads; ``None`` = the CPUs this process may use.
        max_pairs: Cap on the number of pairs (``None``: no cap).
        progress: Show a progress bar (row blocks).

    Returns:
        :class:`Pairs` with ``metric="hamming"``, ``i < j``, sorted by ``(i, j)``, ``score`` the
        int32 distance.

    Raises:
        DataError: On hashes that are not 1-D uint64, ``max_distance`` outside ``0..64``, or more
            than ``max_pairs`` pairs.

    Examples:
        >>> h = np.array([0b0000, 0b0111, 0b0001], dtype=np.uint64)
        >>> pairs = hamming_pairs(h, 2)
        >>> list(zip(pairs.i.tolist(), pairs.j.tolist(), pairs.score.tolist()))
        [(0, 2, 1), (1, 2, 2)]
    """
    block = check_block_size(block_size)
    cap = check_max_pairs(max_pairs)
    distance = _check_max_distance(max_distance)
    jobs = _default_jobs(n_jobs)
    hashes = _check_hashes(hashes, "hamming_pairs")
    if len(hashes) < 2:
        return Pairs.empty("hamming")
    return _hamming_search(
        hashes,
        hashes,
        distance,
        block=block,
        n_jobs=jobs,
        self_search=True,
        max_pairs=cap,
        what="hamming_pairs",
        progress=progress,
    )


def hamming_cross_pairs(
    a: np.ndarray,
    b: np.ndarray,
    max_distance: int,
    *,
    block_size: int = 512,
    n_jobs: int | None = None,
    max_pairs: int | None = DEFAULT_MAX_PAIRS,
    progress: bool = False,
) -> Pairs:
    """Every pair ``(i, j)``, ``i`` indexing ``a`` and ``j`` indexing ``b``, within ``max_distance`` bits.

    Args:
        a: ``(Na,)`` uint64 hashes.
        b: ``(Nb,)`` uint64 hashes.
        max_distance: Largest Hamming distance that counts, in ``0..64``.
        block_size: Tile edge.
        n_jobs: Threads; ``None`` = the CPUs this process may use.
        max_pairs: Cap on the number of pairs (``None``: no cap).
        progress: Show a progress bar (row blocks).

    Returns:
        :class:`Pairs` with ``metric="hamming"``, sorted by ``(i, j)``.

    Raises:
        DataError: As :func:`hamming_pairs`.

    Examples:
        >>> a = np.array([0b1111], dtype=np.uint64)
        >>> b = np.array([0b1110, 0b0000, 0b1111], dtype=np.uint64)
        >>> hamming_cross_pairs(a, b, 1).j.tolist()
        [0, 2]
    """
    block = check_block_size(block_size)
    cap = check_max_pairs(max_pairs)
    distance = _check_max_distance(max_distance)
    jobs = _default_jobs(n_jobs)
    a = _check_hashes(a, "hamming_cross_pairs (a)")
    b = _check_hashes(b, "hamming_cross_pairs (b)")
    return _hamming_search(
        a,
        b,
        distance,
        block=block,
        n_jobs=jobs,
        self_search=False,
        max_pairs=cap,
        what="hamming_cross_pairs",
        progress=progress,
    )
