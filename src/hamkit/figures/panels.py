"""Segmentation figures: input / ground truth / prediction panels and contour overlays.

* :func:`mask_contour` and :func:`contour_overlay` draw lesion outlines on an image as a
  ``uint8`` array (ground truth in green, prediction in magenta), with :mod:`scipy.ndimage`.
* :func:`save_overlay` writes such an overlay as a PNG at the image's own resolution.
* :func:`segmentation_panels` draws one row per image: the input, the ground-truth mask, the
  predicted mask (titled with its Dice) and the contour overlay, with matplotlib's Agg backend
  (no display needed).

Every file is written atomically (temporary file + rename).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hamkit._io import atomic_path
from hamkit.errors import DataError

__all__ = [
    "PREDICTION_COLOUR",
    "TRUTH_COLOUR",
    "contour_overlay",
    "mask_contour",
    "save_overlay",
    "segmentation_panels",
]

TRUTH_COLOUR: tuple[int, int, int] = (0, 230, 0)
"""Outline colour of the ground truth (green)."""
PREDICTION_COLOUR: tuple[int, int, int] = (255, 0, 255)
"""Outline colour of the prediction (magenta)."""


def _image_array(image: Any, index: int = 0) -> np.ndarray:
    """An RGB ``uint8`` ``(H, W, 3)`` array from a path, a Pillow image or an array."""
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        from hamkit.data.images import open_image

        return np.asarray(open_image(image))
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise DataError(f"image {index}: expected an (H, W, 3) array, got shape {array.shape}")
    if array.dtype != np.uint8:
        raise DataError(f"image {index}: expected uint8 pixels, got {array.dtype}")
    return array[..., :3]


def _mask_array(mask: Any, shape: tuple[int, int], what: str, index: int) -> np.ndarray:
    array = np.asarray(mask).astype(bool)
    if array.shape != shape:
        raise DataError(
            f"image {index}: {what} mask is {array.shape[1]}x{array.shape[0]} but the image is "
            f"{shape[1]}x{shape[0]}; masks must have their image's size"
        )
    return array


def mask_contour(mask: np.ndarray, thickness: int = 1) -> np.ndarray:
    """The outline of a mask: lesion pixels within ``thickness`` pixels of the background.

    Lesion pixels on the image border count as outline.

    Args:
        mask: A boolean ``(H, W)`` mask.
        thickness: Outline width in pixels (at least 1).

    Returns:
        A boolean ``(H, W)`` array.

    Examples:
        >>> m = np.zeros((5, 5), bool); m[1:4, 1:4] = True
        >>> mask_contour(m).astype(int)[2].tolist()
        [0, 1, 0, 1, 0]
    """
    from scipy import ndimage

    array = np.asarray(mask).astype(bool)
    if not array.any():
        return np.zeros_like(array)
    inner = ndimage.binary_erosion(
        array, structure=np.ones((3, 3), bool), iterations=max(1, int(thickness)), border_value=0
    )
    return array & ~inner


def _default_thickness(shape: tuple[int, ...]) -> int:
    return max(1, round(min(shape[:2]) / 150))


def contour_overlay(
    image: Any, truth: np.ndarray | None = None, prediction: np.ndarray | None = None, *, thickness: int | None = None
) -> np.ndarray:
    """Draw the outlines of the ground truth (green) and the prediction (magenta) on an image.

    Args:
        image: An RGB ``uint8`` array, a Pillow image or an image path.
        truth: The ground-truth mask ``(H, W)``, or ``None``.
        prediction: The predicted mask ``(H, W)``, or ``None``.
        thickness: Outline width (default: about 1/150 of the shorter side, at least 1).

    Returns:
        A new ``uint8`` ``(H, W, 3)`` array; the prediction is drawn over the ground truth.

    Raises:
        DataError: A mask of another size than the image, or an unreadable image.

    Examples:
        >>> img = np.zeros((5, 5, 3), np.uint8); m = np.zeros((5, 5), bool); m[1:4, 1:4] = True
        >>> contour_overlay(img, truth=m)[1, 1].tolist(), contour_overlay(img, truth=m)[2, 2].tolist()
        ([0, 230, 0], [0, 0, 0])
    """
    out = _image_array(image).copy()
    shape = out.shape[:2]
    width = thickness if thickness is not None else _default_thickness(shape)
    for mask, colour, what in ((truth, TRUTH_COLOUR, "ground-truth"), (prediction, PREDICTION_COLOUR, "predicted")):
        if mask is not None:
            out[mask_contour(_mask_array(mask, shape, what, 0), width)] = colour
    return out


def save_overlay(
    image: Any,
    path: str | os.PathLike[str],
    *,
    truth: np.ndarray | None = None,
    prediction: np.ndarray | None = None,
    thickness: int | None = None,
) -> Path:
    """Write :func:`contour_overlay` as a PNG at the image's own resolution (atomically).

    Args:
        image: An RGB ``uint8`` array, a Pillow image or an image path.
        path: The PNG to write.
        truth: The ground-truth mask, or ``None``.
        prediction: The predicted mask, or ``None``.
        thickness: Outline width.

    Returns:
        The written path.
    """
    from PIL import Image

    overlay = contour_overlay(image, truth, prediction, thickness=thickness)
    target = Path(path)
    with atomic_path(target) as tmp:
        Image.fromarray(overlay).save(tmp, format="PNG")
    return target


def segmentation_panels(
    images: Sequence[Any],
    truths: Sequence[np.ndarray | None],
    predictions: Sequence[np.ndarray],
    path: str | os.PathLike[str],
    *,
    image_ids: Sequence[str] | None = None,
    title: str | None = None,
    panel_size: float = 2.6,
    dpi: int = 100,
) -> Path:
    """Draw input / ground truth / prediction / overlay panels, one row per image, as a PNG.

    The prediction panel is titled with the image's Dice when the ground truth is known; the
    overlay shows both outlines (ground truth green, prediction magenta).

    Args:
        images: RGB ``uint8`` arrays, Pillow images or image paths.
        truths: Ground-truth masks (``None`` where unknown: that panel is left blank).
        predictions: Predicted masks, each of its image's size.
        path: The PNG to write (atomically).
        image_ids: Row labels (default: the position).
        title: Figure title.
        panel_size: Size of one panel in inches.
        dpi: Resolution of the PNG.

    Returns:
        The written path.

    Raises:
        DataError: No images, lists of different lengths, or a mask of another size than its image.
    """
    from hamkit._mpl import pyplot, save_png
    from hamkit.metrics import dice_score

    n = len(images)
    if n == 0:
        raise DataError("no images to draw")
    if not len(truths) == len(predictions) == n:
        raise DataError(
            f"{n} images, {len(truths)} ground-truth masks and {len(predictions)} predictions: "
            "give one of each per image"
        )
    ids = [str(i) for i in image_ids] if image_ids is not None else [str(i) for i in range(n)]
    # check every input before drawing anything
    arrays = [_image_array(image, row) for row, image in enumerate(images)]
    shapes = [array.shape[:2] for array in arrays]
    preds = [
        _mask_array(p, shape, "predicted", row) for row, (p, shape) in enumerate(zip(predictions, shapes, strict=True))
    ]
    gts = [
        _mask_array(t, shape, "ground-truth", row) if t is not None else None
        for row, (t, shape) in enumerate(zip(truths, shapes, strict=True))
    ]
    figure, axes = pyplot().subplots(n, 4, figsize=(4 * panel_size, n * panel_size * 0.85), dpi=dpi, squeeze=False)
    try:
        for row in range(n):
            image, pred, truth = arrays[row], preds[row], gts[row]
            axes[row, 0].imshow(image)
            axes[row, 0].set_title(ids[row], fontsize=8)
            if truth is not None:
                axes[row, 1].imshow(truth, cmap="gray", vmin=0, vmax=1)
            axes[row, 1].set_title("ground truth" if truth is not None else "no ground truth", fontsize=8)
            axes[row, 2].imshow(pred, cmap="gray", vmin=0, vmax=1)
            score = f" (Dice {float(dice_score(pred, truth)[0]):.3f})" if truth is not None else ""
            axes[row, 2].set_title(f"prediction{score}", fontsize=8)
            axes[row, 3].imshow(contour_overlay(image, truth, pred))
            axes[row, 3].set_title("overlay: truth green, prediction magenta", fontsize=7)
            for ax in axes[row]:
                ax.set_axis_off()
        if title:
            figure.suptitle(title)
        figure.tight_layout()
    except BaseException:
        pyplot().close(figure)
        raise
    return save_png(figure, path)
