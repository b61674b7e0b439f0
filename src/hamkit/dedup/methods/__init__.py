"""The methods of :class:`~hamkit.dedup.deduplicator.Deduplicator`, one class each, by name.

* ``"verified"``: :class:`VerifiedMethod`, a :class:`~hamkit.dedup.scenes.Scene` per image;
  pairs by aligned-content score.
* ``"cnn"``: :class:`CnnMethod`, an L2-normalised CNN embedding; pairs by cosine similarity.
* ``"phash"``: :class:`PHashMethod`, a 64-bit DCT hash; pairs by Hamming distance.
* ``"dhash"``: :class:`DHashMethod`, a 64-bit difference hash; pairs by Hamming distance.
* ``"exact"``: :class:`ExactMethod`, SHA-256 of the decoded pixels; pairs of identical pixels.
* ``"lesion"``: :class:`LesionMethod`, SIFT keypoints; pairs of photographs of one lesion
  (copies included) by visual-word candidates and RANSAC inliers.

Each is a small scikit-learn style estimator that owns its settings
(``VerifiedMethod(candidates=20)``, ``CnnMethod(backbone="resnet18")``) and its fitted state.
The interface is :class:`~hamkit.dedup.methods.base.DedupMethod`; :data:`METHODS` maps each
name to its class. A new method is one subclass decorated with :func:`register_method` (or
declared by an installed package under the ``hamkit.dedup_methods`` entry-point group), after
which ``Deduplicator(method="its name")``, ``hamkit dedup --method`` and ``hamkit run``'s
``dedup.methods`` take it.

Examples:
    >>> from hamkit.dedup.methods import METHODS
    >>> {name: cls.__name__ for name, cls in METHODS.items()}["phash"]
    'PHashMethod'
"""

from __future__ import annotations

from hamkit.dedup.methods.base import (
    METHODS,
    PLUGIN_GROUP,
    DedupMethod,
    Signatures,
    Threshold,
    default_cache_dir,
    get_method,
    isolated_methods,
    make_method,
    method_names,
    register_method,
)

# registration order is the order of METHODS (and of the "choose one of" message)
from hamkit.dedup.methods.verified import VerifiedMethod  # isort: skip
from hamkit.dedup.methods.cnn import CnnMethod  # isort: skip
from hamkit.dedup.methods.hashes import DHashMethod, HashMethod, PHashMethod  # isort: skip
from hamkit.dedup.methods.exact import ExactMethod  # isort: skip
from hamkit.dedup.methods.lesion import LesionMethod  # isort: skip

__all__ = [
    "METHODS",
    "PLUGIN_GROUP",
    "DedupMethod",
    "Signatures",
    "Threshold",
    "default_cache_dir",
    "get_method",
    "isolated_methods",
    "make_method",
    "method_names",
    "register_method",
    "VerifiedMethod",
    "CnnMethod",
    "HashMethod",
    "PHashMethod",
    "DHashMethod",
    "ExactMethod",
    "LesionMethod",
]
