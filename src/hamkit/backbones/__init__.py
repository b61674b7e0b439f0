"""Backbones: the registry and what it is built from.

Modules:

* :mod:`~hamkit.backbones.registry`: the public face (``create_backbone``, ``get_backbone``,
  ``list_backbones``, ``register_backbone``, ``list_plugins``, ``isolated``).
* :mod:`~hamkit.backbones.spec`: :class:`BackboneSpec` and :class:`PluginInfo` (no torch).
* :mod:`~hamkit.backbones.table`: the registration table: names, lookups, clash rules (no torch).
* :mod:`~hamkit.backbones.factory`: building a model from its spec, pretrained and local weights.
* :mod:`~hamkit.backbones.torchvision_specs`: the built-in torchvision backbones.
* :mod:`~hamkit.backbones.timm_specs`: ``timm:<model>`` pass-through names.
* :mod:`~hamkit.backbones.smp_specs`: ``smp:<Arch>:<encoder>`` pass-through names.
* :mod:`~hamkit.backbones.plugins`: entry-point plugins (group ``hamkit.backbones``).
* :mod:`~hamkit.backbones.wrappers`: modules giving upstream models hamkit's contract.
* :mod:`~hamkit.backbones.weights`: download errors and local weights files.

Use the registry (``hamkit.create_backbone``, ``hamkit.list_backbones``, ...) rather than these
modules directly. Importing this package imports no torch.
"""

from __future__ import annotations

from hamkit.backbones.spec import BackboneSpec, PluginInfo

__all__ = ["BackboneSpec", "PluginInfo"]
