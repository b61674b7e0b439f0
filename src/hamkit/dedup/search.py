"""Find every duplicate pair: cosine similarity of embeddings or Hamming distance of hashes.

No function here builds the N x N matrix. The exact numpy search walks the upper triangle of the
similarity matrix in ``block_size x block_size`` tiles (one float32 matrix product each, the
BLAS using every core), keeps a tile's rows whose maximum reaches the threshold and extracts
their pairs with ``np.nonzero``. Memory is ``O(N*d + block_size**2)`` plus the pairs found; a
``max_pairs`` guard stops a threshold so low that the result itself would not fit.

Hamming search is the same walk over packed uint64 hashes: XOR of a tile (``np.bitwise_xor.outer``)
then popcount (``np.bitwise_count``), tiles spread over a thread pool (numpy releases the GIL).

Backends of :func:`cosine_pairs` / :func:`cosine_cross_pairs`:

* ``"numpy"``: exact blockwise search (above). Measured on 2 shared CPU cores, 576-d float32:
  10k embeddings 0.5 to 1 s, 50k 18 to 21 s (254 MiB peak RSS), 100k 35 s quiet / 85 to 94 s
  shared (474 MiB); time grows as N**2 (``docs/benchmarks_dedup_search.md``).
* ``"faiss"`` (needs ``pip install hamkit[faiss]``): exact ``IndexFlatIP.range_search`` while
  the indexed set has fewer than :data:`FAISS_APPROX_MIN_N` vectors, the IVF index from then on.
  faiss's flat search computes the full matrix (both triangles), so it is not faster than
  ``"numpy"`` for a self-search.
* ``"faiss-ivf"``: an ``IndexIVFFlat`` (:class:`IvfConfig`): each query is compared only with
  the vectors of its ``nprobe`` nearest k-means cells. Recall is **approximate** (a pair is lost
  when neither item's probed cells hold the other), the scores of the pairs it finds are exact,
  and its pairs have ``exact=False``. 1M random 576-d vectors, 2 cores, defaults: 6.1 min,
  9,999 of 10,000 planted pairs found, against an estimated 54 min for the exact search.
* ``"faiss-hnsw"``: an ``IndexHNSWFlat`` (:class:`HnswConfig`); each query asks for its ``k``
  nearest neighbours and keeps those at or above the threshold (approximate, exact scores). On
  random vectors it was slower than both the exact search (up to 100k) and IVF.
* ``"auto"``: ``"numpy"``, unless faiss is importable and the indexed set has at least
  :data:`FAISS_APPROX_MIN_N` vectors (then ``"faiss-ivf"``). Below that size (which covers
  HAM10000 and the ISIC challenge sets) ``"auto"`` is exact.

The faiss backends live in :mod:`hamkit.dedup.faiss_search`; :class:`Pairs` in
:mod:`hamkit.dedup.pairs`. Both are re-exported here.

Examples:
    >>> rng = np.random.default_rng(0)
    >>> emb = rng.standard_normal((5, 16)).astype(np.float32)
    >>> emb[3] = emb[1] + 0.01  # a near duplicate of item 1
    >>> emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    >>> pairs = cosine_pairs(emb, 0.95)
    >>> pairs.i.tolist(), pairs.j.tolist(), len(pairs)
    ([1], [3], 1)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np

from hamkit._cpu import available_cpus
from hamkit.dedup.faiss_search import (
    HnswConfig,
    IvfConfig,
    cosine_faiss_flat,
    cosine_faiss_hnsw,
    cosine_faiss_ivf,
    faiss_available,
)
from hamkit.dedup.hashing import HASH_BITS, popcount64
from hamkit.dedup.pairs import PairCollector, Pairs
from hamkit.errors import DataError

__all__ = [
    "Pairs",
    "HnswConfig",
    "IvfConfig",
    "Backend",
    "FAISS_APPROX_MIN_N",
    "NORM_TOLERANCE",
    "DEFAULT_MAX_PAIRS",
    "faiss_available",
    "cosine_pairs",
    "cosine_cross_pairs",
    "hamming_pairs",
    "hamming_cross_pairs",
]

Backend = Literal["auto", "numpy", "faiss", "faiss-ivf", "faiss-hnsw"]
"""Search backends of :func:`cosine_pairs` and :func:`cosine_cross_pairs`."""

FAISS_APPROX_MIN_N: int = 250_000
"""Indexed-set size from which ``"auto"`` and ``"faiss"`` switch to the approximate IVF index.

On 2 CPU cores the exact search took 35 s at 100k 576-d vectors and grows as N**2 (about 4 min
at 250k, an estimated 54 min at 1M); IVF took 18 s at 100k and 6.1 min at 1M
(``docs/benchmarks_dedup_search.md``). Below this size exactness costs minutes at most."""

NORM_TOLERANCE: float = 1e-3
"""How far from 1 an embedding's L2 norm may be before it counts as not normalised."""

DEFAULT_MAX_PAIRS: int = 50_000_000
"""Default cap on the number of pairs a search may return (about 1 GB of pairs)."""

_BACKENDS: tuple[str, ...] = ("auto", "numpy", "faiss", "faiss-ivf", "faiss-hnsw")
_APPROXIMATE: tuple[str, ...] = ("faiss-ivf", "faiss-hnsw")


# --------------------------------------------------------------------------- validation


def _check_block_size(block_size: int) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise DataError(f"block_size must be a positive integer, got {block_size!r}")
    return int(block_size)


def _check_max_pairs(max_pairs: int | None) -> int | None:
    if max_pairs is None:
        return None
    if isinstance(max_pairs, bool) or not isinstance(max_pairs, (int, np.integer)) or max_pairs < 0:
        raise DataError(f"max_pairs must be a non-negative integer or None, got {max_pairs!r}")
    return int(max_pairs)


def _check_threshold(threshold: float) -> np.float32:
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise DataError(f"threshold must be a number in (0, 1], got {threshold!r}") from None
    if not 0.0 < value <= 1.0:
        raise DataError(
            f"threshold must be a cosine similarity in (0, 1], got {threshold!r}; duplicate search "
            "needs a high similarity (e.g. 0.9 to 0.97)"
        )
    return np.float32(value)


def _check_embeddings(emb: np.ndarray, name: str, normalize: bool, dim: int | None = None) -> np.ndarray:
    """Return ``emb`` as C-contiguous float32 (N, d), L2-normalised, or raise DataError."""
    array = np.asarray(emb)
    if array.ndim != 2:
        raise DataError(f"{name}: expected a 2-D array (N, d) of embeddings, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise DataError(f"{name}: expected float embeddings, got dtype {array.dtype}")
    if array.shape[1] == 0:
        raise DataError(f"{name}: embeddings have 0 dimensions (shape {array.shape})")
    if dim is not None and array.shape[1] != dim:
        raise DataError(
            f"{name}: embeddings have {array.shape[1]} dimensions, the other set has {dim}; "
            "both sets must come from the same model"
        )
    array = np.ascontiguousarray(array, dtype=np.float32)
    if len(array) == 0:
        return array
    # float64 sums of float32 squares cannot overflow: a non-finite norm means a NaN / inf entry
    norms = np.sqrt(np.einsum("ij,ij->i", array, array, dtype=np.float64))
    finite = np.isfinite(norms)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise DataError(f"{name}: row {row} has NaN or infinite values")
    if normalize:
        zero = norms == 0
        if zero.any():
            row = int(np.flatnonzero(zero)[0])
            raise DataError(f"{name}: row {row} is all zeros and cannot be normalised")
        return (array / norms[:, None]).astype(np.float32, copy=False)
    off = np.abs(norms - 1.0) > NORM_TOLERANCE
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise DataError(
            f"{name}: row {row} has L2 norm {norms[row]:.6g}, not 1 (tolerance {NORM_TOLERANCE}); "
            f"{int(off.sum())} row(s) are not normalised: divide each row by its norm, "
            "or pass normalize=True"
        )
    return array


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


# --------------------------------------------------------------------------- tile walk


def _row_blocks(n_a: int, block: int) -> list[int]:
    return list(range(0, n_a, block))


def _tile_pairs(
    values: np.ndarray,
    keep_rows: np.ndarray,
    hit: Callable[[np.ndarray], np.ndarray],
    a0: int,
    b0: int,
    diagonal: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Extract the hits of the candidate rows of one tile, with global indices."""
    rows = np.flatnonzero(keep_rows)
    sub = values if len(rows) == len(values) else values[rows]
    r, c = np.nonzero(hit(sub))
    r = rows[r]
    if diagonal:  # a tile on the diagonal: keep its strict upper triangle
        upper = c > r
        r, c = r[upper], c[upper]
    return r + a0, c + b0, values[r, c]


def _cosine_row_block(
    a: np.ndarray,
    b: np.ndarray,
    a0: int,
    block: int,
    threshold: np.float32,
    self_search: bool,
    buffer: np.ndarray,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rows_a = a[a0 : a0 + block]
    start = a0 if self_search else 0
    for b0 in range(start, len(b), block):
        cols_b = b[b0 : b0 + block]
        sims = np.matmul(rows_a, cols_b.T, out=buffer[: len(rows_a), : len(cols_b)])
        keep = sims.max(axis=1) >= threshold
        if keep.any():
            yield _tile_pairs(sims, keep, lambda s: s >= threshold, a0, b0, self_search and b0 == a0)


def _cosine_numpy(
    a: np.ndarray,
    b: np.ndarray,
    threshold: np.float32,
    block: int,
    self_search: bool,
    collector: PairCollector,
) -> None:
    buffer = np.empty((min(block, len(a)), min(block, len(b))), dtype=np.float32)
    starts = _row_blocks(len(a), block)
    columns = len(_row_blocks(len(b), block))
    tiles = [columns - k if self_search else columns for k in range(len(starts))]
    collector.start(sum(tiles), "tile")
    for a0, row_tiles in zip(starts, tiles, strict=True):
        for part in _cosine_row_block(a, b, a0, block, threshold, self_search, buffer):
            collector.add(part)
        collector.advance(row_tiles)


def _resolve_backend(backend: str, n_indexed: int) -> str:
    if backend not in _BACKENDS:
        raise DataError(f"backend must be one of {', '.join(map(repr, _BACKENDS))}, got {backend!r}")
    if backend == "auto":
        if n_indexed >= FAISS_APPROX_MIN_N and faiss_available():
            return "faiss-ivf"
        return "numpy"
    if backend == "faiss":
        return "faiss-ivf" if n_indexed >= FAISS_APPROX_MIN_N else "faiss-flat"
    return backend


def _cosine_search(
    a: np.ndarray,
    b: np.ndarray,
    threshold: np.float32,
    *,
    block: int,
    backend: str,
    self_search: bool,
    max_pairs: int | None,
    ivf: IvfConfig | None,
    hnsw: HnswConfig | None,
    what: str,
    progress: bool,
) -> Pairs:
    chosen = _resolve_backend(backend, len(b))
    exact = chosen not in _APPROXIMATE
    collector = PairCollector(max_pairs, what, progress=progress)
    if len(a) == 0 or len(b) == 0 or (self_search and len(a) < 2):
        return Pairs.empty("cosine", exact=exact)
    try:
        if chosen == "numpy":
            _cosine_numpy(a, b, threshold, block, self_search, collector)
        elif chosen == "faiss-flat":
            cosine_faiss_flat(a, b, threshold, self_search, collector)
        elif chosen == "faiss-ivf":
            cosine_faiss_ivf(a, b, threshold, self_search, ivf or IvfConfig(), collector)
        else:
            cosine_faiss_hnsw(a, b, threshold, self_search, hnsw or HnswConfig(), collector)
    finally:
        collector.close()
    return collector.result("cosine", exact=exact)


def cosine_pairs(
    emb: np.ndarray,
    threshold: float,
    *,
    block_size: int = 2048,
    backend: Backend = "auto",
    normalize: bool = False,
    max_pairs: int | None = DEFAULT_MAX_PAIRS,
    ivf: IvfConfig | None = None,
    hnsw: HnswConfig | None = None,
    progress: bool = False,
) -> Pairs:
    """Every pair ``i < j`` of embeddings with cosine similarity ``>= threshold``.

    Similarities are float32 dot products of the L2-normalised rows, compared with the threshold
    as float32. The exact search never holds more than one ``block_size x block_size`` tile.

    Args:
        emb: ``(N, d)`` float embeddings, one row per item, L2-normalised (within
            :data:`NORM_TOLERANCE`) unless ``normalize`` is True.
        threshold: Minimum cosine similarity, in ``(0, 1]``.
        block_size: Tile edge of the exact search (memory ``4 * block_size**2`` bytes).
        backend: ``"auto"``, ``"numpy"``, ``"faiss"``, ``"faiss-ivf"`` or ``"faiss-hnsw"`` (see
            the module doc).
        normalize: Divide each row by its L2 norm (a copy) instead of requiring unit rows.
        max_pairs: Stop with an error once more pairs than this are found (``None``: no cap).
        ivf: Settings of the IVF backend (default :class:`IvfConfig`).
        hnsw: Settings of the HNSW backend (default :class:`HnswConfig`).
        progress: Show a progress bar (tiles of the exact search, query batches of faiss).

    Returns:
        :class:`Pairs` with ``i < j``, sorted by ``(i, j)``, ``score`` the similarity.

    Raises:
        DataError: On a non 2-D / non-finite / non-normalised input (naming the row), a
            threshold outside ``(0, 1]``, an unknown backend, a missing faiss, or more than
            ``max_pairs`` pairs.

    Examples:
        >>> emb = np.array([[1, 0], [0.6, 0.8], [0, 1]], dtype=np.float32)
        >>> pairs = cosine_pairs(emb, 0.6)
        >>> pairs.i.tolist(), pairs.j.tolist(), [round(float(s), 2) for s in pairs.score]
        ([0, 1], [1, 2], [0.6, 0.8])
    """
    block = _check_block_size(block_size)
    cap = _check_max_pairs(max_pairs)
    thr = _check_threshold(threshold)
    emb = _check_embeddings(emb, "cosine_pairs", normalize)
    return _cosine_search(
        emb,
        emb,
        thr,
        block=block,
        backend=backend,
        self_search=True,
        max_pairs=cap,
        ivf=ivf,
        hnsw=hnsw,
        what="cosine_pairs",
        progress=progress,
    )


def cosine_cross_pairs(
    a: np.ndarray,
    b: np.ndarray,
    threshold: float,
    *,
    block_size: int = 2048,
    backend: Backend = "auto",
    normalize: bool = False,
    max_pairs: int | None = DEFAULT_MAX_PAIRS,
    ivf: IvfConfig | None = None,
    hnsw: HnswConfig | None = None,
    progress: bool = False,
) -> Pairs:
    """Every pair ``(i, j)``, ``i`` indexing ``a`` and ``j`` indexing ``b``, with similarity ``>= threshold``.

    Use it to check one set against another (e.g. test images against training images) without
    searching inside either set. The faiss backends index ``b`` and query with ``a``.

    Args:
        a: ``(Na, d)`` embeddings (see :func:`cosine_pairs`).
        b: ``(Nb, d)`` embeddings of the same model.
        threshold: Minimum cosine similarity, in ``(0, 1]``.
        block_size: Tile edge of the exact search.
        backend: ``"auto"``, ``"numpy"``, ``"faiss"``, ``"faiss-ivf"`` or ``"faiss-hnsw"``;
            sizes refer to ``b``.
        normalize: Normalise the rows of both sets instead of requiring unit rows.
        max_pairs: Cap on the number of pairs (``None``: no cap).
        ivf: Settings of the IVF backend.
        hnsw: Settings of the HNSW backend.
        progress: Show a progress bar.

    Returns:
        :class:`Pairs` sorted by ``(i, j)``.

    Raises:
        DataError: As :func:`cosine_pairs`, and when the two sets differ in dimension.

    Examples:
        >>> a = np.array([[1, 0]], dtype=np.float32)
        >>> b = np.array([[0, 1], [0.8, 0.6]], dtype=np.float32)
        >>> cosine_cross_pairs(a, b, 0.7).j.tolist()
        [1]
    """
    block = _check_block_size(block_size)
    cap = _check_max_pairs(max_pairs)
    thr = _check_threshold(threshold)
    a = _check_embeddings(a, "cosine_cross_pairs (a)", normalize)
    b = _check_embeddings(b, "cosine_cross_pairs (b)", normalize, dim=a.shape[1])
    return _cosine_search(
        a,
        b,
        thr,
        block=block,
        backend=backend,
        self_search=False,
        max_pairs=cap,
        ivf=ivf,
        hnsw=hnsw,
        what="cosine_cross_pairs",
        progress=progress,
    )


# --------------------------------------------------------------------------- Hamming


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
            i, j, d = _tile_pairs(dist, keep, lambda t: t <= max_distance, a0, b0, self_search and b0 == a0)
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

    starts = _row_blocks(len(a), block)
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
    block = _check_block_size(block_size)
    cap = _check_max_pairs(max_pairs)
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
    block = _check_block_size(block_size)
    cap = _check_max_pairs(max_pairs)
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
