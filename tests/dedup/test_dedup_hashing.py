"""Tests of hamkit.dedup.hashing: hand-computed hashes, an independent per-image reference,
robustness to re-encoding / resizing / brightness on synthetic lesion-like images."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.fft
from PIL import Image
from scipy.ndimage import gaussian_filter

from hamkit.dedup import hashing
from hamkit.dedup.hashing import (
    HASH_SIZES,
    dhash,
    hamming,
    hash_to_hex,
    hex_to_hash,
    phash,
    popcount64,
)
from hamkit.errors import DataError


def lesion_image(random_state: int, size: int = 256) -> Image.Image:
    """A smooth coloured skin-like background with a dark textured elliptic 'lesion'."""
    rng = np.random.default_rng(random_state)
    base = np.stack([gaussian_filter(rng.standard_normal((size, size)), 24) for _ in range(3)], -1)
    base = (base - base.min()) / np.ptp(base) * 120 + 100
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.uniform(0.35, 0.65, 2) * size
    ry, rx = rng.uniform(0.15, 0.3, 2) * size
    lesion = np.clip(1.2 - ((yy - cy) / ry) ** 2 - ((xx - cx) / rx) ** 2, 0, 1)[..., None]
    texture = gaussian_filter(rng.standard_normal((size, size)), 3)[..., None] * 25
    grain = gaussian_filter(rng.standard_normal((size, size)), 1)[..., None] * 4
    pixels = base * (1 - 0.6 * lesion) + texture * lesion + grain
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def to_gray(image: Image.Image, kind: str) -> np.ndarray:
    height, width = HASH_SIZES[kind]
    return np.asarray(image.convert("L").resize((width, height), Image.Resampling.LANCZOS))


def reencode_jpeg(image: Image.Image, quality: int = 70) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def reference_phash(gray: np.ndarray) -> int:
    """Straightforward one-image pHash: 1-D DCTs per axis, median of the 63 AC terms, >=."""
    coeffs = scipy.fft.dct(scipy.fft.dct(gray.astype(np.float64), axis=0), axis=1)[:8, :8]
    flat = coeffs.flatten()
    median = np.median(flat[1:])
    value = 0
    for bit in flat >= median:  # first coefficient -> most significant bit
        value = (value << 1) | int(bit)
    return value


# ------------------------------------------------------------------ dhash


def test_dhash_of_gradients_is_all_ones_or_all_zeros() -> None:
    ramp = np.tile(np.arange(9, dtype=np.uint8) * 20, (8, 1))
    hashes = dhash(np.stack([ramp, ramp[:, ::-1], np.full((8, 9), 7)]))
    assert hash_to_hex(hashes) == ["ffffffffffffffff", "0000000000000000", "0000000000000000"]


def test_dhash_bit_layout_row_major_msb_first() -> None:
    image = np.zeros((1, 8, 9), dtype=np.uint8)
    image[0, :, :] = [0, 1, 0, 1, 0, 1, 0, 1, 0]  # rising, falling, ... -> bits 10101010 per row
    assert hash_to_hex(dhash(image)) == ["aaaaaaaaaaaaaaaa"]
    image = np.zeros((1, 8, 9), dtype=np.float32)
    image[0, 0, 1] = 1.0  # only bit (0, 0) set: the most significant bit
    image[0, 7, 8] = 1.0  # and bit (7, 7): the least significant one
    assert int(dhash(image)[0]) == (1 << 63) | 1


# ------------------------------------------------------------------ phash


def test_phash_matches_independent_per_image_reference() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 32, 32), dtype=np.uint8)
    smooth = np.stack([gaussian_filter(rng.standard_normal((32, 32)), 2) for _ in range(6)]) * 50
    for batch in (images, smooth):
        expected = np.array([reference_phash(g) for g in batch], dtype=np.uint64)
        np.testing.assert_array_equal(phash(batch), expected)


def test_phash_identical_is_zero_and_negative_flips_all_but_median_bit() -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 32, 32)).astype(np.uint8)
    assert hamming(phash(images), phash(images.copy())).tolist() == [0] * 5
    # negating the image negates every AC coefficient: each AC bit flips except the median
    # coefficient (equal to the median on both sides); the DC bit stays set on both
    assert hamming(phash(images), phash(255 - images)).tolist() == [62] * 5


def test_phash_ignores_brightness_and_contrast_changes() -> None:
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (4, 32, 32)).astype(np.float64)
    assert hamming(phash(images), phash(images * 0.5 + 40.0)).tolist() == [0] * 4


def test_phash_uint8_and_float_inputs_agree_and_empty_batch() -> None:
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (3, 32, 32), dtype=np.uint8)
    np.testing.assert_array_equal(phash(images), phash(images.astype(np.float32)))
    assert phash(np.zeros((0, 32, 32))).shape == (0,)
    assert dhash(np.zeros((0, 8, 9))).dtype == np.uint64


@pytest.mark.parametrize("kind", ["phash", "dhash"])
def test_hashes_survive_jpeg_resize_and_brightness_but_separate_unrelated(kind: str) -> None:
    hash_fn = phash if kind == "phash" else dhash
    near, far = [], []
    for random_state in range(8):
        image = lesion_image(random_state)
        original = hash_fn(to_gray(image, kind)[None])
        variants = [
            reencode_jpeg(image, 70),
            image.resize((224, 224), Image.Resampling.BILINEAR),
            Image.fromarray(np.clip(np.asarray(image).astype(int) + 25, 0, 255).astype(np.uint8)),
        ]
        near += hamming(original, hash_fn(np.stack([to_gray(v, kind) for v in variants]))).tolist()
        other = hash_fn(to_gray(lesion_image(random_state + 100), kind)[None])
        far.append(int(hamming(original, other)[0]))
    assert max(near) <= 4, near
    assert min(far) >= 16, far


@pytest.mark.parametrize(("func", "shape"), [(phash, (2, 32, 31)), (phash, (32, 32)), (dhash, (2, 9, 8))])
def test_wrong_shape_names_expected_size(func, shape) -> None:
    with pytest.raises(DataError, match=r"resize"):
        func(np.zeros(shape))


def test_nan_pixels_are_rejected_naming_the_image() -> None:
    images = np.zeros((3, 32, 32))
    images[2, 5, 5] = np.nan
    with pytest.raises(DataError, match="image 2"):
        phash(images)
    with pytest.raises(DataError, match="dtype"):
        dhash(np.zeros((1, 8, 9), dtype=bool).astype(object))


# ------------------------------------------------------------------ hamming and hex


def test_popcount_fallback_table_agrees_with_numpy() -> None:
    rng = np.random.default_rng(4)
    values = rng.integers(0, 2**63, (50, 3), dtype=np.int64).view(np.uint64) * np.uint64(2) + np.uint64(1)
    expected = np.array([[bin(int(v)).count("1") for v in row] for row in values])
    np.testing.assert_array_equal(popcount64(values), expected)
    np.testing.assert_array_equal(hashing._popcount_table(values), expected)


def test_hamming_broadcasts_and_accepts_int64() -> None:
    a = np.array([0, 2**64 - 1], dtype=np.uint64)
    b = np.array([[0], [1]], dtype=np.uint64)
    assert hamming(a, b).tolist() == [[0, 64], [1, 63]]
    assert hamming(np.array([-1], dtype=np.int64), np.uint64(0)).tolist() == [64]
    with pytest.raises(DataError, match="uint64"):
        hamming(np.array([0.5]), a[:1])


def test_hex_round_trip_and_errors() -> None:
    rng = np.random.default_rng(5)
    hashes = rng.integers(0, 2**63, 20, dtype=np.int64).view(np.uint64) << np.uint64(1)
    text = hash_to_hex(hashes)
    assert all(len(t) == 16 and t == t.lower() for t in text)
    assert text[0] == format(int(hashes[0]), "016x")
    np.testing.assert_array_equal(hex_to_hash(text), hashes)
    assert hash_to_hex(np.uint64(255)) == "00000000000000ff"
    assert hex_to_hash("ffffffffffffffff").tolist() == [2**64 - 1]
    assert hex_to_hash([]).shape == (0,)
    with pytest.raises(DataError, match="hash 1"):
        hex_to_hash(["0" * 16, "abc"])
    with pytest.raises(DataError, match="hash 0"):
        hex_to_hash(["zz" + "0" * 14])
    with pytest.raises(DataError, match="hash 1"):
        hex_to_hash(["0" * 16, "00 000000000000a"])  # fromhex would skip the space
