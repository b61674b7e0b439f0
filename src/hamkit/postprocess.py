"""Clean-up of binary lesion masks: keep the largest connected component, fill holes.

A dermoscopic image shows one lesion, so a predicted mask is often improved by keeping only its
largest connected component (dropping specks of hair or skin texture) and filling the holes
inside it. Both operations run on a whole stack of masks at once with :mod:`scipy.ndimage`:
the stack ``(N, H, W)`` is labelled (or hole-filled) as one 3-D array with a structuring
element that connects pixels within a mask only, never across masks, so there is no Python
loop over the masks. Masks of different sizes are grouped by size first.

Connectivity is 8-neighbour by default (``connectivity=2``), as lesion outlines are drawn;
``connectivity=1`` uses the 4-neighbour cross.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hamkit.errors import HamkitError

__all__ = ["POSTPROCESS_MODES", "keep_largest_component", "fill_holes", "postprocess_masks"]

POSTPROCESS_MODES: tuple[str | None, ...] = (None, "largest", "fill", "largest+fill")
"""Accepted ``postprocess`` values: nothing, largest component, fill holes, or both (in that order)."""


def _stack(masks: np.ndarray) -> tuple[np.ndarray, bool]:
    """Return ``masks`` as a boolean ``(N, H, W)`` stack and whether it was a single ``(H, W)`` mask."""
    array = np.asarray(masks)
    if array.ndim == 2:
        return array.astype(bool, copy=False)[None], True
    if array.ndim == 3:
        return array.astype(bool, copy=False), False
    raise HamkitError(f"masks must be (H, W) or (N, H, W) arrays, got shape {array.shape}")


def _in_plane_structure(connectivity: int) -> np.ndarray:
    """A 3x3x3 structuring element that connects neighbours within a slice, never across slices."""
    from scipy import ndimage

    if connectivity not in (1, 2):
        raise HamkitError(f"connectivity must be 1 (4-neighbour) or 2 (8-neighbour), got {connectivity}")
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = ndimage.generate_binary_structure(2, connectivity)
    return structure


def keep_largest_component(masks: np.ndarray, *, connectivity: int = 2) -> np.ndarray:
    """Keep only the largest connected lesion component of each mask.

    Ties are broken in favour of the component met first in raster order. An empty mask stays
    empty.

    Args:
        masks: A boolean mask ``(H, W)`` or a stack ``(N, H, W)``.
        connectivity: 2 for 8-neighbour (default), 1 for 4-neighbour connectivity.

    Returns:
        A boolean array of the same shape.

    Raises:
        HamkitError: Wrong dimensions or connectivity.

    Examples:
        >>> m = np.array([[1, 1, 0, 0], [1, 0, 0, 1], [0, 0, 0, 1]], dtype=bool)
        >>> keep_largest_component(m).astype(int).tolist()
        [[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    """
    from scipy import ndimage

    stack, single = _stack(masks)
    labels, count = ndimage.label(stack, structure=_in_plane_structure(connectivity))
    if count == 0:
        return stack.copy()[0] if single else stack.copy()
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    owner = np.zeros(count + 1, dtype=np.int64)  # the mask each label lies in
    owner[labels] = np.arange(stack.shape[0]).reshape(-1, 1, 1)
    candidates = np.arange(1, count + 1)
    # sort labels by mask, then by size (largest first); lexsort is stable, so ties keep raster order
    order = candidates[np.lexsort((-sizes[1:], owner[1:]))]
    first = np.ones(order.size, dtype=bool)
    first[1:] = owner[order[1:]] != owner[order[:-1]]
    keep = np.zeros(count + 1, dtype=bool)
    keep[order[first]] = True
    result = np.asarray(keep[labels], dtype=bool)
    return result[0] if single else result


def fill_holes(masks: np.ndarray, *, connectivity: int = 1) -> np.ndarray:
    """Fill the holes of each mask (background regions not connected to the image border).

    Args:
        masks: A boolean mask ``(H, W)`` or a stack ``(N, H, W)``.
        connectivity: Connectivity of the background: 1 (4-neighbour, default, so that a
            diagonal gap in an 8-connected outline still encloses a hole) or 2.

    Returns:
        A boolean array of the same shape.

    Raises:
        HamkitError: Wrong dimensions or connectivity.

    Examples:
        >>> m = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=bool)
        >>> bool(fill_holes(m)[1, 1])
        True
    """
    from scipy import ndimage

    stack, single = _stack(masks)
    filled = np.asarray(ndimage.binary_fill_holes(stack, structure=_in_plane_structure(connectivity)), dtype=bool)
    return filled[0] if single else filled


def postprocess_masks(
    masks: np.ndarray | Sequence[np.ndarray], mode: str | None, *, connectivity: int = 2
) -> np.ndarray | list[np.ndarray]:
    """Apply a ``postprocess`` mode to one mask, a stack, or a list of masks of any sizes.

    Args:
        masks: A mask ``(H, W)``, a stack ``(N, H, W)``, or a list of masks (sizes may differ;
            masks of equal size are processed together as one stack).
        mode: ``None`` (unchanged), ``"largest"`` (largest connected component), ``"fill"``
            (fill holes) or ``"largest+fill"`` (both, in that order).
        connectivity: Connectivity of the lesion components for ``"largest"``.

    Returns:
        The same structure as ``masks`` (an array, or a list in the same order), boolean.

    Raises:
        HamkitError: Unknown mode.

    Examples:
        >>> m = np.zeros((6, 6), dtype=bool); m[1:4, 1:4] = True; m[2, 2] = False; m[5, 5] = True
        >>> int(postprocess_masks(m, "largest+fill").sum())  # speck dropped, hole filled
        9
    """
    if mode not in POSTPROCESS_MODES:
        raise HamkitError(f"unknown postprocess {mode!r}; choose one of None, 'largest', 'fill', 'largest+fill'")

    def apply(stack: np.ndarray) -> np.ndarray:
        out = np.asarray(stack).astype(bool, copy=False)
        if mode in ("largest", "largest+fill"):
            out = keep_largest_component(out, connectivity=connectivity)
        if mode in ("fill", "largest+fill"):
            out = fill_holes(out)
        return out

    if isinstance(masks, np.ndarray):
        return apply(masks)
    items = [np.asarray(m) for m in masks]
    if mode is None:
        return [m.astype(bool, copy=False) for m in items]
    result: list[np.ndarray] = [np.empty(0)] * len(items)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for index, item in enumerate(items):
        if item.ndim != 2:
            raise HamkitError(f"mask {index}: expected an (H, W) array, got shape {item.shape}")
        by_shape.setdefault(item.shape, []).append(index)
    for indices in by_shape.values():
        processed = apply(np.stack([items[i] for i in indices]))
        for position, index in enumerate(indices):
            result[index] = processed[position]
    return result
