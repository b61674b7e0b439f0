"""What a duplicate-detection method supplies to :class:`~hamkit.dedup.deduplicator.Deduplicator`.

A method is a subclass of :class:`DedupMethod` registered under its name in :data:`METHODS`
(``@register_method``). The :class:`~hamkit.dedup.deduplicator.Deduplicator` resolves its
``method`` argument there and asks the method, and only the method, for:

* its **signatures** of the images (:meth:`DedupMethod.signatures`: hashes, embeddings,
  scenes...), one per image, with the images that could not be read;
* its **pairs** within one set (:meth:`DedupMethod.self_pairs`) and across two
  (:meth:`DedupMethod.cross_pairs`), scored in its :attr:`DedupMethod.metric`;
* its **threshold**: the default, the check of a given one (:meth:`DedupMethod.check_threshold`),
  the comparison direction (:attr:`DedupMethod.higher_is_better`, :meth:`DedupMethod.passes`)
  and the thresholds a calibration tabulates;
* what it **needs** and what it **caches**, and how many decoding processes suit it.

Everything else (reading the inputs, skipped files, groups, which image to keep, cross-split
audits, results) is the Deduplicator's and the same for every method.

Examples:
    >>> from hamkit.dedup.methods import METHODS, get_method
    >>> list(METHODS)
    ['verified', 'cnn', 'phash', 'dhash', 'exact', 'lesion']
    >>> phash = get_method("phash")
    >>> phash.metric, phash.default_threshold, phash.check_threshold(None)
    ('hamming', 8, 8)
    >>> phash.passes(np.array([3, 9]), 8).tolist()
    [True, False]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TypeVar

import numpy as np

from hamkit._cache import cache_root
from hamkit._cpu import available_cpus
from hamkit.dedup.pairs import Metric, Pairs
from hamkit.errors import HamkitError

if TYPE_CHECKING:  # pragma: no cover
    from hamkit.dedup.deduplicator import Deduplicator
    from hamkit.dedup.scenes import VerifiedCandidates

__all__ = [
    "DedupMethod",
    "METHODS",
    "Signatures",
    "Threshold",
    "default_cache_dir",
    "get_method",
    "register_method",
]

Threshold = float | int | None
"""A method's threshold: a float score, an integer distance, or None (no threshold)."""

Signatures = tuple[np.ndarray, dict[int, str]]
"""What :meth:`DedupMethod.signatures` returns: one signature per image (a row, a hash, an
object), and ``{index: reason}`` of the images that could not be read."""

METHODS: dict[str, type[DedupMethod]] = {}
"""The methods by name, in the order they were registered (the built-ins first)."""

_M = TypeVar("_M", bound="type[DedupMethod]")


def register_method(cls: _M) -> _M:
    """Class decorator: make a :class:`DedupMethod` available as ``Deduplicator(method=cls.name)``.

    Args:
        cls: The method class; its ``name`` must be new.

    Returns:
        The class, unchanged.

    Raises:
        HamkitError: The name is empty or already registered.

    Examples:
        >>> from hamkit.dedup.methods import METHODS
        >>> sorted(METHODS)
        ['cnn', 'dhash', 'exact', 'lesion', 'phash', 'verified']
    """
    name = getattr(cls, "name", "")
    if not name:
        raise HamkitError(f"{cls.__name__} has no name: set the class attribute name = '...'")
    if name in METHODS and METHODS[name] is not cls:
        raise HamkitError(f"a dedup method named {name!r} is already registered ({METHODS[name].__name__})")
    METHODS[name] = cls
    return cls


def get_method(name: str) -> DedupMethod:
    """The registered method called ``name``.

    Args:
        name: A key of :data:`METHODS`.

    Returns:
        An instance of the method's class.

    Raises:
        HamkitError: No method of that name.

    Examples:
        >>> get_method("cnn").higher_is_better
        True
        >>> get_method("ssim")
        Traceback (most recent call last):
        ...
        hamkit.errors.HamkitError: unknown method 'ssim'; choose one of verified, cnn, phash, dhash, exact, lesion
    """
    cls = METHODS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise HamkitError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return cls()


def default_cache_dir() -> Path:
    """hamkit's cache folder (:func:`hamkit._cache.cache_root`): where embeddings and hashes are cached by default."""
    return cache_root()


class DedupMethod(ABC):
    """One way of finding duplicates; subclass it and ``@register_method`` it to add a method.

    Methods keep no state of their own: settings come from the
    :class:`~hamkit.dedup.deduplicator.Deduplicator` passed to every call, and what a method
    keeps in memory between calls (a network, decoded scenes) lives on that Deduplicator, so that
    ``sklearn.base.clone`` starts afresh.

    Attributes:
        name: The ``method=`` string.
        metric: What the scores of its pairs are (``"cosine"``, ``"hamming"``, ``"aligned"``).
        higher_is_better: True when a pair passes at ``score >= threshold`` (similarities),
            False at ``score <= threshold`` (distances).
        default_threshold: The threshold when the Deduplicator's is ``None``.
        threshold_meaning: One phrase for messages and docs (e.g. ``"max Hamming distance"``).
        needs: What it relies on beyond numpy and Pillow, from ``"faiss"``, ``"opencv"``,
            ``"torch"`` and ``"weights"`` (pretrained or local network weights).
        disk_cache: Sub-folder of the cache folder it stores signatures in (keyed by file
            identity and setting), or ``None``.
        memory_cache: What it keeps in memory for the life of the Deduplicator, or ``None``.
    """

    name: ClassVar[str] = ""
    metric: ClassVar[Metric] = "cosine"
    higher_is_better: ClassVar[bool] = True
    default_threshold: ClassVar[Threshold] = None
    threshold_meaning: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ()
    disk_cache: ClassVar[str | None] = None
    memory_cache: ClassVar[str | None] = None

    # ------------------------------------------------------------------ threshold
    @abstractmethod
    def check_threshold(self, threshold: Threshold) -> Threshold:
        """The threshold to use: ``threshold`` checked, or the default when it is ``None``.

        Args:
            threshold: As passed to the Deduplicator.

        Returns:
            The threshold in the method's type (float or int; ``None`` for no threshold).

        Raises:
            HamkitError: Out of range or of the wrong kind (a one-line message).
        """

    def passes(self, scores: np.ndarray, threshold: Threshold) -> np.ndarray:
        """Which scores make a pair at ``threshold``, in the method's direction.

        Args:
            scores: Scores in :attr:`metric`.
            threshold: A threshold from :meth:`check_threshold`.

        Returns:
            A boolean array.
        """
        if threshold is None:
            return np.ones(len(scores), dtype=bool)
        return scores >= threshold if self.higher_is_better else scores <= threshold

    def calibration_thresholds(self, threshold: Threshold) -> list[float] | None:
        """Thresholds a calibration tabulates by default (``None``: 0.05 steps over the scores).

        Args:
            threshold: The threshold the pairs were found at.
        """
        return None

    # ------------------------------------------------------------------ resources
    def default_workers(self) -> int:
        """Decoding processes when the Deduplicator's ``num_workers`` is ``None``: one per CPU,
        up to 8 (decoding is all the work; this process only collects the results)."""
        return max(1, min(8, available_cpus()))

    def workers(self, dedup: Deduplicator) -> int:
        """Decoding processes for ``dedup``: its ``num_workers``, or :meth:`default_workers`."""
        return dedup.num_workers if dedup.num_workers is not None else self.default_workers()

    @staticmethod
    def cache_folder(dedup: Deduplicator, kind: str) -> Path | None:
        """The cache folder of ``kind`` for ``dedup``'s ``cache_dir`` (``None``: no cache).

        Args:
            dedup: The Deduplicator (its ``cache_dir``: ``None``/``True`` the default folder,
                ``False`` none, a path that folder).
            kind: The sub-folder of the default folder (e.g. ``"hashes"``).
        """
        if dedup.cache_dir is False:
            return None
        if dedup.cache_dir in (None, True):
            return default_cache_dir() / kind
        return Path(dedup.cache_dir)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ work
    @abstractmethod
    def signatures(self, dedup: Deduplicator, paths: Sequence[Path]) -> Signatures:
        """Decode the images and compute one signature each.

        Args:
            dedup: The Deduplicator whose settings apply.
            paths: The image files.

        Returns:
            The signatures (rows of the images that could not be read are placeholders) and
            ``{index: reason}`` of those images.
        """

    @abstractmethod
    def self_pairs(
        self, dedup: Deduplicator, signatures: np.ndarray, threshold: Threshold
    ) -> tuple[Pairs, VerifiedCandidates | None]:
        """Every duplicate pair within one set of readable images.

        Args:
            dedup: The Deduplicator whose settings apply.
            signatures: The signatures of at least 2 readable images.
            threshold: From :meth:`check_threshold`.

        Returns:
            The pairs (``i < j``, indices into ``signatures``) and, for methods that score
            candidates below the threshold too, all of them (for calibration), else ``None``.
        """

    @abstractmethod
    def cross_pairs(self, dedup: Deduplicator, a: np.ndarray, b: np.ndarray, threshold: Threshold) -> Pairs:
        """Every duplicate pair with one image in each of two non-empty sets of readable images.

        Args:
            dedup: The Deduplicator whose settings apply.
            a: Signatures of the first set (``i`` indexes them).
            b: Signatures of the second set (``j`` indexes them).
            threshold: From :meth:`check_threshold`.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
