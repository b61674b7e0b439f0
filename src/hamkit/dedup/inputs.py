"""What the Deduplicator accepts as images, and the decoding it does on them.

Images may be given as a folder (searched recursively), a text file listing one path a line,
a list of paths, or a :class:`~hamkit.data.dataset.SkinDataset`. Decoding runs in DataLoader
workers; a file that cannot be decoded is not an error here: it is returned as skipped, with
the reason, so that one broken file never stops a scan of a hundred thousand.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from hamkit.data.images import IMAGE_EXTENSIONS, find_images, open_image
from hamkit.errors import DataError, HamkitError

__all__ = ["resolve_images", "DecodeJob", "decode_all"]


def resolve_images(images: Any) -> list[Path]:
    """Turn a folder, a list file, a list of paths or a SkinDataset into a list of image paths.

    Raises:
        DataError: Nothing found, or a path that does not exist.
    """
    from hamkit.data.dataset import SkinDataset

    if isinstance(images, SkinDataset):
        paths = list(images.paths)
    elif isinstance(images, (str, os.PathLike)):
        path = Path(images)
        if path.is_dir():
            paths = list(find_images(path).values())
            if not paths:
                raise DataError(f"{path}: no images found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}, "
                                "recursively)")
        elif path.is_file() and path.suffix.lower() in {".txt", ".lst", ".list"}:
            lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            paths = [Path(line) if Path(line).is_absolute() else path.parent / line for line in lines]
        elif path.is_file():
            paths = [path]
        else:
            raise DataError(f"{path}: no such folder or file")
    elif isinstance(images, Sequence):
        paths = [Path(p) for p in images]
    else:
        raise DataError(f"cannot read images from a {type(images).__name__}; pass a folder, a list of paths, "
                        "a text file of paths or a SkinDataset")
    if not paths:
        raise DataError("no images given")
    return paths


class DecodeJob(Dataset):
    """Decodes item ``i`` for one method; returns ``(i, array or None, error or None)``.

    Args:
        paths: The image files.
        mode: ``"rgb"`` (normalised float CHW for a CNN), ``"gray"`` (uint8 greyscale of
            ``size``), ``"pixels"`` (SHA-256 of the decoded RGB pixels and shape) or ``"bytes"``
            (SHA-256 of the file bytes).
        size: ``(height, width)`` to resize to (``rgb``, ``gray``).
        mean: Normalisation mean (``rgb``).
        std: Normalisation std (``rgb``).
    """

    def __init__(self, paths: Sequence[Path], mode: str, size: tuple[int, int] = (224, 224),
                 mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225)) -> None:
        self.paths = list(paths)
        self.mode = mode
        self.size = size
        self.mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, Any, str | None]:
        path = self.paths[index]
        try:
            if self.mode == "bytes":
                digest = hashlib.sha256()
                with path.open("rb") as handle:
                    for chunk in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(chunk)
                return index, digest.hexdigest(), None
            height, width = self.size
            image = open_image(path, None if self.mode == "pixels" else (width, height))
            if self.mode == "pixels":
                pixels = np.asarray(image, dtype=np.uint8)
                digest = hashlib.sha256(np.asarray(pixels.shape, dtype=np.int64).tobytes())
                digest.update(pixels.tobytes())
                return index, digest.hexdigest(), None
            if self.mode == "gray":
                gray = image.convert("L").resize((width, height), Image.Resampling.LANCZOS)
                return index, np.asarray(gray, dtype=np.uint8), None
            resized = image.resize((width, height), Image.Resampling.BILINEAR)
            array = np.asarray(resized, dtype=np.float32).transpose(2, 0, 1) / 255.0
            return index, (array - self.mean) / self.std, None
        except DataError as err:
            return index, None, str(err).removeprefix(f"{path}: ")
        except OSError as err:
            return index, None, f"cannot be read ({err})"


def _collate(batch: list[tuple[int, Any, str | None]]) -> list[tuple[int, Any, str | None]]:
    return batch


def decode_all(job: DecodeJob, *, batch_size: int, num_workers: int, progress: bool, desc: str):
    """Yield ``(indices, values, skipped)`` per batch: decoded values of the readable items and
    ``{index: reason}`` of the unreadable ones."""
    from tqdm.auto import tqdm

    loader = DataLoader(job, batch_size=batch_size, num_workers=num_workers, collate_fn=_collate,
                        persistent_workers=False)
    with tqdm(total=len(job), desc=desc, unit="img", disable=not progress) as bar:
        for batch in loader:
            ok = [(i, value) for i, value, error in batch if error is None]
            skipped = {i: error for i, _, error in batch if error is not None}
            bar.update(len(batch))
            yield [i for i, _ in ok], [value for _, value in ok], skipped


def stack_rgb(values: list[np.ndarray]) -> torch.Tensor:
    """Stack decoded ``rgb`` arrays into a float tensor batch."""
    if not values:
        raise HamkitError("empty batch")
    return torch.from_numpy(np.stack(values))
