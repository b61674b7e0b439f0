"""``nn.Module`` wrappers that give upstream segmentation models hamkit's contract.

The contract (see :func:`hamkit.backbones.registry.create_backbone`): ``forward(x, return_features=False)``
returns mask logits ``(N, out_channels, H, W)`` at the input resolution; with
``return_features=True`` it returns ``(logits, features)``, where ``features`` is the deepest
encoder feature map ``(N, feature_dim, h, w)`` of the same forward pass. Each wrapper has an int
attribute ``feature_dim``.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["first_layer", "TorchvisionSegmentation", "SmpSegmentation"]

_M = TypeVar("_M", bound=nn.Module)


def first_layer(module: nn.Module, kind: type[_M]) -> _M:
    """Return the first submodule (in registration order, ``module`` included) of type ``kind``.

    Args:
        module: The module to search.
        kind: The layer type, e.g. ``nn.Linear``.

    Returns:
        The first matching submodule.

    Raises:
        LookupError: ``module`` contains no layer of that type.

    Examples:
        >>> first_layer(nn.Sequential(nn.ReLU(), nn.Linear(4, 2)), nn.Linear).in_features
        4
    """
    for layer in module.modules():
        if isinstance(layer, kind):
            return layer
    raise LookupError(f"{type(module).__name__} contains no {kind.__name__}")


def _resize_to(logits: torch.Tensor, size: torch.Size) -> torch.Tensor:
    if logits.shape[-2:] == size:
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class TorchvisionSegmentation(nn.Module):
    """A torchvision DeepLabV3 (backbone + head) without the auxiliary classifier.

    The submodule names are torchvision's (``backbone``, ``classifier``), so a torchvision
    checkpoint loads into it directly.

    Args:
        backbone: torchvision's ``IntermediateLayerGetter``; only its ``"out"`` feature is kept.
        classifier: The DeepLab head mapping the ``"out"`` features to mask logits.

    Examples:
        >>> from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large as build
        >>> tv = build(weights=None, weights_backbone=None, num_classes=1, aux_loss=False)
        >>> model = TorchvisionSegmentation(tv.backbone, tv.classifier).eval()
        >>> logits, features = model(torch.zeros(1, 3, 64, 64), return_features=True)
        >>> tuple(logits.shape), features.shape[1] == model.feature_dim
        ((1, 1, 64, 64), True)
    """

    def __init__(self, backbone: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        return_layers = getattr(backbone, "return_layers", None)
        if isinstance(return_layers, dict):  # drop the "aux" output nobody reads
            only_out = {k: v for k, v in return_layers.items() if v == "out"}
            setattr(backbone, "return_layers", only_out)  # noqa: B010 (not an nn.Module field)
        self.backbone = backbone
        self.classifier = classifier
        self.feature_dim: int = int(first_layer(classifier, nn.Conv2d).in_channels)

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Compute mask logits (and the deepest features).

        Args:
            x: Normalised images (N, 3, H, W).
            return_features: Also return the backbone's ``"out"`` feature map.

        Returns:
            Logits (N, out_channels, H, W), or ``(logits, features)``.
        """
        features = self.backbone(x)["out"]
        logits = _resize_to(self.classifier(features), x.shape[-2:])
        return (logits, features) if return_features else logits


class SmpSegmentation(nn.Module):
    """A segmentation-models-pytorch model whose deepest encoder features can be returned.

    A forward hook on ``model.encoder`` (registered only for a ``return_features=True`` call)
    captures the encoder's last feature map during the single forward pass.

    Args:
        model: An smp ``SegmentationModel`` (``Unet``, ``DeepLabV3Plus``, ...).

    Examples:
        >>> import segmentation_models_pytorch as smp
        >>> model = SmpSegmentation(smp.Unet("resnet18", encoder_weights=None)).eval()
        >>> logits, features = model(torch.zeros(1, 3, 64, 64), return_features=True)
        >>> tuple(logits.shape), tuple(features.shape)
        ((1, 1, 64, 64), (1, 512, 2, 2))
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        encoder: Any = model.encoder
        self.feature_dim: int = int(encoder.out_channels[-1])

    @property
    def upstream(self) -> nn.Module:
        """The wrapped smp model (its state dict has smp's own key names)."""
        return self.model

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Compute mask logits (and the deepest encoder features).

        Args:
            x: Normalised images (N, 3, H, W); H and W divisible by the encoder's output stride.
            return_features: Also return the encoder's deepest feature map.

        Returns:
            Logits (N, out_channels, H, W), or ``(logits, features)``.
        """
        if not return_features:
            return _resize_to(self.model(x), x.shape[-2:])
        captured: list[torch.Tensor] = []

        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            nested = isinstance(output, tuple) and isinstance(output[0], (list, tuple))
            features = output[0] if nested else output  # DPT encoders return (features, tokens)
            captured.append(features[-1])

        handle = cast(nn.Module, self.model.encoder).register_forward_hook(hook)
        try:
            logits = _resize_to(self.model(x), x.shape[-2:])
        finally:
            handle.remove()
        return logits, captured[-1]
