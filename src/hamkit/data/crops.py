"""Lesion-centred crops: the square region of each image around its lesion mask.

A dermoscopic image often shows a small lesion in a wide field of skin; resized whole to a
network's small working size, the lesion keeps few pixels. A crop around the lesion's mask (the
ground truth, or a :class:`~hamkit.LesionSegmenter`'s prediction) gives the lesion the pixels
instead. A crop is a region ``(left, top, right, bottom)`` in fractions of the image's width and
height, so it does not depend on the size the mask was computed at; :class:`SkinDataset` takes
one per image (:meth:`~hamkit.data.dataset.SkinDataset.with_crops`) and decodes only that region.

Examples:
    >>> import numpy as np
    >>> mask = np.zeros((1, 100, 100), bool)
    >>> mask[0, 40:60, 40:60] = True
    >>> lesion_crops(mask, margin=1.5).round(2).tolist()
    [[0.35, 0.35, 0.65, 0.65]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hamkit.errors import DataError

__all__ = ["DEFAULT_MARGIN", "check_lesion_crop", "lesion_crops"]

DEFAULT_MARGIN = 1.25
"""Side of the crop as a multiple of the lesion's longer side (a quarter of skin around it)."""


def check_lesion_crop(value: object) -> str | None:
    """What is wrong with ``value`` as an estimator's ``lesion_crop`` setting, or ``None``.

    ``0`` means whole images; otherwise the crop side as a multiple of the lesion's longer side,
    at least 1.

    Examples:
        >>> check_lesion_crop(1.25) is None, check_lesion_crop(0) is None
        (True, True)
        >>> print(check_lesion_crop(0.5))
        lesion_crop must be 0 (whole images) or at least 1 (the crop side / the lesion's longer side), got 0.5
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool) and (value == 0 or 1 <= value < float("inf")):
        return None
    return (
        f"lesion_crop must be 0 (whole images) or at least 1 (the crop side / the lesion's longer side), got {value!r}"
    )


def lesion_crops(
    masks: np.ndarray | Sequence[np.ndarray],
    aspects: float | Sequence[float] | np.ndarray | None = None,
    *,
    margin: float = DEFAULT_MARGIN,
    min_share: float = 0.3,
) -> np.ndarray:
    """The square crop around each mask's lesion, as fractions of its image.

    The crop is centred on the bounding box of the mask's lesion pixels, its side ``margin``
    times the box's longer side (in the image's own pixels, so it is square in the image however
    the mask was resized), at least ``min_share`` and at most the whole of the image's shorter
    side, and shifted to lie inside the image. A mask without lesion pixels gives the centred
    square of the shorter side. All masks are handled at once (no loop over images).

    Args:
        masks: ``(N, H, W)`` masks (non-zero = lesion), or a list of 2-D masks of any sizes (as
            :meth:`hamkit.LesionSegmenter.predict` returns them); each covers its whole image.
        aspects: Each image's width / height (one number for all), e.g. 4/3 for 600x450 images
            whose masks were resized to a square; default: each mask's own width / height (right
            for masks at their image's size).
        margin: Crop side / the lesion box's longer side; at least 1.
        min_share: Smallest crop side as a share of the image's shorter side, in (0, 1].

    Returns:
        ``(N, 4)`` float64 regions ``(left, top, right, bottom)`` in ``[0, 1]``.

    Raises:
        DataError: ``masks`` is not 3-D (or a list of 2-D masks), an aspect is not positive, or
            ``margin`` / ``min_share`` out of range.
    """
    if not isinstance(masks, np.ndarray):
        return _crops_of_list(list(masks), aspects, margin, min_share)
    if masks.ndim != 3:
        raise DataError(f"masks must be an (N, H, W) array, got shape {masks.shape}")
    if not margin >= 1.0:
        raise DataError(f"margin must be at least 1 (the crop holds the whole lesion), got {margin}")
    if not 0.0 < min_share <= 1.0:
        raise DataError(f"min_share must be in (0, 1], got {min_share}")
    count, height, width = masks.shape
    aspect = np.broadcast_to(np.asarray(width / height if aspects is None else aspects, dtype=np.float64), (count,))
    if count and not (aspect > 0).all():
        raise DataError("every image's aspect (width / height) must be positive")
    lesion = masks != 0
    rows, cols = lesion.any(axis=2), lesion.any(axis=1)
    found = rows.any(axis=1)
    top = rows.argmax(axis=1) / height
    bottom = (height - rows[:, ::-1].argmax(axis=1)) / height
    left = cols.argmax(axis=1) / width
    right = (width - cols[:, ::-1].argmax(axis=1)) / width
    # work in units of the image's height: the image is aspect wide and 1 high
    short = np.minimum(aspect, 1.0)
    side = margin * np.maximum((right - left) * aspect, bottom - top)
    side = np.clip(side, min_share * short, short)
    side = np.where(found, side, short)
    centre_x = np.where(found, (left + right) / 2, 0.5) * aspect
    centre_y = np.where(found, (top + bottom) / 2, 0.5)
    x0 = np.clip(centre_x - side / 2, 0.0, aspect - side)
    y0 = np.clip(centre_y - side / 2, 0.0, 1.0 - side)
    crops = np.stack([x0 / aspect, y0, (x0 + side) / aspect, y0 + side], axis=1)
    return np.clip(crops, 0.0, 1.0)


def _crops_of_list(
    masks: list[np.ndarray],
    aspects: float | Sequence[float] | np.ndarray | None,
    margin: float,
    min_share: float,
) -> np.ndarray:
    """:func:`lesion_crops` of 2-D masks that may differ in size: one array operation per size."""
    arrays = [np.asarray(m) for m in masks]
    bad = [i for i, m in enumerate(arrays) if m.ndim != 2]
    if bad:
        raise DataError(f"masks must be 2-D (H, W) arrays; mask {bad[0]} has shape {arrays[bad[0]].shape}")
    every = None if aspects is None else np.broadcast_to(np.asarray(aspects, dtype=np.float64), (len(arrays),))
    crops = np.zeros((len(arrays), 4), dtype=np.float64)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, m in enumerate(arrays):
        by_shape.setdefault(m.shape, []).append(i)
    for indices in by_shape.values():
        stacked = np.stack([arrays[i] for i in indices])
        crops[indices] = lesion_crops(
            stacked, None if every is None else every[indices], margin=margin, min_share=min_share
        )
    return crops
