"""Which image of a duplicate group to keep: the ``keep`` policy of a Deduplicator as a ranking.

:func:`~hamkit.dedup.groups.keep_priority` ranks arrays; this module gathers what each policy
ranks by from the files: the sorted paths (``"first"``), the members listed in ``prefer``
(``"prefer"``), or the resolution and file size of the images in a pair (``"largest"``, read
from the image headers only).

Examples:
    >>> from pathlib import Path
    >>> from hamkit.dedup.pairs import Pairs
    >>> paths = [Path("b.jpg"), Path("a.jpg")]
    >>> keep_ranking(paths, Pairs.empty(), "prefer", prefer={"b"}).tolist()
    [0, 1]
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np

from hamkit.data.images import image_size_of
from hamkit.dedup.groups import keep_priority
from hamkit.dedup.pairs import Pairs

__all__ = ["KEEP_POLICIES", "keep_ranking"]

KEEP_POLICIES: tuple[str, ...] = ("first", "largest", "prefer")
"""The ``keep`` policies of :class:`~hamkit.dedup.deduplicator.Deduplicator`."""


def keep_ranking(
    paths: Sequence[Path],
    pairs: Pairs,
    policy: str,
    prefer: Collection[str | os.PathLike[str]] | None = None,
) -> np.ndarray:
    """The keep priority of every image (lower is kept first) under a ``keep`` policy.

    Args:
        paths: The images.
        pairs: The duplicate pairs found (``"largest"`` reads the sizes of their images only).
        policy: One of :data:`KEEP_POLICIES`.
        prefer: Image ids (file stems) or paths kept first with ``"prefer"``.

    Returns:
        :func:`~hamkit.dedup.groups.keep_priority` of the images.
    """
    n = len(paths)
    if policy == "first":
        return keep_priority(n, policy="first", paths=paths)
    if policy == "prefer":
        wanted = {str(p) for p in prefer or ()} | {Path(p).stem for p in prefer or ()}
        preferred = np.array([str(p) in wanted or p.stem in wanted for p in paths], dtype=bool)
        return keep_priority(n, policy="prefer", paths=paths, preferred=preferred)
    members = np.unique(np.concatenate([pairs.i, pairs.j])) if len(pairs) else np.zeros(0, np.int64)
    resolutions = np.zeros((n, 2), dtype=np.int64)
    sizes = np.zeros(n, dtype=np.int64)
    for m in members.tolist():  # only group members need their size read (header only)
        resolutions[m] = image_size_of(paths[m])
        sizes[m] = paths[m].stat().st_size
    return keep_priority(n, policy="largest", paths=paths, resolutions=resolutions, file_sizes=sizes)
