"""What a synthetic lesion of each diagnosis looks like: shape, colours and texture.

Each class has a :class:`ClassStyle` (size, border irregularity, border softness, colour palette)
and a colouring function that turns the lesion's noise fields into RGB. The styles follow the
textbook dermoscopic picture strongly enough for a small CNN to learn them at 64x64:

* ``mel``: large, irregular, dark brown to black, multicoloured (blue-grey veil, light-brown and
  reddish areas).
* ``nv``: round, uniform brown, slightly darker centre, faint pigment network.
* ``bcc``: pinkish, pearly white areas, thin red branching vessels, blue-grey nests.
* ``akiec``: red with a scaly, yellow-white surface.
* ``bkl``: tan / light brown, waxy and mottled, with milia-like white dots.
* ``df``: small, pale centre inside a brown ring.
* ``vasc``: red and purple lobules separated by paler septa.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hamkit.classes import CLASS_CODES
from hamkit.synthetic._fields import FIELD_GRID, noise_field

__all__ = ["ClassStyle", "Lesion", "STYLES", "sample_lesion", "lesion_colour"]

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class ClassStyle:
    """Ranges from which the look of one class's lesions is drawn.

    Attributes:
        radius: Range of the mean border radius (1 = half the image's short side).
        irregularity: Range of the total border harmonic amplitude (0 = a circle).
        harmonics: Number of border harmonics (orders 2 .. harmonics + 1).
        softness: Range of the border blur width, in the radius's units.
        palette: The class's base colours (RGB in 0..1); their use depends on the class.
    """

    radius: tuple[float, float]
    irregularity: tuple[float, float]
    harmonics: int
    softness: tuple[float, float]
    palette: tuple[RGB, ...]


STYLES: dict[str, ClassStyle] = {
    "mel": ClassStyle(
        (0.42, 0.62),
        (0.16, 0.30),
        7,
        (0.03, 0.08),
        (
            (0.32, 0.19, 0.13),
            (0.10, 0.07, 0.07),
            (0.38, 0.40, 0.50),
            (0.58, 0.38, 0.25),
            (0.55, 0.22, 0.20),
        ),
    ),
    "nv": ClassStyle(
        (0.28, 0.48),
        (0.02, 0.06),
        3,
        (0.015, 0.04),
        ((0.54, 0.35, 0.22), (0.40, 0.25, 0.16)),
    ),
    "bcc": ClassStyle(
        (0.30, 0.50),
        (0.06, 0.14),
        5,
        (0.03, 0.06),
        ((0.88, 0.64, 0.64), (0.96, 0.89, 0.87), (0.72, 0.10, 0.14), (0.45, 0.45, 0.56)),
    ),
    "akiec": ClassStyle(
        (0.32, 0.52),
        (0.08, 0.16),
        5,
        (0.05, 0.10),
        ((0.80, 0.38, 0.34), (0.66, 0.24, 0.22), (0.93, 0.87, 0.76)),
    ),
    "bkl": ClassStyle(
        (0.34, 0.56),
        (0.05, 0.12),
        4,
        (0.015, 0.035),
        ((0.74, 0.56, 0.38), (0.60, 0.42, 0.27), (0.96, 0.93, 0.85)),
    ),
    "df": ClassStyle(
        (0.18, 0.30),
        (0.02, 0.06),
        3,
        (0.06, 0.12),
        ((0.90, 0.78, 0.72), (0.48, 0.32, 0.24), (0.68, 0.50, 0.38)),
    ),
    "vasc": ClassStyle(
        (0.22, 0.40),
        (0.08, 0.16),
        4,
        (0.02, 0.04),
        ((0.62, 0.08, 0.20), (0.42, 0.10, 0.40), (0.84, 0.52, 0.57)),
    ),
}
"""The look of each class, keyed by ``dx`` code."""

_SKIN_LIGHT = np.array([0.95, 0.78, 0.70], dtype=np.float32)
_SKIN_DARK = np.array([0.62, 0.43, 0.32], dtype=np.float32)
_HAIR = np.array([0.12, 0.08, 0.06], dtype=np.float32)

# (grid cells, Gaussian sigma in cells) of the noise fields every lesion carries:
# lesion low / mid / high frequency, then skin low / high frequency.
_FIELD_SPECS: tuple[tuple[int, float], ...] = (
    (48, 2.0),
    (FIELD_GRID, 1.6),
    (FIELD_GRID, 0.9),
    (48, 4.0),
    (FIELD_GRID, 1.0),
)


@dataclass(frozen=True, eq=False)
class Lesion:
    """One lesion of one patient, in its own coordinate frame, ready to be photographed.

    Attributes:
        dx: Diagnosis code.
        radius: Mean border radius.
        amplitudes: Border harmonic amplitudes, orders 2, 3, ...
        phases: Border harmonic phases.
        softness: Border blur width.
        opacity: How much the lesion covers the skin (1 = fully).
        palette: The class palette, jittered for this lesion, shape ``(P, 3)``.
        fields: Stacked noise fields (lesion low, mid, high; skin low, high), shape
            ``(5, FIELD_GRID, FIELD_GRID)``.
        skin: The patient's base skin colour, shape ``(3,)``.
        hairs: One row per hair: centre x, centre y, angle, curvature, half length, width,
            darkness; shape ``(n, 7)``.
        vignette: Strength of the dermoscope's corner darkening.
        scope_radius: Radius of the dermoscope's round field of view (``inf``: none visible).
    """

    dx: str
    radius: float
    amplitudes: np.ndarray
    phases: np.ndarray
    softness: float
    opacity: float
    palette: np.ndarray
    fields: np.ndarray
    skin: np.ndarray
    hairs: np.ndarray
    vignette: float
    scope_radius: float

    @property
    def max_extent(self) -> float:
        """An upper bound of the border's distance from the lesion centre."""
        return self.radius * (1.0 + float(np.abs(self.amplitudes).sum()))

    def border_radius(self, direction: np.ndarray) -> np.ndarray:
        """The border radius towards unit complex ``direction`` (``exp(i * angle)``), any shape.

        The border is ``radius * (1 + sum_k a_k cos(k * angle + phase_k))`` for k = 2, 3, ...;
        the powers of ``direction`` give the harmonics without evaluating any cosine per pixel.
        """
        total = np.zeros(direction.shape, dtype=np.float32)
        power = direction * direction
        for amplitude, phase in zip(self.amplitudes.tolist(), self.phases.tolist(), strict=True):
            total += amplitude * (power * np.complex64(np.exp(1j * phase))).real
            power = power * direction
        return self.radius * (1.0 + total)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def sample_lesion(rng: np.random.Generator, dx: str) -> Lesion:
    """Draw the shape, colours, textures, skin and hairs of one lesion of class ``dx``.

    Args:
        rng: Source of randomness (the same state gives the same lesion).
        dx: Diagnosis code, one of :data:`hamkit.classes.CLASS_CODES`.

    Returns:
        The lesion.

    Raises:
        KeyError: ``dx`` is not a diagnosis code.

    Examples:
        >>> lesion = sample_lesion(np.random.default_rng(0), "df")
        >>> lesion.dx, lesion.max_extent < 0.5
        ('df', True)
    """
    style = STYLES[dx]
    k = style.harmonics
    weights = rng.uniform(0.3, 1.0, k) / np.arange(2, 2 + k) ** 0.6
    amplitudes = _uniform(rng, style.irregularity) * weights / weights.sum()
    phases = rng.uniform(0.0, 2.0 * np.pi, k)
    jittered = np.asarray(style.palette) * rng.uniform(0.88, 1.12) + rng.uniform(-0.03, 0.03, (1, 3))
    palette = np.clip(jittered, 0.0, 1.0).astype(np.float32)
    fields = np.stack([noise_field(rng, grid, sigma) for grid, sigma in _FIELD_SPECS])
    tone = float(rng.beta(1.6, 4.0))
    skin = _SKIN_LIGHT + (_SKIN_DARK - _SKIN_LIGHT) * tone + rng.uniform(-0.02, 0.02, 3)
    n_hairs = 0 if rng.random() < 0.6 else int(rng.integers(1, 8))
    hairs = np.column_stack(
        [
            rng.uniform(-1.6, 1.6, (n_hairs, 2)),
            rng.uniform(0.0, np.pi, n_hairs),
            rng.uniform(-0.25, 0.25, n_hairs),
            rng.uniform(0.5, 2.0, n_hairs),
            rng.uniform(0.006, 0.014, n_hairs),
            rng.uniform(0.6, 0.95, n_hairs),
        ]
    ).astype(np.float32)
    scope = float(rng.uniform(1.05, 1.35)) if rng.random() < 0.15 else float("inf")
    return Lesion(
        dx=dx,
        radius=_uniform(rng, style.radius),
        amplitudes=amplitudes.astype(np.float32),
        phases=phases.astype(np.float32),
        softness=_uniform(rng, style.softness),
        opacity=float(rng.uniform(0.9, 1.0)),
        palette=palette,
        fields=fields,
        skin=skin.astype(np.float32),
        hairs=hairs,
        vignette=float(rng.uniform(0.05, 0.3)),
        scope_radius=scope,
    )


def hair_colour() -> np.ndarray:
    """The base colour of hairs (RGB in 0..1), darkened per hair by its darkness."""
    return _HAIR


# --------------------------------------------------------------------------- colouring


def _step(x: np.ndarray, edge0: float, edge1: float) -> np.ndarray:
    """Smoothstep from 0 at ``edge0`` to 1 at ``edge1`` (``edge0 > edge1`` reverses it)."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Blend colours ``a`` -> ``b`` by weight ``t`` of shape ``(H, W)``."""
    return a + (b - a) * t[..., None]


_Colouring = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _mel(p: np.ndarray, q: np.ndarray, low: np.ndarray, mid: np.ndarray, high: np.ndarray) -> np.ndarray:
    c = _mix(p[0], p[1], _step(low, -0.3, 0.9))
    c = _mix(c, p[3], 0.7 * _step(low, -0.9, -1.5))
    c = _mix(c, p[2], 0.85 * _step(mid, 0.7, 1.3))
    c = _mix(c, p[4], 0.6 * _step(mid, -1.2, -1.8))
    return _mix(c, p[1], 0.8 * _step(high, 1.3, 2.0))


def _nv(p: np.ndarray, q: np.ndarray, low: np.ndarray, mid: np.ndarray, high: np.ndarray) -> np.ndarray:
    c = _mix(p[0], p[1], np.clip(0.6 * (1.0 - q) + 0.15 * mid, 0.0, 1.0))
    network = _step(np.abs(high), 0.25, 0.0)
    return c * (1.0 - 0.18 * network)[..., None]


def _bcc(p: np.ndarray, q: np.ndarray, low: np.ndarray, mid: np.ndarray, high: np.ndarray) -> np.ndarray:
    c = _mix(p[0], p[1], 0.7 * _step(low, 0.2, 1.2))
    c = _mix(c, p[3], 0.8 * _step(low, -0.9, -1.5))
    vessels = _step(np.abs(mid), 0.12, 0.03) * _step(low, -0.5, 0.3)
    return _mix(c, p[2], 0.95 * vessels)


def _akiec(p: np.ndarray, q: np.ndarray, low: np.ndarray, mid: np.ndarray, high: np.ndarray) -> np.ndarray:
    c = _mix(p[0], p[1], _step(mid, -0.5, 0.8)) * (1.0 + 0.06 * high)[..., None]
    return _mix(c, p[2], 0.85 * _step(high, 0.5, 1.2))


def _bkl(p: np.ndarray, q: np.ndarray, low: np.ndarray, mid: np.ndarray, high: np.ndarray) -> np.ndarray:
    c = _mix(p[0], p[1], _step(mid, -0.6, 0.6)) * (1.0 + 0.06 * low)[..., None]
    c = _mix(c, p[2], _step(high, 1.7, 2.2))
    return _mix(c, p[1] * 0.6, 0.5 * _step(high, -1.7, -2.2))


def _df(p: np.ndarray, q: np.ndarray, low: np.ndarray, mid: np.ndarray, high: np.ndarray) -> np.ndarray:
    c = _mix(p[0], p[1], _step(q, 0.25, 0.6))
    c = _mix(c, p[2], 0.7 * _step(q, 0.8, 1.0))
    return c + 0.03 * mid[..., None]


def _vasc(p: np.ndarray, q: np.ndarray, low: np.ndarray, mid: np.ndarray, high: np.ndarray) -> np.ndarray:
    hue = _mix(p[0], p[1], _step(low, -0.5, 0.5))
    return _mix(np.broadcast_to(p[2], hue.shape), hue, _step(mid, -0.2, 0.35))


_COLOURINGS: dict[str, _Colouring] = {
    "mel": _mel,
    "nv": _nv,
    "bcc": _bcc,
    "akiec": _akiec,
    "bkl": _bkl,
    "df": _df,
    "vasc": _vasc,
}
assert set(_COLOURINGS) == set(CLASS_CODES) == set(STYLES)


def lesion_colour(lesion: Lesion, q: np.ndarray, low: np.ndarray, mid: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Colour every pixel as if it lay inside the lesion.

    Args:
        lesion: The lesion.
        q: Distance from the centre relative to the border radius (0 centre, 1 border).
        low: The lesion's low-frequency noise sampled at each pixel.
        mid: Its mid-frequency noise.
        high: Its high-frequency noise.

    Returns:
        RGB in about 0..1, shape ``(H, W, 3)``, float32.

    Examples:
        >>> lesion = sample_lesion(np.random.default_rng(0), "nv")
        >>> z = np.zeros((2, 3), np.float32)
        >>> lesion_colour(lesion, z, z, z, z).shape
        (2, 3, 3)
    """
    rgb = _COLOURINGS[lesion.dx](lesion.palette, q, low, mid, high)
    return np.asarray(rgb, dtype=np.float32)
