"""The ``"verified"`` method (the default): candidates by window kNN, each confirmed by alignment.

Each image is decoded once into a :class:`~hamkit.dedup.scenes.Scene`; the two stages are
:func:`~hamkit.dedup.scenes.verified_pairs` (window-thumbnail kNN candidates in 8 orientations,
then ORB keypoints + RANSAC and a tile-wise comparison of the aligned images). Every candidate
keeps its score, so that :meth:`~hamkit.dedup.deduplicator.Deduplicator.calibrate` can tabulate
thresholds below the one in use.

A method instance keeps, for its life, its decoded scenes, the window hits of its last search over a
whole set (:data:`AUDIT_HITS` times more than that search needs) and every verification it made
(:data:`~hamkit.dedup.scenes.VerifyMemo`). So an
:meth:`~hamkit.dedup.deduplicator.Deduplicator.audit` after a
:meth:`~hamkit.dedup.deduplicator.Deduplicator.find` over the same images decodes nothing and
searches nothing: the candidates between two splits are chosen from the kept hits, as a search
over the two splits would choose them, and only those not verified before are aligned. The pairs
verified before count across two sets directly, whether or not the candidates between them
include them again.

Examples:
    >>> from hamkit.dedup.methods import VerifiedMethod
    >>> VerifiedMethod().check_threshold(None), VerifiedMethod().metric
    (0.5, 'aligned')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hamkit._cpu import available_cpus
from hamkit.dedup.candidates import Candidates, WindowHits, candidates_from_hits, hits_per_query, window_hits
from hamkit.dedup.methods.base import DedupMethod, Shared, Signatures, Threshold, register_method
from hamkit.dedup.pairs import Pairs
from hamkit.dedup.scenes import VerifiedCandidates, VerifyMemo, verified_pairs
from hamkit.errors import HamkitError

__all__ = ["AUDIT_HITS", "AUTO_DISK_ABOVE", "VerifiedMethod"]

AUDIT_HITS = 4
"""The search over a whole set keeps this many times the hits per query window that its own
candidates need, so that the candidates between two of its subsets (two splits; the smallest pair
of the default split holds a quarter of the images) can be chosen from them without a search."""

AUTO_DISK_ABOVE = 15_000
"""``backend="auto"`` runs :meth:`~hamkit.Deduplicator.find` on the ``"disk"`` stages above this
many images, ``"local"`` up to it. Where memory passes about 2 GiB: a local ``hamkit dedup`` of
the 10,015 HAM10000 images at 200 x 150 peaked at about 1.7 GiB (and of 10,000 synthetic images
at about 1.7 GiB), and every further image adds its scene (about 70 KB), so a local run passes
2 GiB at about 15,000 images and 7 GB at 100,000; a whole ``hamkit dedup`` on the disk stages
peaked at about 0.9 GiB at 20,000 images and 1.6 GiB at 100,000 (PSS of the command and its
decoding workers, the pages of the memory-mapped window index included). Below it, local keeps the scenes for
an audit or calibration that follows, at no cost in memory that matters."""


@dataclass(frozen=True)
class _Neighbourhood:
    """The window hits of a search over ``scenes`` (kept alive, so ``id`` names each one)."""

    scenes: list[Any]
    where: dict[int, int]
    hits: WindowHits
    k: int


@register_method
class VerifiedMethod(DedupMethod):
    """``"verified"``: aligned-content score of candidate pairs.

    Args:
        candidates: Candidate partners proposed per image before verification (more finds more
            heavily altered copies, and costs verification time).
        min_inliers: RANSAC inliers an alignment needs before its content is compared.
        batch_size: Images per decoding batch (the scenes do not depend on it).
        backend: ``"auto"`` (the default: ``"disk"`` for more than :data:`AUTO_DISK_ABOVE`
            images, ``"local"`` otherwise, so that memory stays bounded whatever the collection's
            size; the results record the choice as ``backend_used``), ``"local"`` (this process
            and its decoding workers, every scene in memory: tens of KB per image), ``"disk"`` (the
            stages of :mod:`hamkit.dedup.shards` in this process, with the scenes on disk and
            loaded per batch of candidate pairs: memory no longer grows with the scenes) or
            ``"ray"`` (those stages as Ray tasks, one shard per CPU of the cluster that
            ``ray.init`` finds, a local one when there is none; ``pip install 'hamkit[ray]'``).
            The result is the same. The scenes go to a temporary folder (``HAMKIT_SHARDS_DIR``
            when set: on a Ray cluster, a folder every node reaches). Only
            :meth:`~hamkit.Deduplicator.find` runs on ``"disk"`` or ``"ray"``; what reads the
            scenes in this process (an audit, a cross search) runs ``"auto"`` as ``"local"``.

    Attributes:
        scenes_: The decoded scenes, by path, size and modification time.
        verifications_: Every verification made, by the two images' digests
            (:data:`~hamkit.dedup.scenes.VerifyMemo`).
        neighbourhood_: The window hits of the last search over a whole set.

    Examples:
        >>> VerifiedMethod(candidates=20).get_params()
        {'backend': 'auto', 'batch_size': 32, 'candidates': 20, 'min_inliers': 15}
        >>> VerifiedMethod().backend_for(10_015), VerifiedMethod().backend_for(100_000)
        ('local', 'disk')
        >>> VerifiedMethod().check_threshold(0)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        hamkit.errors.HamkitError: threshold for method 'verified' is an aligned-content score in (0, 1] ..., got 0
    """

    name = "verified"
    metric = "aligned"
    higher_is_better = True
    default_threshold = 0.5
    threshold_meaning = "min aligned-content score, (0, 1]"
    summary = (
        "candidates by kNN over window thumbnails in 8 orientations, each confirmed by ORB keypoints + RANSAC and a "
        "tile-wise comparison of the aligned images (the default: offline, and right on real data)"
    )
    needs = ("faiss", "opencv")
    memory_cache = "decoded scenes, by path, size and modification time; verifications, by the images' digests"
    run_threshold = "verified_threshold"

    def __init__(
        self, *, candidates: int = 10, min_inliers: int = 15, batch_size: int = 32, backend: str = "auto"
    ) -> None:
        self.candidates = candidates
        self.min_inliers = min_inliers
        self.batch_size = batch_size
        self.backend = backend

    def check(self) -> None:
        """Check ``candidates``, ``min_inliers``, ``batch_size`` and ``backend``.

        Raises:
            HamkitError: ``candidates`` or ``batch_size`` below 1 or ``min_inliers`` below 4 (or not
                integers), an unknown ``backend``, or ``"ray"`` without Ray installed.
        """
        if isinstance(self.candidates, bool) or not isinstance(self.candidates, int) or self.candidates < 1:
            raise HamkitError(f"candidates must be a positive integer, got {self.candidates!r}")
        if isinstance(self.min_inliers, bool) or not isinstance(self.min_inliers, int) or self.min_inliers < 4:
            raise HamkitError(f"min_inliers must be an integer of at least 4, got {self.min_inliers!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise HamkitError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.backend not in ("auto", "local", "disk", "ray"):
            raise HamkitError(f"backend must be 'auto', 'local', 'disk' or 'ray', got {self.backend!r}")
        if self.backend == "ray":
            import importlib.util

            if importlib.util.find_spec("ray") is None:
                raise HamkitError("backend 'ray' needs Ray, which is not installed: pip install 'hamkit[ray]'")

    def backend_for(self, images: int) -> str:
        """The backend :meth:`~hamkit.Deduplicator.find` runs on for ``images`` images: ``backend``
        itself, or for ``"auto"`` ``"disk"`` above :data:`AUTO_DISK_ABOVE` images and ``"local"``
        up to it."""
        if self.backend == "auto":
            return "disk" if images > AUTO_DISK_ABOVE else "local"
        return self.backend

    def check_threshold(self, threshold: Threshold) -> Threshold:
        """The threshold as a float in ``(0, 1]`` (the default when ``None``).

        Scores lie in ``[-1, 1]``, but a pair whose alignment failed (too few inliers, too few
        textured tiles in common) scores exactly 0, "not verified"; a threshold of 0 or below
        would count those as duplicates, so it is refused.

        Raises:
            HamkitError: Outside ``(0, 1]`` (or a bool, or not a number).
        """
        value = self.default_threshold if threshold is None else threshold
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not 0 < number <= 1:
            raise HamkitError(
                f"threshold for method 'verified' is an aligned-content score in (0, 1] (a score of 0 means the "
                f"two images could not be aligned: not verified), got {value}"
            )
        return number

    def calibration_thresholds(self, threshold: Threshold) -> list[float] | None:
        """0.1 to 1.0 in steps of 0.05."""
        return [float(t) for t in np.round(np.arange(0.1, 1.0001, 0.05), 2).tolist()]

    def signatures(self, dedup: Shared, paths: Sequence[Path]) -> Signatures:
        """A :class:`~hamkit.dedup.scenes.Scene` per readable image (``None`` for the others).

        Scenes are kept in memory for the life of the method (``scenes_``), keyed by path, size
        and modification time, so that an ``audit`` repeated after a re-split decodes nothing again.
        """
        return self._decode_memoised("scenes_", dedup, paths, "scene", batch_size=self.batch_size, desc="decode")

    def _memo(self) -> VerifyMemo:
        """The verifications made so far (kept for the method's life, like its scenes)."""
        memo: VerifyMemo = self.__dict__.setdefault("verifications_", {})
        return memo

    def _search(
        self,
        dedup: Shared,
        scenes: list[Any],
        cross: int | None = None,
        candidates: Candidates | None = None,
    ) -> VerifiedCandidates:
        return verified_pairs(
            scenes,
            k=self.candidates,
            min_inliers=self.min_inliers,
            workers=max(1, min(8, available_cpus())),
            progress=dedup.progress,
            cross=cross,
            memo=self._memo(),
            candidates=candidates,
        )

    def _subset_candidates(self, scenes: list[Any]) -> Candidates | None:
        """The window candidates among ``scenes`` chosen from the hits of the last search over a
        whole set, or ``None`` when that set does not hold them all (search them then)."""
        kept: _Neighbourhood | None = self.__dict__.get("neighbourhood_")
        if kept is None or kept.k != self.candidates:
            return None
        local = [kept.where.get(id(scene), -1) for scene in scenes]
        if min(local, default=-1) < 0 or len(set(local)) != len(local):
            return None
        members = np.zeros(len(kept.scenes), dtype=bool)
        members[local] = True
        found = candidates_from_hits(kept.hits, k=kept.k, members=members)
        to_local = np.full(len(kept.scenes), -1, dtype=np.int64)
        to_local[local] = np.arange(len(local))
        a, b = to_local[found.i], to_local[found.j]
        i, j = np.minimum(a, b), np.maximum(a, b)
        order = np.lexsort((j, i))
        ambiguous = found.ambiguous if found.ambiguous is not None else np.zeros(len(found), dtype=bool)
        return Candidates(i[order], j[order], found.similarity[order], found.mirrored[order], ambiguous[order])

    def _known_cross(self, a: np.ndarray, b: np.ndarray, threshold: Threshold) -> dict[tuple[int, int], float]:
        """Pairs verified before (by any search of this method) that pass ``threshold`` and have one
        image in ``a`` and one in ``b``: ``{(i, j): score}``, found by digest, with no search."""
        where_a: dict[str, list[int]] = {}
        where_b: dict[str, list[int]] = {}
        for where, scenes in ((where_a, a), (where_b, b)):
            for index, scene in enumerate(scenes):
                where.setdefault(scene.digest, []).append(index)
        found: dict[tuple[int, int], float] = {}
        for (first, second, _, _, min_inliers), (score, _) in self._memo().items():
            if min_inliers != self.min_inliers or (threshold is not None and score < threshold):
                continue
            for x, y in ((first, second), (second, first)):
                for i in where_a.get(x, ()):
                    for j in where_b.get(y, ()):
                        found[(i, j)] = max(score, found.get((i, j), score))
        return found

    def self_pairs(
        self, dedup: Shared, signatures: np.ndarray, threshold: Threshold
    ) -> tuple[Pairs, VerifiedCandidates | None]:
        """The candidates whose score passes the threshold, and every candidate.

        The window hits of the search are kept (``neighbourhood_``, :data:`AUDIT_HITS`) for the
        cross searches over subsets of these images that may follow (an audit).
        """
        scenes = list(signatures)
        thumbs = np.stack([scene.thumb for scene in scenes])
        hits = window_hits(thumbs, per_query=AUDIT_HITS * hits_per_query(self.candidates))
        self.neighbourhood_ = _Neighbourhood(
            scenes, {id(scene): index for index, scene in enumerate(scenes)}, hits, self.candidates
        )
        found = self._search(dedup, scenes, candidates=candidates_from_hits(hits, k=self.candidates))
        keep = self.passes(found.score, threshold)
        return Pairs(found.i[keep], found.j[keep], found.score[keep], "aligned", True), found

    def cross_pairs(self, dedup: Shared, a: np.ndarray, b: np.ndarray, threshold: Threshold) -> Pairs:
        """The candidates across the two sets whose score passes the threshold, and the pairs
        across them that this method verified before (e.g. in a :meth:`find` over all images)."""
        union = list(a) + list(b)
        found = self._search(dedup, union, cross=len(a), candidates=self._subset_candidates(union))
        keep = self.passes(found.score, threshold)
        pairs = {(int(i), int(j)): float(s) for i, j, s in zip(found.i[keep], found.j[keep], found.score[keep])}
        pairs = {**self._known_cross(a, b, threshold), **pairs}
        order = sorted(pairs)
        return Pairs(
            np.array([i for i, _ in order], dtype=np.int64),
            np.array([j for _, j in order], dtype=np.int64),
            np.array([pairs[key] for key in order], dtype=np.float32),
            "aligned",
            True,
        )
