"""Pass-through backbones ``timm:<model>``: any model of timm, as a pooled-feature extractor.

Syntax: ``timm:<model>`` or ``timm:<model>.<pretrained tag>``, where ``<model>`` is any name
``timm.list_models()`` knows, e.g. ``timm:convnext_tiny``, ``timm:efficientnet_b0``,
``timm:resnet50.a1_in1k``. The model is built with ``timm.create_model(model, num_classes=0)``,
which drops the classifier and returns pooled features; ``feature_dim`` is the model's pre-logits
width (``head_hidden_size``, else ``num_features``). Mean, std and input size come from timm's
pretrained config. The task is ``"classification"``. ``pretrained=True`` loads timm's default
pretrained weights, ``pretrained="<tag>"`` a specific tag; extra keyword arguments go to
``timm.create_model`` (e.g. ``drop_rate``).

The spec is obtained cheaply: the model is built on the ``"meta"`` device (no memory, no
initialisation cost), and the result is cached.
"""

from __future__ import annotations

import difflib
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any

from hamkit.backbones.spec import IMAGENET_MEAN, IMAGENET_STD, BackboneSpec
from hamkit.errors import BackboneNotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__all__ = ["PREFIX", "OFFLINE_TAG", "timm_spec", "build_timm", "pooled_dim"]

PREFIX = "timm:"
OFFLINE_TAG = "in1k"
"""timm's tag of the ImageNet weights that :mod:`hamkit.backbones.offline` installs for the
EfficientNet-Lite models (the same Google checkpoints)."""


def pooled_dim(model: nn.Module) -> int:
    """Return the width of the pooled features a ``num_classes=0`` timm model outputs.

    Args:
        model: A timm model.

    Returns:
        ``model.head_hidden_size`` when timm defines it (models with a pre-logits layer, such
        as MobileNetV3), else ``model.num_features``.
    """
    dim = getattr(model, "head_hidden_size", None) or getattr(model, "num_features")  # noqa: B009
    return int(dim)


def build_timm(model_name: str, *, task: str, pretrained: bool | str, **kwargs: Any) -> nn.Module:
    """Build a timm model that returns pooled features.

    Args:
        model_name: The timm model name (optionally with a ``.tag``).
        task: Must be ``"classification"``.
        pretrained: ``False``, ``True`` (timm's default weights) or a pretrained tag.
        **kwargs: Passed to ``timm.create_model``.

    Returns:
        The model (N, 3, H, W) -> (N, feature_dim), with a ``feature_dim`` attribute.

    Examples:
        >>> build_timm("test_resnet", task="classification", pretrained=False).feature_dim
        96
    """
    import timm

    from hamkit.backbones.offline import installed, load_offline_weights, offline_arch

    if isinstance(pretrained, str):
        model_name = f"{model_name.partition('.')[0]}.{pretrained}"
    arch, _, tag = model_name.partition(".")
    offline = offline_arch(arch)
    if pretrained and offline is not None and tag in ("", OFFLINE_TAG) and installed(offline):
        model: nn.Module = timm.create_model(arch, pretrained=False, num_classes=0, **kwargs)
        load_offline_weights(model, offline)  # the installed ImageNet weights: no download
    else:
        model = timm.create_model(model_name, pretrained=bool(pretrained), num_classes=0, **kwargs)
    setattr(model, "feature_dim", pooled_dim(model))  # noqa: B010 (an int, not a Module field)
    return model


def _probe(model_name: str) -> nn.Module:
    """Build the model on the meta device (falls back to the CPU for models that need values)."""
    import timm
    import torch

    try:
        with torch.device("meta"):
            return timm.create_model(model_name, pretrained=False, num_classes=0)
    except Exception:  # some models compute values at construction (e.g. .item())
        return timm.create_model(model_name, pretrained=False, num_classes=0)


@lru_cache(maxsize=256)
def timm_spec(model_name: str) -> BackboneSpec:
    """Return the spec of ``timm:<model_name>``.

    Args:
        model_name: A timm model name, optionally with a pretrained tag (``"resnet50.a1_in1k"``).

    Returns:
        The spec (source ``"timm"``, task ``"classification"``).

    Raises:
        BackboneNotFoundError: timm does not know the model; the message lists close matches.

    Examples:
        >>> spec = timm_spec("test_resnet")
        >>> spec.name, spec.feature_dim, spec.input_size
        ('timm:test_resnet', 96, (160, 160))
    """
    import timm

    from hamkit.backbones.offline import installed, offline_arch

    if not model_name or not timm.is_model(model_name):
        close = difflib.get_close_matches(model_name, timm.list_models(), n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(PREFIX + c for c in close)}?" if close else ""
        raise BackboneNotFoundError(
            f"unknown timm model {model_name!r} in backbone name {PREFIX + model_name!r}{hint} "
            "(timm.list_models() lists the names timm knows)"
        )
    model = _probe(model_name)
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    arch, _, tag = model_name.partition(".")
    tags = [n.partition(".")[2] for n in timm.list_pretrained(f"{arch}.*")]
    if tag:
        tags = [tag] if tag in tags else []
    elif cfg.get("tag") in tags:  # the default tag first
        tags.remove(cfg["tag"])
        tags.insert(0, cfg["tag"])
    input_size = tuple(cfg.get("input_size", (3, 224, 224)))[-2:]
    offline = offline_arch(arch)
    local = (OFFLINE_TAG,) if offline is not None and installed(offline) and tag in ("", OFFLINE_TAG) else ()
    if local and OFFLINE_TAG not in tags:
        tags.insert(0, OFFLINE_TAG)
    return BackboneSpec(
        name=PREFIX + model_name,
        tasks=("classification",),
        builder=partial(build_timm, model_name),
        feature_dim=pooled_dim(model),
        input_size=input_size,
        mean=tuple(cfg.get("mean", IMAGENET_MEAN)),
        std=tuple(cfg.get("std", IMAGENET_STD)),
        pretrained_weights=tuple(tags),
        offline_weights=local,
        source="timm",
        description=f"timm model {model_name} (pooled features, classifier dropped)",
    )
