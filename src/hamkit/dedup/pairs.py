"""The result type of every duplicate search: :class:`Pairs`, and the collector that builds it.

Examples:
    >>> pairs = Pairs(np.array([0, 1]), np.array([3, 2]), np.array([0.97, 0.94], dtype=np.float32))
    >>> len(pairs), pairs.metric, pairs.exact
    (2, 'cosine', True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from hamkit.errors import DataError

__all__ = ["Pairs", "PairCollector", "unique_upper_pairs", "equal_value_pairs", "Metric"]

Metric = Literal["cosine", "hamming", "aligned"]
"""What a :class:`Pairs` score is: a cosine similarity, a Hamming distance, or a verified pair's
aligned-content score."""


@dataclass(frozen=True, eq=False)
class Pairs:
    """Pairs of items found by a search, sorted by ``i`` then ``j``.

    Attributes:
        i: int64 indices of the first items (into the embeddings / hashes; in a cross search
            into the first set). ``i < j`` in a self search.
        j: int64 indices of the second items (in a cross search into the second set).
        score: float32 cosine similarities (``metric="cosine"``, higher = more alike), int32
            Hamming distances (``metric="hamming"``, lower = more alike) or float32 aligned-content
            scores of verified pairs (``metric="aligned"``, higher = more alike, see
            :mod:`hamkit.dedup.verify`).
        metric: ``"cosine"``, ``"hamming"`` or ``"aligned"``.
        exact: False when an approximate index (IVF, HNSW) may have missed pairs.

    Examples:
        >>> pairs = Pairs(np.array([0]), np.array([2]), np.array([0.97], dtype=np.float32))
        >>> len(pairs), pairs.higher_is_better
        (1, True)
    """

    i: np.ndarray
    j: np.ndarray
    score: np.ndarray
    metric: Metric = "cosine"
    exact: bool = True

    def __post_init__(self) -> None:
        i = np.asarray(self.i, dtype=np.int64).reshape(-1)
        j = np.asarray(self.j, dtype=np.int64).reshape(-1)
        if self.metric not in ("cosine", "hamming", "aligned"):
            raise DataError(f"Pairs: metric must be 'cosine', 'hamming' or 'aligned', got {self.metric!r}")
        dtype = np.int32 if self.metric == "hamming" else np.float32
        score = np.asarray(self.score, dtype=dtype).reshape(-1)
        if not len(i) == len(j) == len(score):
            raise DataError(f"Pairs: i, j and score must have the same length, got {len(i)}, {len(j)}, {len(score)}")
        object.__setattr__(self, "i", i)
        object.__setattr__(self, "j", j)
        object.__setattr__(self, "score", score)

    def __len__(self) -> int:
        return len(self.i)

    @property
    def higher_is_better(self) -> bool:
        """True for similarities (cosine, aligned), False for distances (Hamming)."""
        return self.metric != "hamming"

    @classmethod
    def empty(cls, metric: Metric = "cosine", exact: bool = True) -> Pairs:
        """No pairs.

        Args:
            metric: ``"cosine"``, ``"hamming"`` or ``"aligned"``.
            exact: Whether the (empty) result is exact.

        Returns:
            A :class:`Pairs` of length 0.

        Examples:
            >>> len(Pairs.empty("hamming"))
            0
        """
        dtype = np.int32 if metric == "hamming" else np.float32
        empty = np.zeros(0, dtype=np.int64)
        return cls(empty, empty, np.zeros(0, dtype=dtype), metric=metric, exact=exact)


@dataclass
class PairCollector:
    """Gathers the pairs of a search part by part and enforces the ``max_pairs`` cap.

    Every backend of :mod:`hamkit.dedup.search` feeds its per-tile or per-query-batch results
    here, so the cap, the progress bar and the final sort are the same for all of them.

    Attributes:
        max_pairs: Raise once more pairs than this have been added (``None``: no cap).
        what: The caller's name, for the error message.
        progress: Show a tqdm progress bar between :meth:`start` and :meth:`close`.
        parts: The ``(i, j, score)`` parts added so far.
        count: Pairs added so far.

    Examples:
        >>> collector = PairCollector(max_pairs=None, what="demo")
        >>> collector.add((np.array([2]), np.array([5]), np.array([0.95], dtype=np.float32)))
        >>> collector.add((np.array([0]), np.array([1]), np.array([0.99], dtype=np.float32)))
        >>> collector.result("cosine").i.tolist()
        [0, 2]
    """

    max_pairs: int | None
    what: str
    progress: bool = False
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    count: int = 0
    _bar: Any = field(default=None, repr=False)

    def start(self, total: int, unit: str) -> None:
        """Open the progress bar (when :attr:`progress` is set) for ``total`` units of work.

        Args:
            total: Units of work of the whole search (tiles, query batches).
            unit: Their name, for the bar.
        """
        if self.progress and self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc="search", unit=unit, leave=False)

    def advance(self, done: int = 1) -> None:
        """Move the progress bar on by ``done`` units (no-op without a bar).

        Args:
            done: Units of work just finished.
        """
        if self._bar is not None:
            self._bar.update(done)

    def close(self) -> None:
        """Close the progress bar, if any (also after an error)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def add(self, part: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Add one ``(i, j, score)`` part.

        Args:
            part: Equal-length arrays of first indices, second indices and scores.

        Raises:
            DataError: When the total passes ``max_pairs``.
        """
        if len(part[0]) == 0:
            return
        self.count += len(part[0])
        self.check(self.count)
        self.parts.append(part)

    def check(self, count: int, copies: int = 1) -> None:
        """Raise once ``count`` pairs, each possibly held ``copies`` times, pass ``max_pairs``.

        A backend that gathers raw results before :meth:`add` (an approximate index sees a pair
        from both ends: ``copies=2``) calls this as it goes, so that a too-loose threshold fails
        before the raw results fill the memory.

        Args:
            count: Pairs (or raw results) gathered so far.
            copies: How many times one pair may be among them.

        Raises:
            DataError: When ``count > copies * max_pairs``.
        """
        if self.max_pairs is not None and count > copies * self.max_pairs:
            raise DataError(
                f"{self.what} found more than max_pairs={self.max_pairs:,} pairs; the threshold "
                "is too loose for duplicate search: make it stricter, or pass a larger "
                "max_pairs (None for no limit) if you have the memory"
            )

    def result(self, metric: Literal["cosine", "hamming"], exact: bool = True) -> Pairs:
        """All pairs added, as one :class:`Pairs` sorted by ``(i, j)``.

        Args:
            metric: ``"cosine"`` or ``"hamming"``.
            exact: False when the backend was approximate.

        Returns:
            The pairs.
        """
        if not self.parts:
            return Pairs.empty(metric, exact)
        i = np.concatenate([p[0] for p in self.parts]).astype(np.int64, copy=False)
        j = np.concatenate([p[1] for p in self.parts]).astype(np.int64, copy=False)
        score = np.concatenate([p[2] for p in self.parts])
        order = np.lexsort((j, i))
        return Pairs(i[order], j[order], score[order], metric=metric, exact=exact)


def unique_upper_pairs(
    i: np.ndarray,
    j: np.ndarray,
    score: np.ndarray,
    n: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orient self-search pairs as ``(min, max)`` and keep each pair once.

    An index searched with every item as a query finds a pair from both of its ends; the
    approximate backends use this to report it once.

    Args:
        i: First indices.
        j: Second indices (``i != j``).
        score: The pairs' scores (equal for both orientations).
        n: Number of items (indices are below it).

    Returns:
        ``(i, j, score)`` with ``i < j``, each pair once, sorted by ``(i, j)``.

    Examples:
        >>> i, j, s = unique_upper_pairs(np.array([3, 1]), np.array([1, 3]), np.array([0.9, 0.9]), 4)
        >>> i.tolist(), j.tolist()
        ([1], [3])
    """
    lo, hi = np.minimum(i, j).astype(np.int64), np.maximum(i, j).astype(np.int64)
    _, first = np.unique(lo * n + hi, return_index=True)
    return lo[first], hi[first], score[first]


def equal_value_pairs(a: np.ndarray, b: np.ndarray, *, self_search: bool) -> Pairs:
    """Pairs of equal values (digests), score 1.0: all pairs within each set of equal values.

    Args:
        a: Values of the first set (any type that converts to ``str``).
        b: Values of the second set (ignored in a self search: pass ``a`` again).
        self_search: Pairs within ``a`` (each once, ``i < j``) instead of between ``a`` and ``b``.

    Returns:
        The pairs, sorted by ``(i, j)``.

    Examples:
        >>> digests = np.array(["x", "y", "x", "x"], dtype=object)
        >>> pairs = equal_value_pairs(digests, digests, self_search=True)
        >>> list(zip(pairs.i.tolist(), pairs.j.tolist()))
        [(0, 2), (0, 3), (2, 3)]
    """
    values = np.concatenate([a, b]) if not self_search else a
    codes = np.unique(values.astype(str), return_inverse=True)[1]
    code_a = codes[: len(a)]
    code_b = codes[len(a) :] if not self_search else code_a
    order_b = np.argsort(code_b, kind="stable")
    sorted_b = code_b[order_b]
    left = np.searchsorted(sorted_b, code_a, side="left")
    right = np.searchsorted(sorted_b, code_a, side="right")
    counts = right - left
    i = np.repeat(np.arange(len(a)), counts)
    starts = np.repeat(left - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    j = order_b[np.arange(counts.sum()) + starts]
    if self_search:
        keep = i < j
        i, j = i[keep], j[keep]
    order = np.lexsort((j, i))
    return Pairs(i[order], j[order], np.ones(len(order), dtype=np.float32), "cosine", True)
