"""The HAM10000 release: its layout (:mod:`~hamkit.ham10000.layout`) and
:func:`download_ham10000`, which fetches images, metadata and lesion masks from the official
Harvard Dataverse record (doi:10.7910/DVN/DBW86T), verifying checksums and resuming partial
downloads.

Importing this package is cheap: the downloader loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hamkit._lazy import lazy_attributes
from hamkit.ham10000.layout import (
    DOWNLOAD_FILES,
    GROUNDTRUTH_CSV,
    IMAGE_DIRS,
    MASKS_DIR,
    METADATA_CSV,
    mask_file_name,
)

__all__ = [
    "download_ham10000",
    "DownloadError",
    "layout_summary",
    "HAM10000_FILES",
    "DOWNLOAD_FILES",
    "GROUNDTRUTH_CSV",
    "IMAGE_DIRS",
    "MASKS_DIR",
    "METADATA_CSV",
    "mask_file_name",
]

_LAZY: dict[str, str] = {
    "download_ham10000": "hamkit.ham10000.download",
    "DownloadError": "hamkit.ham10000.download",
    "layout_summary": "hamkit.ham10000.download",
    "HAM10000_FILES": "hamkit.ham10000.download",
}

__getattr__, __dir__ = lazy_attributes("hamkit.ham10000", globals(), _LAZY)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from hamkit.ham10000.download import HAM10000_FILES, DownloadError, download_ham10000, layout_summary
