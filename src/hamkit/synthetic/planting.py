"""Plant altered copies of real images, to measure a duplicate detector where it is used.

:func:`plant_copies` writes, next to (a copy of) a collection, altered copies of some of its
images and a ground-truth table, so that recall per kind of copy can be measured on *your* data
(``benchmarks/dedup_real.py`` does this on HAM10000). The kinds, in :data:`PLANT_KINDS`:

=============  ==================================================================  ==========
kind           what is done to the image                                            family
=============  ==================================================================  ==========
``exact``      byte copy                                                            exact
``png``        decoded and saved as PNG (identical pixels)                          exact
``reencoded``  saved again as JPEG, quality 50..85                                  photometric
``resized``    scaled by 0.5, 0.6, 0.75 or 1.5                                      photometric
``brightness`` brightness x0.75..0.9 or x1.1..1.25                                  photometric
``colour``     per-channel gains 0.85..1.15 and saturation x0.7..1.3                photometric
``cropped``    3..12 % cut off each side, kept at that size or scaled back          geometric
``shifted``    content moved by 4..8 % of the side in x and y (mirrored border)     geometric
``rotated``    turned by 3..12 degrees (mirrored border)                            geometric
``flipped``    mirrored left-right or top-bottom                                    geometric
``turned``     turned by 90, 180 or 270 degrees                                     geometric
=============  ==================================================================  ==========
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from hamkit._io import atomic_write_text
from hamkit.errors import DataError

__all__ = ["KIND_FAMILY", "PLANT_KINDS", "PlantedCopy", "alter_image", "plant_copies", "recall_by_family"]

PLANT_KINDS: tuple[str, ...] = (
    "exact",
    "png",
    "reencoded",
    "resized",
    "brightness",
    "colour",
    "cropped",
    "shifted",
    "rotated",
    "flipped",
    "turned",
)
"""Every kind of planted copy, in table order."""

KIND_FAMILY: dict[str, str] = {
    "exact": "exact",
    "png": "exact",
    "reencoded": "photometric",
    "resized": "photometric",
    "brightness": "photometric",
    "colour": "photometric",
    "cropped": "geometric",
    "shifted": "geometric",
    "rotated": "geometric",
    "flipped": "geometric",
    "turned": "geometric",
}
"""The family of each kind: exact copies, re-encoded / resized / recoloured ones, and
cropped / shifted / rotated / flipped / turned ones."""


@dataclass(frozen=True)
class PlantedCopy:
    """One planted copy.

    Attributes:
        path: The copy's file.
        source: The image it was made from.
        kind: One of :data:`PLANT_KINDS`.
    """

    path: Path
    source: Path
    kind: str


def alter_image(image: Image.Image, kind: str, rng: np.random.Generator) -> Image.Image:
    """The altered copy of ``image`` for one kind (``exact`` and ``png`` return it unchanged).

    Args:
        image: An RGB image.
        kind: One of :data:`PLANT_KINDS`.
        rng: Source of the random parameters.

    Returns:
        The altered image (save ``reencoded`` copies at a low JPEG quality yourself, as
        :func:`plant_copies` does).

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> alter_image(Image.new("RGB", (200, 150)), "turned", rng).size
        (150, 200)
    """
    import cv2

    width, height = image.size
    if kind in ("exact", "png", "reencoded"):
        return image
    if kind == "resized":
        scale = float(rng.choice([0.5, 0.6, 0.75, 1.5]))
        return image.resize((round(width * scale), round(height * scale)), Image.Resampling.LANCZOS)
    if kind == "brightness":
        return ImageEnhance.Brightness(image).enhance(float(1 + rng.choice([-1, 1]) * rng.uniform(0.1, 0.25)))
    if kind == "colour":
        gains = np.asarray(image, dtype=np.float32) * rng.uniform(0.85, 1.15, 3)
        tinted = Image.fromarray(np.clip(gains, 0, 255).astype(np.uint8))
        return ImageEnhance.Color(tinted).enhance(float(rng.uniform(0.7, 1.3)))
    if kind == "cropped":
        left, right, top, bottom = (rng.uniform(0.03, 0.12, 4) * [width, width, height, height]).round().astype(int)
        cropped = image.crop((left, top, width - right, height - bottom))
        return cropped.resize((width, height), Image.Resampling.BILINEAR) if rng.random() < 0.5 else cropped
    if kind == "flipped":
        return image.transpose(
            Image.Transpose.FLIP_LEFT_RIGHT if rng.random() < 0.5 else Image.Transpose.FLIP_TOP_BOTTOM
        )
    if kind == "turned":
        turns = (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)
        return image.transpose(turns[int(rng.integers(3))])
    pixels = np.asarray(image)
    matrix: np.ndarray
    if kind == "shifted":
        dx, dy = rng.choice([-1, 1], 2) * np.array([0.08 * width, 0.08 * height]) * rng.uniform(0.5, 1.0, 2)
        matrix = np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float32)
    elif kind == "rotated":
        angle = float(rng.choice([-1, 1]) * rng.uniform(3, 12))
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    else:
        raise DataError(f"unknown kind of planted copy {kind!r}; choose one of {', '.join(PLANT_KINDS)}")
    return Image.fromarray(cv2.warpAffine(pixels, matrix, (width, height), borderMode=cv2.BORDER_REFLECT))


def plant_copies(
    images: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    per_kind: int = 24,
    kinds: Sequence[str] = PLANT_KINDS,
    random_state: int = 0,
    copy_originals: bool = True,
) -> list[PlantedCopy]:
    """Copy ``images`` into ``out_dir`` and add ``per_kind`` altered copies of each kind.

    Each kind draws its sources independently (without replacement within a kind). Copies are
    named ``COPY_<kind>_<n>_<source stem>`` and listed in ``out_dir/planted.csv``
    (``copy,source,kind``).

    Args:
        images: The original image files.
        out_dir: Folder to write (created).
        per_kind: Copies of each kind.
        kinds: The kinds to plant (see :data:`PLANT_KINDS`).
        random_state: Random state of the choice of sources and of the alterations.
        copy_originals: Also copy the originals into ``out_dir`` (set False to plant into a
            separate folder).

    Returns:
        The planted copies.

    Raises:
        DataError: An unknown kind, or more copies per kind than images.
    """
    sources = [Path(p) for p in images]
    unknown = [k for k in kinds if k not in PLANT_KINDS]
    if unknown:
        raise DataError(f"unknown kind of planted copy {unknown[0]!r}; choose from {', '.join(PLANT_KINDS)}")
    if per_kind > len(sources):
        raise DataError(f"per_kind={per_kind} is more than the {len(sources)} image(s) given")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if copy_originals:
        for path in sources:
            shutil.copyfile(path, out / path.name)
    rng = np.random.default_rng(random_state)
    planted: list[PlantedCopy] = []
    for kind in kinds:
        for number, source_index in enumerate(rng.choice(len(sources), per_kind, replace=False).tolist()):
            source = sources[source_index]
            stem = f"COPY_{kind}_{number:03d}_{source.stem}"
            if kind == "exact":
                target = out / f"{stem}{source.suffix}"
                shutil.copyfile(source, target)
            else:
                with Image.open(source) as opened:
                    altered = alter_image(opened.convert("RGB"), kind, rng)
                if kind == "png":
                    target = out / f"{stem}.png"
                    altered.save(target)
                else:
                    target = out / f"{stem}.jpg"
                    altered.save(target, quality=int(rng.integers(50, 86)) if kind == "reencoded" else 90)
            planted.append(PlantedCopy(target, source, kind))
    rows = [["copy", "source", "kind"]] + [[c.path.name, c.source.name, c.kind] for c in planted]
    lines = []
    for row in rows:
        buffer = _csv_line(row)
        lines.append(buffer)
    atomic_write_text(out / "planted.csv", "".join(lines))
    return planted


def recall_by_family(planted: Sequence[PlantedCopy], group_of: Mapping[str, object]) -> dict[str, float]:
    """Share of the planted copies of each family that a detector put in their source's group.

    Args:
        planted: What :func:`plant_copies` returned.
        group_of: ``{file name: group id}`` of every image in a duplicate group (e.g. built from
            ``DedupResult.groups``); images in no group are left out.

    Returns:
        ``{family: recall}`` for the families of :data:`KIND_FAMILY` that were planted.

    Examples:
        >>> copy = PlantedCopy(Path("COPY_png_000_a.png"), Path("a.jpg"), "png")
        >>> recall_by_family([copy], {"COPY_png_000_a.png": 0, "a.jpg": 0})
        {'exact': 1.0}
    """
    found: dict[str, list[bool]] = {}
    for copy in planted:
        group = group_of.get(copy.path.name)
        hit = group is not None and group == group_of.get(copy.source.name)
        found.setdefault(KIND_FAMILY[copy.kind], []).append(hit)
    return {family: float(np.mean(hits)) for family, hits in found.items()}


def _csv_line(row: list[str]) -> str:
    import io

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(row)
    return buffer.getvalue()
