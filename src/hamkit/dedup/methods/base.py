"""What a duplicate-detection method supplies to :class:`~hamkit.dedup.deduplicator.Deduplicator`.

A method is a small scikit-learn style estimator, a subclass of :class:`DedupMethod` registered
under its name in :data:`METHODS` (``@register_method``). It owns its settings (keyword
arguments of its constructor, stored unchanged, so ``get_params`` / ``set_params`` and
:func:`sklearn.base.clone` work) and what it learns while it runs (attributes ending in ``_``:
a network, decoded scenes). The :class:`~hamkit.dedup.deduplicator.Deduplicator` takes a method
by name or as an instance and asks it, and only it, for:

* its **signatures** of the images (:meth:`DedupMethod.signatures`: hashes, embeddings,
  scenes...), one per image, with the images that could not be read;
* its **pairs** within one set (:meth:`DedupMethod.self_pairs`) and across two
  (:meth:`DedupMethod.cross_pairs`), scored in its :attr:`DedupMethod.metric`;
* its **threshold**: the default, the check of a given one (:meth:`DedupMethod.check_threshold`),
  the comparison direction (:attr:`DedupMethod.higher_is_better`, :meth:`DedupMethod.passes`)
  and the thresholds a calibration tabulates;
* the check of its own settings (:meth:`DedupMethod.check`), what it **needs** and what it
  **caches**, and how many decoding processes suit it.

Everything else (reading the inputs, skipped files, groups, which image to keep, cross-split
audits, results) is the Deduplicator's and the same for every method; the Deduplicator passes
itself to the method's calls for the settings every method shares (``num_workers``,
``cache_dir``, ``progress``).

:data:`METHODS` is the one list of methods: the CLI's ``--method`` choices, the checks of
``hamkit run``'s ``dedup.methods`` and the documentation read it (:func:`method_names`), and
methods that installed packages declare under the ``hamkit.dedup_methods`` entry-point group
join it on the first query.

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

import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeVar

import numpy as np
from sklearn.base import BaseEstimator

from hamkit._cache import cache_root
from hamkit._cpu import available_cpus
from hamkit.dedup.pairs import Metric, Pairs
from hamkit.errors import HamkitError

if TYPE_CHECKING:  # pragma: no cover
    from hamkit.dedup.scenes import VerifiedCandidates

__all__ = [
    "DedupMethod",
    "METHODS",
    "PLUGIN_GROUP",
    "Shared",
    "Signatures",
    "Threshold",
    "default_cache_dir",
    "get_method",
    "isolated_methods",
    "make_method",
    "method_names",
    "register_method",
]

Threshold = float | int | None
"""A method's threshold: a float score, an integer distance, or None (no threshold)."""

Signatures = tuple[np.ndarray, dict[int, str]]
"""What :meth:`DedupMethod.signatures` returns: one signature per image (a row, a hash, an
object), and ``{index: reason}`` of the images that could not be read."""


class Shared(Protocol):
    """The settings every method shares, which the caller (the
    :class:`~hamkit.dedup.deduplicator.Deduplicator`) passes to each call of a method."""

    num_workers: int | None
    cache_dir: str | os.PathLike[str] | bool | None
    progress: bool


METHODS: dict[str, type[DedupMethod]] = {}
"""The methods by name, in the order they were registered (the built-ins first)."""

PLUGIN_GROUP = "hamkit.dedup_methods"
"""The entry-point group of dedup methods from other packages: ``name = "package.module:Class"``."""

_PLUGINS_LOADED: list[bool] = [False]

_M = TypeVar("_M", bound="type[DedupMethod]")


def register_method(cls: _M) -> _M:
    """Class decorator: make a :class:`DedupMethod` available as ``Deduplicator(method=cls.name)``.

    Registration is all a new method needs: the CLI's ``--method`` choices, the checks of
    ``hamkit run``'s ``dedup.methods`` and the documentation read :data:`METHODS`.

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


def _load_plugins() -> None:
    """Register the methods that installed packages declare under :data:`PLUGIN_GROUP` (once).

    A plugin that fails to load is reported with a warning naming it and left out;
    ``HAMKIT_DISABLE_PLUGINS=1`` turns this off, as for backbone plugins.
    """
    if _PLUGINS_LOADED[0]:
        return
    _PLUGINS_LOADED[0] = True
    from importlib.metadata import entry_points

    from hamkit.backbones.plugins import plugins_disabled

    if plugins_disabled():
        return
    for point in entry_points(group=PLUGIN_GROUP):
        try:
            cls = point.load()
            if not (isinstance(cls, type) and issubclass(cls, DedupMethod)):
                raise TypeError(f"{point.value} is not a DedupMethod subclass")
            if getattr(cls, "name", "") != point.name:
                raise TypeError(f"{point.value} is named {getattr(cls, 'name', '')!r}, not {point.name!r}")
            register_method(cls)
        except Exception as err:  # noqa: BLE001 - a broken plugin must not stop hamkit
            warnings.warn(
                f"dedup method plugin {point.name!r} ({point.value}) failed to load and is left out: {err}",
                UserWarning,
                stacklevel=3,
            )


def method_names() -> list[str]:
    """The names of every registered method, plugins included, in registration order.

    The one list that the CLI's ``--method`` choices, ``hamkit run``'s checks and the
    documentation use.

    Examples:
        >>> method_names()
        ['verified', 'cnn', 'phash', 'dhash', 'exact', 'lesion']
    """
    _load_plugins()
    return list(METHODS)


def get_method(name: str) -> DedupMethod:
    """A new instance, with its default settings, of the registered method called ``name``.

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
    names = method_names()
    cls = METHODS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise HamkitError(f"unknown method {name!r}; choose one of {', '.join(names)}")
    return cls()


def make_method(method: str | DedupMethod) -> DedupMethod:
    """``method`` itself when it is a :class:`DedupMethod`, else :func:`get_method` of the name.

    Raises:
        HamkitError: An unknown name, or neither a name nor a method.

    Examples:
        >>> from hamkit.dedup.methods import PHashMethod
        >>> make_method("phash"), make_method(PHashMethod(batch_size=512))
        (PHashMethod(), PHashMethod(batch_size=512))
    """
    if isinstance(method, DedupMethod):
        return method
    if not isinstance(method, str):
        raise HamkitError(
            f"method must be a method name ({', '.join(method_names())}) or a DedupMethod, got {type(method).__name__}"
        )
    return get_method(method)


@contextmanager
def isolated_methods() -> Iterator[dict[str, type[DedupMethod]]]:
    """A context in which methods can be registered and are forgotten on exit (for tests and
    plugins' tests): :data:`METHODS` is restored as it was.

    Examples:
        >>> with isolated_methods():
        ...     @register_method
        ...     class Toy(get_method("phash").__class__):
        ...         name = "toy"
        ...     "toy" in method_names()
        True
        >>> "toy" in method_names()
        False
    """
    _load_plugins()
    saved = dict(METHODS)
    try:
        yield METHODS
    finally:
        METHODS.clear()
        METHODS.update(saved)


def default_cache_dir() -> Path:
    """hamkit's cache folder (:func:`hamkit._cache.cache_root`): where embeddings and hashes are cached by default."""
    return cache_root()


class DedupMethod(BaseEstimator, ABC):
    """One way of finding duplicates; subclass it and ``@register_method`` it to add a method.

    A method is a scikit-learn style estimator: its constructor takes its own settings as
    keyword arguments and stores them unchanged (so ``get_params``, ``set_params`` and
    :func:`sklearn.base.clone` work, and ``Deduplicator.set_params(method__name=value)``
    reaches them); :meth:`check` checks them when a search starts. What it keeps in memory
    between calls (a network, decoded scenes) are attributes ending in ``_``, which a clone
    does not copy. Settings every method shares (``num_workers``, ``cache_dir``, ``progress``)
    are the :class:`~hamkit.dedup.deduplicator.Deduplicator`'s, passed to every call.

    Attributes:
        name: The ``method=`` string.
        metric: What the scores of its pairs are (``"cosine"``, ``"hamming"``, ``"aligned"``).
        higher_is_better: True when a pair passes at ``score >= threshold`` (similarities),
            False at ``score <= threshold`` (distances).
        default_threshold: The threshold when the Deduplicator's is ``None``.
        threshold_meaning: One phrase for messages and docs (e.g. ``"max Hamming distance"``).
        summary: One line for the CLI's help and the documentation.
        needs: What it relies on beyond numpy and Pillow, from ``"faiss"``, ``"opencv"``,
            ``"torch"`` and ``"weights"`` (pretrained or local network weights).
        disk_cache: Sub-folder of the cache folder it stores signatures in (keyed by file
            identity and setting), or ``None``.
        memory_cache: What it keeps in memory for its life, or ``None``.
        run_threshold: The ``[dedup]`` setting of ``hamkit run`` that holds its threshold
            (``None``: the default threshold).
        run_settings: ``{[dedup] setting: constructor argument}``: the other settings of
            ``hamkit run`` it takes.
    """

    name: ClassVar[str] = ""
    metric: ClassVar[Metric] = "cosine"
    higher_is_better: ClassVar[bool] = True
    default_threshold: ClassVar[Threshold] = None
    threshold_meaning: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ()
    disk_cache: ClassVar[str | None] = None
    memory_cache: ClassVar[str | None] = None
    run_threshold: ClassVar[str | None] = None
    run_settings: ClassVar[dict[str, str]] = {}

    def check(self) -> None:  # noqa: B027 - most methods have nothing to check
        """Check the method's own settings (called when a search starts).

        Raises:
            HamkitError: A setting out of range (a one-line message naming it).
        """

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

    def _decode_memoised(
        self, memo_name: str, dedup: Shared, paths: Sequence[Path], kind: str, *, batch_size: int, desc: str
    ) -> Signatures:
        """Decode ``paths`` as ``kind`` (see :class:`~hamkit.dedup.inputs.DecodeJob`), keeping every
        result in this method's ``memo_name`` attribute for its life, keyed by path, size and
        modification time, so that a repeated search decodes nothing again.

        Returns:
            One value per path (``None`` where unreadable) and ``{index: reason}`` of the skipped ones.
        """
        from hamkit.dedup.inputs import DecodeJob, decode_all

        memo: dict[tuple[str, int, int], object] = self.__dict__.setdefault(memo_name, {})
        values = np.empty(len(paths), dtype=object)
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
                values[i] = memo[key]
        skipped: dict[int, str] = {}
        if todo:
            for indices, decoded, bad in decode_all(
                DecodeJob([paths[i] for i in todo], kind),
                batch_size=batch_size,
                num_workers=self.workers(dedup),
                progress=dedup.progress,
                desc=desc,
            ):
                skipped.update({todo[i]: reason for i, reason in bad.items()})
                for index, value in zip(indices, decoded, strict=True):
                    values[todo[index]] = value
                    if keys[todo[index]] is not None:
                        memo[keys[todo[index]]] = value
        return values, skipped

    def workers(self, dedup: Shared) -> int:
        """Decoding processes for ``dedup``: its ``num_workers``, or :meth:`default_workers`."""
        return dedup.num_workers if dedup.num_workers is not None else self.default_workers()

    @staticmethod
    def cache_folder(dedup: Shared, kind: str) -> Path | None:
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
    def signatures(self, dedup: Shared, paths: Sequence[Path]) -> Signatures:
        """Decode the images and compute one signature each.

        Args:
            dedup: The Deduplicator whose shared settings apply.
            paths: The image files.

        Returns:
            The signatures (rows of the images that could not be read are placeholders) and
            ``{index: reason}`` of those images.
        """

    @abstractmethod
    def self_pairs(
        self, dedup: Shared, signatures: np.ndarray, threshold: Threshold
    ) -> tuple[Pairs, VerifiedCandidates | None]:
        """Every duplicate pair within one set of readable images.

        Args:
            dedup: The Deduplicator whose shared settings apply.
            signatures: The signatures of at least 2 readable images.
            threshold: From :meth:`check_threshold`.

        Returns:
            The pairs (``i < j``, indices into ``signatures``) and, for methods that score
            candidates below the threshold too, all of them (for calibration), else ``None``.
        """

    @abstractmethod
    def cross_pairs(self, dedup: Shared, a: np.ndarray, b: np.ndarray, threshold: Threshold) -> Pairs:
        """Every duplicate pair with one image in each of two non-empty sets of readable images.

        Args:
            dedup: The Deduplicator whose shared settings apply.
            a: Signatures of the first set (``i`` indexes them).
            b: Signatures of the second set (``j`` indexes them).
            threshold: From :meth:`check_threshold`.
        """
