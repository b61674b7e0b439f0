"""The classifier's network: a registry backbone, dropout and a linear head."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ClassifierNetwork"]


class ClassifierNetwork(nn.Module):
    """A registry backbone (pooled features) followed by dropout and a linear head.

    Args:
        backbone: A module mapping ``(N, 3, H, W)`` to ``(N, feature_dim)``.
        feature_dim: Its output width.
        num_classes: Number of classes.
        dropout: Dropout before the head.
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, num_classes)``."""
        return self.head(self.dropout(self.backbone(images)))
