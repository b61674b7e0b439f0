"""Predicted masks: the prediction type, PNG mask files, and resizing back to original image sizes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from hamkit._io import atomic_path
from hamkit.data.dataset import SkinDataset
from hamkit.data.images import image_size_of, read_mask
from hamkit.errors import DataError

__all__ = ["SegmentationPrediction", "save_mask", "OriginalSizeMasks", "resize_to_sizes"]


@dataclass
class SegmentationPrediction:
    """What :meth:`LesionSegmenter.segment` returns: masks and class probabilities from one pass.

    Attributes:
        image_ids: One id per image (file stem, or the position as text).
        masks: Boolean lesion masks, each at its image's original size ``(H, W)``.
        probabilities: Lesion probability maps (float32, same sizes), or ``None`` when not asked.
        class_proba: Class probabilities ``(N, num_classes)``, or ``None`` without a head.
        classes: The class names of ``class_proba``'s columns.
    """

    image_ids: list[str]
    masks: list[np.ndarray]
    probabilities: list[np.ndarray] | None
    class_proba: np.ndarray | None
    classes: list[str]

    @property
    def class_predictions(self) -> np.ndarray | None:
        """The predicted class index per image (argmax of ``class_proba``), or ``None``."""
        return None if self.class_proba is None else self.class_proba.argmax(1)


def save_mask(mask: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write a boolean mask as an 8-bit PNG, 0 = skin and 255 = lesion (atomically).

    Args:
        mask: A ``(H, W)`` mask (non-zero = lesion).
        path: The PNG to write.

    Returns:
        The written path.

    Raises:
        DataError: ``mask`` is not 2-D.

    Examples:
        >>> import tempfile
        >>> p = save_mask(np.eye(3, dtype=bool), Path(tempfile.mkdtemp()) / "x_segmentation.png")
        >>> from PIL import Image; np.asarray(Image.open(p)).max()
        np.uint8(255)
    """
    from PIL import Image

    array = np.asarray(mask)
    if array.ndim != 2:
        raise DataError(f"{path}: a mask must be a 2-D (H, W) array, got shape {array.shape}")
    target = Path(path)
    with atomic_path(target) as tmp:
        Image.fromarray(array.astype(bool).astype(np.uint8) * 255, mode="L").save(tmp, format="PNG")
    return target


class OriginalSizeMasks(Dataset):
    """A mask-less SkinDataset's items plus each image's ground-truth mask at its original size.

    :meth:`LesionSegmenter.evaluate <hamkit.segment.LesionSegmenter.evaluate>` scores predictions
    against these (the ISIC protocol), not against masks resized to the network's input.

    Args:
        dataset: A SkinDataset built without masks (``with_options(with_masks=False)``) whose
            samples still know their ``mask_path``.
        mask_threshold: Grey level above which a mask pixel is lesion (``None``: the default).
    """

    def __init__(self, dataset: SkinDataset, mask_threshold: int | None) -> None:
        self.dataset = dataset
        self.mask_threshold = mask_threshold

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.dataset[index]
        sample = self.dataset.samples[index]
        assert sample.mask_path is not None
        item["truth"] = read_mask(sample.mask_path, image_size_of(sample.path), self.mask_threshold)
        return item

    @staticmethod
    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        """Stack images and labels; keep ids and the (differently sized) masks as lists."""
        return {
            "image": torch.stack([i["image"] for i in items]),
            "label": torch.stack([i["label"] for i in items]),
            "image_id": [i["image_id"] for i in items],
            "truth": [i["truth"] for i in items],
        }


def resize_to_sizes(maps: torch.Tensor, sizes: Sequence[tuple[int, int]] | None) -> list[torch.Tensor]:
    """Resize ``(N, 1, h, w)`` maps bilinearly, each to its own size (one interpolation per distinct size).

    Args:
        maps: Probability maps at the network's resolution.
        sizes: ``(width, height)`` per map, or ``None`` to keep them as they are.

    Returns:
        One ``(height, width)`` tensor per map.

    Examples:
        >>> [tuple(m.shape) for m in resize_to_sizes(torch.zeros(2, 1, 8, 8), [(6, 4), (8, 8)])]
        [(4, 6), (8, 8)]
    """
    if sizes is None:
        return list(maps[:, 0])
    out: list[torch.Tensor] = [maps[0, 0]] * maps.shape[0]
    groups: dict[tuple[int, int], list[int]] = {}
    for index, size in enumerate(sizes):
        groups.setdefault((int(size[0]), int(size[1])), []).append(index)
    for (width, height), indices in groups.items():
        chosen = maps[indices]
        if chosen.shape[-2:] != (height, width):
            chosen = F.interpolate(chosen, size=(height, width), mode="bilinear", align_corners=False)
        for position, index in enumerate(indices):
            out[index] = chosen[position, 0]
    return out
