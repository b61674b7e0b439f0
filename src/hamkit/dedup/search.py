"""Find every duplicate pair: cosine similarity of embeddings or Hamming distance of hashes.

No function here builds the N x N matrix. The exact numpy search walks the upper triangle of the
similarity matrix in ``block_size x block_size`` tiles (one float32 matrix product each, the
BLAS using every core), keeps a tile's rows whose maximum reaches the threshold and extracts
their pairs with ``np.nonzero``. Memory is ``O(N*d + block_size**2)`` plus the pairs found; a
``max_pairs`` guard stops a threshold so low that the result itself would not fit.

Hamming search is the same walk over packed uint64 hashes: XOR of a tile (``np.bitwise_xor.outer``)
then popcount (``np.bitwise_count``), tiles spread over a thread pool (numpy releases the GIL).

Backends of :func:`cosine_pairs` / :func:`cosine_cross_pairs`:

* ``"numpy"``: exact blockwise search (above); its time grows as N**2, its memory as N.
* ``"faiss"`` (needs ``pip install hamkit[faiss]``): exact ``IndexFlatIP.range_search`` while
  the indexed set has fewer than :data:`FAISS_APPROX_MIN_N` vectors, the IVF index from then on.
  faiss's flat search computes the full matrix (both triangles), so it is not faster than
  ``"numpy"`` for a self-search.
* ``"faiss-ivf"``: an ``IndexIVFFlat`` (:class:`IvfConfig`): each query is compared only with
  the vectors of its ``nprobe`` nearest k-means cells. Recall is **approximate** (a pair is lost
  when neither item's probed cells hold the other), the scores of the pairs it finds are exact,
  and its pairs have ``exact=False``. It is the backend for a million embeddings and more.
* ``"faiss-hnsw"``: an ``IndexHNSWFlat`` (:class:`HnswConfig`); each query asks for its ``k``
  nearest neighbours and keeps those at or above the threshold (approximate, exact scores). On
  random vectors it was slower than both the exact search and IVF.
* ``"auto"``: ``"numpy"``, unless faiss is importable and the indexed set has at least
  :data:`FAISS_APPROX_MIN_N` vectors (then ``"faiss-ivf"``). Below that size (which covers
  HAM10000 and the ISIC challenge sets) ``"auto"`` is exact.

The times and memory of each backend are on the Benchmarks page of the documentation
(duplicate search). The code is split by concept: :mod:`hamkit.dedup.cosine_search`,
:mod:`hamkit.dedup.hamming_search`, the tile walk they share in :mod:`hamkit.dedup.tiles`, the
faiss backends in :mod:`hamkit.dedup.faiss_search` and :class:`Pairs` in
:mod:`hamkit.dedup.pairs`; this module re-exports their public names.

Examples:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> emb = rng.standard_normal((5, 16)).astype(np.float32)
    >>> emb[3] = emb[1] + 0.01  # a near duplicate of item 1
    >>> emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    >>> pairs = cosine_pairs(emb, 0.95)
    >>> pairs.i.tolist(), pairs.j.tolist(), len(pairs)
    ([1], [3], 1)
"""

from __future__ import annotations

from hamkit.dedup.cosine_search import FAISS_APPROX_MIN_N, NORM_TOLERANCE, Backend, cosine_cross_pairs, cosine_pairs
from hamkit.dedup.faiss_search import HnswConfig, IvfConfig, faiss_available
from hamkit.dedup.hamming_search import hamming_cross_pairs, hamming_pairs
from hamkit.dedup.pairs import Pairs
from hamkit.dedup.tiles import DEFAULT_MAX_PAIRS

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
