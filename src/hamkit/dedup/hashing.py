"""64-bit perceptual hashes of greyscale image batches, and Hamming distances between them.

Arrays in, arrays out: the caller decodes each image, converts it to greyscale and resizes it to
the size in :data:`HASH_SIZES` (``(H, W)``) before calling :func:`phash` or :func:`dhash`. Both
return one ``uint64`` per image; :func:`hamming` counts differing bits (0..64).

Bit layout: the 8x8 bit matrix is read row by row, its first bit is the most significant bit of
the ``uint64``. :func:`hash_to_hex` therefore gives the same 16-digit hex strings as
``imagededup`` (``np.packbits`` of the bit matrix), and, for the same 32x32 (PHash) or 8x9 (DHash)
greyscale input, the same hash values.

Thresholds (maximum Hamming distance out of 64; the valid range is 0..64): two unrelated images
differ in about 32 bits on average (rarely fewer than ~20), so

* ``0``: identical after resizing (exact copies, lossless re-saves);
* ``<= 4``: the same image re-encoded (JPEG), slightly resized or with a brightness shift
  (the tests of this module check this on synthetic images);
* ``<= 10``: near-duplicates (``imagededup``'s default), with more risk of false matches on
  smooth, low-texture images such as dermoscopy;
* ``> 16``: little evidence of a duplicate.

Examples:
    >>> import numpy as np
    >>> ramp = np.tile(np.arange(9, dtype=np.uint8), (1, 8, 1))  # (1, 8, 9), brighter to the right
    >>> hash_to_hex(dhash(ramp))
    ['ffffffffffffffff']
    >>> int(hamming(dhash(ramp), dhash(ramp[:, :, ::-1]))[0])
    64
"""

from __future__ import annotations

from typing import overload

import numpy as np
import scipy.fft

from hamkit.errors import DataError

__all__ = [
    "HASH_SIZES",
    "HASH_BITS",
    "phash",
    "dhash",
    "hamming",
    "popcount64",
    "hash_to_hex",
    "hex_to_hash",
]

HASH_BITS: int = 64
"""Bits per hash; Hamming distances lie in ``0..HASH_BITS``."""

HASH_SIZES: dict[str, tuple[int, int]] = {"phash": (32, 32), "dhash": (8, 9)}
"""The greyscale ``(H, W)`` each hash expects: resize images to it before hashing."""

_POPCOUNT_TABLE = np.array([bin(value).count("1") for value in range(256)], dtype=np.uint8)


def _check_batch(gray: np.ndarray, name: str) -> np.ndarray:
    """Return ``gray`` as a ``(N, H, W)`` array of the size ``name`` needs, or raise DataError."""
    gray = np.asarray(gray)
    expected = HASH_SIZES[name]
    if gray.ndim != 3 or gray.shape[1:] != expected:
        raise DataError(
            f"{name}: expected a batch of greyscale images of shape (N, {expected[0]}, {expected[1]}), "
            f"got shape {gray.shape}; convert each image to greyscale and resize it to "
            f"HASH_SIZES[{name!r}] = {expected} (H, W) first"
        )
    if not (np.issubdtype(gray.dtype, np.integer) or np.issubdtype(gray.dtype, np.floating)):
        raise DataError(f"{name}: expected integer or float pixels, got dtype {gray.dtype}")
    if np.issubdtype(gray.dtype, np.floating) and not np.isfinite(gray).all():
        bad = int(np.flatnonzero(~np.isfinite(gray).reshape(len(gray), -1).all(axis=1))[0])
        raise DataError(f"{name}: image {bad} of the batch has NaN or infinite pixels")
    return gray


def _pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack ``(N, 64)`` booleans into ``(N,)`` uint64, the first bit being the most significant."""
    packed = np.packbits(bits, axis=1)  # (N, 8) uint8, big-endian bit order
    return np.ascontiguousarray(packed).view(">u8").reshape(-1).astype(np.uint64)


def phash(gray: np.ndarray) -> np.ndarray:
    """DCT perceptual hash of a batch of 32x32 greyscale images.

    The 2-D DCT-II of each image (``scipy.fft.dctn`` over axes 1 and 2, one call for the batch)
    is cut to its top-left 8x8 block of low frequencies; a bit is set where the coefficient is
    ``>=`` the median of the block's 63 AC coefficients. The DC term (the mean brightness) is
    *excluded* from the median, like ``imagededup``'s PHash (``imagehash`` includes it and uses
    ``>``), so the hashes equal ``imagededup``'s for the same greyscale 32x32 input. A change
    of brightness or contrast changes only the DC term and scales the others, so it leaves the
    hash unchanged.

    Args:
        gray: ``(N, 32, 32)`` greyscale images, integer (e.g. ``uint8``) or float pixels.

    Returns:
        ``(N,)`` uint64 hashes.

    Raises:
        DataError: If ``gray`` is not ``(N, 32, 32)`` or holds NaN / infinite values.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> images = rng.integers(0, 256, (2, 32, 32), dtype=np.uint8)
        >>> h = phash(images)
        >>> h.dtype, h.shape
        (dtype('uint64'), (2,))
        >>> int(hamming(h[0], phash(images[:1] * 0.5 + 10)[0]))  # lower contrast, brighter
        0
    """
    gray = _check_batch(gray, "phash")
    if len(gray) == 0:
        return np.zeros(0, dtype=np.uint64)
    coeffs = scipy.fft.dctn(gray.astype(np.float64, copy=False), type=2, axes=(1, 2))
    block = coeffs[:, :8, :8].reshape(len(gray), 64)
    median = np.median(block[:, 1:], axis=1, keepdims=True)
    return _pack_bits(block >= median)


def dhash(gray: np.ndarray) -> np.ndarray:
    """Difference hash of a batch of 8x9 (height x width) greyscale images.

    Bit ``(r, c)`` is set where ``pixel[r, c + 1] > pixel[r, c]`` (the image gets brighter to the
    right), giving 8x8 = 64 bits per image.

    Args:
        gray: ``(N, 8, 9)`` greyscale images, integer or float pixels.

    Returns:
        ``(N,)`` uint64 hashes.

    Raises:
        DataError: If ``gray`` is not ``(N, 8, 9)`` or holds NaN / infinite values.

    Examples:
        >>> ramp = np.tile(np.arange(9), (1, 8, 1))
        >>> hash_to_hex(dhash(ramp)), hash_to_hex(dhash(ramp[:, :, ::-1]))
        (['ffffffffffffffff'], ['0000000000000000'])
    """
    gray = _check_batch(gray, "dhash")
    bits = gray[:, :, 1:] > gray[:, :, :-1]
    return _pack_bits(bits.reshape(len(gray), 64))


def _popcount_table(values: np.ndarray) -> np.ndarray:
    """Bits set in each uint64 via a 256-entry byte lookup table (numpy < 2 fallback)."""
    values = np.ascontiguousarray(values, dtype=np.uint64)
    as_bytes = values.view(np.uint8).reshape(*values.shape, 8)
    return _POPCOUNT_TABLE[as_bytes].sum(axis=-1, dtype=np.uint8)


def popcount64(values: np.ndarray) -> np.ndarray:
    """Number of set bits of each uint64 (``np.bitwise_count`` where numpy has it).

    Args:
        values: uint64 array of any shape.

    Returns:
        uint8 array of the same shape, values in 0..64.

    Examples:
        >>> popcount64(np.array([0, 1, 2**64 - 1], dtype=np.uint64)).tolist()
        [0, 1, 64]
    """
    values = np.asarray(values, dtype=np.uint64)
    bitwise_count = getattr(np, "bitwise_count", None)
    if bitwise_count is None:  # pragma: no cover - numpy < 2.0
        return _popcount_table(values)
    return bitwise_count(values)


def _as_hashes(values: np.ndarray | int | np.integer, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == np.uint64:
        return array
    if array.dtype == np.int64:  # same bits, e.g. read back from a signed column
        return array.view(np.uint64)
    if np.issubdtype(array.dtype, np.integer) and (array.size == 0 or array.min() >= 0):
        return array.astype(np.uint64)
    raise DataError(
        f"{name}: expected uint64 hashes (as phash/dhash return), got dtype {array.dtype}; "
        "convert hex strings with hex_to_hash()"
    )


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Elementwise Hamming distance (popcount of XOR) between uint64 hashes; broadcasts.

    Args:
        a: uint64 hashes (int64 is reinterpreted bit for bit).
        b: uint64 hashes, broadcastable against ``a``.

    Returns:
        uint8 array of the broadcast shape, values in 0..64.

    Raises:
        DataError: If an input is not an integer hash array.

    Examples:
        >>> hamming(np.uint64(0b1011), np.array([0, 1, 0b1011], dtype=np.uint64)).tolist()
        [3, 2, 0]
    """
    return popcount64(np.bitwise_xor(_as_hashes(a, "hamming"), _as_hashes(b, "hamming")))


@overload
def hash_to_hex(hashes: int | np.integer) -> str: ...


@overload
def hash_to_hex(hashes: np.ndarray) -> list[str]: ...


def hash_to_hex(hashes: np.ndarray | int | np.integer) -> str | list[str]:
    """Format hashes as 16-digit lowercase hex strings (``imagededup``'s format).

    Args:
        hashes: one hash (int / numpy scalar) or a 1-D uint64 array.

    Returns:
        One string for a scalar, otherwise a list of strings.

    Raises:
        DataError: If the input is not an integer hash (array) or is more than 1-D.

    Examples:
        >>> hash_to_hex(np.array([1, 2**64 - 1], dtype=np.uint64))
        ['0000000000000001', 'ffffffffffffffff']
    """
    array = _as_hashes(hashes, "hash_to_hex")
    if array.ndim > 1:
        raise DataError(f"hash_to_hex: expected a scalar or a 1-D array, got shape {array.shape}")
    text = np.ascontiguousarray(np.atleast_1d(array).astype(">u8")).tobytes().hex()
    strings = np.frombuffer(text.encode("ascii"), dtype="S16").astype(str).tolist()
    return strings[0] if array.ndim == 0 else strings


def hex_to_hash(strings: str | list[str] | tuple[str, ...] | np.ndarray) -> np.ndarray:
    """Parse 16-digit hex strings (as :func:`hash_to_hex` or ``imagededup`` write) into uint64.

    Args:
        strings: one string or a sequence of strings.

    Returns:
        ``(N,)`` uint64 array (``(1,)`` for a single string).

    Raises:
        DataError: Naming the first string that is not 16 hex digits.

    Examples:
        >>> hex_to_hash(["00000000000000ff", "8000000000000000"]).tolist()
        [255, 9223372036854775808]
    """
    items = [strings] if isinstance(strings, str) else [str(s) for s in strings]
    if not items:
        return np.zeros(0, dtype=np.uint64)
    joined = "".join(items)
    lengths = np.fromiter((len(s) for s in items), dtype=np.int64, count=len(items))
    bad_length = np.flatnonzero(lengths != 16)
    if bad_length.size:
        k = int(bad_length[0])
        raise DataError(f"hex_to_hash: hash {k} ({items[k]!r}) is not 16 hex digits")
    try:
        raw = bytes.fromhex(joined)
    except ValueError:
        raw = b""
    if len(raw) != 8 * len(items):  # a non-hex character, or whitespace that fromhex skips
        k = next(k for k, s in enumerate(items) if not _is_hex(s))
        raise DataError(f"hex_to_hash: hash {k} ({items[k]!r}) is not 16 hex digits")
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64)


def _is_hex(text: str) -> bool:
    try:
        return len(bytes.fromhex(text)) == 8
    except ValueError:
        return False
