"""Ready-made datasets.

* :func:`make_synthetic` writes a small synthetic dataset in exactly the HAM10000 layout (images,
  masks, metadata, ISIC 2018 ground truth, and a list of planted duplicates), for tests, demos and
  tutorials. It needs only numpy and Pillow.
* :func:`download_ham10000` fetches HAM10000 (images, metadata, lesion masks) from its official
  Harvard Dataverse record, verifying checksums and resuming partial downloads.

Importing this package is cheap: the modules load on first use.

Examples:
    >>> from hamkit.datasets import make_synthetic  # doctest: +SKIP
    >>> make_synthetic("synthetic-ham", n_lesions=150, seed=0).n_images  # doctest: +SKIP
    236
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hamkit._lazy import lazy_attributes

__all__ = [
    "make_synthetic",
    "SyntheticDataset",
    "download_ham10000",
    "DownloadError",
    "layout_summary",
    "HAM10000_FILES",
    "plant_copies",
]

_LAZY: dict[str, str] = {
    "make_synthetic": "hamkit.datasets.synthetic",
    "SyntheticDataset": "hamkit.datasets.synthetic",
    "download_ham10000": "hamkit.datasets.download",
    "DownloadError": "hamkit.datasets.download",
    "layout_summary": "hamkit.datasets.download",
    "HAM10000_FILES": "hamkit.datasets.download",
    "plant_copies": "hamkit.datasets.planting",
}


__getattr__, __dir__ = lazy_attributes("hamkit.datasets", globals(), _LAZY)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from hamkit.datasets.download import HAM10000_FILES, DownloadError, download_ham10000, layout_summary
    from hamkit.datasets.planting import plant_copies
    from hamkit.datasets.synthetic import SyntheticDataset, make_synthetic
