"""The segmenter's inference: masks, lesion maps and the diagnosis head, at original sizes."""

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
from hamkit.engine.device import amp_dtype, autocast, resolve_device
from hamkit.engine.inputs import prepare_inputs, unpack_batch
from hamkit.engine.progress import batch_progress
from hamkit.errors import DataError, HamkitError
from hamkit.postprocess import POSTPROCESS_MODES, postprocess_masks
from hamkit.segment.outputs import SegmentationPrediction, resize_to_sizes, save_mask

__all__ = ["SegmenterInference", "INCOMPLETE_NOTE"]

INCOMPLETE_NOTE = "INCOMPLETE.txt"


class SegmenterInference:
    """Inference methods of :class:`~hamkit.segment.LesionSegmenter` (a mixin: it needs the
    estimator's fitted network, normalisation, ``image_size``, ``device`` and ``classes_``)."""

    image_size: int
    device: str
    classify: bool
    classes_: list[str]
    _check_fitted: Any
    normalisation: Any

    # ------------------------------------------------------------------ inference core
    def _forward(
        self, loader: DataLoader, progress: bool | str = False
    ) -> Iterator[tuple[dict[str, Any], torch.Tensor, torch.Tensor | None]]:
        """Per batch: the batch dict, lesion probabilities ``(N, 1, h, w)`` on the device, CPU class logits."""
        network = self._check_fitted()
        device = resolve_device(self.device)
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

    def _batches(
        self, images: Any, *, batch_size: int, num_workers: int, progress: bool | str = False
    ) -> Iterator[tuple[list[str], list[tuple[int, int]] | None, torch.Tensor, torch.Tensor | None]]:
        """Yield ``(ids, original sizes, lesion probabilities (N, 1, h, w) on the device, class logits)``."""
        self._check_fitted()
        mean, std = self.normalisation()
        inputs = prepare_inputs(images, image_size=self.image_size, mean=mean, std=std)
        loader = DataLoader(
            inputs.dataset,
            batch_size=batch_size,
            shuffle=False,
            num_workers=num_workers,
            pin_memory=resolve_device(self.device).type == "cuda",
        )
        start = 0
        for _, probabilities, class_logits in self._forward(loader, progress):
            n = int(probabilities.shape[0])
            sizes = inputs.original_sizes[start : start + n] if inputs.original_sizes is not None else None
            yield inputs.image_ids[start : start + n], sizes, probabilities, class_logits
            start += n

    @staticmethod
    def _check_options(threshold: float, postprocess: str | None) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise HamkitError(f"threshold must be a probability within 0..1, got {threshold}")
        if postprocess not in POSTPROCESS_MODES:
            raise HamkitError(
                f"unknown postprocess {postprocess!r}; choose one of None, 'largest', 'fill', 'largest+fill'"
            )

    def _iter_predictions(
        self,
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
        for ids, sizes, probabilities, class_logits in self._batches(
            images, batch_size=batch_size, num_workers=num_workers, progress=progress
        ):
            resized = resize_to_sizes(probabilities, sizes)
            masks = [(p > threshold).cpu().numpy() for p in resized]
            if postprocess is not None:
                masks = postprocess_masks(masks, postprocess)  # type: ignore[assignment]
            maps = [p.cpu().numpy() for p in resized] if keep_proba else None
            yield ids, masks, maps, class_logits

    # ------------------------------------------------------------------ inference API
    def segment(
        self,
        images: Any,
        *,
        threshold: float = 0.5,
        postprocess: str | None = None,
        return_proba: bool = False,
        batch_size: int = 16,
        num_workers: int = 0,
        progress: bool | str = False,
    ) -> SegmentationPrediction:
        """Masks, optionally lesion probabilities, and class probabilities, from one forward pass.

        Args:
            images: Paths, a folder, PIL images, uint8 arrays, a preprocessed float tensor, or a
                dataset (see :mod:`hamkit.engine.inputs`).
            threshold: Lesion probability above which a pixel is lesion.
            postprocess: ``None``, ``"largest"`` (largest connected component), ``"fill"`` (fill
                holes) or ``"largest+fill"``; see :mod:`hamkit.postprocess`.
            return_proba: Also return the lesion probability maps.
            batch_size: Inference batch size.
            num_workers: DataLoader workers for decoding.
            progress: A bar over the batches on a terminal (a string names it).

        Returns:
            A :class:`SegmentationPrediction`; ``class_proba`` is set when ``classify=True``.

        Raises:
            DataError: No images, or unreadable ones.
            HamkitError: Not fitted, or a bad ``threshold``/``postprocess``.
        """
        self._check_options(threshold, postprocess)
        ids: list[str] = []
        masks: list[np.ndarray] = []
        maps: list[np.ndarray] = []
        logits: list[torch.Tensor] = []
        for batch_ids, batch_masks, batch_maps, class_logits in self._iter_predictions(
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
        return SegmentationPrediction(ids, masks, maps if return_proba else None, class_proba, self.classes_)

    def predict(
        self,
        images: Any,
        *,
        threshold: float = 0.5,
        postprocess: str | None = None,
        return_proba: bool = False,
        batch_size: int = 16,
        num_workers: int = 0,
        progress: bool | str = False,
    ) -> list[np.ndarray] | tuple[list[np.ndarray], list[np.ndarray]]:
        """Boolean lesion masks, each at its image's original size.

        The lesion probabilities are resized bilinearly from the working size to each image's
        ``(H, W)`` and then thresholded (``mask == probability > threshold`` exactly). Inputs
        without a known original size (a generic ``Dataset``) give masks at the working size;
        a preprocessed tensor gives masks at the tensor's size.

        Args:
            images: Paths, a folder, PIL images, uint8 arrays, a preprocessed float tensor, or a
                dataset (see :mod:`hamkit.engine.inputs`).
            threshold: Lesion probability above which a pixel is lesion.
            postprocess: ``None``, ``"largest"``, ``"fill"`` or ``"largest+fill"``.
            return_proba: Return ``(masks, probability_maps)``; the maps are float32 in 0..1, the
                same sizes, before thresholding and post-processing.
            batch_size: Inference batch size.
            num_workers: DataLoader workers for decoding.
            progress: A bar over the batches on a terminal (a string names it).

        Returns:
            A list of ``(H, W)`` boolean arrays in input order, or ``(masks, maps)``.

        Raises:
            DataError: No images, or unreadable ones.
            HamkitError: Not fitted, or a bad ``threshold``/``postprocess``.
        """
        result = self.segment(
            images,
            threshold=threshold,
            postprocess=postprocess,
            return_proba=return_proba,
            batch_size=batch_size,
            num_workers=num_workers,
            progress=progress,
        )
        if return_proba:
            assert result.probabilities is not None
            return result.masks, result.probabilities
        return result.masks

    def predict_mask_proba(self, images: Any, *, batch_size: int = 16, num_workers: int = 0) -> list[np.ndarray]:
        """Lesion probability maps (float32, 0..1), each at its image's original size."""
        maps = self.segment(images, return_proba=True, batch_size=batch_size, num_workers=num_workers).probabilities
        assert maps is not None
        return maps

    def predict_diagnosis_proba(self, images: Any, *, batch_size: int = 16, num_workers: int = 0) -> np.ndarray:
        """Diagnosis probabilities ``(N, num_classes)`` of the head (``classify=True`` only).

        Raises:
            HamkitError: The model has no classification head.
        """
        if not self.classify:
            raise HamkitError("this LesionSegmenter has no classification head; train it with classify=True")
        proba = self.segment(images, batch_size=batch_size, num_workers=num_workers).class_proba
        assert proba is not None
        return proba

    def predict_diagnosis(self, images: Any, **kwargs: Any) -> np.ndarray:
        """Diagnosis class indices of the head (argmax of :meth:`predict_diagnosis_proba`)."""
        return self.predict_diagnosis_proba(images, **kwargs).argmax(1)

    def write_masks(
        self,
        images: Any,
        out_dir: str | os.PathLike[str],
        *,
        threshold: float = 0.5,
        postprocess: str | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        progress: bool | str = False,
    ) -> list[Path]:
        """Predict and write ``<image_id>_segmentation.png`` (0/255, original size) per image.

        Masks are written batch by batch as they are predicted (memory stays flat), each file
        atomically, in the HAM10000/ISIC naming that :func:`~hamkit.data.images.find_masks` reads.

        Args:
            images: As for :meth:`predict` (paths or a folder give the file stems as ids).
            out_dir: The folder to write to (created).
            threshold: Lesion probability threshold.
            postprocess: As for :meth:`predict`.
            batch_size: Inference batch size.
            num_workers: DataLoader workers for decoding.
            progress: A bar over the batches on a terminal (a string names it).

        Returns:
            The written files, in input order. An image whose mask name is longer than the file
            system allows (``ENAMETOOLONG``) gets no mask: it is skipped, and one warning lists
            every such image.

        Raises:
            DataError: No images, or two images with the same id (they would overwrite each other).
                An image that cannot be read stops the run; the masks written so far stay, and
                ``INCOMPLETE.txt`` in the folder says how many and why (a complete run removes it).
        """
        self._check_options(threshold, postprocess)
        mean, std = self.normalisation()
        ids = prepare_inputs(images, image_size=self.image_size, mean=mean, std=std).image_ids
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
            for batch_ids, masks, _, _ in self._iter_predictions(
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
                f"incomplete: {len(written)} of {len(ids)} masks were written before this "
                f"error stopped the run:\n{err}\n",
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
