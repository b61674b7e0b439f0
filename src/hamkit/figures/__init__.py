"""Figures (PNG, written atomically, matplotlib's Agg backend): segmentation panels and contour
overlays (:mod:`~hamkit.figures.panels`), training curves (:mod:`~hamkit.figures.curves`), ROC
curves and reliability diagrams (:mod:`~hamkit.figures.classification`).

A low layer: estimators and the pipeline draw with it, and it imports neither of them.
Importing this package imports neither matplotlib nor torch; a submodule imports matplotlib
when a figure is drawn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hamkit._lazy import lazy_attributes

_LAZY = {
    "contour_overlay": "hamkit.figures.panels",
    "mask_contour": "hamkit.figures.panels",
    "save_overlay": "hamkit.figures.panels",
    "segmentation_panels": "hamkit.figures.panels",
    "plot_history": "hamkit.figures.curves",
    "plot_roc_curves": "hamkit.figures.classification",
    "plot_reliability": "hamkit.figures.classification",
}
__all__ = [
    "contour_overlay",
    "mask_contour",
    "plot_history",
    "plot_reliability",
    "plot_roc_curves",
    "save_overlay",
    "segmentation_panels",
]
__getattr__, __dir__ = lazy_attributes("hamkit.figures", globals(), _LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from hamkit.figures.classification import plot_reliability, plot_roc_curves
    from hamkit.figures.curves import plot_history
    from hamkit.figures.panels import contour_overlay, mask_contour, save_overlay, segmentation_panels
