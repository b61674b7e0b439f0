"""The perceptual-hash methods ``"phash"`` and ``"dhash"``: 64-bit hashes within a Hamming distance.

Hashes are computed in the decoding workers' batches (:mod:`hamkit.dedup.hashing`) and cached
on disk by file identity (path, size, modification time), so a rescan decodes only new or
changed files; the pair search is :func:`~hamkit.dedup.search.hamming_pairs`.

Examples:
    >>> from hamkit.dedup.methods import DHashMethod, PHashMethod
    >>> PHashMethod().default_threshold, DHashMethod().default_threshold
    (8, 4)
    >>> PHashMethod().check_threshold(65)
    Traceback (most recent call last):
    ...
    hamkit.errors.HamkitError: threshold for method 'phash' is a Hamming distance, an integer in 0..64, got 65
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hamkit.dedup.hashing import HASH_SIZES, dhash, phash
from hamkit.dedup.methods.base import DedupMethod, Shared, Signatures, Threshold, register_method
from hamkit.dedup.pairs import Pairs
from hamkit.dedup.search import hamming_cross_pairs, hamming_pairs
from hamkit.errors import HamkitError

if TYPE_CHECKING:  # pragma: no cover
    from hamkit.dedup.scenes import VerifiedCandidates

__all__ = ["HashMethod", "PHashMethod", "DHashMethod", "HASH_CACHE_VERSION"]

HASH_CACHE_VERSION = 1
"""Part of the hash cache's key: bump it when the hashes of the same file change (decoding or
hashing code), so that old entries are not used."""


class HashMethod(DedupMethod):
    """A 64-bit perceptual hash of a greyscale thumbnail; pairs within a Hamming distance.

    Subclasses set ``name`` (a key of :data:`~hamkit.dedup.hashing.HASH_SIZES`) and
    ``default_threshold``, and implement :meth:`hash`.

    Args:
        batch_size: Images per decoding batch (the hashes do not depend on it).
    """

    metric = "hamming"
    higher_is_better = False
    threshold_meaning = "max Hamming distance, 0..64"
    disk_cache = "hashes"
    run_threshold = "hash_threshold"

    def __init__(self, *, batch_size: int = 256) -> None:
        self.batch_size = batch_size

    def check(self) -> None:
        """Check ``batch_size``.

        Raises:
            HamkitError: Not a positive integer.
        """
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise HamkitError(f"batch_size must be a positive integer, got {self.batch_size!r}")

    @abstractmethod
    def hash(self, gray: np.ndarray) -> np.ndarray:
        """``uint64`` hashes of a batch of greyscale images of size ``HASH_SIZES[name]``."""

    def check_threshold(self, threshold: Threshold) -> Threshold:
        """The threshold as an int in ``0..64`` (the default when ``None``).

        Raises:
            HamkitError: Not a whole number in ``0..64`` (or a bool).
        """
        value = self.default_threshold if threshold is None else threshold
        if isinstance(value, bool) or not float(value).is_integer() or not 0 <= value <= 64:  # type: ignore[arg-type,operator]
            raise HamkitError(
                f"threshold for method {self.name!r} is a Hamming distance, an integer in 0..64, got {value}"
            )
        return int(value)  # type: ignore[arg-type]

    def calibration_thresholds(self, threshold: Threshold) -> list[float] | None:
        """Every distance from 0 to the one in use."""
        return list(range(0, int(threshold or 0) + 1))

    def signatures(self, dedup: Shared, paths: Sequence[Path]) -> Signatures:
        """``uint64`` hashes; those of unchanged files come from the disk cache."""
        from hamkit.dedup.embeddings import EmbeddingCache
        from hamkit.dedup.inputs import DecodeJob, decode_all

        size = HASH_SIZES[self.name]
        root = self.cache_folder(dedup, "hashes")
        cache = (
            None
            if root is None
            else EmbeddingCache(root, {"hash": self.name, "size": size, "cache_version": HASH_CACHE_VERSION})
        )
        keys = [EmbeddingCache.key(p) if p.exists() else "" for p in paths]
        known = cache.load() if cache is not None else {}
        out = np.zeros(len(paths), dtype=np.uint64)
        for index, key in enumerate(keys):
            if key in known:
                out[index] = known[key]
        todo = [i for i, key in enumerate(keys) if key not in known]
        skipped: dict[int, str] = {}
        new_keys: list[str] = []
        new_hashes: list[np.ndarray] = []
        batches = (
            decode_all(
                DecodeJob([paths[i] for i in todo], "gray", size),
                batch_size=self.batch_size,
                num_workers=self.workers(dedup),
                progress=dedup.progress,
                desc=self.name,
            )
            if todo
            else ()
        )
        for local, values, bad in batches:
            skipped.update({todo[i]: reason for i, reason in bad.items()})
            if values:
                indices = [todo[i] for i in local]
                hashes = self.hash(np.stack(values))
                out[indices] = hashes
                new_keys += [keys[i] for i in indices]
                new_hashes.append(hashes)
        if cache is not None and new_keys:
            cache.add(new_keys, np.concatenate(new_hashes))
        return out, skipped

    def self_pairs(
        self, dedup: Shared, signatures: np.ndarray, threshold: Threshold
    ) -> tuple[Pairs, VerifiedCandidates | None]:
        """:func:`~hamkit.dedup.search.hamming_pairs` at the threshold."""
        return hamming_pairs(signatures, int(threshold), progress=dedup.progress), None  # type: ignore[arg-type]

    def cross_pairs(self, dedup: Shared, a: np.ndarray, b: np.ndarray, threshold: Threshold) -> Pairs:
        """:func:`~hamkit.dedup.search.hamming_cross_pairs` at the threshold."""
        return hamming_cross_pairs(a, b, int(threshold), progress=dedup.progress)  # type: ignore[arg-type]


@register_method
class PHashMethod(HashMethod):
    """``"phash"``: the 64-bit DCT perceptual hash (:func:`~hamkit.dedup.hashing.phash`).

    Examples:
        >>> PHashMethod().passes(np.array([8, 9]), 8).tolist()
        [True, False]
    """

    name = "phash"
    default_threshold = 8
    summary = "64-bit DCT perceptual hash"

    def hash(self, gray: np.ndarray) -> np.ndarray:
        """:func:`~hamkit.dedup.hashing.phash` of the batch."""
        return phash(gray)


@register_method
class DHashMethod(HashMethod):
    """``"dhash"``: the 64-bit difference hash (:func:`~hamkit.dedup.hashing.dhash`).

    Examples:
        >>> DHashMethod().check_threshold(None)
        4
    """

    name = "dhash"
    default_threshold = 4
    summary = "64-bit difference hash"

    def hash(self, gray: np.ndarray) -> np.ndarray:
        """:func:`~hamkit.dedup.hashing.dhash` of the batch."""
        return dhash(gray)
