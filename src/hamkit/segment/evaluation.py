"""The work behind the segmenter's evaluation against mask files, and its example panels.

Plain functions of a fitted :class:`~hamkit.segment.LesionSegmenter` (``model``); its public
methods ``evaluate`` and ``plot_examples`` are in its class.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from hamkit._proc import WorkerInit
from hamkit.data.dataset import SkinDataset
from hamkit.data.images import image_size_of, read_mask
from hamkit.engine.device import resolve_device
from hamkit.errors import DataError
from hamkit.metrics import SegmentationReport, confusion_counts_list, report_from_counts
from hamkit.postprocess import postprocess_masks
from hamkit.segment.inference import check_options, forward
from hamkit.segment.outputs import OriginalSizeMasks, resize_to_sizes

__all__ = ["evaluate", "plot_examples"]


# ------------------------------------------------------------------ evaluation
def evaluate(
    model: Any,
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
    """The work of :meth:`~hamkit.segment.LesionSegmenter.evaluate`: predictions scored at the original sizes."""
    check_options(threshold, postprocess)
    dataset = model._as_dataset(
        data,
        split=split,
        split_csv=split_csv,
        masks=masks,
        on_missing=on_missing,
        mask_threshold=mask_threshold,
        augment=False,
        cache=None,
        labels=labels,
        classes=model.classes_ if model.classify else None,
    )
    model._check_fitted()
    pin = resolve_device(model.device).type == "cuda"
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
            worker_init_fn=WorkerInit(),  # the workers die with this process, however it ends
        )
    else:
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=False,
            num_workers=num_workers,
            pin_memory=pin,
            worker_init_fn=WorkerInit(),
        )
    ids: list[str] = []
    counts: list[np.ndarray] = []
    label_batches: list[torch.Tensor] = []
    logits: list[torch.Tensor] = []
    for batch, probabilities, class_logits in forward(model, loader, progress):
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
        classes=model.classes_,
        skipped=skipped,
    )
    if logits:
        proba = torch.cat(logits).softmax(1).numpy()
        report = report.with_classification(
            ids, proba.argmax(1), proba=proba, labels=torch.cat(label_batches).numpy(), classes=model.classes_
        )
    return report


def plot_examples(
    model: Any,
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
    """The work of :meth:`~hamkit.segment.LesionSegmenter.plot_examples`."""
    from hamkit.data.images import open_image
    from hamkit.figures.panels import segmentation_panels

    dataset = model._as_dataset(
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
    predicted = model.predict(chosen.with_options(with_masks=False), threshold=threshold, postprocess=postprocess)
    assert isinstance(predicted, list)
    originals = [np.asarray(open_image(s.path)) for s in chosen.samples]
    truths = [
        read_mask(s.mask_path, image_size_of(s.path), chosen.mask_threshold)  # type: ignore[arg-type]
        for s in chosen.samples
    ]
    return segmentation_panels(originals, truths, predicted, path, image_ids=chosen.image_ids, title=title)
