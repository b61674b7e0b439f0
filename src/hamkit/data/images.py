"""Finding, decoding and checking images and lesion masks.

* :func:`find_images` walks a root recursively (HAM10000 ships ``HAM10000_images_part_1/`` and
  ``_part_2/``) and maps image ids to files.
* :func:`find_masks` pairs images with ``<image_id>_segmentation.png`` files and reports the
  missing and the extra ones by name.
* :func:`open_image` decodes any image Pillow reads into RGB: EXIF orientation applied,
  greyscale / RGBA / CMYK / palette / 16-bit handled, JPEGs decoded at reduced size
  (``draft``) when the target is small, decompression bombs refused; a corrupt, truncated,
  empty or non-image file raises :class:`~hamkit.errors.DataError` naming it.
* :func:`read_mask` reads a mask through its palette (``convert("L")``), because some official
  HAM10000 masks are palette images whose index 0 is white: reading raw indices inverts them.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from hamkit.errors import DataError
from hamkit.ham10000.layout import MASK_SUFFIX

Crop = tuple[float, float, float, float]
"""A region ``(left, top, right, bottom)`` in fractions of an image's width and height."""

__all__ = [
    "Crop",
    "IMAGE_EXTENSIONS",
    "MASK_SUFFIX",
    "MaskMatch",
    "find_images",
    "find_masks",
    "open_image",
    "load_image_array",
    "check_crop",
    "resize_mask",
    "read_mask",
    "image_size_of",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
"""File extensions treated as images (case-insensitive)."""

# a mask of image ``X`` is named ``X_segmentation.png`` (the HAM10000 / ISIC convention)


def _is_image_file(path: Path) -> bool:
    return (
        path.suffix.lower() in IMAGE_EXTENSIONS
        and not path.name.startswith(".")
        and not path.stem.endswith(MASK_SUFFIX)
    )


def walk_files(root: Path) -> Iterator[Path]:
    """Every entry under ``root``, following symlinked folders (each real folder once, so a
    link loop ends), leaving out hidden folders."""
    seen: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        base = Path(folder)
        for name in files:  # dangling links and link loops are listed here too
            yield base / name


def find_images(root: str | os.PathLike[str], *, unusable: list[Path] | None = None) -> dict[str, Path]:
    """Map image ids (file names without extension) to image files under ``root``, recursively.

    Hidden files and masks (``*_segmentation.*``) are left out. Two files with the same id in
    different folders are an error, since ids must name images uniquely.

    Args:
        root: A folder, searched recursively; symlinked folders are followed (common on
            clusters, where an image folder links to shared storage), each real folder once.
        unusable: If given, entries with an image name that are not regular files (dangling
            symlinks, symlink loops, pipes, devices) are appended to it, so that a caller can
            list them as skipped instead of losing them.

    Returns:
        ``{image_id: path}`` sorted by image id.

    Raises:
        DataError: ``root`` is not a folder, or an image id occurs twice.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    found: dict[str, Path] = {}
    for path in sorted(walk_files(root)):
        if not _is_image_file(path):
            continue
        if not path.is_file():
            if unusable is not None and not path.is_dir():
                unusable.append(path)
            continue
        previous = found.setdefault(path.stem, path)
        if previous != path:
            raise DataError(f"image id {path.stem!r} occurs twice: {previous} and {path}; rename or remove one of them")
    return dict(sorted(found.items()))


@dataclass(frozen=True)
class MaskMatch:
    """Result of pairing images with masks.

    Attributes:
        masks: ``{image_id: mask_path}`` for every image that has a mask.
        missing: Image ids without a mask, sorted.
        extra: Mask files whose image id is not among the images, sorted.
    """

    masks: dict[str, Path]
    missing: list[str] = field(default_factory=list)
    extra: list[Path] = field(default_factory=list)

    def describe(self, limit: int = 10, *, extra: bool = True) -> str:
        """A one-paragraph description of what is missing or extra (empty when all pair up).

        ``extra=False`` leaves out the masks without an image (e.g. those of other splits).
        """
        parts = []
        if self.missing:
            shown = ", ".join(self.missing[:limit])
            more = f" and {len(self.missing) - limit} more" if len(self.missing) > limit else ""
            parts.append(f"{len(self.missing)} image(s) have no mask: {shown}{more}")
        if self.extra and extra:
            shown = ", ".join(p.name for p in self.extra[:limit])
            more = f" and {len(self.extra) - limit} more" if len(self.extra) > limit else ""
            parts.append(f"{len(self.extra)} mask(s) have no image: {shown}{more}")
        return "; ".join(parts)


def find_masks(mask_dir: str | os.PathLike[str], image_ids: Iterable[str]) -> MaskMatch:
    """Pair image ids with ``<image_id>_segmentation.png`` masks found under ``mask_dir``.

    Args:
        mask_dir: The masks folder (searched recursively).
        image_ids: The ids of the images that should have masks.

    Returns:
        A :class:`MaskMatch` listing the pairs, the images without mask and the unused masks.

    Raises:
        DataError: ``mask_dir`` is not a folder.
    """
    mask_dir = Path(mask_dir)
    if not mask_dir.is_dir():
        raise DataError(f"{mask_dir}: masks folder not found")
    by_id: dict[str, Path] = {}
    for path in sorted(walk_files(mask_dir)):
        if (
            path.stem.endswith(MASK_SUFFIX)
            and path.suffix.lower() in IMAGE_EXTENSIONS
            and not path.name.startswith(".")
        ):
            by_id.setdefault(path.stem[: -len(MASK_SUFFIX)], path)
    wanted = list(dict.fromkeys(image_ids))
    masks = {i: by_id[i] for i in wanted if i in by_id}
    missing = sorted(i for i in wanted if i not in by_id)
    wanted_set = set(wanted)
    extra = sorted(p for i, p in by_id.items() if i not in wanted_set)
    return MaskMatch(masks=masks, missing=missing, extra=extra)


def _open_checked(path: Path) -> Image.Image:
    """Open an image lazily, turning every Pillow failure into a DataError naming the file."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror or err})") from err
    if size == 0:
        raise DataError(f"{path}: empty file (0 bytes); re-copy or re-download it")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataError(
            f"{path}: refused as a possible decompression bomb ({err}); if the image is genuine, "
            "raise PIL.Image.MAX_IMAGE_PIXELS"
        ) from err
    except UnidentifiedImageError as err:
        raise DataError(f"{path}: not an image file, or a format Pillow cannot read") from err
    except OSError as err:
        raise DataError(f"{path}: cannot be read as an image ({err})") from err


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB (16-bit scaled down, alpha composited on white)."""
    if image.mode == "RGB":
        return image
    if image.mode in {"I;16", "I;16B", "I;16L", "I"}:
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        array = np.clip(array * (255.0 / peak), 0, 255).astype(np.uint8)
        return Image.fromarray(array).convert("RGB")
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def open_image(path: str | os.PathLike[str], size: int | tuple[int, int] | None = None) -> Image.Image:
    """Decode an image file into an RGB Pillow image.

    Args:
        path: The image file.
        size: The size the caller will resize to (an int for a square, or ``(width, height)``).
            For a JPEG, decoding then happens at the smallest of 1/1, 1/2, 1/4, 1/8 scale that is
            still at least this large (Pillow's ``draft``), which is several times faster. The
            returned image is NOT resized to ``size``.

    Returns:
        The decoded image in RGB mode, EXIF orientation applied.

    Raises:
        DataError: The file is missing, empty, not an image, truncated or corrupt, or too large
            (decompression bomb).
    """
    path = Path(path)
    image = _open_checked(path)
    try:
        if size is not None and image.format == "JPEG":
            width, height = (size, size) if isinstance(size, int) else size
            if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated by 90 degrees
                width, height = height, width
            image.draft("RGB", (width, height))
        image.load()  # Pillow closes the file after loading a single-frame image
        return _to_rgb(ImageOps.exif_transpose(image))
    except (OSError, SyntaxError, ValueError) as err:
        image.close()
        raise DataError(f"{path}: truncated or corrupt image ({err})") from err


def image_size_of(path: str | os.PathLike[str]) -> tuple[int, int]:
    """Return ``(width, height)`` of an image as displayed (after EXIF rotation), reading only its header.

    Raises:
        DataError: As :func:`open_image`.
    """
    path = Path(path)
    image = _open_checked(path)
    with image:
        width, height = image.size
        try:
            orientation = image.getexif().get(0x0112, 1)
        except (OSError, SyntaxError, ValueError) as err:  # PNG keeps EXIF after the pixels
            raise DataError(f"{path}: truncated or corrupt image ({err})") from err
        if orientation in (5, 6, 7, 8):
            width, height = height, width
    return width, height


def load_image_array(
    path: str | os.PathLike[str],
    image_size: int,
    crop: Crop | None = None,
) -> np.ndarray:
    """Decode an image and resize it (or a region of it) to a square ``image_size`` x ``image_size`` RGB array.

    JPEGs are decoded at reduced scale first (see :func:`open_image`), never below what the
    region needs.

    Args:
        path: The image file.
        image_size: Side of the square result.
        crop: A region ``(left, top, right, bottom)`` as fractions of the image's width and
            height (see :func:`hamkit.data.crops.lesion_crops`), or ``None`` for the whole image.

    Returns:
        A ``uint8`` array of shape ``(image_size, image_size, 3)``.

    Raises:
        DataError: As :func:`open_image`, or a region outside the image.
    """
    if crop is None:
        image = open_image(path, image_size)
        if image.size != (image_size, image_size):
            image = image.resize((image_size, image_size), Image.Resampling.BILINEAR, reducing_gap=None)
        return np.array(image, dtype=np.uint8)  # writable, as torch.from_numpy expects
    left, top, right, bottom = check_crop(crop, path)
    share = min(right - left, bottom - top)
    image = open_image(path, math.ceil(image_size / share))
    width, height = image.size
    region = (left * width, top * height, right * width, bottom * height)
    image = image.resize((image_size, image_size), Image.Resampling.BILINEAR, box=region, reducing_gap=None)
    return np.array(image, dtype=np.uint8)


def check_crop(crop: Sequence[float], path: str | os.PathLike[str] | None = None) -> Crop:
    """A crop region ``(left, top, right, bottom)`` in fractions of the image, checked.

    Raises:
        DataError: Not four numbers with ``0 <= left < right <= 1`` and ``0 <= top < bottom <= 1``.
    """
    where = f"{path}: " if path is not None else ""
    try:
        left, top, right, bottom = (float(v) for v in crop)
    except (TypeError, ValueError):
        raise DataError(f"{where}a crop region is four numbers (left, top, right, bottom), got {crop!r}") from None
    if not (0.0 <= left < right <= 1.0 and 0.0 <= top < bottom <= 1.0):
        raise DataError(
            f"{where}crop region {crop!r} is not inside the image: "
            "it needs 0 <= left < right <= 1 and 0 <= top < bottom <= 1 (fractions of width and height)"
        )
    return left, top, right, bottom


def resize_mask(binary: np.ndarray, image_size: int, crop: Crop | None = None) -> np.ndarray:
    """A boolean mask (or a region of it) resized by nearest neighbour to ``image_size`` square, as ``uint8`` 0/1."""
    image = Image.fromarray(binary.astype(np.uint8) * 255)
    box = None
    if crop is not None:
        height, width = binary.shape
        box = (crop[0] * width, crop[1] * height, crop[2] * width, crop[3] * height)
    resized = image.resize((image_size, image_size), Image.Resampling.NEAREST, box=box)
    return (np.asarray(resized) > 127).astype(np.uint8)


def read_mask(
    path: str | os.PathLike[str],
    expected_size: tuple[int, int] | None = None,
    threshold: int | None = None,
) -> np.ndarray:
    """Read a lesion mask as a boolean array (``True`` = lesion).

    The mask is read through its palette (``convert("L")``). Without ``threshold`` it must be
    binary: a mask with two grey levels has the higher one as lesion (0/255 and 0/1 masks both
    work); a single-level mask is all lesion when that level is above 127. A mask with more than
    two levels (for instance a JPEG-compressed one) is an error unless ``threshold`` is given, in
    which case lesion = grey value above ``threshold``.

    Args:
        path: The mask file.
        expected_size: ``(width, height)`` of the mask's image; a different size is an error.
        threshold: Grey level (0..255) above which a pixel is lesion, for non-binary masks.

    Returns:
        A ``bool`` array of shape ``(height, width)``.

    Raises:
        DataError: The file cannot be read, its size differs from ``expected_size``, or it is not
            binary and no threshold was given.
    """
    path = Path(path)
    image = _open_checked(path)
    try:
        with image:
            image = ImageOps.exif_transpose(image)
            if expected_size is not None and image.size != tuple(expected_size):
                raise DataError(
                    f"{path}: mask is {image.size[0]}x{image.size[1]} but its image is "
                    f"{expected_size[0]}x{expected_size[1]}; masks must have their image's size"
                )
            gray = np.asarray(image.convert("L"))
    except (OSError, SyntaxError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{path}: truncated or corrupt mask ({err})") from err
    if threshold is not None:
        if not 0 <= threshold <= 255:
            raise DataError(f"mask threshold must be within 0..255, got {threshold}")
        return gray > threshold
    levels = np.unique(gray)
    if len(levels) > 2:
        raise DataError(
            f"{path}: mask is not binary ({len(levels)} grey levels, e.g. "
            f"{', '.join(map(str, levels[:5]))}); pass a threshold (e.g. 127) to binarise it"
        )
    if len(levels) == 2:
        return gray == levels[1]
    return np.full(gray.shape, bool(levels[0] > 127))
