"""Planted duplicates: altered copies of an image that a deduplicator should find.

Each kind imitates a way one photo re-enters a collection under a new id:

* ``exact``: the very same file (byte-identical), mask included.
* ``reencoded``: decoded and saved again at JPEG quality 70..95.
* ``resized``: scaled down and back up, or saved at a smaller size.
* ``cropped``: 2..7 % cut off each side, then scaled back to the original size.
* ``brightness``: a small brightness shift (6..16 grey levels up or down).

The mask of a duplicate is the source's mask put through the same geometric change.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

__all__ = ["DUPLICATE_KINDS", "make_duplicate", "encode_jpeg", "encode_mask"]

DUPLICATE_KINDS: tuple[str, ...] = ("exact", "reencoded", "resized", "cropped", "brightness")
"""The kinds of planted duplicates, as written in ``duplicates_groundtruth.csv``."""

JPEG_QUALITY = 90
"""JPEG quality of the synthetic photos."""


def encode_jpeg(image: Image.Image | np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    r"""Encode an RGB image as JPEG bytes.

    Args:
        image: A PIL image or an ``(H, W, 3)`` uint8 array.
        quality: JPEG quality, 1..95.

    Returns:
        The JPEG file's bytes.

    Examples:
        >>> encode_jpeg(np.zeros((4, 4, 3), np.uint8))[:2]
        b'\xff\xd8'
    """
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image, "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


_INVERTED_GREY = [255 - i for i in range(256) for _ in range(3)]


def encode_mask(mask: np.ndarray, palette: str | None = None) -> bytes:
    """Encode a boolean mask as PNG bytes.

    Args:
        mask: ``(H, W)`` bool array, True on the lesion.
        palette: ``None`` for 8-bit greyscale (0 skin, 255 lesion); ``"official"`` for a palette
            image like some official HAM10000 masks (an inverted grey ramp: index 0 is white, the
            lesion is stored as index 0 and the skin as index 255); ``"binary"`` for a two-colour
            palette (index 0 white = lesion, index 1 black = skin). Palette masks read correctly
            with ``Image.open(p).convert("L") > 127`` and inverted from their raw indices.

    Returns:
        The PNG file's bytes.

    Raises:
        ValueError: Unknown ``palette``.

    Examples:
        >>> m = np.zeros((3, 3), bool); m[1, 1] = True
        >>> data = encode_mask(m, palette="binary")
        >>> image = Image.open(io.BytesIO(data))
        >>> image.mode, int(np.asarray(image)[1, 1]), int(np.asarray(image.convert("L"))[1, 1])
        ('P', 0, 255)
    """
    if palette is None:
        image = Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), "L")
    elif palette == "official":
        image = Image.fromarray(np.where(mask, 0, 255).astype(np.uint8), "P")
        image.putpalette(_INVERTED_GREY)
    elif palette == "binary":
        image = Image.fromarray(np.where(mask, 0, 1).astype(np.uint8), "P")
        image.putpalette([255, 255, 255, 0, 0, 0])
    else:
        raise ValueError(f"unknown mask palette {palette!r}; expected None, 'official' or 'binary'")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _resize_mask(mask: np.ndarray, size: tuple[int, int], box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    image = Image.fromarray(mask.astype(np.uint8) * 255, "L")
    return np.asarray(image.resize(size, Image.Resampling.NEAREST, box=box)) > 127


def make_duplicate(
    kind: str, jpeg: bytes, mask: np.ndarray, mask_png: bytes, rng: np.random.Generator
) -> tuple[bytes, bytes]:
    """Make one planted duplicate of an image.

    Args:
        kind: One of :data:`DUPLICATE_KINDS`.
        jpeg: The source image's JPEG bytes (as written to disk).
        mask: The source's mask, ``(H, W)`` bool.
        mask_png: The source mask's PNG bytes (copied as they are by ``exact``).
        rng: Source of the kind's random parameters.

    Returns:
        ``(image bytes, mask PNG bytes)`` of the duplicate; the mask has the image's size.

    Raises:
        ValueError: Unknown ``kind``.

    Examples:
        >>> img = np.full((48, 64, 3), 120, np.uint8)
        >>> m = np.zeros((48, 64), bool); m[10:30, 20:40] = True
        >>> data, mask_data = make_duplicate("cropped", encode_jpeg(img), m, encode_mask(m),
        ...                                  np.random.default_rng(0))
        >>> Image.open(io.BytesIO(data)).size, Image.open(io.BytesIO(mask_data)).size
        ((64, 48), (64, 48))
    """
    if kind == "exact":
        return jpeg, mask_png
    image = Image.open(io.BytesIO(jpeg)).convert("RGB")
    width, height = image.size
    if kind == "reencoded":
        return encode_jpeg(image, int(rng.integers(70, 96))), encode_mask(mask)
    if kind == "resized":
        scale = float(rng.uniform(0.45, 0.8))
        small = (max(1, round(width * scale)), max(1, round(height * scale)))
        shrunk = image.resize(small, Image.Resampling.BILINEAR)
        if rng.random() < 0.5:  # scaled down and back up
            return encode_jpeg(shrunk.resize((width, height), Image.Resampling.BICUBIC)), encode_mask(mask)
        return encode_jpeg(shrunk), encode_mask(_resize_mask(mask, small))  # saved smaller
    if kind == "cropped":
        left, top, right, bottom = rng.uniform(0.02, 0.07, 4)
        box = (
            round(left * width),
            round(top * height),
            width - round(right * width),
            height - round(bottom * height),
        )
        cropped = image.resize((width, height), Image.Resampling.BICUBIC, box=box)
        return encode_jpeg(cropped), encode_mask(_resize_mask(mask, (width, height), box))
    if kind == "brightness":
        shift = float(rng.uniform(6.0, 16.0)) * (1.0 if rng.random() < 0.5 else -1.0)
        pixels = np.clip(np.asarray(image, dtype=np.float32) + shift, 0.0, 255.0)
        return encode_jpeg(pixels.round().astype(np.uint8)), encode_mask(mask)
    raise ValueError(f"unknown duplicate kind {kind!r}; expected one of {', '.join(DUPLICATE_KINDS)}")
