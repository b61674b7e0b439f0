"""Smooth random noise fields, defined in a lesion's own coordinate frame.

A field is a grid of Gaussian-filtered white noise, standardised to zero mean and unit standard
deviation, that covers the square ``[-EXTENT, EXTENT]^2`` of the lesion frame. Sampling it
bilinearly at the lesion-frame coordinates of every pixel of a photo makes a texture that moves,
turns and scales with the lesion when it is photographed again.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["EXTENT", "FIELD_GRID", "noise_field", "sample_fields"]

EXTENT: float = 2.5
"""Half side of the square of the lesion frame that the fields cover (1 = half the short side)."""

FIELD_GRID: int = 192
"""Side, in cells, of the grid every field is stored on (so fields stack and sample together)."""


def noise_field(rng: np.random.Generator, grid: int, sigma: float) -> np.ndarray:
    """Draw one standardised smooth noise field on a :data:`FIELD_GRID` square grid.

    The noise is drawn and smoothed on a ``grid``-cell grid (fewer cells: coarser detail, and
    cheap smoothing) and then interpolated up to :data:`FIELD_GRID` cells.

    Args:
        rng: Source of randomness.
        grid: Side of the grid the noise is drawn on; more cells give finer detail.
        sigma: Standard deviation of the Gaussian smoothing, in cells of that grid.

    Returns:
        A ``(FIELD_GRID, FIELD_GRID)`` float32 array with mean 0 and standard deviation 1.

    Examples:
        >>> f = noise_field(np.random.default_rng(0), 32, 2.0)
        >>> f.shape, round(float(f.std()), 3)
        ((192, 192), 1.0)
    """
    white = rng.standard_normal((grid, grid), dtype=np.float32)
    smooth = ndimage.gaussian_filter(white, sigma=sigma, mode="wrap")
    if grid != FIELD_GRID:
        smooth = ndimage.zoom(smooth, FIELD_GRID / grid, order=1, mode="grid-wrap", grid_mode=True)
    smooth = smooth - smooth.mean()
    smooth /= max(float(smooth.std()), 1e-8)
    return smooth.astype(np.float32, copy=False)


def sample_fields(fields: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample stacked noise fields bilinearly at lesion-frame coordinates.

    Args:
        fields: Fields from :func:`noise_field`, stacked: shape ``(C, FIELD_GRID, FIELD_GRID)``.
        x: Lesion-frame x coordinate of every pixel, shape ``(H, W)``.
        y: Lesion-frame y coordinate of every pixel, shape ``(H, W)``.

    Returns:
        The ``C`` fields at every pixel, shape ``(C, H, W)``, float32. Points outside the covered
        square take the value at its edge.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> x, y = np.meshgrid(np.linspace(-1, 1, 8), np.linspace(-1, 1, 6))
        >>> sample_fields(np.stack([noise_field(rng, 16, 1.0)]), x, y).shape
        (1, 6, 8)
    """
    grid = fields.shape[-1]
    scale = (grid - 1) / (2.0 * EXTENT)
    rows = np.clip((y + EXTENT) * scale, 0.0, grid - 1.001).astype(np.float32)
    cols = np.clip((x + EXTENT) * scale, 0.0, grid - 1.001).astype(np.float32)
    r0 = rows.astype(np.intp)
    c0 = cols.astype(np.intp)
    fr = rows - r0.astype(np.float32)
    fc = cols - c0.astype(np.float32)
    flat = fields.reshape(fields.shape[0], -1)
    base = r0 * grid + c0
    top_left = np.take(flat, base, axis=1)
    top = top_left + (np.take(flat, base + 1, axis=1) - top_left) * fc
    bottom_left = np.take(flat, base + grid, axis=1)
    bottom = bottom_left + (np.take(flat, base + grid + 1, axis=1) - bottom_left) * fc
    return (top + (bottom - top) * fr).astype(np.float32, copy=False)
