"""The work behind the segmenter's inference: masks, lesion maps and the diagnosis head, at original sizes.

Plain functions of a fitted :class:`~hamkit.segment.LesionSegmenter` (``model``); its public
methods (``segment``, ``predict``, ``write_masks``...) are in its class.
"""

from __future__ import annotations

import errno
import os
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from hamkit._io import atomic_write_text
from hamkit._proc import WorkerInit
from hamkit.engine.device import amp_dtype, autocast, resolve_device
from hamkit.engine.inputs import prepare_inputs, unpack_batch
from hamkit.engine.progress import batch_progress
from hamkit.errors import DataError, HamkitError
from hamkit.postprocess import POSTPROCESS_MODES, postprocess_masks
from hamkit.segment.outputs import SegmentationPrediction, resize_to_sizes, save_mask

__all__ = ["INCOMPLETE_NOTE", "batches", "check_options", "forward", "iter_predictions", "segment", "write_masks"]

INCOMPLETE_NOTE = "INCOMPLETE.txt"


# ------------------------------------------------------------------ inference core
def forward(
    model: Any, loader: DataLoader, progress: bool | str = False
) -> Iterator[tuple[dict[str, Any], torch.Tensor, torch.Tensor | None]]:
    """Per batch: the batch dict, lesion probabilities ``(N, 1, h, w)`` on the device, CPU class logits."""
    network = model._check_fitted()
    device = resolve_device(model.device)
    first = next(network.parameters(), None)
    if first is not None and (
        first.device.type != device.type or (device.index is not None and first.device.index != device.index)
    ):
        network.to(device)  # moved once, not on every call: .to() walks every parameter
    if network.training:
        network.eval()
    dtype = amp_dtype(device)
    for raw in batch_progress(loader, progress=progress):
        batch = unpack_batch(raw)
        x = batch["image"].to(device, non_blocking=True)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast(device, dtype):
            mask_logits, class_logits = network(x)
            probabilities = mask_logits.float().sigmoid()
        yield batch, probabilities, (class_logits.float().cpu() if class_logits is not None else None)


def batches(
    model: Any, images: Any, *, batch_size: int, num_workers: int, progress: bool | str = False
) -> Iterator[tuple[list[str], list[tuple[int, int]] | None, torch.Tensor, torch.Tensor | None]]:
    """Yield ``(ids, original sizes, lesion probabilities (N, 1, h, w) on the device, class logits)``."""
    model._check_fitted()
    mean, std = model.normalisation()
    inputs = prepare_inputs(images, image_size=model.image_size, mean=mean, std=std)
    loader = DataLoader(
        inputs.dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=resolve_device(model.device).type == "cuda",
        worker_init_fn=WorkerInit(),  # the workers die with this process, however it ends
    )
    start = 0
    for _, probabilities, class_logits in forward(model, loader, progress):
        n = int(probabilities.shape[0])
        sizes = inputs.original_sizes[start : start + n] if inputs.original_sizes is not None else None
        yield inputs.image_ids[start : start + n], sizes, probabilities, class_logits
        start += n


def check_options(threshold: float, postprocess: str | None) -> None:
    if not 0.0 <= threshold <= 1.0:
        raise HamkitError(f"threshold must be a probability within 0..1, got {threshold}")
    if postprocess not in POSTPROCESS_MODES:
        raise HamkitError(f"unknown postprocess {postprocess!r}; choose one of None, 'largest', 'fill', 'largest+fill'")


def iter_predictions(
    model: Any,
    images: Any,
    *,
    threshold: float,
    postprocess: str | None,
    keep_proba: bool,
    batch_size: int,
    num_workers: int,
    progress: bool | str = False,
) -> Iterator[tuple[list[str], list[np.ndarray], list[np.ndarray] | None, torch.Tensor | None]]:
    """Per batch: ids, masks at the original size, probability maps (if kept), class logits."""
    for ids, sizes, probabilities, class_logits in batches(
        model, images, batch_size=batch_size, num_workers=num_workers, progress=progress
    ):
        resized = resize_to_sizes(probabilities, sizes)
        masks = [(p > threshold).cpu().numpy() for p in resized]
        if postprocess is not None:
            masks = postprocess_masks(masks, postprocess)  # type: ignore[assignment]
        maps = [p.cpu().numpy() for p in resized] if keep_proba else None
        yield ids, masks, maps, class_logits


# ------------------------------------------------------------------ inference API
def segment(
    model: Any,
    images: Any,
    *,
    threshold: float = 0.5,
    postprocess: str | None = None,
    return_proba: bool = False,
    batch_size: int = 16,
    num_workers: int = 0,
    progress: bool | str = False,
) -> SegmentationPrediction:
    """The work of :meth:`~hamkit.segment.LesionSegmenter.segment`: one forward pass, masks at the original sizes."""
    check_options(threshold, postprocess)
    ids: list[str] = []
    masks: list[np.ndarray] = []
    maps: list[np.ndarray] = []
    logits: list[torch.Tensor] = []
    for batch_ids, batch_masks, batch_maps, class_logits in iter_predictions(
        model,
        images,
        threshold=threshold,
        postprocess=postprocess,
        keep_proba=return_proba,
        batch_size=batch_size,
        num_workers=num_workers,
        progress=progress,
    ):
        ids += batch_ids
        masks += batch_masks
        maps += batch_maps or []
        if class_logits is not None:
            logits.append(class_logits)
    class_proba = torch.cat(logits).softmax(1).numpy() if logits else None
    return SegmentationPrediction(ids, masks, maps if return_proba else None, class_proba, model.classes_)


def write_masks(
    model: Any,
    images: Any,
    out_dir: str | os.PathLike[str],
    *,
    threshold: float = 0.5,
    postprocess: str | None = None,
    batch_size: int = 16,
    num_workers: int = 0,
    progress: bool | str = False,
) -> list[Path]:
    """The work of :meth:`~hamkit.segment.LesionSegmenter.write_masks`: masks written batch by batch."""
    check_options(threshold, postprocess)
    mean, std = model.normalisation()
    ids = prepare_inputs(images, image_size=model.image_size, mean=mean, std=std).image_ids
    duplicates = sorted(i for i, count in Counter(ids).items() if count > 1)
    if duplicates:
        raise DataError(
            f"{len(duplicates)} image id(s) occur twice: {', '.join(duplicates[:10])}; their masks "
            "would overwrite each other; rename the files or predict them separately"
        )
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    too_long: list[str] = []
    marker = folder / INCOMPLETE_NOTE
    try:
        for batch_ids, masks, _, _ in iter_predictions(
            model,
            images,
            threshold=threshold,
            postprocess=postprocess,
            keep_proba=False,
            batch_size=batch_size,
            num_workers=num_workers,
            progress=progress,
        ):
            for image_id, mask in zip(batch_ids, masks, strict=True):
                try:
                    written.append(save_mask(mask, folder / f"{image_id}_segmentation.png"))
                except OSError as err:
                    if err.errno != errno.ENAMETOOLONG:
                        raise
                    too_long.append(image_id)
    except (HamkitError, OSError) as err:
        atomic_write_text(
            marker,
            f"incomplete: {len(written)} of {len(ids)} masks were written before this error stopped the run:\n{err}\n",
        )
        raise type(err)(f"{err} ({len(written)} of {len(ids)} masks written; {marker} says so)") from err
    marker.unlink(missing_ok=True)
    if too_long:
        warnings.warn(
            f"{len(too_long)} image(s) got no mask: the name <image id>_segmentation.png is longer than the "
            f"file system allows; shorten their file names: {', '.join(repr(i) for i in too_long[:10])}"
            + (f" and {len(too_long) - 10} more" if len(too_long) > 10 else ""),
            stacklevel=2,
        )
    return written
