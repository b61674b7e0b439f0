"""Duplicate groups from pairs, and which member of each group to keep.

:func:`duplicate_groups` turns the :class:`~hamkit.dedup.search.Pairs` of a search into groups:

* ``mode="connected"``: connected components of the duplicate graph. Duplicates chain
  (A~B and B~C while A and C do not match), so every group reports its *weakest link*: the
  threshold at which it would split, i.e. the worst edge of its best spanning tree (the lowest
  similarity on a maximum spanning tree, or the largest Hamming distance on a minimum one). A
  weakest link well below the search threshold's neighbourhood is a sign of chaining.
* ``mode="representative"``: stricter; every member matches the group's representative directly
  (algorithm in :func:`duplicate_groups`).

:func:`keep_priority` ranks items by a keep policy; :func:`choose_kept` keeps the best-ranked
member of each group and every item that is in no group. Pass the same ranking as
``priority`` to :func:`duplicate_groups` to make each representative the member that is kept.

Examples:
    >>> from hamkit.dedup.search import Pairs
    >>> pairs = Pairs(np.array([0, 1]), np.array([1, 2]), np.array([0.99, 0.95]))  # 0~1, 1~2
    >>> [(g.members, round(g.weakest_link, 2)) for g in duplicate_groups(4, pairs)]
    [((0, 1, 2), 0.95)]
    >>> kept, removed = choose_kept(duplicate_groups(4, pairs), n=4)
    >>> kept.tolist(), removed.tolist()
    ([0, 3], [1, 2])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

from hamkit.dedup.search import Pairs
from hamkit.errors import DataError

__all__ = [
    "DuplicateGroup",
    "GroupMode",
    "KeepPolicy",
    "duplicate_groups",
    "keep_priority",
    "choose_kept",
]

GroupMode = Literal["connected", "representative"]
"""How :func:`duplicate_groups` forms groups."""

KeepPolicy = Literal["first", "largest", "prefer"]
"""Which member of a group :func:`choose_kept` keeps."""


@dataclass(frozen=True)
class DuplicateGroup:
    """A group of two or more items that duplicate each other.

    Attributes:
        members: Item indices, ascending.
        representative: The member with the best priority (default: the lowest index); in
            ``"representative"`` mode every other member matches it directly.
        weakest_link: ``"connected"``: the worst edge score of the group's best spanning tree
            (lowest similarity / largest Hamming distance), the threshold at which the group
            splits. ``"representative"``: the worst score between the representative and a member.

    Examples:
        >>> DuplicateGroup((3, 7), 3, 0.97).size
        2
    """

    members: tuple[int, ...]
    representative: int
    weakest_link: float | int

    @property
    def size(self) -> int:
        """Number of members."""
        return len(self.members)


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise DataError(f"n (the number of items) must be a non-negative integer, got {n!r}")
    return int(n)


def _check_priority(priority: np.ndarray | None, n: int) -> np.ndarray:
    if priority is None:
        return np.arange(n, dtype=np.int64)
    array = np.asarray(priority)
    if array.shape != (n,) or not np.issubdtype(array.dtype, np.number):
        raise DataError(
            f"priority must be a numeric array of length n={n} (lower = preferred, e.g. from "
            f"keep_priority()), got shape {array.shape} and dtype {array.dtype}"
        )
    return array


def _unique_edges(n: int, pairs: Pairs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated edges ``(i < j)``, each once with its best score, sorted by ``(i, j)``."""
    i, j, score = pairs.i, pairs.j, pairs.score
    bad = (i < 0) | (i >= n) | (j < 0) | (j >= n)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"pair {k} ({int(i[k])}, {int(j[k])}) has an index outside 0..{n - 1}; "
            f"pass the number of items searched as n"
        )
    loops = i == j
    if loops.any():
        k = int(np.flatnonzero(loops)[0])
        raise DataError(f"pair {k} joins item {int(i[k])} to itself; a pair needs two items")
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    # best score first within each (lo, hi), so np.unique's first index picks it
    order = np.lexsort((-score if pairs.higher_is_better else score, hi, lo))
    lo, hi, score = lo[order], hi[order], score[order]
    _, first = np.unique(lo * np.int64(max(n, 1)) + hi, return_index=True)
    return lo[first], hi[first], score[first]


def _best_members(labels: np.ndarray, priority: np.ndarray, count: int) -> np.ndarray:
    """Per label ``0..count-1``, the member index with the lowest priority (then index)."""
    items = np.arange(len(labels))
    order = np.lexsort((items, priority, labels))
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    best = np.full(count, -1, dtype=np.int64)
    best[sorted_labels[starts]] = order[starts]
    return best


def _connected(
    n: int, lo: np.ndarray, hi: np.ndarray, score: np.ndarray, higher: bool, priority: np.ndarray
) -> list[DuplicateGroup]:
    graph = csr_matrix((np.ones(len(lo), dtype=np.int8), (lo, hi)), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels, minlength=count)
    # best spanning tree: scipy drops zero weights, so map scores to weights >= 1
    weight = (2.0 - score.astype(np.float64)) if higher else (score.astype(np.float64) + 1.0)
    if len(weight) and higher and weight.min() <= 0:
        raise DataError("cosine scores must be at most 1 (they are similarities of unit vectors)")
    tree = minimum_spanning_tree(csr_matrix((weight, (lo, hi)), shape=(n, n))).tocoo()
    worst = np.zeros(count, dtype=np.float64)
    np.maximum.at(worst, labels[tree.row], tree.data)
    weakest = (2.0 - worst) if higher else (worst - 1.0)
    best = _best_members(labels, priority, count)
    order = np.argsort(labels, kind="stable")  # members ascending within each label
    bounds = np.r_[0, np.cumsum(sizes)]
    groups = []
    for label in np.flatnonzero(sizes >= 2):
        members = order[bounds[label] : bounds[label + 1]]
        link: float | int = float(np.float32(weakest[label])) if higher else int(round(weakest[label]))
        groups.append(DuplicateGroup(tuple(members.tolist()), int(best[label]), link))
    groups.sort(key=lambda g: g.members[0])
    return groups


def _representative(
    n: int, lo: np.ndarray, hi: np.ndarray, score: np.ndarray, higher: bool, priority: np.ndarray
) -> list[DuplicateGroup]:
    rows = np.r_[lo, hi]
    cols = np.r_[hi, lo]
    scores = np.r_[score, score]
    order = np.lexsort((cols, rows))
    rows, cols, scores = rows[order], cols[order], scores[order]
    indptr = np.searchsorted(rows, np.arange(n + 1))
    linked = np.unique(rows)
    candidates = linked[np.lexsort((linked, priority[linked]))]
    assigned = np.zeros(n, dtype=bool)
    groups = []
    for rep in candidates.tolist():  # loops over items that have a duplicate only
        if assigned[rep]:
            continue
        nbrs = cols[indptr[rep] : indptr[rep + 1]]
        free = ~assigned[nbrs]
        if not free.any():
            continue
        members = np.r_[rep, nbrs[free]]
        assigned[members] = True
        edge_scores = scores[indptr[rep] : indptr[rep + 1]][free]
        link: float | int = float(edge_scores.min()) if higher else int(edge_scores.max())
        groups.append(DuplicateGroup(tuple(np.sort(members).tolist()), rep, link))
    groups.sort(key=lambda g: g.members[0])
    return groups


def duplicate_groups(
    n: int,
    pairs: Pairs,
    *,
    mode: GroupMode = "connected",
    priority: np.ndarray | None = None,
) -> list[DuplicateGroup]:
    """Group ``n`` items into duplicate groups (of two or more) from the pairs of a search.

    ``"connected"``: the connected components of the graph whose edges are the pairs
    (``scipy.sparse.csgraph.connected_components``); the weakest link comes from a maximum
    spanning tree for similarities, a minimum one for Hamming distances
    (``scipy.sparse.csgraph.minimum_spanning_tree``).

    ``"representative"`` (leader clustering, deterministic): visit the items that have a
    duplicate in order of ``priority`` (then index). An item not yet in a group, with at
    least one neighbour not yet in a group, becomes a representative, and those free neighbours
    join its group. So every member matches its representative directly; members of a chain
    that do not match it are left for later representatives (or stay alone). A pair with
    both ends already assigned does not merge groups.

    Pairs may come in any order, with ``i > j`` and repeated (the best score counts).

    Args:
        n: Number of items searched (indices run ``0..n-1``).
        pairs: The pairs (:func:`~hamkit.dedup.search.cosine_pairs`, ``hamming_pairs``, ...).
        mode: ``"connected"`` or ``"representative"``.
        priority: ``(n,)`` numbers, lower = preferred as representative (e.g. from
            :func:`keep_priority`); default: the lower index.

    Returns:
        The groups, sorted by their first member; items in no pair are in no group.

    Raises:
        DataError: On an index outside ``0..n-1``, a pair of an item with itself, a bad
            ``priority`` or an unknown ``mode``.

    Examples:
        >>> from hamkit.dedup.search import Pairs
        >>> chain = Pairs(np.array([0, 1]), np.array([1, 2]), np.array([2, 3]), metric="hamming")
        >>> [g.members for g in duplicate_groups(3, chain)]
        [(0, 1, 2)]
        >>> [g.members for g in duplicate_groups(3, chain, mode="representative")]
        [(0, 1)]
    """
    n = _check_n(n)
    if mode not in ("connected", "representative"):
        raise DataError(f"mode must be 'connected' or 'representative', got {mode!r}")
    if not isinstance(pairs, Pairs):
        raise DataError(f"pairs must be a hamkit.dedup.search.Pairs, got {type(pairs).__name__}")
    rank = _check_priority(priority, n)
    lo, hi, score = _unique_edges(n, pairs)
    if len(lo) == 0:
        return []
    build = _connected if mode == "connected" else _representative
    return build(n, lo, hi, score, pairs.higher_is_better, rank)


def _column(values: Sequence[object] | np.ndarray | None, n: int, name: str) -> np.ndarray | None:
    if values is None:
        return None
    array = np.asarray(values)
    if len(array) != n:
        raise DataError(f"{name} has {len(array)} entries but there are n={n} items; give one per item")
    return array


def keep_priority(
    n: int,
    *,
    policy: KeepPolicy = "first",
    paths: Sequence[str | os.PathLike[str]] | None = None,
    file_sizes: Sequence[int] | np.ndarray | None = None,
    resolutions: Sequence[tuple[int, int]] | np.ndarray | None = None,
    preferred: Sequence[bool] | np.ndarray | None = None,
) -> np.ndarray:
    """Rank ``n`` items by a keep policy: ``rank[k]`` is item ``k``'s place (0 = kept first).

    * ``"first"``: by path (sorted as strings), then index (without paths: by index).
    * ``"largest"``: largest resolution (``width * height``) first, then largest file size,
      then path, then index. Needs ``resolutions`` or ``file_sizes``.
    * ``"prefer"``: items where ``preferred`` is True first (e.g. images already in a given
      split), then as ``"first"``.

    Args:
        n: Number of items.
        policy: ``"first"``, ``"largest"`` or ``"prefer"``.
        paths: One path per item.
        file_sizes: One size in bytes per item.
        resolutions: One ``(width, height)`` per item.
        preferred: One boolean per item.

    Returns:
        ``(n,)`` int64 ranks, a permutation of ``0..n-1``.

    Raises:
        DataError: On an unknown policy, a missing input the policy needs, or an input whose
            length is not ``n``.

    Examples:
        >>> keep_priority(3, policy="largest", resolutions=[(10, 10), (20, 20), (20, 20)],
        ...               file_sizes=[5, 1, 2]).tolist()
        [2, 1, 0]
    """
    n = _check_n(n)
    if policy not in ("first", "largest", "prefer"):
        raise DataError(f"policy must be 'first', 'largest' or 'prefer', got {policy!r}")
    index = np.arange(n, dtype=np.int64)
    keys: list[np.ndarray] = [index]  # np.lexsort: the last key is the primary one
    path_array = _column(None if paths is None else [os.fspath(p) for p in paths], n, "paths")
    if path_array is not None:
        path_rank = np.empty(n, dtype=np.int64)
        path_rank[np.argsort(path_array.astype(str), kind="stable")] = index
        keys.append(path_rank)
    if policy == "largest":
        sizes = _column(file_sizes, n, "file_sizes")
        res = _column(resolutions, n, "resolutions")
        if sizes is None and res is None:
            raise DataError("policy 'largest' needs resolutions (width, height) or file_sizes per item")
        if sizes is not None:
            keys.append(-sizes.astype(np.int64))
        if res is not None:
            if res.ndim != 2 or res.shape[1] != 2:
                raise DataError(f"resolutions must be (width, height) per item, got shape {res.shape}")
            keys.append(-(res[:, 0].astype(np.int64) * res[:, 1].astype(np.int64)))
    elif policy == "prefer":
        mask = _column(preferred, n, "preferred")
        if mask is None:
            raise DataError("policy 'prefer' needs preferred: one boolean per item")
        if mask.dtype != bool:
            raise DataError(f"preferred must be booleans, got dtype {mask.dtype}")
        keys.append(~mask)
    rank = np.empty(n, dtype=np.int64)
    rank[np.lexsort(keys)] = index
    return rank


def choose_kept(
    groups: Sequence[DuplicateGroup],
    *,
    n: int | None = None,
    policy: KeepPolicy = "first",
    paths: Sequence[str | os.PathLike[str]] | None = None,
    file_sizes: Sequence[int] | np.ndarray | None = None,
    resolutions: Sequence[tuple[int, int]] | np.ndarray | None = None,
    preferred: Sequence[bool] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``n`` items into kept and removed: one kept per group, every other item kept.

    The kept member of a group is the one :func:`keep_priority` ranks first (the
    representative is not consulted; pass the same ranking as ``priority`` to
    :func:`duplicate_groups` to make the two agree).

    Args:
        groups: Disjoint duplicate groups (from :func:`duplicate_groups`).
        n: Number of items; default: the length of the first of ``paths``, ``file_sizes``,
            ``resolutions``, ``preferred`` given.
        policy: ``"first"``, ``"largest"`` or ``"prefer"`` (see :func:`keep_priority`).
        paths: One path per item.
        file_sizes: One size in bytes per item.
        resolutions: One ``(width, height)`` per item.
        preferred: One boolean per item.

    Returns:
        ``(kept, removed)``: ascending int64 index arrays that partition ``0..n-1``.

    Raises:
        DataError: When ``n`` is unknown, a member is outside ``0..n-1`` or in two groups, or
            as :func:`keep_priority`.

    Examples:
        >>> groups = [DuplicateGroup((0, 2), 0, 1.0)]
        >>> kept, removed = choose_kept(groups, policy="prefer", preferred=[False, False, True])
        >>> kept.tolist(), removed.tolist()
        ([1, 2], [0])
    """
    if n is None:
        given = [c for c in (paths, file_sizes, resolutions, preferred) if c is not None]
        if not given:
            raise DataError("choose_kept needs n (the number of items) or one per-item input such as paths")
        n = len(given[0])
    n = _check_n(n)
    rank = keep_priority(
        n, policy=policy, paths=paths, file_sizes=file_sizes, resolutions=resolutions, preferred=preferred
    )
    if not groups:
        return np.arange(n, dtype=np.int64), np.zeros(0, dtype=np.int64)
    members = np.concatenate([np.asarray(g.members, dtype=np.int64) for g in groups])
    labels = np.repeat(np.arange(len(groups)), [len(g.members) for g in groups])
    outside = (members < 0) | (members >= n)
    if outside.any():
        k = int(np.flatnonzero(outside)[0])
        raise DataError(f"group {int(labels[k])} has member {int(members[k])} outside 0..{n - 1}")
    counts = np.bincount(members, minlength=n)
    if (counts > 1).any():
        item = int(np.flatnonzero(counts > 1)[0])
        raise DataError(f"item {item} is in more than one group; groups must be disjoint")
    best = members[_best_members(labels, rank[members], len(groups))]
    removed_mask = np.zeros(n, dtype=bool)
    removed_mask[members] = True
    removed_mask[best] = False
    return np.flatnonzero(~removed_mask).astype(np.int64), np.flatnonzero(removed_mask).astype(np.int64)
