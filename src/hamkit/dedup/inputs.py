"""What the Deduplicator accepts as images, and the decoding it does on them.

Images may be given as a folder (searched recursively), a text file listing one path a line,
a list of paths, or a :class:`~hamkit.data.dataset.SkinDataset`. Decoding runs in DataLoader
workers; a file that cannot be decoded is not an error here: it is returned as skipped, with
the reason, so that one broken file never stops a scan of a hundred thousand.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from hamkit._io import bad_name_message
from hamkit._proc import WorkerInit
from hamkit.data.images import IMAGE_EXTENSIONS, find_images, open_image
from hamkit.errors import DataError

__all__ = ["resolve_images", "check_list_names", "DecodeJob", "decode_all"]


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
            unusable: list[Path] = []
            paths = list(find_images(path, unusable=unusable).values())
            if not paths:
                raise DataError(
                    f"{path}: no images found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}, recursively)"
                )
            paths += unusable  # decoding skips them with the reason, so they are listed in skipped.txt
        elif path.is_file() and path.suffix.lower() in {".txt", ".lst", ".list"}:
            lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            paths = [Path(line) if Path(line).is_absolute() else path.parent / line for line in lines]
            if not paths:
                raise DataError(f"{path}: the list file names no images; write one image path a line")
        elif path.is_file():
            paths = [path]
        else:
            raise DataError(f"{path}: no such folder or file")
    elif isinstance(images, Sequence):
        paths = [Path(p) for p in images]
    else:
        raise DataError(
            f"cannot read images from a {type(images).__name__}; pass a folder, a list of paths, "
            "a text file of paths or a SkinDataset"
        )
    if not paths:
        raise DataError("no images given")
    return paths


def check_list_names(paths: Sequence[Path], list_file: str | os.PathLike[str]) -> None:
    """Fail before a scan when an image's name has a line break, which a one-path-per-line list
    (``kept.txt``, ``removed.txt``...) cannot hold.

    Args:
        paths: The images, e.g. from :func:`resolve_images`.
        list_file: The list that would name them (named in the error).

    Raises:
        DataError: The first such name, and what to do.
    """
    for path in paths:
        if "\n" in str(path) or "\r" in str(path):
            raise DataError(bad_name_message(path, list_file))


class DecodeJob(Dataset):
    """Decodes item ``i`` for one method; returns ``(i, array or None, error or None)``.

    Args:
        paths: The image files.
        mode: ``"rgb"`` (uint8 CHW tensor for a CNN, stacked per batch), ``"gray"`` (uint8 greyscale of
            ``size``), ``"scene"`` (a :class:`~hamkit.dedup.scenes.Scene`: what the ``"verified"``
            method needs of an image), ``"lesion"`` (its
            :class:`~hamkit.dedup.lesion_match.LesionFeatures`, for the ``"lesion"`` method;
            ``"lesion-crop"``: with its lesion crop),
            ``"pixels"`` (SHA-256 of the decoded RGB pixels and shape) or ``"bytes"`` (SHA-256 of
            the file bytes).
        size: ``(height, width)`` to resize to (``rgb``, ``gray``).
    """

    def __init__(self, paths: Sequence[Path], mode: str, size: tuple[int, int] = (224, 224)) -> None:
        self.paths = list(paths)
        self.mode = mode
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, Any, str | None]:
        path = self.paths[index]
        try:
            if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or a device would block or never end
                return index, None, "not a regular file (a pipe, device or socket): skipped"
            if self.mode == "bytes":
                digest = hashlib.sha256()
                with path.open("rb") as handle:
                    for chunk in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(chunk)
                return index, digest.hexdigest(), None
            if self.mode == "scene":
                from hamkit.dedup.scenes import Scene

                return index, Scene.from_path(path), None
            if self.mode in ("lesion", "lesion-crop"):
                from hamkit.dedup.lesion_match import WORK_SIDE, lesion_features

                image = open_image(path, (WORK_SIDE, WORK_SIDE))
                return index, lesion_features(image, crop=self.mode == "lesion-crop"), None
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
            # uint8 CHW: 4x less to hand over than float; normalised on the whole batch later
            return index, torch.from_numpy(np.array(resized, dtype=np.uint8)).permute(2, 0, 1), None
        except DataError as err:
            return index, None, str(err).removeprefix(f"{path}: ")
        except OSError as err:
            return index, None, f"cannot be read ({err})"


def _collate(batch: list[tuple[int, Any, str | None]]) -> tuple[list[int], Any, dict[int, str]]:
    """Split a batch into readable and unreadable items, in the worker; image tensors are
    stacked there, so one shared-memory tensor crosses to the main process per batch."""
    ok = [(i, value) for i, value, error in batch if error is None]
    skipped = {i: error for i, _, error in batch if error is not None}
    values: Any = [value for _, value in ok]
    if values and isinstance(values[0], torch.Tensor):
        values = torch.stack(values)
    return [i for i, _ in ok], values, skipped


def _opencv_worker(_worker: int) -> None:
    """In a decoding worker, before any OpenCV call: no OpenCV thread pool (a pool that the
    parent process had started does not survive ``fork``, and using it from the child hangs),
    and freed heap kept for the next image (:func:`~hamkit._heap.keep_freed_heap`: the lesion
    method's features 1.6x faster where the worker would otherwise return it to the system
    after every image)."""
    import cv2

    from hamkit._heap import keep_freed_heap

    cv2.setNumThreads(0)
    keep_freed_heap()


def decode_all(job: DecodeJob, *, batch_size: int, num_workers: int, progress: bool, desc: str):
    """Yield ``(indices, values, skipped)`` per batch: decoded values of the readable items and
    ``{index: reason}`` of the unreadable ones."""
    from tqdm.auto import tqdm

    loader = DataLoader(
        job,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=_collate,
        persistent_workers=False,
        # workers die with this process, even when it is killed (no decoder outlives a `kill`)
        worker_init_fn=WorkerInit(_opencv_worker if job.mode in ("scene", "lesion", "lesion-crop") else None),
    )
    with tqdm(total=len(job), desc=desc, unit="img", disable=not progress) as bar:
        for indices, values, skipped in loader:
            bar.update(len(indices) + len(skipped))
            yield indices, values, skipped
