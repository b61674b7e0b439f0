"""A small synthetic dataset in exactly the HAM10000 layout, for tests, demos and tutorials.

:func:`make_synthetic` draws lesions whose colour, shape and texture depend on their diagnosis,
photographs each one 1..3 times (shifted, rotated, zoomed, lit differently), and plants altered
copies of some photos under new image and lesion ids (the leakage a deduplicator must find).
Everything every hamkit reader expects is there: the two image folders, the lesion masks (a few
of them palette PNGs, like some official ones), the metadata CSV, the ISIC 2018 Task 3
ground-truth CSV, and ``duplicates_groundtruth.csv`` listing the planted duplicates. Only numpy
and Pillow are used; the same random state gives byte-identical files.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hamkit._io import atomic_write_bytes, atomic_write_text
from hamkit.classes import CLASS_CODES, ISIC_COLUMNS
from hamkit.errors import DataError
from hamkit.ham10000.layout import GROUNDTRUTH_CSV, IMAGE_DIRS, MASKS_DIR, METADATA_CSV, METADATA_HEADER, mask_file_name
from hamkit.synthetic._duplicates import DUPLICATE_KINDS, encode_jpeg, encode_mask, make_duplicate
from hamkit.synthetic._lesions import sample_lesion
from hamkit.synthetic._records import (
    HAM10000_DX_ORDER,
    Patient,
    lesion_counts,
    photo_counts,
    sample_patients,
    unique_ids,
)
from hamkit.synthetic._render import render, sample_view

__all__ = [
    "SyntheticDataset",
    "make_synthetic",
    "IMAGE_DIRS",
    "MASKS_DIR",
    "METADATA_CSV",
    "GROUNDTRUTH_CSV",
    "DUPLICATES_CSV",
    "METADATA_HEADER",
    "DUPLICATES_HEADER",
]

DUPLICATES_CSV: str = "duplicates_groundtruth.csv"
DUPLICATES_HEADER: tuple[str, ...] = ("image_id", "duplicate_of", "kind")

_OUTPUTS: tuple[str, ...] = (*IMAGE_DIRS, MASKS_DIR, METADATA_CSV, GROUNDTRUTH_CSV, DUPLICATES_CSV)
_FIRST_IMAGE_NUMBER = 24306  # ISIC_0024306, the first HAM10000 image
_PALETTE_STYLES = ("official", "binary", "official")
_MIN_SIZE = 32


@dataclass(frozen=True)
class SyntheticDataset:
    """Where :func:`make_synthetic` wrote a dataset, and what is in it.

    Attributes:
        root: The dataset folder.
        image_dirs: The two image folders (``HAM10000_images_part_1`` and ``_part_2``).
        masks_dir: The mask folder (``HAM10000_segmentations_lesion_tschandl``).
        metadata_csv: ``HAM10000_metadata.csv``.
        groundtruth_csv: ``ISIC2018_Task3_Training_GroundTruth.csv``.
        duplicates_csv: ``duplicates_groundtruth.csv`` (``image_id,duplicate_of,kind``).
        n_images: Images written, planted duplicates included.
        n_lesions: Real lesions drawn. Each planted duplicate poses as one more lesion in the
            metadata, which therefore lists ``n_lesions + n_duplicates`` lesion ids.
        class_counts: Images per ``dx`` code (planted duplicates included), in class order.
        n_duplicates: Planted duplicates.
        duplicate_kinds: Planted duplicates per kind.

    Examples:
        >>> import tempfile
        >>> ds = make_synthetic(tempfile.mkdtemp(), n_lesions=7, random_state=0, image_size=(64, 48))
        >>> ds.n_lesions, sum(ds.class_counts.values()) == ds.n_images
        (7, True)
    """

    root: Path
    image_dirs: tuple[Path, Path]
    masks_dir: Path
    metadata_csv: Path
    groundtruth_csv: Path
    duplicates_csv: Path
    n_images: int
    n_lesions: int
    class_counts: dict[str, int]
    n_duplicates: int
    duplicate_kinds: dict[str, int]

    def summary(self) -> str:
        """A short human-readable description of the dataset (what ``hamkit synth`` prints).

        Returns:
            Several lines of text, without a trailing newline.
        """
        classes = ", ".join(f"{dx} {n}" for dx, n in self.class_counts.items())
        kinds = ", ".join(f"{k} {n}" for k, n in self.duplicate_kinds.items() if n)
        return "\n".join(
            [
                f"synthetic HAM10000-style dataset in {self.root}",
                f"  images:     {self.n_images} in {self.image_dirs[0].name}/ and {self.image_dirs[1].name}/",
                f"  lesions:    {self.n_lesions} (+{self.n_duplicates} planted duplicates posing as new lesions)",
                f"  per class:  {classes}",
                f"  duplicates: {self.n_duplicates}"
                + (f" ({kinds})" if kinds else "")
                + f", listed in {self.duplicates_csv.name}",
                f"  masks:      {self.masks_dir.name}/",
                f"  metadata:   {self.metadata_csv.name}, {self.groundtruth_csv.name}",
            ]
        )


def _check_arguments(
    n_lesions: int,
    image_size: Sequence[int],
    photos_per_lesion: Sequence[int],
    duplicate_fraction: float,
) -> tuple[tuple[int, int], tuple[int, int]]:
    if isinstance(n_lesions, bool) or not isinstance(n_lesions, (int, np.integer)):
        raise DataError(f"n_lesions must be an integer, got {n_lesions!r}")
    if not len(CLASS_CODES) <= n_lesions <= 1_000_000:
        raise DataError(
            f"n_lesions={n_lesions}: need at least {len(CLASS_CODES)} (one lesion per class) and at most 1000000"
        )
    try:
        width, height = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise DataError(f"image_size must be (width, height), got {image_size!r}") from None
    if width < _MIN_SIZE or height < _MIN_SIZE:
        raise DataError(f"image_size={width}x{height}: width and height must be at least {_MIN_SIZE} pixels")
    try:
        low, high = (int(v) for v in photos_per_lesion)
    except (TypeError, ValueError):
        raise DataError(f"photos_per_lesion must be (min, max), got {photos_per_lesion!r}") from None
    if not 1 <= low <= high <= 20:
        raise DataError(f"photos_per_lesion=({low}, {high}): need 1 <= min <= max <= 20 photos of each lesion")
    if not 0.0 <= float(duplicate_fraction) <= 0.5:
        raise DataError(
            f"duplicate_fraction={duplicate_fraction}: must lie between 0 and 0.5 "
            "(the share of images that get a planted duplicate)"
        )
    return (width, height), (low, high)


def _prepare_root(root: Path, overwrite: bool) -> None:
    """Make ``root`` ready: refuse a non-empty folder unless ``overwrite``, then clear outputs."""
    if root.exists() and not root.is_dir():
        raise DataError(f"{root}: exists and is not a folder; choose another output folder")
    if root.is_dir() and any(root.iterdir()):
        if not overwrite:
            raise DataError(
                f"{root}: folder is not empty; choose an empty or new folder, or pass "
                "overwrite=True (hamkit synth --overwrite) to replace a dataset there"
            )
        for name in _OUTPUTS:  # only what make_synthetic writes; other files stay
            path = root / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
    root.mkdir(parents=True, exist_ok=True)
    for name in (*IMAGE_DIRS, MASKS_DIR):
        (root / name).mkdir()


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


@dataclass(frozen=True)
class _Image:
    image_id: str
    lesion_id: str
    patient: Patient


def make_synthetic(
    root: str | os.PathLike[str],
    n_lesions: int = 150,
    random_state: int = 0,
    image_size: tuple[int, int] = (256, 192),
    photos_per_lesion: tuple[int, int] = (1, 3),
    duplicate_fraction: float = 0.08,
    overwrite: bool = False,
) -> SyntheticDataset:
    """Write a synthetic skin-lesion dataset in exactly the HAM10000 layout.

    Lesions per class follow HAM10000's shares (nv most, df fewest) with at least 4 lesions per
    class where ``n_lesions`` allows. Each lesion gets ``photos_per_lesion`` photos (fewer more
    likely); the first half of the images (by id) goes to ``HAM10000_images_part_1``, the rest
    to ``_part_2``; every image has a mask of its size (0 skin, 255 lesion; up to three are
    palette PNGs that must be read with ``convert("L")``). ``duplicate_fraction`` of the images
    get an altered copy under a new image id and a new lesion id (same ``dx``), of the kinds
    ``exact``, ``reencoded``, ``resized``, ``cropped`` and ``brightness``, listed in
    ``duplicates_groundtruth.csv``. The default size takes a few seconds.

    Args:
        root: Output folder; created if missing, and it must be empty unless ``overwrite``.
        n_lesions: Number of real lesions, at least 7.
        random_state: Random state; the same random state and arguments give byte-identical files.
        image_size: ``(width, height)`` of the photos, each at least 32.
        photos_per_lesion: ``(min, max)`` photos of each lesion.
        duplicate_fraction: Share of the photos that get a planted duplicate, 0..0.5.
        overwrite: Write into a non-empty folder, first deleting the dataset files and folders
            this function writes (other files there are left alone).

    Returns:
        Where the files are and what they hold.

    Raises:
        DataError: A bad argument, or ``root`` is a non-empty folder and ``overwrite`` is False,
            or ``root`` is a file.

    Examples:
        >>> import tempfile
        >>> ds = make_synthetic(tempfile.mkdtemp(), n_lesions=20, random_state=1, image_size=(64, 48))
        >>> ds.metadata_csv.read_text().splitlines()[0]
        'lesion_id,image_id,dx,dx_type,age,sex,localization'
    """
    size, (low, high) = _check_arguments(n_lesions, image_size, photos_per_lesion, duplicate_fraction)
    root = Path(root)
    _prepare_root(root, overwrite)

    streams = np.random.SeedSequence(int(random_state)).spawn(n_lesions + 2)
    rng = np.random.default_rng(streams[0])
    dup_rng = np.random.default_rng(streams[1])

    counts = lesion_counts(n_lesions)
    dxs = [str(dx) for dx in rng.permutation(np.repeat(CLASS_CODES, list(counts.values())))]
    photos = photo_counts(rng, n_lesions, low, high)
    patients = sample_patients(rng, dxs)
    n_photos = int(photos.sum())
    n_dups = int(round(duplicate_fraction * n_photos))
    image_ids = unique_ids(rng, n_photos + n_dups, "ISIC_", _FIRST_IMAGE_NUMBER, 10015)
    lesion_ids = unique_ids(rng, n_lesions + n_dups, "HAM_", 0, 7470)
    owners = np.repeat(np.arange(n_lesions), photos)
    sources = rng.choice(n_photos, size=n_dups, replace=False)
    kinds = [DUPLICATE_KINDS[k] for k in rng.permutation(np.arange(n_dups) % len(DUPLICATE_KINDS))]
    unplanted = np.setdiff1d(np.arange(n_photos), sources)  # a palette mask is never copied
    chosen = rng.choice(unplanted, size=min(len(_PALETTE_STYLES), unplanted.size), replace=False)
    palette_at = dict(zip(chosen.tolist(), _PALETTE_STYLES, strict=False))

    ordered = sorted(image_ids)
    folder = {image_id: root / IMAGE_DIRS[int(i >= len(ordered) // 2)] for i, image_id in enumerate(ordered)}
    masks_dir = root / MASKS_DIR

    def write(image_id: str, jpeg: bytes, mask_png: bytes) -> None:
        atomic_write_bytes(folder[image_id] / f"{image_id}.jpg", jpeg)
        atomic_write_bytes(masks_dir / mask_file_name(image_id), mask_png)

    kept: dict[int, tuple[bytes, np.ndarray, bytes]] = {}
    wanted = set(sources.tolist())
    index = 0
    for lesion_index, dx in enumerate(dxs):
        lesion_rng = np.random.default_rng(streams[2 + lesion_index])
        lesion = sample_lesion(lesion_rng, dx)
        for shot in range(int(photos[lesion_index])):
            pixels, mask = render(lesion, sample_view(lesion_rng, lesion, shot == 0), size, lesion_rng)
            jpeg, mask_png = encode_jpeg(pixels), encode_mask(mask, palette_at.get(index))
            write(image_ids[index], jpeg, mask_png)
            if index in wanted:
                kept[index] = (jpeg, mask, mask_png)
            index += 1

    images = [_Image(image_ids[i], lesion_ids[int(owners[i])], patients[int(owners[i])]) for i in range(n_photos)]
    duplicate_rows = []
    for j, (source, kind) in enumerate(zip(sources.tolist(), kinds, strict=True)):
        jpeg, mask_png = make_duplicate(kind, *kept[source], dup_rng)
        image_id = image_ids[n_photos + j]
        write(image_id, jpeg, mask_png)
        images.append(_Image(image_id, lesion_ids[n_lesions + j], images[source].patient))
        duplicate_rows.append((image_id, image_ids[source], kind))

    _write_tables(root, images, sorted(duplicate_rows), rng)
    per_class = Counter(image.patient.dx for image in images)
    return SyntheticDataset(
        root=root,
        image_dirs=(root / IMAGE_DIRS[0], root / IMAGE_DIRS[1]),
        masks_dir=masks_dir,
        metadata_csv=root / METADATA_CSV,
        groundtruth_csv=root / GROUNDTRUTH_CSV,
        duplicates_csv=root / DUPLICATES_CSV,
        n_images=len(images),
        n_lesions=n_lesions,
        class_counts={dx: per_class[dx] for dx in CLASS_CODES},
        n_duplicates=n_dups,
        duplicate_kinds={kind: kinds.count(kind) for kind in DUPLICATE_KINDS},
    )


def _write_tables(
    root: Path,
    images: list[_Image],
    duplicate_rows: list[tuple[str, str, str]],
    rng: np.random.Generator,
) -> None:
    """Write the metadata, ground-truth and duplicates CSVs (atomically)."""
    lesions = sorted({image.lesion_id for image in images})
    lesion_order = dict(zip(lesions, rng.permutation(len(lesions)).tolist(), strict=True))
    rank = {dx: i for i, dx in enumerate(HAM10000_DX_ORDER)}
    metadata = sorted(images, key=lambda im: (rank[im.patient.dx], lesion_order[im.lesion_id], im.image_id))
    atomic_write_text(
        root / METADATA_CSV,
        _csv_text(
            METADATA_HEADER,
            [
                (
                    im.lesion_id,
                    im.image_id,
                    im.patient.dx,
                    im.patient.dx_type,
                    im.patient.age,
                    im.patient.sex,
                    im.patient.localization,
                )
                for im in metadata
            ],
        ),
    )
    truth = [
        (im.image_id, *("1.0" if im.patient.dx == code.lower() else "0.0" for code in ISIC_COLUMNS))
        for im in sorted(images, key=lambda im: im.image_id)
    ]
    atomic_write_text(root / GROUNDTRUTH_CSV, _csv_text(("image", *ISIC_COLUMNS), truth))
    atomic_write_text(root / DUPLICATES_CSV, _csv_text(DUPLICATES_HEADER, duplicate_rows))
