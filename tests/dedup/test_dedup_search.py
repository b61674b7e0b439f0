"""Tests of hamkit.dedup.search: blockwise searches agree with brute force (full matrices on
small N), at block boundaries, at the threshold, across two sets, on empty input; faiss when
it is installed."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from hamkit.dedup import cosine_search
from hamkit.dedup.hashing import hamming
from hamkit.dedup.search import (
    HnswConfig,
    IvfConfig,
    Pairs,
    cosine_cross_pairs,
    cosine_pairs,
    faiss_available,
    hamming_cross_pairs,
    hamming_pairs,
)
from hamkit.errors import DataError

needs_faiss = pytest.mark.skipif(not faiss_available(), reason="faiss is not installed")


def embeddings(n: int, d: int = 32, planted: int = 10, random_state: int = 0, noise: float = 0.05) -> np.ndarray:
    """Unit rows; rows n-planted.. are noisy copies of random earlier rows."""
    rng = np.random.default_rng(random_state)
    emb = rng.standard_normal((n, d)).astype(np.float32)
    sources = rng.choice(n - planted, planted, replace=False)
    emb[n - planted :] = emb[sources] + noise * np.linalg.norm(emb[sources], axis=1, keepdims=True) * (
        rng.standard_normal((planted, d)).astype(np.float32) / np.sqrt(d)
    )
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def brute_cosine(a: np.ndarray, b: np.ndarray, threshold: float, self_search: bool):
    sims = a @ b.T
    hit = sims >= np.float32(threshold)
    if self_search:
        hit &= np.triu(np.ones_like(hit), k=1)
    i, j = np.nonzero(hit)
    return i, j, sims[i, j]


def hashes_with_near_duplicates(n: int, planted: int, random_state: int = 0) -> np.ndarray:
    rng = np.random.default_rng(random_state)
    hashes = rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64).view(np.uint64)
    for k in range(planted):  # copy a random hash and flip 0..6 random bits
        src = rng.integers(0, n - planted)
        flips = rng.choice(64, rng.integers(0, 7), replace=False)
        mask = np.uint64(sum(1 << int(f) for f in flips))
        hashes[n - planted + k] = hashes[src] ^ mask
    return hashes


def brute_hamming(a: np.ndarray, b: np.ndarray, max_distance: int, self_search: bool):
    dist = hamming(a[:, None], b[None, :]).astype(np.int64)
    hit = dist <= max_distance
    if self_search:
        hit &= np.triu(np.ones_like(hit), k=1)
    i, j = np.nonzero(hit)
    return i, j, dist[i, j]


def assert_same(pairs: Pairs, expected, exact_scores: bool = False) -> None:
    i, j, score = expected
    np.testing.assert_array_equal(pairs.i, i)
    np.testing.assert_array_equal(pairs.j, j)
    if exact_scores:
        np.testing.assert_array_equal(pairs.score, score)
    else:
        np.testing.assert_allclose(pairs.score, score, rtol=0, atol=1e-5)


# ------------------------------------------------------------------ cosine


@pytest.mark.parametrize("block_size", [1, 7, 64, 299, 300, 301, 4096])
def test_cosine_pairs_agree_with_brute_force_across_block_sizes(block_size: int) -> None:
    emb = embeddings(300, planted=15)
    pairs = cosine_pairs(emb, 0.9, block_size=block_size, backend="numpy")
    assert len(pairs) >= 15
    assert_same(pairs, brute_cosine(emb, emb, 0.9, True))
    assert pairs.i.dtype == np.int64 and pairs.score.dtype == np.float32
    assert (pairs.i < pairs.j).all() and pairs.exact and pairs.metric == "cosine"


def test_cosine_pairs_lower_threshold_many_pairs_and_sorted() -> None:
    emb = embeddings(120, d=4, planted=0, random_state=3)  # 4-d: many pairs above 0.5
    pairs = cosine_pairs(emb, 0.5, block_size=16)
    assert len(pairs) > 500
    assert_same(pairs, brute_cosine(emb, emb, 0.5, True))
    keys = pairs.i * 1000 + pairs.j
    assert (np.diff(keys) > 0).all()


def test_cosine_threshold_is_inclusive_in_float32() -> None:
    emb = np.array([[1, 0], [0.6, 0.8], [0, 1]], dtype=np.float32)
    at = cosine_pairs(emb, float(np.float32(0.6)))
    assert (at.i.tolist(), at.j.tolist()) == ([0, 1], [1, 2])
    assert at.score[0] == np.float32(0.6)
    above = cosine_pairs(emb, float(np.nextafter(np.float32(0.6), np.float32(1))))
    assert (above.i.tolist(), above.j.tolist()) == ([1], [2])
    assert len(cosine_pairs(np.array([[1.0, 0.0], [1.0, 0.0]]), 1.0)) == 1  # identical rows


def test_cosine_cross_pairs_agree_with_brute_force() -> None:
    both = embeddings(200, planted=20, random_state=4)
    a, b = both[:90], both[90:]
    for block_size in (1, 13, 2048):
        pairs = cosine_cross_pairs(a, b, 0.9, block_size=block_size)
        assert_same(pairs, brute_cosine(a, b, 0.9, False))
    forward = cosine_cross_pairs(b, a, 0.9)
    assert len(forward) == len(cosine_cross_pairs(a, b, 0.9))


def test_cosine_cross_pairs_finds_only_pairs_between_sets() -> None:
    base = embeddings(40, planted=0, random_state=5)
    a = np.vstack([base[:20], base[:1]])  # a holds a duplicate of itself: row 20 == row 0
    pairs = cosine_cross_pairs(a, base[20:], 0.99)
    assert len(pairs) == 0
    pairs = cosine_cross_pairs(a, base[:3], 0.99)
    assert list(zip(pairs.i.tolist(), pairs.j.tolist())) == [(0, 0), (1, 1), (2, 2), (20, 0)]


def test_cosine_empty_and_single_inputs() -> None:
    assert len(cosine_pairs(np.zeros((0, 8), dtype=np.float32), 0.9)) == 0
    assert len(cosine_pairs(np.eye(1, 8, dtype=np.float32), 0.9)) == 0
    assert len(cosine_cross_pairs(np.eye(3, 8), np.zeros((0, 8)), 0.9)) == 0
    empty = cosine_cross_pairs(np.zeros((0, 8)), np.eye(3, 8), 0.9)
    assert empty.i.dtype == np.int64 and empty.score.dtype == np.float32


def test_cosine_normalize_option_and_unnormalised_error() -> None:
    emb = embeddings(50, planted=5, random_state=6)
    scaled = emb * np.linspace(0.5, 3, 50, dtype=np.float32)[:, None]
    with pytest.raises(DataError, match=r"row 0 has L2 norm 0\.5.*normalize=True"):
        cosine_pairs(scaled, 0.9)
    assert_same(cosine_pairs(scaled, 0.9, normalize=True), brute_cosine(emb, emb, 0.9, True))
    with pytest.raises(DataError, match="row 1 is all zeros"):
        cosine_pairs(np.array([[1.0, 0.0], [0.0, 0.0]]), 0.9, normalize=True)


@pytest.mark.parametrize(
    ("emb", "threshold", "message"),
    [
        (np.ones(8), 0.9, "2-D"),
        (np.array([[1.0, 0.0], [np.nan, 1.0]]), 0.9, "row 1 has NaN"),
        (np.eye(3), 0.0, r"\(0, 1\]"),
        (np.eye(3), 1.5, r"\(0, 1\]"),
        (np.eye(3), "high", "number"),
        (np.zeros((3, 0)), 0.9, "0 dimensions"),
    ],
)
def test_cosine_bad_input_is_explained(emb, threshold, message: str) -> None:
    with pytest.raises(DataError, match=message):
        cosine_pairs(emb, threshold)


def test_cosine_bad_options_and_dimension_mismatch() -> None:
    with pytest.raises(DataError, match="backend"):
        cosine_pairs(np.eye(3), 0.9, backend="gpu")
    with pytest.raises(DataError, match="block_size"):
        cosine_pairs(np.eye(3), 0.9, block_size=0)
    with pytest.raises(DataError, match="same model"):
        cosine_cross_pairs(np.eye(3, 4), np.eye(3, 5), 0.9)


def test_max_pairs_stops_a_too_loose_search() -> None:
    emb = embeddings(100, d=3, planted=0, random_state=7)
    with pytest.raises(DataError, match="max_pairs=50"):
        cosine_pairs(emb, 0.1, max_pairs=50, block_size=8)
    assert len(cosine_pairs(emb, 0.1, max_pairs=None)) > 50
    with pytest.raises(DataError, match="max_pairs=10"):
        hamming_pairs(np.zeros(20, dtype=np.uint64), 0, max_pairs=10, block_size=4)


# ------------------------------------------------------------------ Hamming


@pytest.mark.parametrize("block_size", [1, 5, 64, 400, 1000])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_hamming_pairs_agree_with_brute_force(block_size: int, n_jobs: int) -> None:
    hashes = hashes_with_near_duplicates(400, planted=30)
    pairs = hamming_pairs(hashes, 6, block_size=block_size, n_jobs=n_jobs)
    assert len(pairs) >= 30
    assert_same(pairs, brute_hamming(hashes, hashes, 6, True), exact_scores=True)
    assert pairs.metric == "hamming" and pairs.score.dtype == np.int32


def test_hamming_limits_zero_and_all_bits() -> None:
    hashes = np.array([5, 5, 7, 5, 2**64 - 1], dtype=np.uint64)
    zero = hamming_pairs(hashes, 0)
    assert list(zip(zero.i.tolist(), zero.j.tolist())) == [(0, 1), (0, 3), (1, 3)]
    everything = hamming_pairs(hashes, 64, block_size=2)
    assert len(everything) == 10
    assert_same(everything, brute_hamming(hashes, hashes, 64, True), exact_scores=True)


def test_hamming_cross_pairs_and_int64_input() -> None:
    hashes = hashes_with_near_duplicates(300, planted=40, random_state=2)
    a, b = hashes[:150], hashes[150:]
    for block_size in (1, 33, 512):
        pairs = hamming_cross_pairs(a, b, 8, block_size=block_size, n_jobs=2)
        assert_same(pairs, brute_hamming(a, b, 8, False), exact_scores=True)
    signed = hamming_cross_pairs(a.view(np.int64), b.view(np.int64), 8)
    np.testing.assert_array_equal(signed.j, hamming_cross_pairs(a, b, 8).j)
    assert len(hamming_cross_pairs(a, np.zeros(0, dtype=np.uint64), 8)) == 0
    assert len(hamming_pairs(a[:1], 8)) == 0


@pytest.mark.parametrize(
    ("hashes", "max_distance", "message"),
    [
        (np.zeros(3, dtype=np.uint64), 65, "0..64"),
        (np.zeros(3, dtype=np.uint64), -1, "0..64"),
        (np.zeros(3, dtype=np.uint64), 2.5, "integer"),
        (np.zeros(3, dtype=np.float64), 4, "hex_to_hash"),
        (np.zeros((3, 2), dtype=np.uint64), 4, "1-D"),
    ],
)
def test_hamming_bad_input_is_explained(hashes, max_distance, message: str) -> None:
    with pytest.raises(DataError, match=message):
        hamming_pairs(hashes, max_distance)


def test_pairs_validates_lengths() -> None:
    with pytest.raises(DataError, match="same length"):
        Pairs(np.arange(2), np.arange(3), np.zeros(2))
    with pytest.raises(DataError, match="metric"):
        Pairs(np.arange(1), np.arange(1), np.zeros(1), metric="l2")


# ------------------------------------------------------------------ faiss


def test_missing_faiss_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    assert not faiss_available()
    with pytest.raises(DataError, match=r"pip install"):
        cosine_pairs(np.eye(3, dtype=np.float32), 0.9, backend="faiss")
    monkeypatch.setattr(cosine_search, "FAISS_APPROX_MIN_N", 2)
    assert cosine_pairs(np.eye(3, dtype=np.float32), 0.9, backend="auto").exact  # falls back to numpy


@needs_faiss
def test_faiss_flat_agrees_with_numpy() -> None:
    emb = embeddings(500, planted=25, random_state=8)
    pairs = cosine_pairs(emb, 0.9, backend="faiss")
    assert pairs.exact
    assert_same(pairs, brute_cosine(emb, emb, 0.9, True))
    a, b = emb[:200], emb[200:]
    assert_same(cosine_cross_pairs(a, b, 0.9, backend="faiss"), brute_cosine(a, b, 0.9, False))
    at = cosine_pairs(np.array([[1, 0], [0.6, 0.8]], dtype=np.float32), float(np.float32(0.6)), backend="faiss")
    assert len(at) == 1  # faiss keeps > radius: the threshold is still inclusive


@needs_faiss
def test_faiss_hnsw_finds_planted_duplicates_and_is_marked_approximate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emb = embeddings(800, d=16, planted=40, random_state=9)
    expected = brute_cosine(emb, emb, 0.95, True)
    pairs = cosine_pairs(emb, 0.95, backend="faiss-hnsw", hnsw=HnswConfig(k=8, m=16))
    assert not pairs.exact
    found = set(zip(pairs.i.tolist(), pairs.j.tolist()))
    truth = set(zip(expected[0].tolist(), expected[1].tolist()))
    assert found <= truth  # never a false pair, scores exact
    assert len(found & truth) >= 0.95 * len(truth)
    assert (pairs.i < pairs.j).all() and len(set(zip(pairs.i.tolist(), pairs.j.tolist()))) == len(pairs)
    cross = cosine_cross_pairs(emb[:400], emb[400:], 0.95, backend="faiss-hnsw")
    assert set(zip(cross.i.tolist(), cross.j.tolist())) <= set(
        zip(*brute_cosine(emb[:400], emb[400:], 0.95, False)[:2])
    )


@needs_faiss
def test_faiss_ivf_finds_planted_duplicates_from_either_end(monkeypatch: pytest.MonkeyPatch) -> None:
    emb = embeddings(3000, d=16, planted=60, random_state=10, noise=0.2)
    truth = set(zip(*brute_cosine(emb, emb, 0.95, True)[:2]))
    assert len(truth) >= 50
    full = cosine_pairs(emb, 0.95, backend="faiss-ivf", ivf=IvfConfig(nlist=32, nprobe=32))
    assert set(zip(full.i.tolist(), full.j.tolist())) == truth  # probing every cell is exact
    assert not full.exact
    one = cosine_pairs(emb, 0.95, backend="faiss-ivf", ivf=IvfConfig(nlist=32, nprobe=1))
    found = set(zip(one.i.tolist(), one.j.tolist()))
    assert found <= truth and len(found) >= 0.8 * len(truth)
    assert (one.i < one.j).all() and len(found) == len(one)  # found from both ends, kept once
    brute = emb[one.i] @ emb[one.j].T
    np.testing.assert_allclose(one.score, np.diag(brute), rtol=1e-5)  # scores are exact
    again = cosine_pairs(emb, 0.95, backend="faiss-ivf", ivf=IvfConfig(nlist=32, nprobe=1))
    np.testing.assert_array_equal(again.i, one.i)  # seeded: the same index every time
    cross = cosine_cross_pairs(emb[:2000], emb[2000:], 0.95, backend="faiss-ivf", ivf=IvfConfig(nlist=8, nprobe=8))
    assert_same(cross, brute_cosine(emb[:2000], emb[2000:], 0.95, False))
    monkeypatch.setattr(cosine_search, "FAISS_APPROX_MIN_N", 1000)  # 'auto' and 'faiss' switch to IVF from there
    assert not cosine_pairs(emb, 0.95, backend="auto").exact
    assert not cosine_pairs(emb, 0.95, backend="faiss").exact
    assert cosine_pairs(emb[:999], 0.95, backend="auto").exact
    assert cosine_pairs(emb[:999], 0.95, backend="faiss").exact


@needs_faiss
@pytest.mark.parametrize("backend", ["faiss", "faiss-ivf", "faiss-hnsw"])
def test_faiss_backends_stop_a_too_loose_search_early(monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    from hamkit.dedup import faiss_search
    from hamkit.dedup.pairs import PairCollector

    monkeypatch.setattr(faiss_search, "QUERY_ROWS", 10)  # 10 query batches
    checked: list[int] = []
    real = PairCollector.check
    monkeypatch.setattr(
        PairCollector, "check", lambda self, count, copies=1: checked.append(count) or real(self, count, copies)
    )
    emb = embeddings(100, d=3, planted=0, random_state=7)
    with pytest.raises(DataError, match="max_pairs=50"):
        cosine_pairs(emb, 0.1, backend=backend, max_pairs=50)
    assert len(checked) < 10  # stopped after the first batches, not after all raw results


def test_ivf_config_default_cells_and_validation() -> None:
    assert IvfConfig().nlist_for(1_000_000) == 4096
    assert IvfConfig().nlist_for(100_000) == 1024
    assert IvfConfig().nlist_for(50) == 1  # too few points to train more cells
    assert IvfConfig(nlist=64).nlist_for(10) == 10
    with pytest.raises(DataError, match="nprobe must be"):
        IvfConfig(nprobe=0)
    with pytest.raises(DataError, match="nlist must be"):
        IvfConfig(nlist=True)
    with pytest.raises(DataError, match="random_state must be"):
        IvfConfig(random_state=-1)


def test_hnsw_config_validation() -> None:
    with pytest.raises(DataError, match="k must be"):
        HnswConfig(k=0)


def test_progress_bars_count_the_work(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from hamkit.dedup.pairs import PairCollector

    totals: dict[str, tuple[int, int]] = {}
    real_start, real_advance = PairCollector.start, PairCollector.advance

    def start(self, total, unit):
        totals[self.what] = (total, 0)
        real_start(self, total, unit)

    def advance(self, done=1):
        total, seen = totals[self.what]
        totals[self.what] = (total, seen + done)
        real_advance(self, done)

    monkeypatch.setattr(PairCollector, "start", start)
    monkeypatch.setattr(PairCollector, "advance", advance)
    emb = embeddings(50, planted=5, random_state=3)
    assert_same(cosine_pairs(emb, 0.9, block_size=8, progress=True), brute_cosine(emb, emb, 0.9, True))
    assert totals["cosine_pairs"] == (28, 28)  # 7 row blocks: 7 + 6 + ... + 1 tiles of the upper triangle
    cosine_cross_pairs(emb[:20], emb[20:], 0.9, block_size=8, progress=True)
    assert totals["cosine_cross_pairs"] == (12, 12)  # 3 x 4 tiles
    hamming_pairs(hashes_with_near_duplicates(100, 5), 4, block_size=16, progress=True)
    assert totals["hamming_pairs"] == (7, 7)
    assert "search" in capsys.readouterr().err  # a tqdm bar was drawn on stderr
    cosine_pairs(emb, 0.9, block_size=8)
    assert capsys.readouterr().err == ""  # no bar by default
    if faiss_available():
        cosine_pairs(emb, 0.9, backend="faiss-ivf", progress=True)
        assert totals["cosine_pairs"] == (1, 1)  # one query batch
