"""Dataset figures (matplotlib, written as PNG without a display)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hamkit._mpl import pyplot, save_png
from hamkit.classes import CLASS_CODES, CLASS_NAMES
from hamkit.errors import DataError

__all__ = ["plot_class_balance"]


def plot_class_balance(
    labels: Sequence[int] | np.ndarray,
    path: str | os.PathLike[str],
    *,
    title: str = "Class balance",
    classes: Sequence[str] = CLASS_CODES,
) -> Path:
    """Draw the original report's class-balance pie chart and save it as a PNG.

    Args:
        labels: Class index (into ``classes``) of every image.
        path: Output PNG (written atomically).
        title: Figure title.
        classes: The class names (default: the seven HAM10000 codes, shown with their names).

    Returns:
        The written path.

    Raises:
        DataError: ``labels`` is empty or holds an index outside the classes.
    """
    array = np.asarray(labels, dtype=np.int64)
    count = len(classes)
    if array.size == 0:
        raise DataError("no labels to plot")
    if array.min() < 0 or array.max() >= count:
        raise DataError(f"labels must be class indices 0..{count - 1}")
    counts = np.bincount(array, minlength=count)
    names = [
        f"{code}: {CLASS_NAMES[CLASS_CODES.index(code)]}" if code in CLASS_CODES else str(code) for code in classes
    ]
    present = counts > 0
    figure, axes = pyplot().subplots(figsize=(7, 5), dpi=100)
    # small slices get no text on the pie (their labels would overlap): the legend names every class
    wedges, _, _ = axes.pie(
        counts[present],
        autopct=lambda pct: f"{pct:.1f}%" if pct >= 5 else "",
        pctdistance=0.75,
        startangle=90,
        counterclock=False,
    )
    total = counts.sum()
    axes.legend(
        wedges,
        [f"{name} ({n}, {100 * n / total:.1f}%)" for name, n, p in zip(names, counts, present, strict=True) if p],
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        fontsize=8,
    )
    axes.set_title(f"{title} ({array.size} images)")
    axes.axis("equal")
    return save_png(figure, path, bbox_inches="tight")
