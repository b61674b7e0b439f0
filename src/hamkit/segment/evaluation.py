"""The segmenter's evaluation against mask files, and its example panels."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from hamkit.data.dataset import SkinDataset
from hamkit.data.images import image_size_of, read_mask
from hamkit.engine.device import resolve_device
from hamkit.errors import DataError
from hamkit.postprocess import postprocess_masks
from hamkit.seg_metrics import SegmentationReport, confusion_counts_list, report_from_counts
from hamkit.segment.outputs import OriginalSizeMasks, resize_to_sizes

__all__ = ["SegmenterEvaluation"]


class SegmenterEvaluation:
    """Evaluation methods of :class:`~hamkit.segment.LesionSegmenter` (a mixin)."""

    image_size: int
    device: str
    classify: bool
    _check_fitted: Any
    classes_: list[str]
    _as_dataset: Any
    _forward: Any
    _check_options: Any
    predict: Any
    normalisation: Any

    # ------------------------------------------------------------------ evaluation
    def evaluate(
        self,
        data: Any,
        *,
        masks: str | os.PathLike[str] | None = None,
        split_csv: str | os.PathLike[str] | None = None,
        split: str = "test",
        labels: Any = None,
        on_missing: str = "error",
        mask_threshold: int | None = None,
        threshold: float = 0.5,
        postprocess: str | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        progress: bool | str = False,
    ) -> SegmentationReport:
        """Score the segmenter (and its head) on data with masks.

        Predictions are resized to each image's original size and compared with the original
        mask files (read through their palette, size-checked), as ISIC 2018 Task 1 scores. A
        generic torch ``Dataset`` yielding masks is scored at the working size instead
        (``report.resolution == "working"``). Dice and IoU are per image, then averaged; an image
        whose truth and prediction are both empty scores 1.0, one where only one of them is empty
        scores 0.0 (see :mod:`hamkit.seg_metrics`).

        Args:
            data: A ``SkinDataset`` with masks, a data root with ``split_csv`` (``split`` rows),
                or a torch ``Dataset`` yielding ``(image, label, mask)``.
            masks: The masks folder of a data root (default: found under the root).
            split_csv: Split CSV for a data root.
            split: Which split of ``split_csv`` to use.
            labels: For a data root: its labels file or records (default: the HAM10000 metadata).
            on_missing: ``"error"`` or ``"skip"`` images without a mask (listed in
                ``report.skipped``).
            mask_threshold: Grey level above which a pixel of a non-binary mask is lesion.
            threshold: Lesion probability threshold.
            postprocess: As for :meth:`predict`.
            batch_size: Inference batch size.
            num_workers: DataLoader workers (decoding and mask reading).
            progress: A bar over the batches on a terminal (a string names it).

        Returns:
            The :class:`~hamkit.seg_metrics.SegmentationReport`; with ``classify=True`` it holds
            the head's :class:`~hamkit.metrics.ClassificationReport` (over the images with a
            known label) and the per-image class predictions.

        Raises:
            DataError: No masks, a mask of another size than its image, a non-binary mask
                without ``mask_threshold``, or no images.
        """
        self._check_options(threshold, postprocess)
        dataset = self._as_dataset(
            data,
            split=split,
            split_csv=split_csv,
            masks=masks,
            on_missing=on_missing,
            mask_threshold=mask_threshold,
            augment=False,
            cache=None,
            labels=labels,
            classes=self.classes_ if self.classify else None,
        )
        self._check_fitted()
        pin = resolve_device(self.device).type == "cuda"
        skipped = dict(getattr(dataset, "skipped", {}))
        original = isinstance(dataset, SkinDataset)
        if isinstance(dataset, SkinDataset):
            wrapped: Dataset = OriginalSizeMasks(dataset.with_options(with_masks=False), dataset.mask_threshold)
            loader = DataLoader(
                wrapped,
                batch_size=batch_size,
                shuffle=False,
                num_workers=num_workers,
                collate_fn=OriginalSizeMasks.collate,
                pin_memory=pin,
            )
        else:
            loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, pin_memory=pin)
        ids: list[str] = []
        counts: list[np.ndarray] = []
        label_batches: list[torch.Tensor] = []
        logits: list[torch.Tensor] = []
        for batch, probabilities, class_logits in self._forward(loader, progress):
            n = int(probabilities.shape[0])
            if original:
                truths = [np.asarray(t, dtype=bool) for t in batch["truth"]]
                sizes: list[tuple[int, int]] | None = [(t.shape[1], t.shape[0]) for t in truths]
            else:
                if "mask" not in batch:
                    raise DataError("the data yields no masks to evaluate against")
                truths = list((batch["mask"].reshape(n, *batch["mask"].shape[-2:]) > 0.5).numpy())
                sizes = None
            predictions = [(p > threshold).cpu().numpy() for p in resize_to_sizes(probabilities, sizes)]
            if postprocess is not None:
                predictions = postprocess_masks(predictions, postprocess)  # type: ignore[assignment]
            batch_ids = (
                [str(i) for i in batch["image_id"]] if "image_id" in batch else [str(len(ids) + i) for i in range(n)]
            )
            counts.append(confusion_counts_list(predictions, truths, batch_ids))
            ids += batch_ids
            if class_logits is not None:
                logits.append(class_logits)
                label_batches.append(torch.as_tensor(batch.get("label", torch.full((n,), -1))).reshape(-1).cpu())
        if not ids:
            raise DataError("no images to evaluate")
        report = report_from_counts(
            ids,
            np.concatenate(counts),
            threshold=threshold,
            postprocess=postprocess,
            resolution="original" if original else "working",
            classes=self.classes_,
            skipped=skipped,
        )
        if logits:
            proba = torch.cat(logits).softmax(1).numpy()
            report = report.with_classification(
                ids, proba.argmax(1), proba=proba, labels=torch.cat(label_batches).numpy(), classes=self.classes_
            )
        return report

    def plot_examples(
        self,
        data: Any,
        path: str | os.PathLike[str],
        *,
        n: int = 6,
        masks: Any = None,
        split_csv: Any = None,
        split: str = "test",
        threshold: float = 0.5,
        postprocess: str | None = None,
        image_ids: Sequence[str] | None = None,
        title: str | None = None,
        labels: Any = None,
    ) -> Path:
        """Draw input / ground truth / prediction / contour-overlay panels, one row per image.

        The rows are the first ``n`` images of the data, or the images named by ``image_ids``
        (in that order), e.g. the lowest-Dice images of a :class:`SegmentationReport`.

        Args:
            data: A ``SkinDataset`` with masks, or a data root with ``split_csv``.
            path: The PNG to write (atomically).
            n: Number of images (rows).
            masks: The masks folder of a data root.
            split_csv: Split CSV for a data root.
            split: Which split to draw from.
            threshold: Lesion probability threshold.
            postprocess: As for :meth:`predict`.
            image_ids: Draw these images instead of the first ``n``.
            title: Figure title.
            labels: For a data root: its labels file or records (default: the HAM10000 metadata).

        Returns:
            The written path.

        Raises:
            DataError: The data is not a SkinDataset (or root) with masks, or an id of
                ``image_ids`` is not in it.
        """
        from hamkit.data.images import open_image
        from hamkit.figures.panels import segmentation_panels

        dataset = self._as_dataset(
            data,
            split=split,
            split_csv=split_csv,
            masks=masks,
            on_missing="error",
            mask_threshold=None,
            augment=False,
            cache=None,
            labels=labels,
        )
        if not isinstance(dataset, SkinDataset):
            raise DataError("plot_examples needs a SkinDataset with masks (or a data root), to read the originals")
        if image_ids is None:
            chosen = dataset.subset(range(min(n, len(dataset))))
        else:
            position = {image_id: i for i, image_id in enumerate(dataset.image_ids)}
            lacking = [i for i in image_ids if i not in position]
            if lacking:
                raise DataError(f"image(s) not in the {split} data: {', '.join(lacking[:5])}")
            chosen = dataset.subset([position[i] for i in image_ids])
        predicted = self.predict(chosen.with_options(with_masks=False), threshold=threshold, postprocess=postprocess)
        assert isinstance(predicted, list)
        originals = [np.asarray(open_image(s.path)) for s in chosen.samples]
        truths = [
            read_mask(s.mask_path, image_size_of(s.path), chosen.mask_threshold)  # type: ignore[arg-type]
            for s in chosen.samples
        ]
        return segmentation_panels(originals, truths, predicted, path, image_ids=chosen.image_ids, title=title)
