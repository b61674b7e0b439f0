"""Photograph a synthetic lesion: skin, lesion, hairs, dermoscope vignetting, lighting, noise.

Every pixel of the photo is mapped back into the lesion's own frame (undoing the view's shift,
rotation and zoom), where the border and all textures are defined, so photographing one lesion
twice from different views gives two consistent pictures and two consistent masks. Everything is
vectorised over pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hamkit.synthetic._fields import sample_fields
from hamkit.synthetic._lesions import Lesion, hair_colour, lesion_colour

__all__ = ["View", "sample_view", "render"]

_MAX_REACH = 0.92
"""How far (in half short sides) from the photo centre the lesion border may reach."""


@dataclass(frozen=True)
class View:
    """How one photo sees its lesion.

    Attributes:
        shift: Lesion centre in the photo, ``(x, y)`` in half short sides from the photo centre.
        angle: Rotation of the lesion in the photo, radians.
        zoom: Magnification (1 = the lesion at its own size).
        gain: Overall brightness factor.
        tint: Per-channel relative colour change, shape ``(3,)``.
    """

    shift: tuple[float, float]
    angle: float
    zoom: float
    gain: float
    tint: tuple[float, float, float]


def sample_view(rng: np.random.Generator, lesion: Lesion, first: bool) -> View:
    """Draw the view of one photo of ``lesion``.

    The first photo of a lesion is nearly centred at its natural size and lighting; later photos
    (re-photographs) are shifted, rotated, zoomed and lit differently. The zoom is capped so the
    whole lesion stays inside the frame.

    Args:
        rng: Source of randomness.
        lesion: The lesion photographed.
        first: Whether this is the lesion's first photo.

    Returns:
        The view.

    Examples:
        >>> from hamkit.synthetic._lesions import sample_lesion
        >>> rng = np.random.default_rng(0)
        >>> sample_view(rng, sample_lesion(rng, "nv"), first=True).gain
        1.0
    """
    reach = 0.08 if first else 0.15
    shift = rng.uniform(-reach, reach, 2)
    angle = float(rng.uniform(0.0, 2.0 * np.pi))
    zoom = float(rng.uniform(0.95, 1.05) if first else rng.uniform(0.8, 1.25))
    gain = 1.0 if first else float(rng.uniform(0.9, 1.1))
    tint = np.zeros(3) if first else rng.uniform(-0.03, 0.03, 3)
    zoom = min(zoom, (_MAX_REACH - float(np.hypot(*shift))) / lesion.max_extent)
    return View(
        shift=(float(shift[0]), float(shift[1])),
        angle=angle,
        zoom=zoom,
        gain=gain,
        tint=(float(tint[0]), float(tint[1]), float(tint[2])),
    )


def _hair_alpha(hairs: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Coverage ``(n, H, W)`` of each hair (a thin parabola arc) at lesion-frame points."""
    cx, cy, ang, curv, half, width, dark = (h[:, None, None] for h in hairs.T)
    dx = x[None] - cx
    dy = y[None] - cy
    t = dx * np.cos(ang) + dy * np.sin(ang)
    n = -dx * np.sin(ang) + dy * np.cos(ang)
    dist = np.abs(n - curv * t * t) / np.sqrt(1.0 + (2.0 * curv * t) ** 2)
    alpha = np.clip(1.0 - dist / width, 0.0, 1.0) * (np.abs(t) <= half)
    return (alpha * dark).astype(np.float32)


def render(
    lesion: Lesion, view: View, size: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Photograph ``lesion`` from ``view``.

    Args:
        lesion: The lesion.
        view: The view.
        size: ``(width, height)`` of the photo in pixels.
        rng: Source of the sensor noise.

    Returns:
        ``(image, mask)``: an ``(H, W, 3)`` uint8 RGB image and an ``(H, W)`` bool mask that is
        True exactly inside the drawn lesion border (where its coverage reaches one half
        of its opacity or more).

    Examples:
        >>> from hamkit.synthetic._lesions import sample_lesion
        >>> rng = np.random.default_rng(0)
        >>> lesion = sample_lesion(rng, "mel")
        >>> image, mask = render(lesion, sample_view(rng, lesion, True), (64, 48), rng)
        >>> image.shape, mask.shape, bool(mask.any() and not mask.all())
        ((48, 64, 3), (48, 64), True)
    """
    width, height = size
    half = min(width, height) / 2.0
    u = ((np.arange(width, dtype=np.float32) + 0.5 - width / 2.0) / half)[None, :]
    v = ((np.arange(height, dtype=np.float32) + 0.5 - height / 2.0) / half)[:, None]
    px = (u - view.shift[0]) / view.zoom
    py = (v - view.shift[1]) / view.zoom
    cos, sin = np.float32(np.cos(view.angle)), np.float32(np.sin(view.angle))
    x = cos * px + sin * py
    y = -sin * px + cos * py

    r = np.hypot(x, y)
    direction = (x + 1j * y).astype(np.complex64) / np.maximum(r, 1e-6)
    border = lesion.border_radius(direction)
    mask = r <= border
    coverage = np.clip(0.5 + (border - r) / lesion.softness, 0.0, 1.0) * lesion.opacity
    q = np.clip(r / border, 0.0, 1.0)

    low, mid, high, skin_low, skin_high = sample_fields(lesion.fields, x, y)
    skin = lesion.skin * (1.0 + 0.05 * skin_low + 0.015 * skin_high)[..., None]
    skin = skin + np.array([0.02, -0.01, -0.01], np.float32) * skin_low[..., None]
    image = skin + (lesion_colour(lesion, q, low, mid, high) - skin) * coverage[..., None]

    if len(lesion.hairs):
        hair = np.clip(_hair_alpha(lesion.hairs, x, y).sum(axis=0), 0.0, 0.95)
        image = image + (hair_colour() - image) * hair[..., None]

    rho = np.hypot(u, v)
    image = image * (1.0 - lesion.vignette * (rho / float(rho.max())) ** 2)[..., None]
    if np.isfinite(lesion.scope_radius):
        outside = np.clip((rho - lesion.scope_radius) / 0.05, 0.0, 1.0)
        image = image + (0.02 - image) * outside[..., None]
    image = image * (view.gain * (1.0 + np.asarray(view.tint, np.float32)))
    image = image + 0.01 * rng.standard_normal(image.shape, dtype=np.float32)
    pixels = np.clip(image * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)
    return pixels, mask
