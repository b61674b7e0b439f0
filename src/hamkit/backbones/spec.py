"""The records the backbone registry hands out: :class:`BackboneSpec` and :class:`PluginInfo`.

This module imports nothing heavy: a spec is plain metadata plus a reference to its builder, so
listing and describing backbones never imports torch.

The builder protocol:
    ``spec.builder(task=task, pretrained=pretrained, **kwargs)`` is called with keyword arguments
    only and returns a ``torch.nn.Module`` that honours the contract of
    :func:`hamkit.backbones.registry.create_backbone`. ``task`` is one of ``spec.tasks``; ``pretrained`` is
    ``False``, ``True`` (the default upstream weights) or one of ``spec.pretrained_weights``;
    segmentation builders take ``out_channels`` (default 1) among ``kwargs``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hamkit.errors import HamkitError

__all__ = [
    "TASKS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BackboneSpec",
    "PluginInfo",
    "rgb_triple",
]

TASKS: tuple[str, ...] = ("classification", "segmentation")
"""The tasks a backbone can serve: pooled features for classification, or mask logits."""

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
"""Per-channel mean of ImageNet (RGB, images scaled to [0, 1])."""

IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
"""Per-channel standard deviation of ImageNet (RGB, images scaled to [0, 1])."""


def rgb_triple(value: Sequence[float], what: str, name: str) -> tuple[float, float, float]:
    """Return ``value`` as three floats (R, G, B), for the ``mean`` / ``std`` of a spec.

    Args:
        value: Three numbers.
        what: The field's name, for the message.
        name: The backbone's name, for the message.

    Returns:
        ``(r, g, b)`` as floats.

    Raises:
        HamkitError: ``value`` does not hold exactly three numbers.

    Examples:
        >>> rgb_triple([0, 0.5, 1], "mean", "x")
        (0.0, 0.5, 1.0)
    """
    values = tuple(float(v) for v in value)
    if len(values) != 3:
        raise HamkitError(f"backbone {name!r}: {what} needs 3 values (R, G, B), got {len(values)}")
    return values[0], values[1], values[2]


@dataclass(frozen=True)
class BackboneSpec:
    """Everything hamkit knows about one backbone, without building it.

    Args:
        name: The registry name, e.g. ``"resnet18"``, ``"timm:convnext_tiny"``.
        tasks: The tasks served, a non-empty subset of :data:`TASKS`; the first is the default.
        builder: Callable building the model (see the module docstring for its protocol).
        feature_dim: For classification, the size of the pooled feature vector; for
            segmentation, the channels of the deepest encoder feature map.
        input_size: Default ``(height, width)`` of the input images.
        mean: Per-channel normalisation mean (RGB, images in [0, 1]); ImageNet by default.
        std: Per-channel normalisation standard deviation; ImageNet by default.
        pretrained_weights: Names of the upstream pretrained weights that exist (torchvision
            enum names, timm pretrained tags, smp encoder weights such as ``"imagenet"``);
            the first is the one ``pretrained=True`` picks. Empty if there are none.
        offline_weights: Those of ``pretrained_weights`` that load without a network (installed
            as packages, see :mod:`hamkit.backbones.offline`). Empty if none.
        source: The package that provides the backbone: ``"hamkit"`` for built-ins, the
            distribution name for plugins, ``"timm"`` / ``"segmentation-models-pytorch"`` for
            pass-through names.
        description: One line saying what the backbone is.

    Raises:
        HamkitError: A field is invalid (unknown task, non-positive feature dimension, ...).

    Examples:
        >>> from hamkit.backbones.registry import get_backbone
        >>> spec = get_backbone("resnet18")
        >>> spec.tasks, spec.feature_dim, spec.source
        (('classification',), 512, 'hamkit')
    """

    name: str
    tasks: tuple[str, ...]
    builder: Callable[..., Any] = field(repr=False, compare=False)
    feature_dim: int
    input_size: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pretrained_weights: tuple[str, ...] = ()
    offline_weights: tuple[str, ...] = ()
    source: str = "hamkit"
    description: str = ""

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name.strip():
            raise HamkitError(f"backbone name must be a non-empty string, got {name!r}")
        tasks = (self.tasks,) if isinstance(self.tasks, str) else tuple(self.tasks)
        unknown = [t for t in tasks if t not in TASKS]
        if not tasks or unknown:
            raise HamkitError(f"backbone {name!r}: tasks must be a non-empty subset of {TASKS}, got {tasks!r}")
        if not callable(self.builder):
            raise HamkitError(f"backbone {name!r}: builder must be callable, got {self.builder!r}")
        if isinstance(self.feature_dim, bool) or int(self.feature_dim) != self.feature_dim or (self.feature_dim <= 0):
            raise HamkitError(f"backbone {name!r}: feature_dim must be a positive int, got {self.feature_dim!r}")
        size = tuple(int(s) for s in self.input_size)
        if len(size) != 2 or min(size) <= 0:
            raise HamkitError(f"backbone {name!r}: input_size must be (height, width), got {self.input_size!r}")
        std = rgb_triple(self.std, "std", name)
        if min(std) <= 0:
            raise HamkitError(f"backbone {name!r}: std must be positive, got {std!r}")
        weights = (
            (self.pretrained_weights,)
            if isinstance(self.pretrained_weights, str)
            else tuple(str(w) for w in self.pretrained_weights)
        )
        object.__setattr__(self, "tasks", tasks)
        object.__setattr__(self, "feature_dim", int(self.feature_dim))
        object.__setattr__(self, "input_size", size)
        object.__setattr__(self, "mean", rgb_triple(self.mean, "mean", name))
        object.__setattr__(self, "std", std)
        offline = (
            (self.offline_weights,)
            if isinstance(self.offline_weights, str)
            else tuple(str(w) for w in self.offline_weights)
        )
        stray = [w for w in offline if w not in weights]
        if stray:
            raise HamkitError(
                f"backbone {name!r}: offline_weights {stray!r} are not among pretrained_weights {weights!r}"
            )
        object.__setattr__(self, "pretrained_weights", weights)
        object.__setattr__(self, "offline_weights", offline)
        object.__setattr__(self, "description", " ".join(str(self.description).split()))

    @property
    def pretrained_offline(self) -> bool:
        """Whether ``pretrained=True`` loads weights without a network (the default weights are installed)."""
        return bool(self.pretrained_weights) and self.pretrained_weights[0] in self.offline_weights

    @property
    def default_task(self) -> str:
        """The task ``create_backbone(name)`` builds when no task is given (the first one)."""
        return self.tasks[0]


@dataclass(frozen=True)
class PluginInfo:
    """One entry point of the ``hamkit.backbones`` group, as :func:`list_plugins` reports it.

    Args:
        name: The entry point name, which is the backbone name.
        package: The distribution that declares the entry point.
        version: That distribution's version.
        value: The entry point's object reference, ``"module:attribute"``.
        status: ``"not loaded"`` (discovered, not imported yet), ``"loaded"``, ``"failed"``
            (importing it raised; see ``error``) or ``"shadowed"`` (its name is taken by a
            built-in, a reserved prefix or an earlier plugin; it is ignored).
        error: Why it failed or is shadowed; ``None`` otherwise.

    Examples:
        >>> info = PluginInfo("tinynet", "hamkit-tinynet", "0.1.0", "hamkit_tinynet:tinynet",
        ...                   "loaded")
        >>> info.status, info.error
        ('loaded', None)
    """

    name: str
    package: str
    version: str
    value: str
    status: str
    error: str | None = None
