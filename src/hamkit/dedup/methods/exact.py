"""The ``"exact"`` method: images whose decoded pixels are identical.

Files are digested as bytes first, so byte-identical copies are decoded once; the others are
decoded and their pixels digested (SHA-256). Pairs are all pairs within a set of equal digests,
with score 1.0.

Examples:
    >>> from hamkit.dedup.methods import ExactMethod
    >>> ExactMethod().check_threshold(None) is None
    True
    >>> ExactMethod().check_threshold(1)
    Traceback (most recent call last):
    ...
    hamkit.errors.HamkitError: method 'exact' takes no threshold (it matches identical pixels)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hamkit.dedup.methods.base import DedupMethod, Shared, Signatures, Threshold, register_method
from hamkit.dedup.pairs import Pairs, equal_value_pairs
from hamkit.errors import HamkitError

if TYPE_CHECKING:  # pragma: no cover
    from hamkit.dedup.scenes import VerifiedCandidates

__all__ = ["ExactMethod"]


@register_method
class ExactMethod(DedupMethod):
    """``"exact"``: SHA-256 of the decoded pixels; no threshold.

    Examples:
        >>> ExactMethod().metric, ExactMethod().disk_cache
        ('cosine', None)
    """

    name = "exact"
    metric = "cosine"  # every pair scores 1.0, like identical unit vectors
    higher_is_better = True
    default_threshold = None
    threshold_meaning = "none (identical pixels)"
    summary = "SHA-256 of the decoded pixels (byte-identical files found first, cheaply)"

    def check_threshold(self, threshold: Threshold) -> Threshold:
        """``None``: the method takes no threshold.

        Raises:
            HamkitError: A threshold was given.
        """
        if threshold is not None:
            raise HamkitError("method 'exact' takes no threshold (it matches identical pixels)")
        return None

    def signatures(self, dedup: Shared, paths: Sequence[Path]) -> Signatures:
        """Pixel digests (strings; ``""`` for unreadable files); byte-identical files are decoded once."""
        from hamkit.dedup.inputs import DecodeJob, decode_all

        workers = self.workers(dedup)
        skipped: dict[int, str] = {}
        byte_digest = np.empty(len(paths), dtype=object)
        for indices, values, bad in decode_all(
            DecodeJob(paths, "bytes"), batch_size=256, num_workers=workers, progress=dedup.progress, desc="bytes"
        ):
            skipped.update(bad)
            byte_digest[indices] = values
        readable = np.array([i for i in range(len(paths)) if i not in skipped], dtype=np.int64)
        _, first, inverse = np.unique(byte_digest[readable].astype(str), return_index=True, return_inverse=True)
        unique = readable[first]
        pixel_of_unique = np.empty(len(unique), dtype=object)
        for indices, values, bad in decode_all(
            DecodeJob([paths[i] for i in unique], "pixels"),
            batch_size=64,
            num_workers=workers,
            progress=dedup.progress,
            desc="pixels",
        ):
            skipped.update({int(unique[i]): reason for i, reason in bad.items()})
            pixel_of_unique[indices] = values
        representative = unique[inverse]  # byte-identical copies share their representative's fate
        for index, rep in zip(readable.tolist(), representative.tolist(), strict=True):
            if rep in skipped:
                skipped[index] = skipped[rep]
        digest = np.full(len(paths), "", dtype=object)
        digest[readable] = pixel_of_unique[inverse]
        for i in skipped:
            digest[i] = ""
        return digest, skipped

    def self_pairs(
        self, dedup: Shared, signatures: np.ndarray, threshold: Threshold
    ) -> tuple[Pairs, VerifiedCandidates | None]:
        """All pairs within each set of equal digests."""
        return equal_value_pairs(signatures, signatures, self_search=True), None

    def cross_pairs(self, dedup: Shared, a: np.ndarray, b: np.ndarray, threshold: Threshold) -> Pairs:
        """All pairs of equal digests across the two sets."""
        return equal_value_pairs(a, b, self_search=False)
