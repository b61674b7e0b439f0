"""The networks the estimators and ``hamkit train`` start from when none is named.

Both start from ImageNet weights that are installed with hamkit (EfficientNet-Lite0, see
:mod:`hamkit.backbones.offline`), so the defaults train a pretrained network on a machine
without internet. The API (:class:`~hamkit.classify.LesionClassifier`,
:class:`~hamkit.segment.LesionSegmenter`) and the command line read them from here. This module
imports nothing.
"""

from __future__ import annotations

__all__ = [
    "CLASSIFIER_BACKBONE",
    "CLASSIFIER_IMAGE_SIZE",
    "EMBEDDING_BACKBONE",
    "EMBEDDING_THRESHOLD",
    "SEGMENTER_BACKBONE",
    "SEGMENTER_IMAGE_SIZE",
]

CLASSIFIER_BACKBONE = "timm:tf_efficientnet_lite0"
"""The classifier's default backbone (ImageNet weights installed offline)."""

CLASSIFIER_IMAGE_SIZE = 224
"""The classifier's default input size: the size the ImageNet weights were trained at."""

EMBEDDING_BACKBONE = "timm:tf_efficientnet_lite0"
"""The network whose pooled features the duplicate methods compare (``cnn``; the lesion crops of
``lesion``): ImageNet weights installed with hamkit, nothing learnt from HAM10000."""

EMBEDDING_THRESHOLD = 0.95
"""The ``cnn`` duplicate method's default: the cosine similarity of :data:`EMBEDDING_BACKBONE`'s
features above which two images pair, measured on the 10,015 HAM10000 images with planted copies
(``benchmarks/dedup_real.py``; another network needs its own)."""

SEGMENTER_BACKBONE = "smp:Linknet:tu-tf_efficientnet_lite0"
"""The segmenter's default network: LinkNet on the EfficientNet-Lite0 encoder (ImageNet weights
installed offline)."""

SEGMENTER_IMAGE_SIZE = 256
"""The segmenter's default input size (a multiple of 32)."""
