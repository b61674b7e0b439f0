"""``SkinDataset``: a torch ``Dataset`` of dermoscopic images with labels and optional masks.

Items are dictionaries (``image``, ``label``, ``image_id`` and, with masks, ``mask``), which the
default ``DataLoader`` collate stacks into batches. Preprocessing comes from a backbone spec
(input size, normalisation mean/std) or from explicit arguments. Augmentation is off by default;
``augment=`` takes a choice of :mod:`hamkit.data.augment` (``True`` is ``"flips"``: random flips
and 90-degree rotations, which never change colour) or a torchvision v2 transform, applied to
image and mask together.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from hamkit.classes import CLASS_CODES
from hamkit.data.cache import DecodeCache
from hamkit.data.images import (
    Crop,
    check_crop,
    find_images,
    find_masks,
    image_size_of,
    load_image_array,
    read_mask,
    resize_mask,
    walk_files,
)
from hamkit.data.metadata import ImageRecord, classes_of, read_labels
from hamkit.errors import DataError
from hamkit.ham10000.layout import LABEL_FILE_NAMES, MASK_SUFFIX

__all__ = ["Sample", "SkinDataset", "IMAGENET_MEAN", "IMAGENET_STD", "find_label_file", "find_mask_dir"]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Sample:
    """One item of a :class:`SkinDataset`.

    Attributes:
        image_id: The image's id.
        path: The image file.
        label: Class index in the dataset's :attr:`SkinDataset.classes`, or -1 when unknown
            (prediction-only data).
        group: The grouping key for splits (lesion id, or image id).
        mask_path: The lesion mask, or ``None``.
        crop: The region of the image to use, ``(left, top, right, bottom)`` in fractions of
            its width and height (see :mod:`hamkit.data.crops`), or ``None`` for all of it.
    """

    image_id: str
    path: Path
    label: int = -1
    group: str = ""
    mask_path: Path | None = None
    crop: Crop | None = None


def find_label_file(root: Path) -> Path | None:
    """Return the HAM10000 metadata CSV (or ISIC training ground truth) directly under ``root``."""
    for name in LABEL_FILE_NAMES:
        if (root / name).is_file():
            return root / name
    return None


def find_mask_dir(root: Path) -> Path | None:
    """Return the first folder under ``root`` holding ``*_segmentation.png`` files, if any."""
    for candidate in sorted(p for p in root.iterdir() if p.is_dir()):
        if any(p.name.endswith(f"{MASK_SUFFIX}.png") for p in walk_files(candidate)):
            return candidate
    return None


class SkinDataset(Dataset):
    """A dataset of skin-lesion images, optionally with masks.

    Build one from a HAM10000-layout folder with :meth:`from_folder`, from files with
    :meth:`from_paths`, or from :class:`Sample` objects directly.

    Args:
        samples: The items, in order.
        image_size: Side of the square the images are resized to.
        mean: Per-channel normalisation mean (0..1 scale).
        std: Per-channel normalisation standard deviation.
        with_masks: Return masks. Default: when every sample has a mask path.
        augment: Training augmentation, applied to image and mask together: ``"none"``,
            ``"flips"``, ``"light"``, ``"strong"`` (see :mod:`hamkit.data.augment`), ``True``
            (``"flips"``), ``False`` (none), or a torchvision v2 transform.
        cache: A :class:`~hamkit.data.cache.DecodeCache` (or its folder) to decode through.
        mask_threshold: Threshold for non-binary masks (see :func:`~hamkit.data.images.read_mask`).
        classes: The class names the labels index (default: the seven HAM10000 codes);
            :meth:`from_folder` takes them from the labels file.

    Raises:
        DataError: ``samples`` is empty, or masks are asked for but some samples lack one.
        HamkitError: An unknown ``augment`` choice.

    Examples:
        >>> from hamkit.synthetic import make_synthetic  # doctest: +SKIP
        >>> ds = SkinDataset.from_folder(make_synthetic("demo").root, image_size=64)  # doctest: +SKIP
        >>> ds[0]["image"].shape  # doctest: +SKIP
        torch.Size([3, 64, 64])
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        *,
        image_size: int = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        with_masks: bool | None = None,
        augment: bool | str | Callable[..., Any] = False,
        cache: DecodeCache | str | os.PathLike[str] | None = None,
        mask_threshold: int | None = None,
        classes: Sequence[str] | None = None,
    ) -> None:
        self.samples: list[Sample] = list(samples)
        self.classes: tuple[str, ...] = tuple(classes) if classes is not None else CLASS_CODES
        if not self.samples:
            raise DataError("the dataset is empty: no images were given or found")
        if image_size < 8:
            raise DataError(f"image_size must be at least 8 pixels, got {image_size}")
        self.image_size = int(image_size)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        lacking = [s.image_id for s in self.samples if s.mask_path is None]
        if with_masks is None:
            with_masks = not lacking
        if with_masks and lacking:
            raise DataError(
                f"{len(lacking)} image(s) have no mask: {', '.join(lacking[:10])}"
                + (" ..." if len(lacking) > 10 else "")
            )
        self.with_masks = bool(with_masks)
        self.augment = augment
        self._transform: Callable[..., Any] | None = None
        if augment is not False and augment is not None and not (isinstance(augment, str) and augment == "none"):
            from hamkit.data.augment import build_augmentation

            self._transform = build_augmentation(augment, image_size=self.image_size)
        self.mask_threshold = mask_threshold
        self.cache = DecodeCache(cache) if isinstance(cache, (str, os.PathLike)) else cache
        self._mean = torch.tensor(self.mean).view(3, 1, 1)
        self._std = torch.tensor(self.std).view(3, 1, 1)
        self._arrays: tuple[np.ndarray, np.ndarray | None] | None = None
        self._entry = None
        if self.cache is not None:
            self._entry = self.cache.load(
                [s.path for s in self.samples],
                self.image_size,
                [s.mask_path for s in self.samples] if self.with_masks else None,  # type: ignore[misc]
                mask_threshold,
                self.crops if self.cropped else None,
            )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_folder(
        cls,
        root: str | os.PathLike[str],
        *,
        labels: str | os.PathLike[str] | Sequence[ImageRecord] | None = None,
        label_column: str | None = None,
        group_by: Sequence[str] | str = (),
        classes: Sequence[str] | None = None,
        masks: str | os.PathLike[str] | bool | None = None,
        split_csv: str | os.PathLike[str] | None = None,
        split: str | None = None,
        fold: int | None = None,
        backbone: str | None = None,
        image_size: int | None = None,
        on_missing: str = "error",
        **kwargs: Any,
    ) -> SkinDataset:
        """Build a dataset from a HAM10000-layout folder.

        Images are found recursively under ``root`` (following symlinked folders); labels come
        from ``labels`` or from the ``HAM10000_metadata.csv`` (or ISIC training ground truth)
        directly under ``root``.

        Args:
            root: The data folder.
            labels: A label file (HAM10000 metadata, ISIC ground truth, or any labels CSV read
                by :func:`~hamkit.data.metadata.read_labels`), or records already read
                (default: the HAM10000 metadata found under ``root``).
            label_column: The label column of a generic labels file (default: found by name).
            group_by: More grouping columns of the labels file (kept in the records).
            classes: The class list the labels index, e.g. a trained model's ``classes_``
                (default: the labels file's). Every label must be one of them.
            masks: A masks folder; ``True`` finds one under ``root``; ``None``/``False`` no masks.
            split_csv: A split CSV (``image_id,...,split``) to select rows from.
            split: Which split to keep (``train``, ``val`` or ``test``); requires ``split_csv``.
            fold: With a folds CSV (``hamkit split --folds K``): fold ``fold`` is ``val``, the
                other folds ``train`` (see :func:`~hamkit.data.splits.read_split_csv`).
            backbone: A registry name: its input size and normalisation are used.
            image_size: Overrides the backbone's input size (default 224 without a backbone).
            on_missing: ``"error"`` (default) when a labelled image has no file or mask, or
                ``"skip"`` to leave such images out (they are listed in :attr:`skipped`).
            **kwargs: Passed to the constructor (``augment``, ``cache``, ...).

        Returns:
            The dataset.

        Raises:
            DataError: No label file, images listed in the labels but missing on disk, a
                missing mask, an unknown split name, or nothing left. (Image files that the
                labels do not list are not an error: they are listed in :attr:`unlabelled`.)
        """
        root = Path(root)
        images = find_images(root)
        label_file: Path | None
        if labels is not None and not isinstance(labels, (str, os.PathLike)):
            records = list(labels)
            label_file = None
        else:
            label_file = Path(labels) if labels is not None else find_label_file(root)
            if label_file is None:
                raise DataError(
                    f"{root}: no label file; expected one of {', '.join(LABEL_FILE_NAMES)} there, or pass labels=PATH"
                )
            records = read_labels(label_file, label_column=label_column, group_by=group_by)
        class_list = tuple(classes) if classes is not None else classes_of(records)
        _check_classes(records, class_list, label_file)
        if split_csv is not None:
            records = _select_split(records, Path(split_csv), split, fold)
        elif split is not None or fold is not None:
            name = "split" if split is not None else "fold"
            raise DataError(f"{name}= needs split_csv= (a CSV written by hamkit split)")
        if on_missing not in ("error", "skip"):
            raise DataError(f"on_missing must be 'error' or 'skip', got {on_missing!r}")
        skipped: dict[str, str] = {}
        no_file = [r.image_id for r in records if r.image_id not in images]
        if no_file and on_missing == "error":
            raise DataError(
                f"{len(no_file)} image(s) listed in {label_file} are not under {root}: "
                f"{', '.join(no_file[:10])}{' ...' if len(no_file) > 10 else ''}; "
                "pass on_missing='skip' to leave them out"
            )
        skipped.update({i: "image file not found" for i in no_file})
        records = [r for r in records if r.image_id in images]
        mask_paths: dict[str, Path] = {}
        if masks is True:
            mask_dir = find_mask_dir(root)
            if mask_dir is None:
                raise DataError(f"{root}: no folder of *_segmentation.png masks found; pass masks=PATH")
            masks = mask_dir
        if masks:
            match = find_masks(Path(masks), [r.image_id for r in records])
            if match.missing and on_missing == "error":
                raise DataError(f"{masks}: {match.describe(extra=False)}; pass on_missing='skip' to leave them out")
            skipped.update({i: "mask not found" for i in match.missing})
            records = [r for r in records if r.image_id in match.masks]
            mask_paths = match.masks
        if backbone is not None:
            from hamkit.backbones.registry import get_backbone

            spec = get_backbone(backbone)
            kwargs.setdefault("mean", spec.mean)
            kwargs.setdefault("std", spec.std)
            size = spec.input_size
            image_size = image_size or (size if isinstance(size, int) else max(size))
        index = {name: i for i, name in enumerate(class_list)}
        samples = [
            Sample(r.image_id, images[r.image_id], index[r.dx], r.group, mask_paths.get(r.image_id)) for r in records
        ]
        if not samples:
            raise DataError(f"{root}: no labelled images left" + (f" in split {split!r}" if split else ""))
        dataset = cls(
            samples, image_size=image_size or 224, with_masks=bool(masks) or None, classes=class_list, **kwargs
        )
        dataset.skipped = skipped
        labelled = {r.image_id for r in records} | set(no_file)
        dataset.unlabelled = sorted(set(images) - labelled - set(skipped))
        dataset.label_file = label_file
        dataset.root = root
        return dataset

    @classmethod
    def from_paths(
        cls,
        paths: Sequence[str | os.PathLike[str]],
        labels: Sequence[int] | None = None,
        masks: Sequence[str | os.PathLike[str]] | None = None,
        **kwargs: Any,
    ) -> SkinDataset:
        """Build a dataset from image files (labels and masks optional, aligned with ``paths``).

        Raises:
            DataError: Lengths differ or a label is out of range.
        """
        files = [Path(p) for p in paths]
        for name, other in (("labels", labels), ("masks", masks)):
            if other is not None and len(other) != len(files):
                raise DataError(f"{len(other)} {name} for {len(files)} images")
        if labels is not None:
            count = len(kwargs.get("classes") or CLASS_CODES)
            bad = [int(x) for x in labels if not -1 <= int(x) < count]
            if bad:
                raise DataError(f"labels must be class indices 0..{count - 1}, got {bad[:5]}")
        samples = [
            Sample(
                p.stem,
                p,
                int(labels[i]) if labels is not None else -1,
                p.stem,
                Path(masks[i]) if masks is not None else None,
            )
            for i, p in enumerate(files)
        ]
        return cls(samples, **kwargs)

    # ------------------------------------------------------------------ views
    skipped: dict[str, str] = {}
    """Image ids left out by ``from_folder(on_missing="skip")``, with the reason."""
    unlabelled: list[str] = []
    """Image files under the root that the label file does not list (ignored)."""
    label_file: Path | None = None
    """The labels CSV it was read from (``None`` for labels given as records)."""
    root: Path | None = None
    """The data folder it was read from (``from_folder``)."""

    @property
    def labels(self) -> np.ndarray:
        """Class index of every item (``int64``; -1 where unknown)."""
        return np.array([s.label for s in self.samples], dtype=np.int64)

    @property
    def image_ids(self) -> list[str]:
        """Image id of every item."""
        return [s.image_id for s in self.samples]

    @property
    def paths(self) -> list[Path]:
        """Image file of every item."""
        return [s.path for s in self.samples]

    def class_counts(self) -> np.ndarray:
        """Number of items per class (in :attr:`classes` order), unlabelled items left out."""
        labels = self.labels
        return np.bincount(labels[labels >= 0], minlength=len(self.classes))

    def with_classes(self, classes: Sequence[str]) -> SkinDataset:
        """A copy whose labels index ``classes`` (matched by name), e.g. a model's class list.

        Raises:
            DataError: Some labelled image's class is not in ``classes``.
        """
        target = tuple(classes)
        if target == self.classes:
            return self
        index = {name: i for i, name in enumerate(target)}
        missing = sorted({self.classes[s.label] for s in self.samples if s.label >= 0} - set(index))
        if missing:
            raise DataError(
                f"the data has class(es) {', '.join(missing)} that are not among {list(target)}; "
                "use a model trained on these classes, or relabel the data"
            )
        samples = [replace(s, label=index[self.classes[s.label]] if s.label >= 0 else -1) for s in self.samples]
        copy = self.with_options(classes=target)
        copy.samples = samples
        return copy

    def subset(self, indices: Sequence[int]) -> SkinDataset:
        """A new dataset of the items at ``indices`` with the same settings (shares the cache)."""
        part = self._rebuild([self.samples[i] for i in indices])
        part.skipped, part.unlabelled = {}, []
        return part

    def with_options(self, **changes: Any) -> SkinDataset:
        """A copy with some constructor arguments changed, e.g. ``augment=True``."""
        return self._rebuild(self.samples, **changes)

    def with_crops(self, crops: Sequence[Crop | None] | np.ndarray | None) -> SkinDataset:
        """A copy that decodes only a region of each image, e.g. the lesion-centred crops of
        :func:`hamkit.data.crops.lesion_crops` (masks, when the dataset has them, are cropped alike).

        Args:
            crops: One region ``(left, top, right, bottom)`` per item, in fractions of the
                image's width and height (``None`` keeps that whole image); ``None`` for all:
                whole images again.

        Raises:
            DataError: Not one region per item, or a region outside its image.
        """
        if crops is None:
            return self._rebuild([replace(s, crop=None) for s in self.samples])
        if len(crops) != len(self.samples):
            raise DataError(f"{len(crops)} crop regions for {len(self.samples)} images")
        samples = [replace(s, crop=None if c is None else check_crop(c, s.path)) for s, c in zip(self.samples, crops)]
        return self._rebuild(samples)

    @property
    def crops(self) -> list[Crop | None]:
        """The region of each item's image that is used (``None``: the whole image)."""
        return [s.crop for s in self.samples]

    @property
    def cropped(self) -> bool:
        """Whether any item uses a region of its image instead of all of it."""
        return any(s.crop is not None for s in self.samples)

    def _rebuild(self, samples: Sequence[Sample], **changes: Any) -> SkinDataset:
        options: dict[str, Any] = dict(
            image_size=self.image_size,
            mean=self.mean,
            std=self.std,
            with_masks=self.with_masks,
            augment=self.augment,
            cache=self.cache,
            mask_threshold=self.mask_threshold,
            classes=self.classes,
        )
        options.update(changes)
        copy = type(self)(samples, **options)
        copy.skipped, copy.unlabelled = dict(self.skipped), list(self.unlabelled)
        copy.label_file, copy.root = self.label_file, self.root  # where the data came from (model cards)
        return copy

    # ------------------------------------------------------------------ torch protocol
    def __len__(self) -> int:
        return len(self.samples)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_arrays"] = None  # memory maps are reopened in each worker, never pickled
        return state

    def _decoded(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        if self._entry is not None:
            if self._arrays is None:
                self._arrays = self._entry.open()
            images, masks = self._arrays
            return np.array(images[index]), (np.array(masks[index]) if masks is not None else None)
        sample = self.samples[index]
        image = load_image_array(sample.path, self.image_size, sample.crop)
        mask = None
        if self.with_masks:
            assert sample.mask_path is not None
            binary = read_mask(sample.mask_path, image_size_of(sample.path), self.mask_threshold)
            mask = resize_mask(binary, self.image_size, sample.crop)
        return image, mask

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        image_u8, mask_u8 = self._decoded(index)
        if self._transform is not None:
            from hamkit.data.augment import apply_augmentation

            image_t = torch.from_numpy(image_u8).permute(2, 0, 1)
            mask_t = torch.from_numpy(mask_u8).unsqueeze(0) if mask_u8 is not None else None
            image, mask = apply_augmentation(self._transform, image_t, mask_t)
        else:
            image = torch.from_numpy(image_u8).permute(2, 0, 1).float().div_(255.0)
            mask = torch.from_numpy(mask_u8).unsqueeze(0).float() if mask_u8 is not None else None
        image = (image - self._mean) / self._std
        item: dict[str, Any] = {
            "image": image.contiguous(),
            "label": torch.tensor(sample.label, dtype=torch.long),
            "image_id": sample.image_id,
        }
        if mask is not None:
            item["mask"] = mask.contiguous()
        return item

    def __repr__(self) -> str:
        augment = self.augment if isinstance(self.augment, (bool, str)) or self.augment is None else "custom"
        return (
            f"SkinDataset({len(self)} images, image_size={self.image_size}, "
            f"masks={self.with_masks}, augment={augment!r}, cached={self.cache is not None})"
        )


def _check_classes(records: Sequence[ImageRecord], classes: tuple[str, ...], label_file: Path | None) -> None:
    """Every record's label must be one of ``classes``."""
    unknown = sorted({r.dx for r in records} - set(classes))
    if unknown:
        where = f"{label_file}: " if label_file is not None else ""
        raise DataError(
            f"{where}label(s) {', '.join(map(repr, unknown[:10]))} are not among the classes {list(classes)}; "
            "use a model trained on these classes, or relabel the data"
        )


def _select_split(
    records: list[ImageRecord], split_csv: Path, split: str | None, fold: int | None = None
) -> list[ImageRecord]:
    from hamkit.data.splits import SPLIT_NAMES, read_split_csv

    assignment = read_split_csv(split_csv, fold=fold)
    if split is None:
        raise DataError("split_csv= needs split= ('train', 'val' or 'test')")
    if split not in SPLIT_NAMES:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPLIT_NAMES)}")
    listed = {r.image_id for r in records}
    not_labelled = [i for i in assignment if i not in listed]
    if not_labelled:
        raise DataError(
            f"{split_csv}: {len(not_labelled)} image(s) are not in the label file: {', '.join(not_labelled[:10])}"
        )
    return [r for r in records if assignment.get(r.image_id) == split]
