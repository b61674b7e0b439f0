"""The gallery of a classifier's costliest mistakes, with where the network looked."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hamkit._mpl import pyplot, save_png

__all__ = ["plot_mistake_gallery"]


def plot_mistake_gallery(
    images: Sequence[np.ndarray],
    maps: Sequence[np.ndarray] | None,
    titles: Sequence[str],
    path: str | os.PathLike[str],
    *,
    note: str | None = None,
    title: str = "The costliest mistakes (melanomas called naevus first)",
) -> Path:
    """One row per mistake: the image and, when ``maps`` are given, the class activation map over it.

    Args:
        images: ``(H, W, 3)`` uint8 images.
        maps: One ``(H, W)`` map in ``[0, 1]`` per image, or ``None`` (the images alone).
        titles: One caption per image.
        path: Output PNG.
        note: A line under the title (e.g. why there are no maps).
        title: Figure title.

    Returns:
        The written PNG.
    """
    per_row = 2  # mistakes side by side
    width = 2 if maps is not None else 1
    rows = max(-(-len(images) // per_row), 1)
    figure, axes = pyplot().subplots(
        rows, per_row * width, figsize=(2.6 * per_row * width, 3.4 * rows + 0.6), dpi=100, squeeze=False
    )
    if not images:
        axes[0, 0].text(0.5, 0.5, "no mistakes of this kind on this split", ha="center", va="center")
    for n, image in enumerate(images):
        row, first = divmod(n, per_row)
        left = axes[row, first * width]
        left.imshow(image)
        left.set_title(titles[n], fontsize=6.5, loc="left")
        if maps is not None:
            right = axes[row, first * width + 1]
            right.imshow(image)
            right.imshow(maps[n], cmap="jet", alpha=0.45, vmin=0, vmax=1)
            right.set_title("Grad-CAM: where it looked\nfor the class it called", fontsize=6.5)
    for axis in axes.ravel():
        axis.axis("off")
    figure.suptitle(title + (f"\n{note}" if note else ""), fontsize=9)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (3.4 * rows + 0.6)), h_pad=1.5)
    return save_png(figure, path)
