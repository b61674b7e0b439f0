"""The tile walk that the cosine and the Hamming searches share.

Both searches walk a ``block_size x block_size`` tiling of the score matrix (its upper triangle in
a self search) and never hold more than one tile: a tile's rows whose best score passes the
threshold are kept, and :func:`tile_pairs` extracts their hits with ``np.nonzero``. This module
holds that extraction, the row-block starts, and the checks of the two arguments both searches
take (tile edge and pair cap).

Examples:
    >>> values = np.array([[0.2, 0.95], [0.99, 0.1]], dtype=np.float32)
    >>> i, j, s = tile_pairs(values, values.max(axis=1) >= 0.9, lambda t: t >= 0.9, 10, 20, False)
    >>> i.tolist(), j.tolist()
    ([10, 11], [21, 20])
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hamkit.errors import DataError

__all__ = ["DEFAULT_MAX_PAIRS", "check_block_size", "check_max_pairs", "row_blocks", "tile_pairs"]

DEFAULT_MAX_PAIRS: int = 50_000_000
"""Default cap on the number of pairs a search may return (about 1 GB of pairs)."""


def check_block_size(block_size: int) -> int:
    """``block_size`` as an int, or DataError when it is not a positive integer."""
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise DataError(f"block_size must be a positive integer, got {block_size!r}")
    return int(block_size)


def check_max_pairs(max_pairs: int | None) -> int | None:
    """``max_pairs`` as an int (or None), or DataError when it is not a non-negative integer."""
    if max_pairs is None:
        return None
    if isinstance(max_pairs, bool) or not isinstance(max_pairs, (int, np.integer)) or max_pairs < 0:
        raise DataError(f"max_pairs must be a non-negative integer or None, got {max_pairs!r}")
    return int(max_pairs)


def row_blocks(n_a: int, block: int) -> list[int]:
    """First row of every row block of ``block`` rows."""
    return list(range(0, n_a, block))


def tile_pairs(
    values: np.ndarray,
    keep_rows: np.ndarray,
    hit: Callable[[np.ndarray], np.ndarray],
    a0: int,
    b0: int,
    diagonal: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Extract the hits of the candidate rows of one tile, with global indices.

    Args:
        values: The tile's scores.
        keep_rows: Rows of the tile that hold at least one hit.
        hit: Which scores count (e.g. ``lambda s: s >= threshold``).
        a0: Global index of the tile's first row.
        b0: Global index of the tile's first column.
        diagonal: The tile is on the diagonal of a self search: keep its strict upper triangle.

    Returns:
        Global row indices, global column indices and scores of the hits.
    """
    rows = np.flatnonzero(keep_rows)
    sub = values if len(rows) == len(values) else values[rows]
    r, c = np.nonzero(hit(sub))
    r = rows[r]
    if diagonal:  # a tile on the diagonal: keep its strict upper triangle
        upper = c > r
        r, c = r[upper], c[upper]
    return r + a0, c + b0, values[r, c]
