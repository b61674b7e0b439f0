"""The built-in backbones: torchvision models, described statically.

Classification (pooled features, the classifier head replaced by ``nn.Identity``):
``mobilenet_v2`` (1280), ``mobilenet_v3_small`` (576), ``mobilenet_v3_large`` (960),
``resnet18`` (512), ``resnet34`` (512), ``resnet50`` (2048), ``resnet101`` (2048).

Segmentation (DeepLabV3; ``pretrained`` loads torchvision's COCO-with-VOC-labels weights, then
the final 1x1 convolution is replaced by one with ``out_channels`` outputs and the auxiliary
classifier is dropped): ``deeplabv3_resnet50`` (2048), ``deeplabv3_resnet101`` (2048),
``deeplabv3_mobilenet_v3_large`` (960); the number is the channels of the backbone's ``"out"``
feature map.

The metadata (feature dimensions, weight names) is written here so that listing backbones imports
no torch; ``tests/backbones/test_backbones.py`` checks it against the models torchvision builds. Any
keyword argument a builder does not use is passed on to ``torchvision.models.get_model``.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from hamkit.backbones.spec import BackboneSpec

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__all__ = ["BUILTIN_SPECS", "build_classifier", "build_deeplab"]

SEGMENTATION_INPUT_SIZE: tuple[int, int] = (256, 256)
"""Default input size of the built-in segmentation backbones (divisible by 32)."""


def _torchvision_weights(model_name: str, pretrained: bool | str) -> Any:
    """Return the torchvision weights enum member for ``pretrained`` (``None`` for no weights)."""
    if not pretrained:
        return None
    from torchvision.models import get_model_weights

    enum = get_model_weights(model_name)
    return enum.DEFAULT if pretrained is True else enum[str(pretrained)]


def build_classifier(model_name: str, head: str, *, task: str, pretrained: bool | str, **kwargs: Any) -> nn.Module:
    """Build a torchvision classification model that returns pooled features.

    Args:
        model_name: The torchvision model name, e.g. ``"resnet18"``.
        head: The attribute holding the classifier head (``"fc"`` or ``"classifier"``); it is
            replaced by ``nn.Identity`` so the model returns the pooled features.
        task: Must be ``"classification"``.
        pretrained: ``False``, ``True`` (torchvision's ``DEFAULT`` weights) or a weights enum name.
        **kwargs: Passed to ``torchvision.models.get_model``.

    Returns:
        The model, mapping (N, 3, H, W) to (N, feature_dim), with a ``feature_dim`` attribute.

    Examples:
        >>> model = build_classifier("resnet18", "fc", task="classification", pretrained=False)
        >>> model.feature_dim
        512
    """
    from torch import nn
    from torchvision.models import get_model

    from hamkit.backbones.wrappers import first_layer

    model: nn.Module = get_model(model_name, weights=_torchvision_weights(model_name, pretrained), **kwargs)
    feature_dim = first_layer(getattr(model, head), nn.Linear).in_features
    setattr(model, head, nn.Identity())
    setattr(model, "feature_dim", int(feature_dim))  # noqa: B010 (an int, not a Module field)
    return model


def build_deeplab(
    model_name: str, *, task: str, pretrained: bool | str, out_channels: int = 1, **kwargs: Any
) -> nn.Module:
    """Build a torchvision DeepLabV3 model following the segmentation contract.

    Args:
        model_name: The torchvision model name, e.g. ``"deeplabv3_resnet50"``.
        task: Must be ``"segmentation"``.
        pretrained: ``False``, ``True`` (COCO-with-VOC-labels weights) or a weights enum name.
        out_channels: Channels of the mask logits.
        **kwargs: Passed to ``torchvision.models.get_model`` (e.g. ``weights_backbone`` to
            start from an ImageNet backbone; the default is none, so nothing is downloaded).

    Returns:
        A :class:`~hamkit.backbones.wrappers.TorchvisionSegmentation`.
    """
    from torch import nn
    from torchvision.models import get_model

    from hamkit.backbones.wrappers import TorchvisionSegmentation

    weights = _torchvision_weights(model_name, pretrained)
    if weights is None:
        kwargs.setdefault("weights_backbone", None)
        model = get_model(model_name, weights=None, num_classes=out_channels, aux_loss=False, **kwargs)
    else:
        model = get_model(model_name, weights=weights, **kwargs)
        final = model.classifier[-1]
        model.classifier[-1] = nn.Conv2d(final.in_channels, out_channels, kernel_size=1)
    return TorchvisionSegmentation(model.backbone, model.classifier)


def _classifier(name: str, head: str, dim: int, weights: tuple[str, ...], what: str) -> BackboneSpec:
    return BackboneSpec(
        name=name,
        tasks=("classification",),
        builder=partial(build_classifier, name, head),
        feature_dim=dim,
        pretrained_weights=weights,
        description=f"torchvision {what}; ImageNet-1k weights",
    )


def _deeplab(name: str, dim: int, what: str) -> BackboneSpec:
    return BackboneSpec(
        name=name,
        tasks=("segmentation",),
        builder=partial(build_deeplab, name),
        feature_dim=dim,
        input_size=SEGMENTATION_INPUT_SIZE,
        pretrained_weights=("COCO_WITH_VOC_LABELS_V1",),
        description=f"torchvision DeepLabV3 with a {what} backbone; COCO (VOC labels) weights",
    )


_V1 = ("IMAGENET1K_V1",)
_V2 = ("IMAGENET1K_V2", "IMAGENET1K_V1")  # DEFAULT first

BUILTIN_SPECS: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        _classifier("mobilenet_v2", "classifier", 1280, _V2, "MobileNetV2"),
        _classifier("mobilenet_v3_small", "classifier", 576, _V1, "MobileNetV3-Small"),
        _classifier("mobilenet_v3_large", "classifier", 960, _V2, "MobileNetV3-Large"),
        _classifier("resnet18", "fc", 512, _V1, "ResNet-18"),
        _classifier("resnet34", "fc", 512, _V1, "ResNet-34"),
        _classifier("resnet50", "fc", 2048, _V2, "ResNet-50"),
        _classifier("resnet101", "fc", 2048, _V2, "ResNet-101"),
        _deeplab("deeplabv3_resnet50", 2048, "ResNet-50"),
        _deeplab("deeplabv3_resnet101", 2048, "ResNet-101"),
        _deeplab("deeplabv3_mobilenet_v3_large", 960, "MobileNetV3-Large"),
    )
}
"""The built-in backbones by name (torchvision models; metadata only, nothing imported)."""
