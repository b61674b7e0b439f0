"""hamkit-tinynet: an example hamkit backbone plugin.

Installing this distribution makes the backbone ``tinynet`` available to hamkit through the
``hamkit.backbones`` entry point group, without importing this module until ``tinynet`` is
asked for::

    >>> import hamkit
    >>> model = hamkit.create_backbone("tinynet")  # doctest: +SKIP
    >>> model.feature_dim  # doctest: +SKIP
    64
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hamkit.backbones.registry import register_backbone

__all__ = ["TinyNet", "tinynet"]

__version__ = "0.1.0"

FEATURE_DIM = 64


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Conv 3x3 (stride 2) -> BatchNorm -> ReLU: halves the resolution."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class TinyNet(nn.Module):
    """A four-block CNN (16, 32, 64, 64 channels, each block stride 2) with global average pooling.

    Args:
        in_channels: Channels of the input images.

    Example:
        >>> TinyNet()(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 64])
    """

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(_block(in_channels, 16), _block(16, 32), _block(32, 64), _block(64, FEATURE_DIM))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim: int = FEATURE_DIM

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images (N, C, H, W) to pooled features (N, 64).

        Args:
            x: Normalised images.

        Returns:
            The pooled features.
        """
        return torch.flatten(self.pool(self.features(x)), 1)


@register_backbone(
    "tinynet",
    tasks=("classification",),
    feature_dim=FEATURE_DIM,
    input_size=(128, 128),
    description="TinyNet: a 4-block CNN with 64-d pooled features (example plugin)",
)
def tinynet(*, task: str = "classification", pretrained: bool | str = False, **kwargs: Any) -> TinyNet:
    """Build TinyNet (hamkit builder protocol: keyword arguments ``task`` and ``pretrained``).

    Args:
        task: Only ``"classification"``.
        pretrained: TinyNet has no pretrained weights; hamkit refuses ``pretrained=True``
            before calling the builder (the spec lists none).
        **kwargs: Passed to :class:`TinyNet` (``in_channels``).

    Returns:
        A randomly initialised :class:`TinyNet`.
    """
    return TinyNet(**kwargs)
