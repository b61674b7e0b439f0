"""The registration table behind :mod:`hamkit.backbones.registry`: which name belongs to which spec.

A :class:`BackboneTable` holds three kinds of names and looks them up in this order:

1. **Registered in code** with :func:`hamkit.backbones.registry.register_backbone` (``override=True``
   replaces a built-in or a plugin of the same name).
2. **Built-ins**, the table's starting contents (:data:`hamkit.backbones.torchvision_specs.BUILTIN_SPECS`).
3. **Plugins**: entry points found by :func:`hamkit.backbones.plugins.discover` on the first query
   (never at construction) and imported by :func:`hamkit.backbones.plugins.load` only when their
   name is asked for. A plugin whose name is already taken (a registration, a built-in, a reserved
   prefix or an earlier plugin) is *shadowed*: ignored, with a warning naming both packages.

The reserved prefixes ``timm:`` and ``smp:`` are not stored: such names are resolved on each
request by :func:`hamkit.backbones.timm_specs.timm_spec` or
:func:`hamkit.backbones.smp_specs.smp_spec` (both cached), and they cannot be registered.

This module imports nothing heavy; building a model is :mod:`hamkit.backbones.factory`'s job.
"""

from __future__ import annotations

import difflib
import fnmatch
import threading
import warnings
from collections.abc import Mapping

from hamkit.backbones import plugins
from hamkit.backbones.spec import TASKS, BackboneSpec, PluginInfo
from hamkit.errors import BackboneNotFoundError, HamkitError, PluginError

__all__ = ["RESERVED_PREFIXES", "BackboneTable", "reserved_package", "resolve_pass_through"]

RESERVED_PREFIXES: dict[str, str] = {"timm:": "timm", "smp:": "segmentation-models-pytorch"}
"""Reserved name prefixes and the package whose models they pass through."""

_PASS_THROUGH_HINT = (
    "run `hamkit backbones` to list the names; any timm model works as 'timm:<model>' and any "
    "segmentation-models-pytorch model as 'smp:<Arch>:<encoder>'"
)


def reserved_package(name: str) -> str | None:
    """Return the package owning the reserved prefix ``name`` starts with, else ``None``.

    Args:
        name: A backbone name.

    Returns:
        ``"timm"``, ``"segmentation-models-pytorch"`` or ``None``.

    Examples:
        >>> reserved_package("timm:convnext_tiny"), reserved_package("resnet18")
        ('timm', None)
    """
    return next((pkg for prefix, pkg in RESERVED_PREFIXES.items() if name.startswith(prefix)), None)


def resolve_pass_through(name: str) -> BackboneSpec:
    """Return the spec of a ``timm:<model>`` or ``smp:<Arch>:<encoder>`` name.

    Args:
        name: A name starting with a reserved prefix.

    Returns:
        The spec (cached by the timm / smp spec functions).

    Raises:
        BackboneNotFoundError: The library does not know the model, architecture or encoder.
    """
    if name.startswith("timm:"):
        from hamkit.backbones.timm_specs import timm_spec

        return timm_spec(name[len("timm:") :])
    from hamkit.backbones.smp_specs import smp_spec

    return smp_spec(name[len("smp:") :])


class BackboneTable:
    """The registry's state: built-ins, registrations in code and discovered plugins.

    Thread-safe: lookups, registration and the one-time plugin discovery hold a lock.

    Args:
        builtins: The built-in specs by name.

    Examples:
        >>> from hamkit.backbones.torchvision_specs import BUILTIN_SPECS
        >>> table = BackboneTable(BUILTIN_SPECS)
        >>> table.get("resnet18").feature_dim
        512
    """

    def __init__(self, builtins: Mapping[str, BackboneSpec]) -> None:
        self._lock = threading.RLock()
        self._builtins = dict(builtins)
        self._user: dict[str, BackboneSpec] = {}
        self._plugins: dict[str, plugins.PluginRecord] | None = None  # None until the first query
        self._shadowed: list[plugins.PluginRecord] = []

    def _owner(self, name: str, found: Mapping[str, plugins.PluginRecord]) -> tuple[str, str]:
        """Return (what owns ``name``, its package), or ("", "") when the name is free."""
        package = reserved_package(name)
        if package is not None:
            return f"the reserved '{name.split(':')[0]}:' pass-through syntax", package
        if name in self._user:
            return "a backbone registered in code", self._user[name].source
        if name in self._builtins:
            return "a built-in backbone", self._builtins[name].source
        if name in found:
            return "the plugin", found[name].package
        return "", ""

    def _discovered(self) -> dict[str, plugins.PluginRecord]:
        """The usable plugin records by name, discovering them on the first call."""
        with self._lock:
            if self._plugins is None:
                found: dict[str, plugins.PluginRecord] = {}
                for record in plugins.discover():
                    what, package = self._owner(record.name, found)
                    if not what:
                        found[record.name] = record
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
                self._plugins = found
            return self._plugins

    def names(self) -> set[str]:
        """All names, failed plugins excluded (pass-through names are not stored)."""
        found = self._discovered()
        usable = {n for n, r in found.items() if r.status != "failed"}
        return set(self._builtins) | set(self._user) | usable

    def get(self, name: str) -> BackboneSpec:
        """Return the spec of ``name`` (see :func:`hamkit.backbones.registry.get_backbone`).

        Raises:
            BackboneNotFoundError: Unknown name; the message suggests close matches.
            PluginError: The name's plugin failed to load.
        """
        if not isinstance(name, str):
            raise BackboneNotFoundError(f"backbone name must be a string, got {name!r}")
        if reserved_package(name) is not None:
            return resolve_pass_through(name)
        with self._lock:
            spec = self._user.get(name) or self._builtins.get(name)
            if spec is not None:
                return spec
            record = self._discovered().get(name)
            if record is not None:
                return plugins.load(record)
        raise BackboneNotFoundError(self._unknown(name))

    def _unknown(self, name: str) -> str:
        by_lower = {n.lower(): n for n in sorted(self.names())}
        close = difflib.get_close_matches(name.lower(), list(by_lower), n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(by_lower[c] for c in close)}?" if close else ""
        return f"unknown backbone {name!r}{hint} ({_PASS_THROUGH_HINT})"

    def list_names(self, pattern: str, task: str | None) -> list[str]:
        """The sorted names matching ``pattern`` (see :func:`hamkit.backbones.registry.list_backbones`).

        Raises:
            HamkitError: ``task`` is not a known task.
        """
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
        """One :class:`PluginInfo` per entry point, shadowed ones included, sorted by name.

        Args:
            load: Import every usable plugin first, so that its status is final.
        """
        with self._lock:
            found = self._discovered()
            if load:
                for record in found.values():
                    try:
                        plugins.load(record)
                    except PluginError:
                        pass
            records = list(found.values()) + self._shadowed
        return [r.info() for r in sorted(records, key=lambda r: (r.name, r.package))]

    def register(self, spec: BackboneSpec, *, override: bool, module: str | None = None) -> None:
        """Add ``spec`` under its name (see :func:`hamkit.backbones.registry.register_backbone`).

        Args:
            spec: The spec.
            override: Replace a registration, built-in or plugin of that name.
            module: The module that defined the builder. When it belongs to the package of the
                plugin of that name (the plugin's module was imported directly, not through its
                entry point), the spec is the plugin's own and completes that plugin's record.

        Raises:
            HamkitError: The name starts with a reserved prefix, or is taken and ``override``
                is false.
        """
        name = spec.name
        package = reserved_package(name)
        if package is not None:
            raise HamkitError(
                f"cannot register backbone {name!r}: names starting with "
                f"'{name.split(':')[0]}:' are reserved for {package} pass-through models"
            )
        with self._lock:
            record = self._discovered().get(name)
            top = module.split(".")[0] if module else None
            if record is not None and top == record.entry_point.module.split(".")[0]:
                if record.spec is None:
                    record.spec = plugins.spec_from_object(spec, name, record.package)
                    record.status = "loaded"
                return
            what, owner = self._owner(name, self._discovered())
            if what and not override:
                raise HamkitError(
                    f"backbone {name!r} is already registered ({what} of package {owner!r}); "
                    "choose another name, or pass override=True to replace it"
                )
            self._user[name] = spec
