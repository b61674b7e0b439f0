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
    "SEGMENTER_BACKBONE",
    "SEGMENTER_IMAGE_SIZE",
]

CLASSIFIER_BACKBONE = "timm:tf_efficientnet_lite0"
"""The classifier's default backbone (ImageNet weights installed offline)."""

CLASSIFIER_IMAGE_SIZE = 224
"""The classifier's default input size: the size the ImageNet weights were trained at."""

SEGMENTER_BACKBONE = "smp:Linknet:tu-tf_efficientnet_lite0"
"""The segmenter's default network: LinkNet on the EfficientNet-Lite0 encoder (ImageNet weights
installed offline)."""

SEGMENTER_IMAGE_SIZE = 256
"""The segmenter's default input size (a multiple of 32)."""
