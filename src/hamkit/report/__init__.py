"""Figures for reports: segmentation panels and contour overlays (PNG, written atomically).

Importing this package imports neither matplotlib nor torch; :mod:`hamkit.report.figures`
imports matplotlib (Agg backend) only when a figure is drawn.
"""

from __future__ import annotations

__all__ = ["contour_overlay", "mask_contour", "save_overlay", "segmentation_panels"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from hamkit.report import figures

        return getattr(figures, name)
    raise AttributeError(f"module 'hamkit.report' has no attribute {name!r}")
