"""Synthetic data in exactly the HAM10000 layout, for tests, demos and tutorials.

* :func:`make_synthetic` writes images, masks, metadata, the ISIC 2018 ground truth and a list
  of planted duplicates (NumPy and Pillow only).
* :func:`plant_copies` plants altered copies of real images, with their ground truth, to
  measure duplicate detection.

Importing this package is cheap: the modules load on first use.

Examples:
    >>> from hamkit.synthetic import make_synthetic  # doctest: +SKIP
    >>> make_synthetic("synthetic-ham", n_lesions=150, random_state=0).n_images  # doctest: +SKIP
    236
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hamkit._lazy import lazy_attributes

__all__ = ["make_synthetic", "SyntheticDataset", "plant_copies"]

_LAZY: dict[str, str] = {
    "make_synthetic": "hamkit.synthetic.generator",
    "SyntheticDataset": "hamkit.synthetic.generator",
    "plant_copies": "hamkit.synthetic.planting",
}

__getattr__, __dir__ = lazy_attributes("hamkit.synthetic", globals(), _LAZY)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from hamkit.synthetic.generator import SyntheticDataset, make_synthetic
    from hamkit.synthetic.planting import plant_copies
