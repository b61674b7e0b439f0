"""The decode cache: images (and masks) decoded and resized once, kept on disk as ``uint8``
memory-mapped ``.npy`` arrays and reused across epochs and runs.

Images and masks are separate entries: the images' key does not depend on the masks, so a
classifier (images only) and a segmenter (images and masks) over the same files at the same size
share one copy of the decoded pixels, whichever is built first.

Re-decoding 600x450 JPEGs every epoch is what limits training speed on a CPU; reading a
``(S, S, 3)`` row from a memory map is cheap. A cache entry is keyed by the working size and the
identity (resolved path, size in bytes, modification time) of every source file, so changing,
adding or removing any file gives a new key and the stale entry is simply not used. Building
writes to temporary files and renames them at the end: an interrupted build leaves nothing that
a later run could mistake for a complete cache. An entry is checked before it is used (its
marker, and each array's header, shape, type and file length against the marker): a damaged one
(truncated, overwritten, fewer rows than the marker says) is built again, with one warning line.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hamkit._cache import cache_root
from hamkit._io import atomic_path, atomic_write_text
from hamkit._proc import WorkerInit
from hamkit.data.images import Crop, load_image_array, read_mask, resize_mask
from hamkit.errors import DataError

__all__ = ["DecodeCache", "CacheEntry", "file_identity", "shared_decode_cache"]

_FORMAT_VERSION = 1


def shared_decode_cache() -> Path:
    """The decode-cache folder that ``hamkit run`` and ``hamkit train`` share: ``decoded/`` under
    hamkit's cache folder (``$HAMKIT_CACHE``, see :func:`hamkit._cache.cache_root`).

    Entries are keyed by image size and file identity, so runs over other folders or sizes never
    share an entry, and a second run or training over the same images decodes nothing again.
    """
    return cache_root() / "decoded"


def file_identity(path: str | os.PathLike[str]) -> tuple[str, int, int]:
    """Return ``(resolved path, size in bytes, mtime in ns)``: what makes a cached decode valid.

    Raises:
        DataError: The file does not exist.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


@dataclass(frozen=True)
class CacheEntry:
    """The files of one complete cache entry.

    Attributes:
        images: ``.npy`` file of shape ``(N, S, S, 3)``, ``uint8``.
        masks: ``.npy`` file of shape ``(N, S, S)``, ``uint8`` 0/1, or ``None``.
        key: The key of the images (:meth:`DecodeCache.key` without the masks).
        masks_key: The key of the masks (with the mask files), or ``None``.
    """

    images: Path
    masks: Path | None
    key: str
    masks_key: str | None = None

    def open(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Memory-map the arrays read-only."""
        images = np.load(self.images, mmap_mode="r")
        masks = np.load(self.masks, mmap_mode="r") if self.masks is not None else None
        return images, masks


class _DecodeJob:
    """Picklable decode of item ``i`` for the DataLoader workers of a cache build."""

    def __init__(
        self,
        paths: Sequence[Path],
        masks: Sequence[Path] | None,
        size: int,
        mask_threshold: int | None,
        crops: Sequence[Crop | None] | None = None,
        images: bool = True,
    ) -> None:
        self.paths = list(paths)
        self.masks = list(masks) if masks is not None else None
        self.size = size
        self.mask_threshold = mask_threshold
        self.crops = list(crops) if crops is not None else [None] * len(self.paths)
        self.images = images

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray | None, np.ndarray | None]:
        from hamkit.data.images import image_size_of

        crop = self.crops[index]
        image = load_image_array(self.paths[index], self.size, crop) if self.images else None
        mask = None
        if self.masks is not None:
            expected = image_size_of(self.paths[index])
            mask = resize_mask(read_mask(self.masks[index], expected, self.mask_threshold), self.size, crop)
        return index, image, mask


def _collate(batch: list) -> list:
    return batch


def _reserve(path: Path) -> None:
    """Allocate the whole of a new memory-mapped file now: on a full disk that is an ``OSError``
    (``ENOSPC``, reported as one line), where writing into a sparse map later would kill the
    process with ``SIGBUS``. File systems without ``fallocate`` are left as they are."""
    if not hasattr(os, "posix_fallocate"):  # pragma: no cover - not Linux
        return
    with path.open("r+b") as handle:
        try:
            os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
        except OSError as err:
            if err.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                return
            raise


def _array_damage(path: Path, shape: tuple[int, ...]) -> str | None:
    """Why the ``.npy`` file ``path`` is not a ``uint8`` array of ``shape`` stored whole (``None``:
    it is). Reads only the header (never with ``allow_pickle``) and the file's length."""
    try:
        with path.open("rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                found, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                found, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
            offset = handle.tell()
        length = path.stat().st_size
    except (OSError, ValueError, EOFError) as err:
        return f"{path.name}: unreadable ({err})"
    if tuple(found) != shape or dtype != np.uint8 or fortran:
        return f"{path.name} holds a {dtype} array of shape {tuple(found)}, not uint8 {shape}"
    if length != offset + int(np.prod(shape)):
        return f"{path.name} is {length} bytes long, not {offset + int(np.prod(shape))} (truncated?)"
    return None


class DecodeCache:
    """A folder of decoded, resized images shared by every dataset that points to it.

    Args:
        directory: Where cache entries live (created on demand).
        num_workers: DataLoader worker processes used to decode while building an entry.
        progress: Show a tqdm progress bar while building.

    Examples:
        >>> cache = DecodeCache("~/.cache/hamkit/decoded")  # doctest: +SKIP
        >>> images, masks = cache.load(paths, image_size=224)  # doctest: +SKIP
    """

    def __init__(self, directory: str | os.PathLike[str], *, num_workers: int = 0, progress: bool = False) -> None:
        self.directory = Path(directory).expanduser()
        self.num_workers = num_workers
        self.progress = progress

    def key(
        self,
        paths: Sequence[str | os.PathLike[str]],
        image_size: int,
        mask_paths: Sequence[str | os.PathLike[str]] | None = None,
        mask_threshold: int | None = None,
        crops: Sequence[Crop | None] | None = None,
    ) -> str:
        """The key of the entry for these files at this size and crop (changes when any file changes);
        with ``mask_paths``, the key of those masks, without them the key of the images."""
        digest = hashlib.sha256()
        digest.update(json.dumps([_FORMAT_VERSION, image_size, mask_threshold]).encode())
        for path in paths:
            digest.update(repr(file_identity(path)).encode())
        digest.update(b"|masks|")
        for path in mask_paths or ():
            digest.update(repr(file_identity(path)).encode())
        if crops is not None and any(c is not None for c in crops):  # whole images keep their old keys
            digest.update(b"|crops|")
            for crop in crops:
                digest.update(repr(None if crop is None else tuple(round(float(v), 6) for v in crop)).encode())
        return digest.hexdigest()[:32]

    def _damage(self, key: str, arrays: Sequence[tuple[Path, tuple[int, ...]]], count: int, size: int) -> str | None:
        """Why the entry ``key`` with a marker cannot be used (``None``: it can): its marker, and each
        array's header, shape, type and file length checked against the marker."""
        marker = self.directory / f"{key}.json"
        try:
            record = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            return f"unreadable marker {marker.name} ({err})"
        if not isinstance(record, dict) or record.get("count") != count or record.get("image_size") != size:
            return f"its marker {marker.name} does not describe {count} images at {size} px"
        for path, shape in arrays:
            problem = _array_damage(path, shape)
            if problem:
                return problem
        return None

    def _is_complete(self, key: str, arrays: Sequence[tuple[Path, tuple[int, ...]]], count: int, size: int) -> bool:
        """The entry ``key`` is there and sound; a damaged one is removed, with one warning line."""
        marker = self.directory / f"{key}.json"
        if not marker.is_file():
            return False  # never finished (interrupted): built without a word, as before
        problem = self._damage(key, arrays, count, size)
        if problem is None:
            return True
        warnings.warn(
            f"decode cache entry {key} in {self.directory} is damaged ({problem}); building it again",
            stacklevel=3,
        )
        for path in (marker, *(path for path, _ in arrays)):
            with contextlib.suppress(OSError):
                path.unlink()
        return False

    def load(
        self,
        paths: Sequence[str | os.PathLike[str]],
        image_size: int,
        mask_paths: Sequence[str | os.PathLike[str]] | None = None,
        mask_threshold: int | None = None,
        crops: Sequence[Crop | None] | None = None,
    ) -> CacheEntry:
        """Return the complete entry for these files, building what is missing first.

        The images and the masks are kept apart: the images of these files at this size (and
        crop) are one entry whether or not masks are asked for, so a dataset with masks reuses the
        images decoded for one without, and the other way round; only the part that is missing
        (or damaged) is decoded.

        Args:
            paths: Image files, in dataset order.
            image_size: Side of the square working size.
            mask_paths: Mask files aligned with ``paths``, or ``None``.
            mask_threshold: Passed to :func:`~hamkit.data.images.read_mask`.
            crops: The region of each image to keep (see :mod:`hamkit.data.crops`), aligned
                with ``paths``; ``None`` (or a ``None`` item) keeps the whole image.

        Returns:
            The :class:`CacheEntry`; ``entry.open()`` memory-maps its arrays.

        Raises:
            DataError: A file is missing, corrupt or (for masks) of the wrong size or not binary.
        """
        if mask_paths is not None and len(mask_paths) != len(paths):
            raise DataError(f"{len(mask_paths)} mask paths for {len(paths)} images")
        if crops is not None and len(crops) != len(paths):
            raise DataError(f"{len(crops)} crop regions for {len(paths)} images")
        n, size = len(paths), image_size
        key = self.key(paths, image_size, None, None, crops)
        entry = CacheEntry(images=self.directory / f"{key}.images.npy", masks=None, key=key)
        if mask_paths is not None:
            masks_key = self.key(paths, image_size, mask_paths, mask_threshold, crops)
            entry = CacheEntry(entry.images, self.directory / f"{masks_key}.masks.npy", key, masks_key)
        need_images = not self._is_complete(key, [(entry.images, (n, size, size, 3))], n, size)
        need_masks = (
            entry.masks is not None
            and entry.masks_key is not None
            and not self._is_complete(entry.masks_key, [(entry.masks, (n, size, size))], n, size)
        )
        if entry.masks_key not in (None, key):  # images that an earlier version kept beside these masks
            with contextlib.suppress(OSError):
                (self.directory / f"{entry.masks_key}.images.npy").unlink()
        if need_images or need_masks:
            self._build(
                entry,
                [Path(p) for p in paths],
                [Path(p) for p in mask_paths] if mask_paths is not None and need_masks else None,
                image_size,
                mask_threshold,
                crops,
                images=need_images,
            )
        return entry

    def _build(
        self,
        entry: CacheEntry,
        paths: list[Path],
        masks: list[Path] | None,
        size: int,
        mask_threshold: int | None,
        crops: Sequence[Crop | None] | None = None,
        *,
        images: bool = True,
    ) -> None:
        """Decode the entry's images (``images``) and masks (``masks`` given) in one pass over the
        files, into temporary files renamed at the end, then write each part's marker."""
        import torch
        from tqdm.auto import tqdm

        self.directory.mkdir(parents=True, exist_ok=True)
        n = len(paths)
        job = _DecodeJob(paths, masks, size, mask_threshold, crops, images=images)
        loader: Any = torch.utils.data.DataLoader(
            job,  # type: ignore[arg-type]  # a map-style dataset
            batch_size=16,
            num_workers=self.num_workers,
            collate_fn=_collate,
            worker_init_fn=WorkerInit(),  # workers die with this process, even when it is killed
        )
        with contextlib.ExitStack() as stack:
            image_array = mask_array = None
            if images:
                images_tmp = stack.enter_context(atomic_path(entry.images))
                image_array = np.lib.format.open_memmap(images_tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
                _reserve(images_tmp)
            if masks is not None and entry.masks is not None:
                masks_tmp = stack.enter_context(atomic_path(entry.masks))
                mask_array = np.lib.format.open_memmap(masks_tmp, mode="w+", dtype=np.uint8, shape=(n, size, size))
                _reserve(masks_tmp)
            with tqdm(total=n, desc="decode cache", unit="img", disable=not self.progress) as bar:
                for batch in loader:
                    for index, image, mask in batch:
                        if image_array is not None:
                            image_array[index] = image
                        if mask_array is not None:
                            mask_array[index] = mask
                    bar.update(len(batch))
            for array in (image_array, mask_array):
                if array is not None:
                    array.flush()
            del image_array, mask_array
        parts = [(entry.key, False)] if images else []
        if masks is not None and entry.masks_key is not None:
            parts.append((entry.masks_key, True))
        for key, with_masks in parts:
            atomic_write_text(
                self.directory / f"{key}.json",
                json.dumps(
                    {
                        "version": _FORMAT_VERSION,
                        "count": n,
                        "image_size": size,
                        "masks": with_masks,
                        "first": str(paths[0]) if paths else None,
                    }
                ),
            )
