"""``LesionSegmenter``: binary lesion masks (ISIC 2018 Task 1), optionally with a diagnosis head.

The constructor only stores settings; :meth:`LesionSegmenter.fit` builds the network (any
segmentation backbone of the registry: the torchvision DeepLabV3 built-ins or any
``smp:<Arch>:<encoder>``) and trains it with the shared engine. With ``classify=True`` a linear
head on the globally pooled deepest encoder features predicts the diagnosis from the same
forward pass (multi-task learning: loss = segmentation loss + ``cls_weight`` x cross-entropy).

Resolutions. The network works on square ``image_size`` inputs (default 256, a multiple of 32
that every registry architecture accepts, and the registry's input size for segmentation;
HAM10000's 600x450 photos are shrunk about 2.3 times). Predicted lesion probabilities are
resized bilinearly to each image's **original** size before thresholding, so masks come back at
the size of their image. :meth:`LesionSegmenter.evaluate` scores at the original resolution
against the original mask files (the honest ISIC protocol); the per-epoch validation that picks
the best checkpoint scores at the working resolution (cheaper, and only used for ranking epochs).

Modules: :mod:`~hamkit.segment.network` (network and loss), :mod:`~hamkit.segment.task` (loss and
validation for the shared trainer), :mod:`~hamkit.segment.outputs` (predictions, mask files,
resizing to original sizes), :mod:`~hamkit.segment.estimator` (:class:`LesionSegmenter`). The
public names are re-exported here.
"""

from __future__ import annotations

from hamkit.segment.estimator import LesionSegmenter
from hamkit.segment.network import SEG_LOSSES, SegmentationLoss, SegmentationNetwork
from hamkit.segment.outputs import SegmentationPrediction, save_mask

__all__ = [
    "LesionSegmenter",
    "SegmentationNetwork",
    "SegmentationLoss",
    "SegmentationPrediction",
    "SEG_LOSSES",
    "save_mask",
]
