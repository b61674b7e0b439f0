"""Deprecated: the figures moved to :mod:`hamkit.figures` and the HTML report of ``hamkit run`` to
:mod:`hamkit.pipeline.report` in 0.2.0. ``hamkit.report.<figure>`` still works, with a warning,
for one release.
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["contour_overlay", "mask_contour", "save_overlay", "segmentation_panels", "plot_history"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        import hamkit.figures

        warnings.warn(
            f"hamkit.report.{name} is now hamkit.figures.{name}; hamkit.report goes in the next release",
            FutureWarning,
            stacklevel=2,
        )
        return getattr(hamkit.figures, name)
    raise AttributeError(f"module 'hamkit.report' has no attribute {name!r}")
