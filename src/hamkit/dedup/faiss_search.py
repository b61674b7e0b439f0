"""The faiss backends of the cosine duplicate search (optional: ``pip install hamkit[faiss]``).

:mod:`hamkit.dedup.search` chooses between these and its own exact numpy search; call them
through :func:`~hamkit.dedup.search.cosine_pairs` / :func:`~hamkit.dedup.search.cosine_cross_pairs`
with ``backend=...``. All three store the vectors uncompressed, so every score they report is
the exact float32 inner product; the approximate ones may only *miss* pairs.

* **flat** (``"faiss-flat"``): ``IndexFlatIP.range_search``, exact.
* **IVF** (``"faiss-ivf"``, :class:`IvfConfig`): k-means splits the indexed vectors into
  ``nlist`` cells; each query is compared only with the vectors of its ``nprobe`` nearest cells,
  by ``IndexIVFFlat.range_search``. A pair is missed only when neither item's probed cells hold
  the other. Measured on 1,000,000 random 576-d vectors (the worst case: no cluster structure)
  with 4,096 cells: one-way recall of planted near duplicates 0.979 at ``nprobe=8``, 0.997 at
  16, 0.9998 at 32; ``docs/benchmarks_dedup_search.md`` has the full numbers.
* **HNSW** (``"faiss-hnsw"``, :class:`HnswConfig`): a graph index; faiss has no range search
  on it, so each query asks for its ``k`` nearest neighbours and keeps those above the
  threshold. On random 576-d vectors it was slower than the exact search up to 100k and slower
  than IVF everywhere; it stays for embeddings where graph search does better.

Examples:
    >>> IvfConfig().nlist_for(1_000_000), IvfConfig().nlist_for(1_000)
    (4096, 25)
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hamkit.dedup.pairs import PairCollector, unique_upper_pairs
from hamkit.errors import DataError

__all__ = [
    "HnswConfig",
    "IvfConfig",
    "faiss_available",
    "import_faiss",
    "cosine_faiss_flat",
    "cosine_faiss_ivf",
    "cosine_faiss_hnsw",
]

QUERY_ROWS = 16_384
"""Queries per faiss call, to bound the size of one call's result buffers."""


def faiss_available() -> bool:
    """Whether the optional ``faiss`` package (``pip install hamkit[faiss]``) imports.

    Returns:
        True if ``import faiss`` works.

    Examples:
        >>> isinstance(faiss_available(), bool)
        True
    """
    try:
        importlib.import_module("faiss")
    except ImportError:
        return False
    return True


def import_faiss() -> Any:
    """Import faiss, or explain how to install it.

    Returns:
        The ``faiss`` module.

    Raises:
        DataError: When faiss is not installed.
    """
    try:
        return importlib.import_module("faiss")
    except ImportError as err:
        raise DataError(
            "the faiss backends need the faiss package: pip install 'hamkit[faiss]' "
            "(or faiss-cpu), or use backend='numpy'"
        ) from err


def _positive_int(owner: str, name: str, value: object, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DataError(f"{owner}: {name} must be a positive integer{' or None' if allow_none else ''}, got {value!r}")


@dataclass(frozen=True)
class IvfConfig:
    """Settings of the approximate faiss IVF search.

    Attributes:
        nlist: Number of k-means cells; ``None`` = the power of two nearest ``4 * sqrt(N)``
            (faiss's rule of thumb), at most ``N // 39`` so that every cell has enough training
            points (1M -> 4,096; 100k -> 1,024; 1k -> 25).
        nprobe: Cells searched per query. More = higher recall, proportionally slower. The
            default 16 found 99.7% of planted near duplicates from one end (and a self search
            queries both ends) on 1M random vectors; raise it for an audit that must not miss.
        train_size: Vectors k-means trains on; ``None`` = ``64 * nlist`` (at most N).
        random_state: Random state of the training sample and of k-means, for a reproducible index.

    Examples:
        >>> IvfConfig(nprobe=32).nlist_for(100_000)
        1024
    """

    nlist: int | None = None
    nprobe: int = 16
    train_size: int | None = None
    random_state: int = 0

    def __post_init__(self) -> None:
        _positive_int("IvfConfig", "nlist", self.nlist, allow_none=True)
        _positive_int("IvfConfig", "nprobe", self.nprobe, allow_none=False)
        _positive_int("IvfConfig", "train_size", self.train_size, allow_none=True)
        if (
            isinstance(self.random_state, bool)
            or not isinstance(self.random_state, (int, np.integer))
            or self.random_state < 0
        ):
            raise DataError(f"IvfConfig: random_state must be a non-negative integer, got {self.random_state!r}")

    def nlist_for(self, n: int) -> int:
        """Number of cells for an index of ``n`` vectors.

        Args:
            n: Size of the indexed set.

        Returns:
            ``nlist`` if set (at most ``n``), else the default rule.
        """
        if self.nlist is not None:
            return max(1, min(int(self.nlist), n))
        nearest_pow2 = 2 ** round(math.log2(max(1.0, 4 * math.sqrt(n))))
        return int(max(1, min(nearest_pow2, n // 39)))


@dataclass(frozen=True)
class HnswConfig:
    """Settings of the approximate faiss HNSW search.

    Attributes:
        k: Neighbours asked for per query (the query itself included in a self search): an item
            with more than ``k - 1`` duplicates above the threshold loses some of them.
        m: HNSW graph degree (faiss ``M``); higher = better recall, more memory, slower build.
        ef_construction: Candidate list size while building (faiss ``efConstruction``).
        ef_search: Candidate list size while searching (faiss ``efSearch``, at least ``k``).

    Examples:
        >>> HnswConfig(k=64).ef_search
        128
    """

    k: int = 32
    m: int = 32
    ef_construction: int = 80
    ef_search: int = 128

    def __post_init__(self) -> None:
        for name in ("k", "m", "ef_construction", "ef_search"):
            _positive_int("HnswConfig", name, getattr(self, name), allow_none=False)


def _range_search(
    index: Any,
    a: np.ndarray,
    threshold: np.float32,
    self_search: bool,
    both_ends: bool,
    collector: PairCollector,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Range-search ``index`` with every row of ``a``; pairs at or above ``threshold``.

    ``both_ends``: in a self search, keep a pair seen from either end (an approximate index may
    find it from one end only); otherwise keep ``i < j`` (an exact index sees both). The raw
    count is checked against the collector's cap as it grows.
    """
    # faiss keeps inner products strictly above the radius: step just below the threshold
    radius = float(np.nextafter(threshold, np.float32(-np.inf)))
    parts = []
    collector.start(-(-len(a) // QUERY_ROWS), "batch")
    for a0 in range(0, len(a), QUERY_ROWS):
        queries = a[a0 : a0 + QUERY_ROWS]
        limits, scores, ids = index.range_search(queries, radius)
        rows = np.repeat(np.arange(len(queries), dtype=np.int64), np.diff(limits).astype(np.int64)) + a0
        ids = ids.astype(np.int64, copy=False)
        keep = scores >= threshold
        if self_search:
            keep &= (ids != rows) if both_ends else (ids > rows)
        parts.append((rows[keep], ids[keep], scores[keep].astype(np.float32, copy=False)))
        collector.check(sum(len(p[0]) for p in parts), copies=2 if both_ends else 1)
        collector.advance()
    return parts


def _add_parts(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n: int, dedupe: bool, collector: PairCollector
) -> None:
    if dedupe and parts:
        i, j, s = (np.concatenate([p[k] for p in parts]) for k in range(3))
        parts = [unique_upper_pairs(i, j, s, n)]
    for part in parts:
        collector.add(part)


def cosine_faiss_flat(
    a: np.ndarray,
    b: np.ndarray,
    threshold: np.float32,
    self_search: bool,
    collector: PairCollector,
) -> None:
    """Exact range search of ``a`` against ``b`` with ``IndexFlatIP``.

    Args:
        a: Unit float32 queries.
        b: Unit float32 vectors to index (``a`` itself in a self search).
        threshold: Minimum inner product (inclusive).
        self_search: Keep each pair once as ``i < j`` and drop ``i == j``.
        collector: Receives the pairs.
    """
    faiss = import_faiss()
    index = faiss.IndexFlatIP(b.shape[1])
    index.add(b)
    for part in _range_search(index, a, threshold, self_search, both_ends=False, collector=collector):
        collector.add(part)


def cosine_faiss_ivf(
    a: np.ndarray,
    b: np.ndarray,
    threshold: np.float32,
    self_search: bool,
    config: IvfConfig,
    collector: PairCollector,
) -> None:
    """Approximate range search of ``a`` against ``b`` with ``IndexIVFFlat`` (exact scores).

    Args:
        a: Unit float32 queries.
        b: Unit float32 vectors to index (``a`` itself in a self search).
        threshold: Minimum inner product (inclusive).
        self_search: Keep each pair once as ``i < j``, found from either end.
        config: Cells, probes and training sample.
        collector: Receives the pairs.
    """
    faiss = import_faiss()
    nlist = config.nlist_for(len(b))
    quantizer = faiss.IndexFlatIP(b.shape[1])
    index = faiss.IndexIVFFlat(quantizer, b.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = int(config.random_state)
    train_size = min(len(b), config.train_size or 64 * nlist)
    rng = np.random.default_rng(config.random_state)
    sample = b if train_size >= len(b) else b[np.sort(rng.choice(len(b), train_size, replace=False))]
    index.train(sample)
    index.add(b)
    index.nprobe = min(int(config.nprobe), nlist)
    parts = _range_search(index, a, threshold, self_search, both_ends=self_search, collector=collector)
    _add_parts(parts, len(b), self_search, collector)


def cosine_faiss_hnsw(
    a: np.ndarray,
    b: np.ndarray,
    threshold: np.float32,
    self_search: bool,
    config: HnswConfig,
    collector: PairCollector,
) -> None:
    """Approximate ``k``-nearest-neighbour search of ``a`` against ``b`` with ``IndexHNSWFlat``.

    Args:
        a: Unit float32 queries.
        b: Unit float32 vectors to index (``a`` itself in a self search).
        threshold: Minimum inner product (inclusive).
        self_search: Keep each pair once as ``i < j``, found from either end.
        config: Graph and search settings.
        collector: Receives the pairs.
    """
    faiss = import_faiss()
    index = faiss.IndexHNSWFlat(b.shape[1], int(config.m), faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = int(config.ef_construction)
    index.add(b)
    index.hnsw.efSearch = max(int(config.ef_search), int(config.k))
    k = min(int(config.k), len(b))
    parts = []
    collector.start(-(-len(a) // QUERY_ROWS), "batch")
    for a0 in range(0, len(a), QUERY_ROWS):
        queries = a[a0 : a0 + QUERY_ROWS]
        scores, ids = index.search(queries, k)
        rows = np.broadcast_to(np.arange(a0, a0 + len(queries), dtype=np.int64)[:, None], ids.shape)
        keep = (ids >= 0) & (scores >= threshold)
        if self_search:
            keep &= ids != rows
        parts.append((rows[keep], ids[keep].astype(np.int64), scores[keep].astype(np.float32)))
        collector.check(sum(len(p[0]) for p in parts), copies=2 if self_search else 1)
        collector.advance()
    _add_parts(parts, len(b), self_search, collector)
