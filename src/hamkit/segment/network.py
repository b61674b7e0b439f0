"""The segmentation network (a registry backbone plus an optional diagnosis head) and its loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hamkit.errors import HamkitError

__all__ = ["SegmentationNetwork", "SegmentationLoss", "SEG_LOSSES"]

SEG_LOSSES = ("bce+dice", "bce", "dice")
"""Segmentation losses: binary cross-entropy plus soft Dice (default), either alone."""


class SegmentationNetwork(nn.Module):
    """A registry segmentation backbone plus, optionally, a classification head.

    The head is global average pooling of the deepest encoder features, dropout and a linear
    layer; it shares the one forward pass of the segmentation model.

    Args:
        backbone: A module following the segmentation contract of
            :func:`hamkit.create_backbone` (``forward(x, return_features=False)``).
        num_classes: Classes of the head, or ``None`` for no head.
        dropout: Dropout before the head's linear layer.

    Examples:
        >>> from hamkit.backbones.registry import create_backbone
        >>> body = create_backbone("smp:Unet:resnet18", encoder_depth=3, decoder_channels=(16, 8, 8))
        >>> net = SegmentationNetwork(body, num_classes=7).eval()
        >>> masks, classes = net(torch.zeros(2, 3, 32, 32))
        >>> tuple(masks.shape), tuple(classes.shape)
        ((2, 1, 32, 32), (2, 7))
    """

    def __init__(self, backbone: nn.Module, num_classes: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.feature_dim = int(backbone.feature_dim)  # type: ignore[arg-type]  # set by the registry
        self.head: nn.Module | None = None
        if num_classes:
            self.head = nn.Sequential(
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(self.feature_dim, num_classes)
            )

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mask logits ``(N, 1, H, W)`` and class logits ``(N, num_classes)`` (``None`` without a head)."""
        if self.head is None:
            return self.backbone(images), None
        mask_logits, features = self.backbone(images, return_features=True)
        return mask_logits, self.head(features)


class SegmentationLoss(nn.Module):
    """The joint loss: segmentation loss + ``cls_weight`` x cross-entropy of the class head.

    The segmentation part is ``"bce+dice"`` (binary cross-entropy plus
    ``segmentation_models_pytorch.losses.DiceLoss(mode="binary")``, the soft Dice of the
    batch), ``"bce"`` or ``"dice"``. Inputs are cast to float32 first, so the loss is computed in
    full precision under mixed precision.

    Args:
        kind: One of :data:`SEG_LOSSES`.
        cls_weight: Weight of the cross-entropy term.
        class_weights: Per-class weights of the cross-entropy (class balancing), or ``None``.

    Raises:
        HamkitError: Unknown ``kind`` or a negative ``cls_weight``.
    """

    def __init__(
        self, kind: str = "bce+dice", cls_weight: float = 1.0, class_weights: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        if kind not in SEG_LOSSES:
            raise HamkitError(f"unknown segmentation loss {kind!r}; choose one of {', '.join(SEG_LOSSES)}")
        if not cls_weight >= 0:
            raise HamkitError(f"cls_weight must be zero or positive, got {cls_weight}")
        from segmentation_models_pytorch.losses import DiceLoss

        self.kind = kind
        self.cls_weight = float(cls_weight)
        self.dice = DiceLoss(mode="binary", from_logits=True) if "dice" in kind else None
        self.cross_entropy = nn.CrossEntropyLoss(weight=class_weights)

    def forward(
        self,
        mask_logits: torch.Tensor,
        masks: torch.Tensor,
        class_logits: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Return ``(total, segmentation part, classification part or None)``, float32 scalars."""
        logits, target = mask_logits.float(), masks.float()
        seg = logits.new_zeros(())
        if "bce" in self.kind:
            seg = seg + F.binary_cross_entropy_with_logits(logits, target)
        if self.dice is not None:
            seg = seg + self.dice(logits, target)
        if class_logits is None or labels is None:
            return seg, seg, None
        cls = self.cross_entropy(class_logits.float(), labels)
        return seg + self.cls_weight * cls, seg, cls
