"""The data layer: label readers (HAM10000, any labels CSV, and the downloaded data sets of
:func:`~hamkit.data.readers.read_dataset`), image and mask discovery, the torch dataset, the decode
cache, training augmentation, leakage-free splits and folds, and dataset plots.

The public names are re-exported here and load on first use, so ``import hamkit.data`` imports
nothing heavy (no torch until ``SkinDataset`` or ``DecodeCache`` is used).

Examples:
    >>> from hamkit.data import split_dataset, read_metadata, SkinDataset  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hamkit._lazy import lazy_attributes

_LAZY: dict[str, str] = {
    "ImageRecord": "hamkit.data.metadata",
    "read_metadata": "hamkit.data.metadata",
    "read_isic_groundtruth": "hamkit.data.metadata",
    "read_labels": "hamkit.data.metadata",
    "read_label_table": "hamkit.data.metadata",
    "read_dataset": "hamkit.data.readers",
    "find_images": "hamkit.data.images",
    "find_masks": "hamkit.data.images",
    "open_image": "hamkit.data.images",
    "read_mask": "hamkit.data.images",
    "SkinDataset": "hamkit.data.dataset",
    "DecodeCache": "hamkit.data.cache",
    "build_augmentation": "hamkit.data.augment",
    "AUGMENTATIONS": "hamkit.data.augment",
    "Split": "hamkit.data.splits",
    "split_dataset": "hamkit.data.splits",
    "read_split_csv": "hamkit.data.splits",
    "read_audit_sets": "hamkit.data.splits",
    "merge_groups": "hamkit.data.splits",
    "plot_class_balance": "hamkit.data.plots",
}
__all__ = [
    "AUGMENTATIONS",
    "DecodeCache",
    "ImageRecord",
    "SkinDataset",
    "Split",
    "build_augmentation",
    "find_images",
    "find_masks",
    "merge_groups",
    "open_image",
    "plot_class_balance",
    "read_isic_groundtruth",
    "read_dataset",
    "read_label_table",
    "read_labels",
    "read_mask",
    "read_metadata",
    "read_split_csv",
    "read_audit_sets",
    "split_dataset",
]
__getattr__, __dir__ = lazy_attributes("hamkit.data", globals(), _LAZY)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from hamkit.data.augment import AUGMENTATIONS, build_augmentation
    from hamkit.data.cache import DecodeCache
    from hamkit.data.dataset import SkinDataset
    from hamkit.data.images import find_images, find_masks, open_image, read_mask
    from hamkit.data.metadata import ImageRecord, read_isic_groundtruth, read_label_table, read_labels, read_metadata
    from hamkit.data.plots import plot_class_balance
    from hamkit.data.readers import read_dataset
    from hamkit.data.splits import Split, merge_groups, read_audit_sets, read_split_csv, split_dataset
