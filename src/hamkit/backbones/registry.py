"""The backbone registry: one name, one way to build a feature extractor or segmentation model.

Names the registry understands:

* **Built-ins** (torchvision; see :mod:`hamkit.backbones.torchvision_specs`): ``resnet18``,
  ``resnet34``, ``resnet50``, ``resnet101``, ``mobilenet_v2``, ``mobilenet_v3_small``,
  ``mobilenet_v3_large`` (classification) and ``deeplabv3_resnet50``, ``deeplabv3_resnet101``,
  ``deeplabv3_mobilenet_v3_large`` (segmentation).
* **timm pass-through**: ``timm:<model>`` is any timm model (``timm:convnext_tiny``,
  ``timm:resnet50.a1_in1k``); see :mod:`hamkit.backbones.timm_specs`.
* **smp pass-through**: ``smp:<Arch>:<encoder>`` is any segmentation-models-pytorch model
  (``smp:DeepLabV3Plus:resnet34``, ``smp:Unet:tu-efficientnet_b0``); see
  :mod:`hamkit.backbones.smp_specs`.
* **Plugins**: entry points of the ``hamkit.backbones`` group of installed packages, discovered
  on the first registry query and imported only when their name is asked for; see
  :mod:`hamkit.backbones.plugins`. ``HAMKIT_DISABLE_PLUGINS=1`` turns them off.
* **Your own**, registered with :func:`register_backbone`.

This module is the public face; the work is done in :mod:`hamkit.backbones`: the table of names
and its lookups in :mod:`~hamkit.backbones.table`, building a model from its spec in
:mod:`~hamkit.backbones.factory`, plugin discovery in :mod:`~hamkit.backbones.plugins`.

Importing this module imports neither torch nor any model library; nor does listing or
describing the built-ins.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, overload

from hamkit.backbones import plugins as _plugins
from hamkit.backbones.factory import build_backbone, pretrained_choice
from hamkit.backbones.spec import IMAGENET_MEAN, IMAGENET_STD, TASKS, BackboneSpec, PluginInfo, rgb_triple
from hamkit.backbones.table import RESERVED_PREFIXES, BackboneTable
from hamkit.backbones.torchvision_specs import BUILTIN_SPECS
from hamkit.errors import HamkitError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__all__ = [
    "TASKS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RESERVED_PREFIXES",
    "BackboneSpec",
    "PluginInfo",
    "register_backbone",
    "create_backbone",
    "get_backbone",
    "isolated",
    "list_backbones",
    "list_plugins",
    "describe_initial_weights",
    "missing_pretrained",
]

_F = TypeVar("_F", bound=Callable[..., Any])

_REGISTRY = BackboneTable(BUILTIN_SPECS)


@contextmanager
def isolated(*, plugins: bool = True) -> Iterator[None]:
    """A registry of its own for the length of a ``with`` block: the built-ins, and the backbones
    registered inside the block, which are forgotten after it (for tests, and plugins' tests).

    Args:
        plugins: Discover installed plugins in it (``False``: as with ``HAMKIT_DISABLE_PLUGINS=1``).

    Examples:
        >>> with isolated(plugins=False):
        ...     @register_backbone("tiny_test_net", feature_dim=3)
        ...     def tiny_test_net(pretrained=False, **kwargs):
        ...         raise NotImplementedError
        ...     "tiny_test_net" in list_backbones("tiny")
        True
        >>> list_backbones("tiny_test_net")
        []
    """
    global _REGISTRY
    saved, saved_env = _REGISTRY, os.environ.get(_plugins.DISABLE_ENV)
    _REGISTRY = BackboneTable(BUILTIN_SPECS)
    if not plugins:
        os.environ[_plugins.DISABLE_ENV] = "1"
    try:
        yield
    finally:
        _REGISTRY = saved
        if not plugins:
            if saved_env is None:
                os.environ.pop(_plugins.DISABLE_ENV, None)
            else:
                os.environ[_plugins.DISABLE_ENV] = saved_env


"""The process-wide table every function of this module reads (tests swap it for a fresh one)."""


def get_backbone(name: str) -> BackboneSpec:
    """Return the spec of a backbone, without building it.

    Args:
        name: A built-in, plugin or registered name, ``timm:<model>`` or
            ``smp:<Arch>:<encoder>``.

    Returns:
        The :class:`BackboneSpec`.

    Raises:
        BackboneNotFoundError: Unknown name; the message suggests close matches.
        PluginError: The name belongs to a plugin that failed to load (chained to its error).

    Examples:
        >>> get_backbone("deeplabv3_resnet50").feature_dim
        2048
    """
    return _REGISTRY.get(name)


def list_backbones(filter: str = "", task: str | None = None) -> list[str]:  # noqa: A002
    """List registered backbone names (built-ins, plugins and your own), sorted.

    A filter that starts with ``timm:`` or ``smp:`` browses the names those libraries know
    instead (it imports them): ``"timm:*lite*"`` lists ``timm:tf_efficientnet_lite0`` and the
    other timm models matching ``*lite*``, ``"smp:unet:*resnet*"`` the smp architecture and
    encoder pairs (smp's own encoders; any ``tu-<timm model>`` works too). Otherwise the
    pass-through names are not listed: any timm model or smp architecture/encoder pair works.

    Args:
        filter: Shell-style wildcard pattern (``fnmatch``; case-insensitive), e.g.
            ``"resnet*"``; a pattern without wildcards matches names containing it; ``""``
            matches all.
        task: Keep only backbones serving this task (``"classification"`` or
            ``"segmentation"``). This imports the plugins whose names match ``filter``.

    Returns:
        The matching names, sorted.

    Raises:
        HamkitError: ``task`` is not a known task.

    Examples:
        >>> list_backbones("resnet*")
        ['resnet101', 'resnet18', 'resnet34', 'resnet50']
        >>> list_backbones("deeplab*mobilenet*", task="segmentation")
        ['deeplabv3_mobilenet_v3_large']
    """
    if filter.strip().lower().startswith(tuple(RESERVED_PREFIXES)):
        return _upstream_names(filter.strip(), task)
    return _REGISTRY.list_names(filter, task)


def _upstream_names(pattern: str, task: str | None) -> list[str]:
    """The ``timm:`` or ``smp:`` names matching ``pattern`` (the rule of :func:`list_backbones`)."""
    import fnmatch

    if task is not None and task not in TASKS:
        raise HamkitError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    lowered = pattern.lower()
    if not any(c in lowered for c in "*?["):
        prefix, _, rest = lowered.partition(":")
        lowered = f"{prefix}:*{rest}*"
    if lowered.startswith("timm:"):
        if task == "segmentation":
            return []
        import timm

        names = [f"timm:{name}" for name in timm.list_models()]
    else:
        if task == "classification":
            return []
        from segmentation_models_pytorch.encoders import get_encoder_names

        from hamkit.backbones.smp_specs import architectures

        archs = sorted(cls.__name__ for cls in architectures().values())
        names = [f"smp:{arch}:{encoder}" for arch in archs for encoder in get_encoder_names()]
    return sorted(name for name in names if fnmatch.fnmatchcase(name.lower(), lowered))


def list_plugins(load: bool = False) -> list[PluginInfo]:
    """Report the backbone plugins installed (entry point group ``hamkit.backbones``).

    Args:
        load: Import every plugin, so that its status is ``"loaded"`` or ``"failed"``
            rather than ``"not loaded"``.

    Returns:
        One :class:`PluginInfo` per entry point (shadowed ones included), sorted by name;
        empty when ``HAMKIT_DISABLE_PLUGINS=1``.

    Examples:
        >>> for info in list_plugins(load=True):  # doctest: +SKIP
        ...     print(info.name, info.package, info.version, info.status)
        tinynet hamkit-tinynet 0.1.0 loaded
    """
    return _REGISTRY.plugin_infos(load)


@overload
def register_backbone(name: BackboneSpec, *, override: bool = ...) -> BackboneSpec: ...


@overload
def register_backbone(
    name: str,
    *,
    tasks: Sequence[str] | str = ...,
    feature_dim: int | None = ...,
    input_size: tuple[int, int] = ...,
    mean: Sequence[float] = ...,
    std: Sequence[float] = ...,
    pretrained_weights: Sequence[str] = ...,
    source: str | None = ...,
    description: str | None = ...,
    override: bool = ...,
) -> Callable[[_F], _F]: ...


def register_backbone(
    name: str | BackboneSpec,
    *,
    tasks: Sequence[str] | str = ("classification",),
    feature_dim: int | None = None,
    input_size: tuple[int, int] = (224, 224),
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    pretrained_weights: Sequence[str] = (),
    source: str | None = None,
    description: str | None = None,
    override: bool = False,
) -> Callable[[_F], _F] | BackboneSpec:
    """Register a backbone builder (decorator), or register a ready :class:`BackboneSpec`.

    The decorated function is the spec's builder: it is called as
    ``builder(task=..., pretrained=..., **kwargs)`` and must return a module that honours the
    contract of :func:`create_backbone`. The decorator attaches the spec to the function as
    ``backbone_spec``. Inside a plugin module (imported through its entry point) the decorator
    only attaches the spec; the registry registers it under the entry point's name, with the
    plugin's distribution as ``source``.

    Args:
        name: The backbone name, or a complete ``BackboneSpec`` to register as it is.
        tasks: Tasks served; the first is the default.
        feature_dim: Pooled feature size (classification) or deepest feature channels
            (segmentation). Required with a name.
        input_size: Default ``(height, width)``.
        mean: Normalisation mean (RGB, [0, 1] images).
        std: Normalisation standard deviation.
        pretrained_weights: Names of the pretrained weights the builder can load.
        source: The providing package; default: the function's top-level module.
        description: One line; default: the first line of the function's docstring.
        override: Replace an existing backbone of that name instead of raising.

    Returns:
        A decorator returning the function unchanged (with ``backbone_spec`` set), or the
        registered spec when ``name`` is a ``BackboneSpec``.

    Raises:
        HamkitError: The name exists and ``override`` is false, the name starts with a
            reserved prefix (``timm:``, ``smp:``), or a field is invalid.

    Examples:
        >>> import torch
        >>> @register_backbone("flat_rgb", feature_dim=3, description="mean colour")
        ... def flat_rgb(*, task, pretrained, **kwargs):
        ...     return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        >>> create_backbone("flat_rgb")(torch.ones(2, 3, 8, 8)).shape
        torch.Size([2, 3])
    """
    if isinstance(name, BackboneSpec):
        _REGISTRY.register(name, override=override)
        return name
    if feature_dim is None:
        raise HamkitError(f"register_backbone({name!r}): feature_dim is required")
    dim = feature_dim

    def decorate(builder: _F) -> _F:
        package = _plugins.loading_package()
        module = str(getattr(builder, "__module__", "") or "")
        doc = (getattr(builder, "__doc__", None) or "").strip().splitlines()
        spec = BackboneSpec(
            name=name,
            tasks=tuple([tasks] if isinstance(tasks, str) else tasks),
            builder=builder,
            feature_dim=dim,
            input_size=input_size,
            mean=rgb_triple(mean, "mean", name),
            std=rgb_triple(std, "std", name),
            pretrained_weights=tuple(pretrained_weights),
            source=source or package or module.split(".")[0] or "unknown",
            description=description if description is not None else (doc[0] if doc else ""),
        )
        setattr(builder, "backbone_spec", spec)  # noqa: B010 (a function attribute, not a declared field)
        if package is None:
            _REGISTRY.register(spec, override=override, module=module)
        return builder

    return decorate


def create_backbone(
    name: str,
    *,
    task: str | None = None,
    pretrained: bool | str = False,
    weights: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a backbone.

    What comes back (other parts of hamkit rely on it):

    * task ``"classification"``: a module mapping a normalised float batch (N, 3, H, W) to
      pooled features (N, feature_dim) (global average pool, no classifier head).
    * task ``"segmentation"``: a module whose ``forward(x, return_features=False)`` returns
      mask logits (N, out_channels, H, W) at the input resolution, or with
      ``return_features=True`` the tuple ``(logits, features)``, ``features`` being the deepest
      encoder feature map (N, feature_dim, h, w) of the same forward pass. Keyword
      ``out_channels`` (default 1).

    Both have an int attribute ``feature_dim``. Normalise inputs with ``spec.mean`` /
    ``spec.std`` of :func:`get_backbone`.

    Args:
        name: The backbone name (see :func:`get_backbone`).
        task: ``"classification"`` or ``"segmentation"``; ``None`` picks the spec's first task.
        pretrained: ``True`` loads the default upstream weights (torchvision ``DEFAULT``, timm
            pretrained, smp ``"imagenet"``), downloading them if needed; a string picks one of
            ``spec.pretrained_weights``.
        weights: A local ``.safetensors`` / ``.pt`` / ``.pth`` file to load instead (nothing is
            downloaded); it may be an upstream checkpoint or a hamkit backbone's state dict.
            When both are given, the file wins over ``pretrained``.
        **kwargs: Passed to the builder (e.g. ``out_channels`` for segmentation).

    Returns:
        The ``torch.nn.Module``, in training mode.

    Raises:
        BackboneNotFoundError: Unknown name.
        PluginError: The name's plugin failed to load.
        HamkitError: The backbone does not serve ``task``, or its builder broke the contract.
        WeightsError: The download failed (one line, saying how to use a local file), the
            backbone has no such pretrained weights, or the weights file does not fit.

    Examples:
        >>> import torch
        >>> model = create_backbone("resnet18").eval()
        >>> model(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 512])
    """
    return build_backbone(get_backbone(name), task=task, pretrained=pretrained, weights=weights, **kwargs)


def describe_initial_weights(name: str, *, pretrained: bool | str = False, weights: Any = None) -> str:
    """Say in words which weights ``create_backbone(name, pretrained=..., weights=...)`` starts from.

    Reports and saved models record it, so that a reader knows whether a network began from
    ImageNet weights (installed with hamkit, or downloaded) or from random numbers.

    Args:
        name: A registry name.
        pretrained: As for :func:`create_backbone`.
        weights: As for :func:`create_backbone`.

    Returns:
        One phrase, e.g. ``"ImageNet weights installed with hamkit (in1k)"``.

    Examples:
        >>> describe_initial_weights("resnet18")
        'random initialisation'
        >>> describe_initial_weights("resnet18", pretrained=True)
        "pretrained weights 'IMAGENET1K_V1' (downloaded once, then cached)"
    """
    if weights is not None:
        return f"weights file {weights}"
    if not pretrained:
        return "random initialisation"
    spec = get_backbone(name)
    tag = spec.pretrained_weights[0] if pretrained is True and spec.pretrained_weights else str(pretrained)
    if tag in spec.offline_weights:
        return f"ImageNet weights installed with hamkit ({tag})"
    return f"pretrained weights {tag!r} (downloaded once, then cached)"


_READY: set[tuple[BackboneSpec, bool | str]] = set()
"""Specs and weights :func:`missing_pretrained` made ready in this process (not built again)."""


def missing_pretrained(name: str, *, pretrained: bool | str = True) -> str | None:
    """Get a backbone's pretrained weights ready on this machine, or say why they cannot be had.

    Weights installed with hamkit are ready as they are. Others are taken from the local download
    cache, or downloaded into it now (the model is built once per process and dropped), so that a later
    ``create_backbone(name, pretrained=...)`` needs no network. ``hamkit run`` calls this before
    its first step, to fall back on a backbone whose weights are installed (``offline_backbone``)
    instead of failing hours later.

    Args:
        name: A registry name.
        pretrained: As for :func:`create_backbone`; ``False`` needs no weights.

    Returns:
        ``None`` when the weights are ready; else the reason, one phrase (e.g. that the Hugging
        Face Hub cannot be reached and the weights are not in its local cache).

    Raises:
        BackboneNotFoundError: Unknown name.
        WeightsError: The backbone has no such pretrained weights (not a network problem).

    Examples:
        >>> missing_pretrained("timm:tf_efficientnet_lite0") is None  # installed with hamkit
        True
    """
    spec = get_backbone(name)
    choice = pretrained_choice(spec, pretrained)
    if not choice or (spec.pretrained_offline if choice is True else choice in spec.offline_weights):
        return None
    if (spec, choice) in _READY:  # e.g. hamkit run checked them, then the estimator's fit does
        return None
    from hamkit.backbones.weights import download_failure_reason, hub_offline_when_unreachable, is_download_failure

    with hub_offline_when_unreachable() as offline:
        try:
            spec.builder(task=spec.default_task, pretrained=choice)
        except Exception as err:
            if not is_download_failure(err):
                raise
            return download_failure_reason(err, offline=offline)
    _READY.add((spec, choice))
    return None
