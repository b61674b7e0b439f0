"""Turning whatever a user passes to ``predict`` into batches the model can take.

Accepted: a :class:`~hamkit.data.dataset.SkinDataset`; any torch ``Dataset`` yielding
``(image, ...)`` tuples or ``{"image": ...}`` dicts of preprocessed tensors; a folder, an image
path or a list of paths; a Pillow image, a ``uint8`` ``(H, W, 3)`` array or a list of them; a
float tensor ``(N, 3, H, W)`` or ``(3, H, W)`` that is already preprocessed (resized and
normalised).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, TensorDataset

from hamkit.data.dataset import SkinDataset
from hamkit.data.images import Crop, find_images, image_size_of
from hamkit.errors import DataError

__all__ = ["InferenceInputs", "prepare_inputs", "unpack_batch"]


@dataclass
class InferenceInputs:
    """Prepared inference data.

    Attributes:
        dataset: Yields items whose image is a preprocessed tensor.
        image_ids: One id per item (file stem, or the position as text).
        original_sizes: ``(width, height)`` of every original image (of its region, for a
            cropped dataset item), where known.
    """

    dataset: Dataset
    image_ids: list[str]
    original_sizes: list[tuple[int, int]] | None


class _InMemoryImages(Dataset):
    """Pillow images or uint8 arrays, resized and normalised on access."""

    def __init__(
        self, images: Sequence[Image.Image | np.ndarray], image_size: int, mean: Sequence[float], std: Sequence[float]
    ) -> None:
        self.images = list(images)
        self.image_size = image_size
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = _as_pil(self.images[index], index)
        image = image.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
        tensor = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float() / 255.0
        return {"image": (tensor - self.mean) / self.std, "image_id": str(index)}


def _as_pil(image: Image.Image | np.ndarray, index: int) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise DataError(
            f"image {index}: arrays must be uint8 (H, W, 3) pixels, got {array.dtype}; "
            "pass preprocessed float data as a torch tensor"
        )
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise DataError(f"image {index}: expected an (H, W, 3) array, got shape {array.shape}")
    return Image.fromarray(array[..., :3])


def _size_of(image: Image.Image | np.ndarray) -> tuple[int, int]:
    if isinstance(image, Image.Image):
        return image.size
    array = np.asarray(image)
    return int(array.shape[1]), int(array.shape[0])


def _region_size(size: tuple[int, int], crop: Crop | None) -> tuple[int, int]:
    """``(width, height)`` of the region of an image of ``size`` that a dataset item shows."""
    if crop is None:
        return size
    width, height = size
    return max(1, round((crop[2] - crop[0]) * width)), max(1, round((crop[3] - crop[1]) * height))


def prepare_inputs(
    images: Any, *, image_size: int, mean: Sequence[float], std: Sequence[float], keep_masks: bool = False
) -> InferenceInputs:
    """Wrap ``images`` (see the module docstring) as a dataset with the model's preprocessing.

    Args:
        images: What to predict on.
        image_size: The model's input size.
        mean: The model's normalisation mean.
        std: The model's normalisation standard deviation.
        keep_masks: Keep the masks of a ``SkinDataset`` (for evaluation).

    Returns:
        The :class:`InferenceInputs`.

    Raises:
        DataError: Nothing to predict on, or an input of a kind hamkit cannot read.
    """
    if isinstance(images, SkinDataset):
        dataset = images.with_options(
            image_size=image_size, mean=mean, std=std, augment=False, with_masks=images.with_masks and keep_masks
        )
        sizes = [_region_size(image_size_of(s.path), s.crop) for s in dataset.samples]
        return InferenceInputs(dataset, dataset.image_ids, sizes)
    if isinstance(images, torch.Tensor):
        batch = images.unsqueeze(0) if images.dim() == 3 else images
        if batch.dim() != 4 or batch.shape[1] != 3 or not batch.is_floating_point():
            raise DataError(
                f"a tensor input must be float (N, 3, H, W), preprocessed; got {tuple(images.shape)} {images.dtype}"
            )
        if batch.shape[0] == 0:
            raise DataError("no images to predict on")
        ids = [str(i) for i in range(batch.shape[0])]
        sizes = [(int(batch.shape[3]), int(batch.shape[2]))] * batch.shape[0]
        return InferenceInputs(TensorDataset(batch.float()), ids, sizes)
    if isinstance(images, Dataset):
        n = len(images)  # type: ignore[arg-type]
        if n == 0:
            raise DataError("no images to predict on: the dataset is empty")
        return InferenceInputs(images, [str(i) for i in range(n)], None)
    if isinstance(images, np.ndarray) and images.ndim == 4:  # a stack (N, H, W, 3), as scikit-learn slices it
        images = list(images)
    if isinstance(images, (str, os.PathLike, Image.Image, np.ndarray)):
        images = [images]
    if not isinstance(images, Sequence) or len(images) == 0:
        raise DataError("no images to predict on")
    if all(isinstance(x, (str, os.PathLike)) for x in images):
        paths: list[Path] = []
        for item in images:
            path = Path(item)
            paths.extend(find_images(path).values() if path.is_dir() else [path])
        if not paths:
            raise DataError(f"no image files found in {', '.join(map(str, images))}")
        dataset = SkinDataset.from_paths(paths, image_size=image_size, mean=mean, std=std)
        return InferenceInputs(dataset, dataset.image_ids, [image_size_of(p) for p in paths])
    if all(isinstance(x, (Image.Image, np.ndarray)) for x in images):
        sizes = [_size_of(x) for x in images]
        return InferenceInputs(
            _InMemoryImages(images, image_size, mean, std), [str(i) for i in range(len(images))], sizes
        )
    kinds = sorted({type(x).__name__ for x in images})
    raise DataError(
        f"cannot predict on a list of {', '.join(kinds)}; pass paths, PIL images, uint8 arrays, a tensor or a Dataset"
    )


def unpack_batch(batch: Any) -> dict[str, Any]:
    """Normalise a batch to a dict with ``image`` and, where present, ``label`` and ``mask``.

    Accepts the dicts of :class:`SkinDataset` and ``(image, label[, mask])`` tuples.
    """
    if isinstance(batch, dict):
        return batch
    if isinstance(batch, (list, tuple)):
        keys = ("image", "label", "mask")
        return dict(zip(keys, batch, strict=False))
    if isinstance(batch, torch.Tensor):
        return {"image": batch}
    raise DataError(
        f"cannot read a batch of type {type(batch).__name__}; datasets must yield "
        "(image, label) tuples or dicts with 'image' and 'label'"
    )
