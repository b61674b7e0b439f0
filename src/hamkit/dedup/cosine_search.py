"""The cosine duplicate search: every pair of embeddings at or above a cosine similarity.

The exact numpy search and the choice of backend; the faiss backends themselves are in
:mod:`hamkit.dedup.faiss_search`. :mod:`hamkit.dedup.search` describes the backends and
re-exports the public names.

Examples:
    >>> emb = np.array([[1, 0], [0.6, 0.8], [0, 1]], dtype=np.float32)
    >>> cosine_pairs(emb, 0.7).j.tolist()
    [2]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np

from hamkit.dedup.faiss_search import (
    HnswConfig,
    IvfConfig,
    cosine_faiss_flat,
    cosine_faiss_hnsw,
    cosine_faiss_ivf,
    faiss_available,
)
from hamkit.dedup.pairs import PairCollector, Pairs
from hamkit.dedup.tiles import DEFAULT_MAX_PAIRS, check_block_size, check_max_pairs, row_blocks, tile_pairs
from hamkit.errors import DataError

__all__ = ["Backend", "FAISS_APPROX_MIN_N", "NORM_TOLERANCE", "cosine_pairs", "cosine_cross_pairs"]

Backend = Literal["auto", "numpy", "faiss", "faiss-ivf", "faiss-hnsw"]
"""Search backends of :func:`cosine_pairs` and :func:`cosine_cross_pairs`."""

FAISS_APPROX_MIN_N: int = 250_000
"""Indexed-set size from which ``"auto"`` and ``"faiss"`` switch to the approximate IVF index.

The exact search's time grows as N**2 and the IVF index's far more slowly; below this size
(HAM10000 and the ISIC challenge sets are far below it) the exact search stays affordable on a
laptop, and cannot miss a pair. The measurements behind the choice are on the Benchmarks page of
the documentation (duplicate search)."""

NORM_TOLERANCE: float = 1e-3
"""How far from 1 an embedding's L2 norm may be before it counts as not normalised."""

_BACKENDS: tuple[str, ...] = ("auto", "numpy", "faiss", "faiss-ivf", "faiss-hnsw")
_APPROXIMATE: tuple[str, ...] = ("faiss-ivf", "faiss-hnsw")


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
            yield tile_pairs(sims, keep, lambda s: s >= threshold, a0, b0, self_search and b0 == a0)


def _cosine_numpy(
    a: np.ndarray,
    b: np.ndarray,
    threshold: np.float32,
    block: int,
    self_search: bool,
    collector: PairCollector,
) -> None:
    buffer = np.empty((min(block, len(a)), min(block, len(b))), dtype=np.float32)
    starts = row_blocks(len(a), block)
    columns = len(row_blocks(len(b), block))
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
            :mod:`hamkit.dedup.search`).
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
    block = check_block_size(block_size)
    cap = check_max_pairs(max_pairs)
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
    block = check_block_size(block_size)
    cap = check_max_pairs(max_pairs)
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
