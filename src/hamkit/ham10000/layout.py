"""The names of the HAM10000 release, in one place: its folders, files and metadata columns.

Everything that reads or writes the official layout (the readers of :mod:`hamkit.data`, the
synthetic generator, the downloader, ``hamkit run``) takes the names from here::

    ROOT/HAM10000_images_part_1/ISIC_0024306.jpg ...
    ROOT/HAM10000_images_part_2/...
    ROOT/HAM10000_metadata.csv           lesion_id,image_id,dx,dx_type,age,sex,localization
    ROOT/HAM10000_segmentations_lesion_tschandl/ISIC_0024306_segmentation.png ...

This module imports nothing.
"""

from __future__ import annotations

__all__ = [
    "IMAGE_DIRS",
    "MASKS_DIR",
    "MASK_SUFFIX",
    "METADATA_CSV",
    "METADATA_TAB",
    "GROUNDTRUTH_CSV",
    "LABEL_FILE_NAMES",
    "METADATA_HEADER",
    "DOWNLOAD_FILES",
    "mask_file_name",
]

IMAGE_DIRS: tuple[str, str] = ("HAM10000_images_part_1", "HAM10000_images_part_2")
"""The two image folders; the first holds the first half of the images by id."""
MASKS_DIR: str = "HAM10000_segmentations_lesion_tschandl"
"""The lesion-mask folder (Tschandl et al. 2020)."""
MASK_SUFFIX: str = "_segmentation"
"""The mask of image ``X`` is ``X_segmentation.png`` (the ISIC naming)."""
METADATA_CSV: str = "HAM10000_metadata.csv"
METADATA_TAB: str = "HAM10000_metadata.tab"
"""The metadata as Dataverse serves an ingested CSV (tab-separated)."""
GROUNDTRUTH_CSV: str = "ISIC2018_Task3_Training_GroundTruth.csv"
"""The ISIC 2018 Task 3 training ground truth (one-hot columns), the same images' labels."""
LABEL_FILE_NAMES: tuple[str, ...] = (METADATA_CSV, METADATA_TAB, "HAM10000_metadata", GROUNDTRUTH_CSV)
"""Label files looked for under a data root, in this order."""
METADATA_HEADER: tuple[str, ...] = ("lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization")
"""The metadata columns, in the release's order."""
DOWNLOAD_FILES: tuple[str, ...] = (
    f"{IMAGE_DIRS[0]}.zip",
    f"{IMAGE_DIRS[1]}.zip",
    METADATA_CSV,
    f"{MASKS_DIR}.zip",
)
"""The files of the Dataverse record that make up the layout above."""


def mask_file_name(image_id: str) -> str:
    """The mask file of an image, e.g. ``ISIC_0024306_segmentation.png``."""
    return f"{image_id}{MASK_SUFFIX}.png"
