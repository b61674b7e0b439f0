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

Importing this module imports neither torch nor any model library; nor does listing or
describing the built-ins.
"""

from __future__ import annotations

import difflib
import fnmatch
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

from hamkit.backbones import plugins as _plugins
from hamkit.backbones.spec import IMAGENET_MEAN, IMAGENET_STD, TASKS, BackboneSpec, PluginInfo
from hamkit.backbones.torchvision_specs import BUILTIN_SPECS
from hamkit.errors import BackboneNotFoundError, HamkitError, PluginError, WeightsError

if TYPE_CHECKING:  # pragma: no cover
    import os

    from torch import nn

__all__ = [
    "TASKS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BackboneSpec",
    "PluginInfo",
    "register_backbone",
    "create_backbone",
    "get_backbone",
    "list_backbones",
    "list_plugins",
]

_F = TypeVar("_F", bound=Callable[..., Any])

#: Reserved name prefixes -> the package that owns them.
RESERVED_PREFIXES: dict[str, str] = {"timm:": "timm", "smp:": "segmentation-models-pytorch"}
_PASS_THROUGH_HINT = (
    "run `hamkit backbones` to list the names; any timm model works as 'timm:<model>' and any "
    "segmentation-models-pytorch model as 'smp:<Arch>:<encoder>'"
)


def _reserved(name: str) -> str | None:
    return next((pkg for prefix, pkg in RESERVED_PREFIXES.items() if name.startswith(prefix)), None)


def _pass_through(name: str) -> BackboneSpec:
    if name.startswith("timm:"):
        from hamkit.backbones.timm_specs import timm_spec

        return timm_spec(name[len("timm:") :])
    from hamkit.backbones.smp_specs import smp_spec

    return smp_spec(name[len("smp:") :])


class _Registry:
    """The registry's state: built-ins, user registrations and discovered plugins."""

    def __init__(self, builtins: Mapping[str, BackboneSpec]) -> None:
        self._lock = threading.RLock()
        self._builtins = dict(builtins)
        self._user: dict[str, BackboneSpec] = {}
        self._plugins: dict[str, _plugins.PluginRecord] | None = None
        self._shadowed: list[_plugins.PluginRecord] = []

    def _owner(self, name: str, plugins: Mapping[str, _plugins.PluginRecord]) -> tuple[str, str]:
        """Return (what owns ``name``, its package), or ("", "") when the name is free."""
        package = _reserved(name)
        if package is not None:
            return f"the reserved '{name.split(':')[0]}:' pass-through syntax", package
        if name in self._user:
            return "a backbone registered in code", self._user[name].source
        if name in self._builtins:
            return "a built-in backbone", self._builtins[name].source
        if name in plugins:
            return "the plugin", plugins[name].package
        return "", ""

    def _discovered(self) -> dict[str, _plugins.PluginRecord]:
        with self._lock:
            if self._plugins is None:
                plugins: dict[str, _plugins.PluginRecord] = {}
                for record in _plugins.discover():
                    what, package = self._owner(record.name, plugins)
                    if not what:
                        plugins[record.name] = record
                        continue
                    record.status = "shadowed"
                    record.error = f"name taken by {what} of package {package!r}"
                    self._shadowed.append(record)
                    warnings.warn(
                        f"hamkit: backbone plugin {record.name!r} of package {record.package!r} "
                        f"is ignored: the name is taken by {what} of package {package!r}, "
                        "which is kept",
                        stacklevel=4,
                    )
                self._plugins = plugins
            return self._plugins

    def names(self) -> set[str]:
        """All names, failed plugins excluded."""
        plugins = self._discovered()
        usable = {n for n, r in plugins.items() if r.status != "failed"}
        return set(self._builtins) | set(self._user) | usable

    def get(self, name: str) -> BackboneSpec:
        if not isinstance(name, str):
            raise BackboneNotFoundError(f"backbone name must be a string, got {name!r}")
        if _reserved(name) is not None:
            return _pass_through(name)
        with self._lock:
            spec = self._user.get(name) or self._builtins.get(name)
            if spec is not None:
                return spec
            record = self._discovered().get(name)
            if record is not None:
                return _plugins.load(record)
        raise BackboneNotFoundError(self._unknown(name))

    def _unknown(self, name: str) -> str:
        by_lower = {n.lower(): n for n in sorted(self.names())}
        close = difflib.get_close_matches(name.lower(), list(by_lower), n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(by_lower[c] for c in close)}?" if close else ""
        return f"unknown backbone {name!r}{hint} ({_PASS_THROUGH_HINT})"

    def list_names(self, pattern: str, task: str | None) -> list[str]:
        if task is not None and task not in TASKS:
            raise HamkitError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
        pattern = pattern.strip().lower()
        if pattern and not any(c in pattern for c in "*?["):
            pattern = f"*{pattern}*"
        names = sorted(n for n in self.names() if not pattern or fnmatch.fnmatchcase(n.lower(), pattern))
        if task is None:
            return names
        kept = []
        for name in names:
            try:
                spec = self.get(name)
            except PluginError:  # already warned about; the other backbones keep working
                continue
            if task in spec.tasks:
                kept.append(name)
        return kept

    def plugin_infos(self, load: bool) -> list[PluginInfo]:
        with self._lock:
            plugins = self._discovered()
            if load:
                for record in plugins.values():
                    try:
                        _plugins.load(record)
                    except PluginError:
                        pass
            records = list(plugins.values()) + self._shadowed
        return [r.info() for r in sorted(records, key=lambda r: (r.name, r.package))]

    def register(self, spec: BackboneSpec, *, override: bool, module: str | None = None) -> None:
        name = spec.name
        package = _reserved(name)
        if package is not None:
            raise HamkitError(
                f"cannot register backbone {name!r}: names starting with "
                f"'{name.split(':')[0]}:' are reserved for {package} pass-through models"
            )
        with self._lock:
            record = self._discovered().get(name)
            top = module.split(".")[0] if module else None
            if record is not None and top == str(record.entry_point.module).split(".")[0]:
                # the plugin's own module was imported directly: this IS the plugin's backbone
                if record.spec is None:
                    record.spec = _plugins.spec_from_object(spec, name, record.package)
                    record.status = "loaded"
                return
            what, owner = self._owner(name, self._discovered())
            if what and not override:
                raise HamkitError(
                    f"backbone {name!r} is already registered ({what} of package {owner!r}); "
                    "choose another name, or pass override=True to replace it"
                )
            self._user[name] = spec


_REGISTRY = _Registry(BUILTIN_SPECS)


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

    Pass-through names (``timm:...``, ``smp:...``) are not listed: any timm model or smp
    architecture/encoder pair works.

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
    return _REGISTRY.list_names(filter, task)


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
            mean=tuple(mean),  # type: ignore[arg-type]
            std=tuple(std),  # type: ignore[arg-type]
            pretrained_weights=tuple(pretrained_weights),
            source=source or package or module.split(".")[0] or "unknown",
            description=description if description is not None else (doc[0] if doc else ""),
        )
        builder.backbone_spec = spec  # type: ignore[attr-defined]
        if package is None:
            _REGISTRY.register(spec, override=override, module=module)
        return builder

    return decorate


def _pretrained_choice(spec: BackboneSpec, pretrained: bool | str) -> bool | str:
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
    spec = get_backbone(name)
    task = spec.default_task if task is None else task
    if task not in spec.tasks:
        raise HamkitError(
            f"backbone {spec.name!r} serves {', '.join(spec.tasks)}, not {task!r}; pick another "
            f"backbone (`hamkit backbones --task {task}` lists them) or pass task={spec.tasks[0]!r}"
        )
    import torch

    from hamkit.backbones.weights import download_guard, load_weights

    choice = False if weights is not None else _pretrained_choice(spec, pretrained)
    if choice:
        with download_guard(spec.name):
            model = spec.builder(task=task, pretrained=choice, **kwargs)
    else:
        model = spec.builder(task=task, pretrained=False, **kwargs)
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
