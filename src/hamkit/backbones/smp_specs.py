"""Pass-through backbones ``smp:<Arch>:<encoder>``: any segmentation-models-pytorch model.

Syntax: ``smp:<Arch>:<encoder>``, where ``<Arch>`` is an smp architecture (``Unet``,
``UnetPlusPlus``, ``MAnet``, ``Linknet``, ``FPN``, ``PSPNet``, ``DeepLabV3``, ``DeepLabV3Plus``,
``PAN``, ``UPerNet``, ``Segformer``, ``DPT``, ...; any case) and ``<encoder>`` is one of
``smp.encoders.get_encoder_names()`` or ``tu-<timm model>`` for any timm model, e.g.
``smp:DeepLabV3Plus:resnet34``, ``smp:Unet:tu-efficientnet_b0``.

The task is ``"segmentation"``; ``out_channels`` (default 1) becomes smp's ``classes`` and other
keyword arguments go to the architecture (e.g. ``decoder_channels``). ``pretrained=True`` sets
``encoder_weights="imagenet"`` (``pretrained="<weights>"`` picks another of the encoder's
weights, e.g. ``"ssl"``). ``feature_dim`` is ``encoder.out_channels[-1]``, the channels of the
deepest encoder feature map; the model is probed on the ``"meta"`` device and the spec cached.
Input height and width must be divisible by the encoder's output stride (32 for most).
"""

from __future__ import annotations

import difflib
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any

from hamkit.backbones.spec import IMAGENET_MEAN, IMAGENET_STD, BackboneSpec
from hamkit.errors import BackboneNotFoundError, HamkitError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__all__ = ["PREFIX", "SOURCE", "smp_spec", "build_smp", "architectures"]

PREFIX = "smp:"
SOURCE = "segmentation-models-pytorch"
INPUT_SIZE: tuple[int, int] = (256, 256)


def architectures() -> dict[str, type]:
    """Return smp's segmentation architectures keyed by lower-case class name.

    Returns:
        ``{"unet": smp.Unet, "deeplabv3plus": smp.DeepLabV3Plus, ...}``.

    Examples:
        >>> architectures()["deeplabv3plus"].__name__
        'DeepLabV3Plus'
    """
    import segmentation_models_pytorch as smp
    from segmentation_models_pytorch.base import SegmentationModel

    found = {
        name.lower(): obj
        for name in dir(smp)
        if isinstance(obj := getattr(smp, name), type) and issubclass(obj, SegmentationModel)
    }
    found.pop("segmentationmodel", None)
    return found


def build_smp(
    arch: str,
    encoder: str,
    *,
    task: str,
    pretrained: bool | str,
    out_channels: int = 1,
    **kwargs: Any,
) -> nn.Module:
    """Build an smp model wrapped to follow hamkit's segmentation contract.

    Args:
        arch: The architecture name (any case).
        encoder: The encoder name.
        task: Must be ``"segmentation"``.
        pretrained: ``False``, ``True`` (``"imagenet"`` encoder weights) or a weights name.
        out_channels: Channels of the mask logits (smp's ``classes``).
        **kwargs: Passed to the architecture.

    Returns:
        A :class:`~hamkit.backbones.wrappers.SmpSegmentation`.

    Raises:
        HamkitError: ``aux_params`` was passed (use ``return_features=True`` and a head instead).

    Examples:
        >>> model = build_smp("Unet", "resnet18", task="segmentation", pretrained=False)
        >>> model.feature_dim
        512
    """
    from hamkit.backbones.wrappers import SmpSegmentation

    if "aux_params" in kwargs:
        raise HamkitError(
            f"backbone {PREFIX}{arch}:{encoder}: smp's aux_params classification head is not "
            "supported; call the model with return_features=True and pool the features instead"
        )
    from hamkit.backbones.offline import installed, load_offline_weights, offline_arch

    offline = offline_arch(encoder)
    if pretrained in (True, "imagenet") and offline is not None and installed(offline):
        model = architectures()[arch.lower()](
            encoder_name=encoder, encoder_weights=None, classes=out_channels, **kwargs
        )
        inner = getattr(model.encoder, "model", model.encoder)  # timm-universal encoders wrap the timm model
        load_offline_weights(inner, offline)  # the installed ImageNet weights: no download
        return SmpSegmentation(model)
    weights: str | bool | None = None
    if pretrained:
        weights = "imagenet" if pretrained is True else str(pretrained)
        if encoder.startswith("tu-"):
            weights = True  # timm-universal encoders take a flag; the tag is in the name
    model = architectures()[arch.lower()](encoder_name=encoder, encoder_weights=weights, classes=out_channels, **kwargs)
    return SmpSegmentation(model)


def _encoder_meta(encoder: str) -> tuple[tuple[str, ...], tuple[Any, Any]]:
    """Return (pretrained weight names, (mean, std)) of an encoder without downloading."""
    if encoder.startswith("tu-"):
        import timm

        timm_name = encoder[3:]
        if not timm.models.is_model_pretrained(timm_name):
            return (), (IMAGENET_MEAN, IMAGENET_STD)
        cfg = timm.models.get_pretrained_cfg(timm_name)
        if cfg is None:
            return ("imagenet",), (IMAGENET_MEAN, IMAGENET_STD)
        return ("imagenet",), (cfg.mean or IMAGENET_MEAN, cfg.std or IMAGENET_STD)
    from segmentation_models_pytorch.encoders import encoders

    settings = encoders[encoder]["pretrained_settings"]
    names = tuple(sorted(settings, key=lambda w: (w != "imagenet", w)))
    first = settings[names[0]] if names else {}
    return names, (first.get("mean", IMAGENET_MEAN), first.get("std", IMAGENET_STD))


def _check_encoder(encoder: str, name: str) -> None:
    if encoder.startswith("tu-"):
        import timm

        if timm.is_model(encoder[3:]):
            return
        choices = ["tu-" + m for m in timm.list_models()]
    else:
        from segmentation_models_pytorch.encoders import get_encoder_names

        choices = get_encoder_names()
        if encoder in choices:
            return
    close = difflib.get_close_matches(encoder, choices, n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise BackboneNotFoundError(
        f"unknown smp encoder {encoder!r} in backbone name {name!r}{hint} (use one of "
        "segmentation_models_pytorch.encoders.get_encoder_names(), or 'tu-<timm model>')"
    )


def _probe(arch_cls: type, encoder: str) -> Any:
    import torch

    try:
        with torch.device("meta"):
            return arch_cls(encoder_name=encoder, encoder_weights=None)
    except Exception:  # some encoders compute values at construction
        return arch_cls(encoder_name=encoder, encoder_weights=None)


@lru_cache(maxsize=256)
def smp_spec(arch_and_encoder: str) -> BackboneSpec:
    """Return the spec of ``smp:<Arch>:<encoder>``.

    Args:
        arch_and_encoder: The part after ``smp:``, i.e. ``"<Arch>:<encoder>"``.

    Returns:
        The spec (source ``"segmentation-models-pytorch"``, task ``"segmentation"``), named
        with smp's spelling of the architecture, e.g. ``smp:DeepLabV3Plus:resnet34``.

    Raises:
        BackboneNotFoundError: Malformed name, or an unknown architecture or encoder; the
            message lists the valid or close names.

    Examples:
        >>> spec = smp_spec("unet:resnet18")
        >>> spec.name, spec.feature_dim, spec.pretrained_weights
        ('smp:Unet:resnet18', 512, ('imagenet', 'ssl', 'swsl'))
    """
    from hamkit.backbones.offline import OFFLINE_MEAN, OFFLINE_STD, installed, offline_arch

    name = PREFIX + arch_and_encoder
    arch, sep, encoder = arch_and_encoder.partition(":")
    if not sep or not arch or not encoder:
        raise BackboneNotFoundError(
            f"malformed backbone name {name!r}: expected 'smp:<Arch>:<encoder>', "
            "e.g. 'smp:DeepLabV3Plus:resnet34' or 'smp:Unet:tu-efficientnet_b0'"
        )
    archs = architectures()
    if arch.lower() not in archs:
        spelled = sorted(cls.__name__ for cls in archs.values())
        close = difflib.get_close_matches(arch, spelled, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise BackboneNotFoundError(
            f"unknown smp architecture {arch!r} in backbone name {name!r}; {hint}available: {', '.join(spelled)}"
        )
    _check_encoder(encoder, name)
    arch_cls = archs[arch.lower()]
    weights, (mean, std) = _encoder_meta(encoder)
    offline = offline_arch(encoder)
    local = ("imagenet",) if offline is not None and installed(offline) and "imagenet" in weights else ()
    if local:  # the installed weights expect [-1, 1] inputs, whatever smp's table says for its copy
        mean, std = OFFLINE_MEAN, OFFLINE_STD
    model = _probe(arch_cls, encoder)
    return BackboneSpec(
        name=f"{PREFIX}{arch_cls.__name__}:{encoder}",
        tasks=("segmentation",),
        builder=partial(build_smp, arch_cls.__name__, encoder),
        feature_dim=int(model.encoder.out_channels[-1]),
        input_size=INPUT_SIZE,
        mean=tuple(mean),
        std=tuple(std),
        pretrained_weights=weights,
        offline_weights=local,
        source=SOURCE,
        description=f"segmentation-models-pytorch {arch_cls.__name__} with a {encoder} encoder",
    )
