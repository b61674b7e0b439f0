"""Deprecated: ``hamkit.datasets`` became :mod:`hamkit.synthetic` (``make_synthetic``,
``plant_copies``) and :mod:`hamkit.ham10000` (``download_ham10000`` and the release's layout)
in 0.2.0. The old names still work, with a warning, for one release.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

_MOVED: dict[str, str] = {
    "make_synthetic": "hamkit.synthetic",
    "SyntheticDataset": "hamkit.synthetic",
    "plant_copies": "hamkit.synthetic",
    "download_ham10000": "hamkit.ham10000",
    "DownloadError": "hamkit.ham10000",
    "layout_summary": "hamkit.ham10000",
    "HAM10000_FILES": "hamkit.ham10000",
}
__all__ = list(_MOVED)


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module 'hamkit.datasets' has no attribute {name!r}")
    warnings.warn(
        f"hamkit.datasets.{name} is now {module}.{name}; hamkit.datasets goes in the next release",
        FutureWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(module), name)
