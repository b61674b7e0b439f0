"""Building a backbone from its spec: the work behind :func:`hamkit.backbones.registry.create_backbone`.

:func:`build_backbone` checks the task and the pretrained choice against the spec, calls the
spec's builder (under :func:`~hamkit.backbones.weights.download_guard` when upstream weights
are downloaded), checks that the builder returned a ``torch.nn.Module``, gives it an int
``feature_dim`` attribute when the builder did not, and loads a local weights file
(:func:`~hamkit.backbones.weights.load_weights`) when one is given.

torch is imported by :func:`build_backbone` only, not by importing this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hamkit.backbones.spec import BackboneSpec
from hamkit.errors import HamkitError, WeightsError

if TYPE_CHECKING:  # pragma: no cover
    import os

    from torch import nn

__all__ = ["pretrained_choice", "build_backbone"]


def pretrained_choice(spec: BackboneSpec, pretrained: bool | str) -> bool | str:
    """Check a ``pretrained`` argument against the weights a spec names.

    Args:
        spec: The backbone's spec.
        pretrained: ``False``, ``True`` (the spec's default weights) or a weights name.

    Returns:
        What the builder receives: ``False``, ``True`` or the weights name.

    Raises:
        WeightsError: The backbone has no pretrained weights, or none of that name.

    Examples:
        >>> from hamkit.backbones.torchvision_specs import BUILTIN_SPECS
        >>> pretrained_choice(BUILTIN_SPECS["resnet50"], "IMAGENET1K_V1")
        'IMAGENET1K_V1'
    """
    if not pretrained:
        return False
    if pretrained is True:
        if not spec.pretrained_weights:
            raise WeightsError(
                f"backbone {spec.name!r} has no pretrained weights; pass pretrained=False, or "
                'weights="path/to/file.safetensors" (or .pt/.pth)'
            )
        return True
    if pretrained not in spec.pretrained_weights:
        known = ", ".join(spec.pretrained_weights) or "none"
        raise WeightsError(f"backbone {spec.name!r} has no pretrained weights {pretrained!r}; available: {known}")
    return str(pretrained)


def build_backbone(
    spec: BackboneSpec,
    *,
    task: str | None = None,
    pretrained: bool | str = False,
    weights: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build the model a spec describes (the arguments are :func:`hamkit.backbones.registry.create_backbone`'s).

    Args:
        spec: The backbone's spec.
        task: One of ``spec.tasks``; ``None`` picks ``spec.default_task``.
        pretrained: ``False``, ``True`` or one of ``spec.pretrained_weights``; ignored when
            ``weights`` is given.
        weights: A local ``.safetensors`` / ``.pt`` / ``.pth`` file to load after building.
        **kwargs: Passed to the builder.

    Returns:
        The ``torch.nn.Module``, in training mode, with an int ``feature_dim`` attribute.

    Raises:
        HamkitError: The backbone does not serve ``task``, or its builder returned something
            other than a ``torch.nn.Module``.
        WeightsError: No such pretrained weights, a failed download, or a weights file that
            does not fit.
    """
    task = spec.default_task if task is None else task
    if task not in spec.tasks:
        raise HamkitError(
            f"backbone {spec.name!r} serves {', '.join(spec.tasks)}, not {task!r}; pick another "
            f"backbone (`hamkit backbones --task {task}` lists them) or pass task={spec.tasks[0]!r}"
        )
    import torch

    from hamkit.backbones.weights import download_guard, load_weights

    choice = False if weights is not None else pretrained_choice(spec, pretrained)
    installed = spec.pretrained_offline if choice is True else choice in spec.offline_weights
    if choice and not installed:
        with download_guard(spec.name):
            model = spec.builder(task=task, pretrained=choice, **kwargs)
    else:  # random weights, or weights installed on this machine (no download)
        model = spec.builder(task=task, pretrained=choice, **kwargs)
    if not isinstance(model, torch.nn.Module):
        raise HamkitError(
            f"the builder of backbone {spec.name!r} (package {spec.source!r}) returned a "
            f"{type(model).__name__}, not a torch.nn.Module"
        )
    if not isinstance(getattr(model, "feature_dim", None), int):
        setattr(model, "feature_dim", spec.feature_dim)  # noqa: B010 (an int, not a Module field)
    if weights is not None:
        load_weights(model, weights, name=spec.name)
    return model
