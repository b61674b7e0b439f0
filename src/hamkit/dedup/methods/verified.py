"""The ``"verified"`` method (the default): candidates by window kNN, each confirmed by alignment.

Each image is decoded once into a :class:`~hamkit.dedup.scenes.Scene`; the two stages are
:func:`~hamkit.dedup.scenes.verified_pairs` (window-thumbnail kNN candidates in 8 orientations,
then ORB keypoints + RANSAC and a tile-wise comparison of the aligned images). Every candidate
keeps its score, so that :meth:`~hamkit.dedup.deduplicator.Deduplicator.calibrate` can tabulate
thresholds below the one in use.

Examples:
    >>> from hamkit.dedup.methods import VerifiedMethod
    >>> VerifiedMethod().check_threshold(None), VerifiedMethod().metric
    (0.5, 'aligned')
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hamkit._cpu import available_cpus
from hamkit.dedup.inputs import DecodeJob, decode_all
from hamkit.dedup.methods.base import DedupMethod, Signatures, Threshold, register_method
from hamkit.dedup.pairs import Pairs
from hamkit.dedup.scenes import VerifiedCandidates, verified_pairs
from hamkit.errors import HamkitError

if TYPE_CHECKING:  # pragma: no cover
    from hamkit.dedup.deduplicator import Deduplicator

__all__ = ["VerifiedMethod"]


@register_method
class VerifiedMethod(DedupMethod):
    """``"verified"``: aligned-content score of candidate pairs (``candidates``, ``min_inliers``).

    Examples:
        >>> VerifiedMethod().check_threshold(2)
        Traceback (most recent call last):
        ...
        hamkit.errors.HamkitError: threshold for method 'verified' is an aligned-content score in [-1, 1], got 2
    """

    name = "verified"
    metric = "aligned"
    higher_is_better = True
    default_threshold = 0.5
    threshold_meaning = "min aligned-content score, [-1, 1]"
    needs = ("faiss", "opencv")
    memory_cache = "decoded scenes, by path, size and modification time"

    def check_threshold(self, threshold: Threshold) -> Threshold:
        """The threshold as a float in ``[-1, 1]`` (the default when ``None``).

        Raises:
            HamkitError: Outside ``[-1, 1]`` (or a bool).
        """
        value = self.default_threshold if threshold is None else threshold
        if isinstance(value, bool) or not -1 <= float(value) <= 1:
            raise HamkitError(f"threshold for method 'verified' is an aligned-content score in [-1, 1], got {value}")
        return float(value)

    def calibration_thresholds(self, threshold: Threshold) -> list[float] | None:
        """0.1 to 1.0 in steps of 0.05."""
        return [float(t) for t in np.round(np.arange(0.1, 1.0001, 0.05), 2).tolist()]

    def signatures(self, dedup: Deduplicator, paths: Sequence[Path]) -> Signatures:
        """A :class:`~hamkit.dedup.scenes.Scene` per readable image (``None`` for the others).

        Scenes are kept in memory for the life of the Deduplicator, keyed by path, size and
        modification time, so that an ``audit`` repeated after a re-split decodes nothing again.
        """
        memo: dict[tuple[str, int, int], Any] = dedup.__dict__.setdefault("_scene_memo", {})
        scenes = np.empty(len(paths), dtype=object)
        keys: list[tuple[str, int, int] | None] = []
        for path in paths:
            try:
                info = os.stat(path)
                keys.append((str(path), info.st_size, info.st_mtime_ns))
            except OSError:
                keys.append(None)
        todo = [i for i, key in enumerate(keys) if key is None or key not in memo]
        for i, key in enumerate(keys):
            if key is not None and key in memo:
                scenes[i] = memo[key]
        skipped: dict[int, str] = {}
        if todo:
            for indices, values, bad in decode_all(
                DecodeJob([paths[i] for i in todo], "scene"),
                batch_size=32,
                num_workers=self.workers(dedup),
                progress=dedup.progress,
                desc="decode",
            ):
                skipped.update({todo[i]: reason for i, reason in bad.items()})
                for index, scene in zip(indices, values, strict=True):
                    scenes[todo[index]] = scene
                    if keys[todo[index]] is not None:
                        memo[keys[todo[index]]] = scene
        return scenes, skipped

    def _search(self, dedup: Deduplicator, scenes: list[Any], cross: int | None = None) -> VerifiedCandidates:
        return verified_pairs(
            scenes,
            k=dedup.candidates,
            min_inliers=dedup.min_inliers,
            workers=max(1, min(8, available_cpus())),
            progress=dedup.progress,
            cross=cross,
        )

    def self_pairs(
        self, dedup: Deduplicator, signatures: np.ndarray, threshold: Threshold
    ) -> tuple[Pairs, VerifiedCandidates | None]:
        """The candidates whose score passes the threshold, and every candidate."""
        found = self._search(dedup, list(signatures))
        keep = self.passes(found.score, threshold)
        return Pairs(found.i[keep], found.j[keep], found.score[keep], "aligned", True), found

    def cross_pairs(self, dedup: Deduplicator, a: np.ndarray, b: np.ndarray, threshold: Threshold) -> Pairs:
        """The candidates across the two sets whose score passes the threshold."""
        found = self._search(dedup, list(a) + list(b), cross=len(a))
        keep = self.passes(found.score, threshold)
        return Pairs(found.i[keep], found.j[keep], found.score[keep], "aligned", True)
