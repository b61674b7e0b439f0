"""Backbone plugins: entry points of the ``hamkit.backbones`` group.

A plugin is any installed distribution that declares, in its ``pyproject.toml``::

    [project.entry-points."hamkit.backbones"]
    tinynet = "hamkit_tinynet:tinynet"

The entry point NAME is the backbone name. The object it points to is one of

* a :class:`~hamkit.backbones.spec.BackboneSpec`;
* a function decorated with :func:`hamkit.backbones.registry.register_backbone` (the decorator attaches
  the spec to the function as ``backbone_spec``);
* a zero-argument callable returning a :class:`~hamkit.backbones.spec.BackboneSpec`.

Discovery (:func:`discover`) reads installed metadata only and imports no plugin; the registry
runs it on its first query, never at import. A plugin's module is imported (:func:`load`) only
when its backbone is asked for. A plugin that fails to import is reported once with a warning
naming its package, marked ``"failed"``, and every later request for it raises
:class:`~hamkit.errors.PluginError` chained to the original exception. Setting the environment
variable ``HAMKIT_DISABLE_PLUGINS=1`` before the first registry query turns discovery off.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from contextvars import ContextVar
from dataclasses import dataclass
from importlib.metadata import EntryPoint

from hamkit.backbones.spec import BackboneSpec, PluginInfo
from hamkit.errors import PluginError

__all__ = [
    "PLUGIN_GROUP",
    "DISABLE_ENV",
    "PluginRecord",
    "plugins_disabled",
    "loading_package",
    "discover",
    "spec_from_object",
    "load",
]

PLUGIN_GROUP = "hamkit.backbones"
"""The entry point group hamkit reads backbone plugins from."""

DISABLE_ENV = "HAMKIT_DISABLE_PLUGINS"
"""Environment variable that turns plugin discovery off when set to 1 / true / yes / on."""

_LOADING: ContextVar[str | None] = ContextVar("hamkit_plugin_loading", default=None)


def plugins_disabled() -> bool:
    """Return whether ``HAMKIT_DISABLE_PLUGINS`` turns plugin discovery off.

    Returns:
        ``True`` when the variable is ``1``, ``true``, ``yes`` or ``on`` (any case).

    Examples:
        >>> import os
        >>> os.environ["HAMKIT_DISABLE_PLUGINS"] = "1"
        >>> plugins_disabled()
        True
        >>> del os.environ["HAMKIT_DISABLE_PLUGINS"]
    """
    return os.environ.get(DISABLE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def loading_package() -> str | None:
    """Return the distribution whose plugin is being imported right now, else ``None``.

    :func:`hamkit.backbones.registry.register_backbone` uses it to attach (not register) the spec of a
    function decorated inside a plugin module; the registry registers it under the entry
    point's name and package.

    Returns:
        The distribution name while :func:`load` imports a plugin, otherwise ``None``.
    """
    return _LOADING.get()


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


@dataclass
class PluginRecord:
    """The registry's mutable record of one discovered entry point.

    Args:
        entry_point: The ``importlib.metadata.EntryPoint``.
        package: Its distribution name.
        version: Its distribution version.
        status: ``"not loaded"``, ``"loaded"``, ``"failed"`` or ``"shadowed"``.
        error: Why it failed or is shadowed.
        spec: The spec once loaded.
        exception: The exception that made it fail.
    """

    entry_point: EntryPoint
    package: str
    version: str
    status: str = "not loaded"
    error: str | None = None
    spec: BackboneSpec | None = None
    exception: BaseException | None = None

    @property
    def name(self) -> str:
        """The entry point name, which is the backbone name."""
        return self.entry_point.name

    def info(self) -> PluginInfo:
        """Return the public, immutable view of this record.

        Returns:
            A :class:`~hamkit.backbones.spec.PluginInfo`.
        """
        return PluginInfo(
            name=self.name,
            package=self.package,
            version=self.version,
            value=self.entry_point.value,
            status=self.status,
            error=self.error,
        )


def _distribution(entry_point: EntryPoint) -> tuple[str, str]:
    dist = entry_point.dist
    if dist is None:
        module = entry_point.value.split(":", 1)[0]
        return module.split(".", 1)[0], "unknown"
    name = dist.metadata["Name"] or getattr(dist, "name", None) or "unknown"
    return str(name), str(dist.version)


def discover() -> list[PluginRecord]:
    """Read the ``hamkit.backbones`` entry points of every installed distribution.

    Imports no plugin. Clash handling is the registry's job.

    Returns:
        One record per entry point, in discovery order (``sys.path`` order); empty when
        ``HAMKIT_DISABLE_PLUGINS`` is set.
    """
    if plugins_disabled():
        return []
    from importlib.metadata import entry_points

    return [PluginRecord(ep, *_distribution(ep)) for ep in entry_points(group=PLUGIN_GROUP)]


def spec_from_object(obj: object, name: str, package: str) -> BackboneSpec:
    """Turn the object an entry point points to into the spec the registry stores.

    Args:
        obj: A ``BackboneSpec``, a function decorated with ``@register_backbone(...)`` or a
            zero-argument callable returning a ``BackboneSpec``.
        name: The entry point name; it becomes the spec's name.
        package: The plugin's distribution name; it becomes the spec's ``source``.

    Returns:
        The spec, renamed to ``name`` and with ``source=package``.

    Raises:
        TypeError: ``obj`` is none of the accepted kinds.

    Examples:
        >>> make = lambda: BackboneSpec("x", ("classification",), dict, 8)
        >>> spec = spec_from_object(make, "y", "pkg")
        >>> spec.name, spec.source
        ('y', 'pkg')
    """
    spec = obj if isinstance(obj, BackboneSpec) else getattr(obj, "backbone_spec", None)
    if not isinstance(spec, BackboneSpec) and callable(obj):
        spec = obj()
    if not isinstance(spec, BackboneSpec):
        raise TypeError(
            f"entry point {name!r} of package {package!r} points to {obj!r}, which is neither a "
            "BackboneSpec, a function decorated with @hamkit.register_backbone(...), nor a "
            "zero-argument callable returning a BackboneSpec"
        )
    return dataclasses.replace(spec, name=name, source=package)


def _plugin_error(record: PluginRecord) -> PluginError:
    return PluginError(
        f"backbone {record.name!r} comes from plugin package {record.package!r} "
        f"({record.entry_point.value}), which failed to load: {record.error}. Fix or uninstall "
        f"{record.package!r}, or set {DISABLE_ENV}=1 to ignore all plugins"
    )


def load(record: PluginRecord) -> BackboneSpec:
    """Import a plugin's object and return its spec (cached in the record).

    Args:
        record: A discovered, not shadowed, record.

    Returns:
        The plugin's spec (named after the entry point, ``source`` = its package).

    Raises:
        PluginError: The plugin failed to import or to provide a spec, now or on an earlier
            call; the original exception is chained as ``__cause__``. The first failure also
            emits a warning naming the package.
    """
    if record.spec is not None:
        return record.spec
    if record.status == "failed":
        raise _plugin_error(record) from record.exception
    token = _LOADING.set(record.package)
    try:
        try:
            loaded = record.entry_point.load()
        except SystemExit as exited:  # a plugin must not end the program that imports it
            raise PluginError(f"called sys.exit({exited.code!r}) while being imported") from exited
        spec = spec_from_object(loaded, record.name, record.package)
    except Exception as err:
        record.status, record.error, record.exception = "failed", _one_line(err), err
        warnings.warn(
            f"hamkit: backbone plugin {record.name!r} of package {record.package!r} failed to "
            f"load ({record.error}); the other backbones keep working",
            stacklevel=4,
        )
        raise _plugin_error(record) from err
    finally:
        _LOADING.reset(token)
    record.spec, record.status = spec, "loaded"
    return spec
