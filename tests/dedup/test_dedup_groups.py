"""Tests of hamkit.dedup.groups: connected groups and their weakest link (chaining), the
stricter representative mode, keep policies, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from hamkit.dedup.groups import DuplicateGroup, choose_kept, duplicate_groups, keep_priority
from hamkit.dedup.search import Pairs, cosine_pairs
from hamkit.errors import DataError


def cos_pairs(edges: list[tuple[int, int, float]]) -> Pairs:
    i, j, s = zip(*edges)
    return Pairs(np.array(i), np.array(j), np.array(s), metric="cosine")


def ham_pairs(edges: list[tuple[int, int, int]]) -> Pairs:
    i, j, s = zip(*edges)
    return Pairs(np.array(i), np.array(j), np.array(s), metric="hamming")


def random_graph(n: int, edges: int, random_state: int, metric: str = "cosine") -> Pairs:
    rng = np.random.default_rng(random_state)
    i = rng.integers(0, n, edges)
    j = rng.integers(0, n, edges)
    keep = i != j
    score = rng.uniform(0.9, 1.0, edges) if metric == "cosine" else rng.integers(0, 11, edges)
    return Pairs(i[keep], j[keep], score[keep], metric=metric)


# ------------------------------------------------------------------ connected


def test_chain_is_one_group_with_its_weakest_link() -> None:
    pairs = cos_pairs([(0, 1, 0.99), (1, 2, 0.95), (3, 4, 0.97)])  # 0~1, 1~2, 0 !~ 2
    groups = duplicate_groups(6, pairs)
    assert [g.members for g in groups] == [(0, 1, 2), (3, 4)]
    assert [g.weakest_link for g in groups] == [pytest.approx(0.95), pytest.approx(0.97)]
    assert [g.representative for g in groups] == [0, 3]
    assert [g.size for g in groups] == [3, 2]


def test_weakest_link_uses_the_best_spanning_tree_not_the_worst_edge() -> None:
    # triangle: the 0.95 edge is redundant, the group splits only below 0.96
    cos = duplicate_groups(3, cos_pairs([(0, 1, 0.99), (1, 2, 0.95), (0, 2, 0.96)]))
    assert cos[0].weakest_link == pytest.approx(0.96)
    # Hamming: a minimum spanning tree; distances 1, 6 and 4 -> the group holds up to 4
    ham = duplicate_groups(3, ham_pairs([(0, 1, 1), (1, 2, 6), (0, 2, 4)]))
    assert ham[0].weakest_link == 4 and isinstance(ham[0].weakest_link, int)


def connected_at(pairs: Pairs, n: int, members: np.ndarray, limit: float) -> bool:
    """Whether ``members`` stay connected using only their edges that pass ``limit``."""
    inside = np.isin(pairs.i, members) & np.isin(pairs.j, members)
    passes = (pairs.score >= limit) if pairs.higher_is_better else (pairs.score <= limit)
    ok = inside & passes
    graph = csr_matrix((np.ones(ok.sum()), (pairs.i[ok], pairs.j[ok])), shape=(n, n))
    labels = connected_components(graph, directed=False)[1]
    return len(set(labels[members].tolist())) == 1


@pytest.mark.parametrize("metric", ["cosine", "hamming"])
def test_weakest_link_is_the_threshold_at_which_each_group_splits(metric: str) -> None:
    n = 60
    pairs = random_graph(n, 70, random_state=1, metric=metric)
    groups = duplicate_groups(n, pairs)
    assert len(groups) >= 3
    for group in groups:
        members = np.array(group.members)
        link = group.weakest_link
        assert connected_at(pairs, n, members, link)
        stricter = np.nextafter(np.float32(link), np.float32(2)) if metric == "cosine" else link - 1
        assert not connected_at(pairs, n, members, stricter)


def test_pairs_in_any_order_and_repeated_give_the_same_groups() -> None:
    pairs = random_graph(80, 90, random_state=2)
    reference = duplicate_groups(80, pairs)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(pairs))
    flipped = Pairs(
        np.r_[pairs.j[order], pairs.i[:5]],
        np.r_[pairs.i[order], pairs.j[:5]],
        np.r_[pairs.score[order], pairs.score[:5] - 0.5],  # worse repeats: the best score counts
    )
    for mode in ("connected", "representative"):
        assert duplicate_groups(80, flipped, mode=mode) == duplicate_groups(80, pairs, mode=mode)
    assert reference == duplicate_groups(80, pairs)
    assert [g.members[0] for g in reference] == sorted(g.members[0] for g in reference)


def test_no_pairs_no_groups() -> None:
    assert duplicate_groups(5, Pairs.empty()) == []
    assert duplicate_groups(0, Pairs.empty("hamming")) == []


# ------------------------------------------------------------------ representative


def test_representative_mode_splits_a_chain() -> None:
    pairs = ham_pairs([(0, 1, 2), (1, 2, 3), (2, 3, 1)])  # 0-1-2-3 chain
    assert [g.members for g in duplicate_groups(4, pairs)] == [(0, 1, 2, 3)]
    groups = duplicate_groups(4, pairs, mode="representative")
    assert [(g.members, g.representative, g.weakest_link) for g in groups] == [
        ((0, 1), 0, 2),
        ((2, 3), 2, 1),
    ]


def test_representative_follows_priority() -> None:
    pairs = cos_pairs([(0, 1, 0.97), (1, 2, 0.96)])
    groups = duplicate_groups(3, pairs, mode="representative", priority=np.array([2, 0, 1]))
    assert [(g.members, g.representative) for g in groups] == [((0, 1, 2), 1)]
    assert groups[0].weakest_link == pytest.approx(0.96)
    connected = duplicate_groups(3, pairs, priority=np.array([2, 0, 1]))
    assert connected[0].representative == 1


def test_representative_groups_match_their_representative_directly() -> None:
    n = 100
    pairs = random_graph(n, 150, random_state=3)
    edges = set(zip(pairs.i.tolist(), pairs.j.tolist())) | set(zip(pairs.j.tolist(), pairs.i.tolist()))
    groups = duplicate_groups(n, pairs, mode="representative")
    seen: set[int] = set()
    for g in groups:
        assert g.representative in g.members and g.size >= 2
        assert all((g.representative, m) in edges for m in g.members if m != g.representative)
        assert seen.isdisjoint(g.members)
        seen |= set(g.members)
    connected = {m for g in duplicate_groups(n, pairs) for m in g.members}
    assert seen <= connected and len(groups) >= len(duplicate_groups(n, pairs))


@pytest.mark.parametrize(
    ("pairs", "kwargs", "message"),
    [
        (ham_pairs([(0, 5, 1)]), {}, "outside 0..4"),
        (ham_pairs([(2, 2, 1)]), {}, "itself"),
        (ham_pairs([(0, 1, 1)]), {"mode": "clique"}, "mode"),
        (ham_pairs([(0, 1, 1)]), {"priority": np.arange(3)}, "length n=5"),
    ],
)
def test_duplicate_groups_bad_input(pairs: Pairs, kwargs: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        duplicate_groups(5, pairs, **kwargs)


# ------------------------------------------------------------------ keep policies


def test_first_policy_keeps_first_path_and_all_singletons() -> None:
    groups = [DuplicateGroup((0, 1, 3), 0, 0.95), DuplicateGroup((4, 5), 4, 0.99)]
    paths = ["b/x.jpg", "a/y.jpg", "s.jpg", "c.jpg", "z.jpg", "m.jpg"]
    kept, removed = choose_kept(groups, paths=paths)
    assert kept.tolist() == [1, 2, 5] and removed.tolist() == [0, 3, 4]
    kept, removed = choose_kept(groups, n=7)  # no paths: the lowest index
    assert kept.tolist() == [0, 2, 4, 6] and removed.tolist() == [1, 3, 5]


def test_largest_policy_resolution_then_size_then_path() -> None:
    groups = [DuplicateGroup((0, 1, 2), 0, 1.0), DuplicateGroup((3, 4), 3, 1.0), DuplicateGroup((5, 6), 5, 1.0)]
    resolutions = [(600, 450), (800, 600), (800, 600), (100, 100), (100, 100), (50, 50), (50, 50)]
    sizes = [9000, 100, 200, 10, 10, 7, 7]
    paths = ["a", "b", "c", "e", "d", "g", "f"]
    kept, _ = choose_kept(groups, policy="largest", resolutions=resolutions, file_sizes=sizes, paths=paths)
    assert kept.tolist() == [2, 4, 6]  # larger file among equal resolutions; path breaks the last tie
    kept, _ = choose_kept(groups, policy="largest", file_sizes=sizes)
    assert kept.tolist() == [0, 3, 5]
    with pytest.raises(DataError, match="resolutions"):
        choose_kept(groups, policy="largest", n=7)


def test_prefer_policy_then_first() -> None:
    groups = [DuplicateGroup((0, 1, 2), 0, 1.0), DuplicateGroup((3, 4), 3, 1.0)]
    preferred = np.array([False, True, True, False, False])
    kept, removed = choose_kept(groups, policy="prefer", preferred=preferred, paths=list("edcba"))
    assert kept.tolist() == [2, 4] and removed.tolist() == [0, 1, 3]
    with pytest.raises(DataError, match="preferred"):
        choose_kept(groups, policy="prefer", n=5)


def test_keep_priority_is_a_permutation_and_drives_representatives() -> None:
    rank = keep_priority(4, policy="first", paths=["d", "c", "b", "a"])
    assert rank.tolist() == [3, 2, 1, 0]
    pairs = ham_pairs([(0, 1, 0), (1, 2, 0), (2, 3, 0)])
    groups = duplicate_groups(4, pairs, priority=rank)
    kept, _ = choose_kept(groups, paths=["d", "c", "b", "a"])
    assert groups[0].representative == 3 and kept.tolist() == [3]


@pytest.mark.parametrize(
    ("groups", "kwargs", "message"),
    [
        ([DuplicateGroup((0, 1), 0, 1.0)], {}, "needs n"),
        ([DuplicateGroup((0, 9), 0, 1.0)], {"n": 3}, "outside"),
        ([DuplicateGroup((0, 1), 0, 1.0), DuplicateGroup((1, 2), 1, 1.0)], {"n": 3}, "more than one group"),
        ([], {"n": 3, "policy": "random"}, "policy"),
        ([], {"paths": ["a", "b"], "file_sizes": [1], "policy": "largest"}, "file_sizes has 1"),
    ],
)
def test_choose_kept_bad_input(groups, kwargs: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        choose_kept(groups, **kwargs)


def test_end_to_end_search_groups_and_keep() -> None:
    rng = np.random.default_rng(5)
    emb = rng.standard_normal((50, 24)).astype(np.float32)
    emb[40:45] = emb[:5] + 0.02 * rng.standard_normal((5, 24)).astype(np.float32)  # 5 duplicates
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    groups = duplicate_groups(50, cosine_pairs(emb, 0.95))
    assert [g.members for g in groups] == [(k, 40 + k) for k in range(5)]
    kept, removed = choose_kept(groups, n=50)
    assert removed.tolist() == list(range(40, 45)) and len(kept) == 45
