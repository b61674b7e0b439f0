"""hamkit's deduplication: the :class:`Deduplicator`, its methods and results, and the array-level core.

The names below are re-exported here and imported on first use, so ``import hamkit.dedup.hashing``
stays light:

* :class:`Deduplicator` (:mod:`hamkit.dedup.deduplicator`) and its results :class:`DedupResult`,
  :class:`CrossResult`, :class:`AuditResult` (:mod:`hamkit.dedup.result`) and
  :class:`Calibration` (:mod:`hamkit.dedup.thresholds`).
* The methods (:mod:`hamkit.dedup.methods`): the :class:`DedupMethod` interface, one class per
  method (:class:`VerifiedMethod`, :class:`CnnMethod`, :class:`PHashMethod`,
  :class:`DHashMethod`, :class:`ExactMethod`), the registry :data:`METHODS`,
  :func:`register_method` and :func:`get_method`.
* Review pages (:mod:`hamkit.dedup.review`): :func:`contact_sheet`, :func:`review_html`.
* The array level: :class:`Pairs`, the searches :func:`cosine_pairs`, :func:`hamming_pairs`
  (and their ``_cross_`` variants, :mod:`hamkit.dedup.search`), :class:`IvfConfig`,
  :class:`HnswConfig`; perceptual hashes in :mod:`hamkit.dedup.hashing`; groups in
  :mod:`hamkit.dedup.groups`. These take numpy arrays and do no image file I/O.

Examples:
    >>> from hamkit.dedup import METHODS, Deduplicator
    >>> Deduplicator("phash", threshold=6).get_params()["threshold"], "phash" in METHODS
    (6, True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hamkit._lazy import lazy_attributes

# public name -> module that defines it (imported on first attribute access)
_LAZY: dict[str, str] = {
    "Deduplicator": "hamkit.dedup.deduplicator",
    "DedupResult": "hamkit.dedup.result",
    "CrossResult": "hamkit.dedup.result",
    "AuditResult": "hamkit.dedup.result",
    "Calibration": "hamkit.dedup.thresholds",
    "DedupMethod": "hamkit.dedup.methods",
    "METHODS": "hamkit.dedup.methods",
    "register_method": "hamkit.dedup.methods",
    "get_method": "hamkit.dedup.methods",
    "VerifiedMethod": "hamkit.dedup.methods",
    "CnnMethod": "hamkit.dedup.methods",
    "PHashMethod": "hamkit.dedup.methods",
    "DHashMethod": "hamkit.dedup.methods",
    "ExactMethod": "hamkit.dedup.methods",
    "contact_sheet": "hamkit.dedup.review",
    "review_html": "hamkit.dedup.review",
    "Pairs": "hamkit.dedup.pairs",
    "cosine_pairs": "hamkit.dedup.search",
    "cosine_cross_pairs": "hamkit.dedup.search",
    "hamming_pairs": "hamkit.dedup.search",
    "hamming_cross_pairs": "hamkit.dedup.search",
    "IvfConfig": "hamkit.dedup.faiss_search",
    "HnswConfig": "hamkit.dedup.faiss_search",
}

__all__ = [
    "Deduplicator",
    "DedupResult",
    "CrossResult",
    "AuditResult",
    "Calibration",
    "DedupMethod",
    "METHODS",
    "register_method",
    "get_method",
    "VerifiedMethod",
    "CnnMethod",
    "PHashMethod",
    "DHashMethod",
    "ExactMethod",
    "contact_sheet",
    "review_html",
    "Pairs",
    "cosine_pairs",
    "cosine_cross_pairs",
    "hamming_pairs",
    "hamming_cross_pairs",
    "IvfConfig",
    "HnswConfig",
]

__getattr__, __dir__ = lazy_attributes("hamkit.dedup", globals(), _LAZY)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from hamkit.dedup.deduplicator import Deduplicator
    from hamkit.dedup.faiss_search import HnswConfig, IvfConfig
    from hamkit.dedup.methods import (
        METHODS,
        CnnMethod,
        DedupMethod,
        DHashMethod,
        ExactMethod,
        PHashMethod,
        VerifiedMethod,
        get_method,
        register_method,
    )
    from hamkit.dedup.pairs import Pairs
    from hamkit.dedup.result import AuditResult, CrossResult, DedupResult
    from hamkit.dedup.review import contact_sheet, review_html
    from hamkit.dedup.search import cosine_cross_pairs, cosine_pairs, hamming_cross_pairs, hamming_pairs
    from hamkit.dedup.thresholds import Calibration
