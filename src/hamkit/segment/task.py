"""What the shared :class:`~hamkit.engine.trainer.Trainer` needs from the segmenter: loss and validation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from hamkit.engine.device import autocast
from hamkit.engine.inputs import unpack_batch
from hamkit.errors import DataError
from hamkit.metrics import (
    ISIC_JACCARD_THRESHOLD,
    classification_report,
    scores_from_counts,
)
from hamkit.segment.network import SegmentationLoss

__all__ = ["SegmentationTask", "SEG_METRICS", "CLS_METRICS"]

SEG_METRICS = ("loss", "seg_loss", "dice", "iou", "jaccard_isic", "pixel_accuracy")
"""Validation metrics of every segmenter (the working resolution, per epoch)."""
CLS_METRICS = ("cls_loss", "accuracy", "balanced_accuracy", "macro_f1", "melanoma_sensitivity", "joint_score")
"""Validation metrics added by the diagnosis head."""


def _counts(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per-image ``tp, fp, fn, tn`` of boolean ``(N, ...)`` tensors, as an ``(N, 4)`` int64 tensor."""
    p, t = pred.flatten(1), truth.flatten(1)
    tp = (p & t).sum(1)
    fp = p.sum(1) - tp
    fn = t.sum(1) - tp
    return torch.stack([tp, fp, fn, p.shape[1] - tp - fp - fn], 1).long()


class SegmentationTask:
    """The segmenter's loss and validation for the :class:`~hamkit.engine.trainer.Trainer`.

    Args:
        criterion: The segmentation (plus classification) loss.
        classes: Class names of the diagnosis head.
        config: The model config saved with each checkpoint.
        classify: Whether the network has a diagnosis head.
    """

    def __init__(
        self, criterion: SegmentationLoss, classes: Sequence[str], config: dict[str, Any], classify: bool
    ) -> None:
        self.criterion = criterion
        self.classes = list(classes)
        self.config = config
        self.classify = classify

    def _forward(
        self, model: nn.Module, batch: dict[str, Any], device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        if "mask" not in batch:
            raise DataError(
                "the data has no masks; build the SkinDataset with masks= (or pass a data root "
                "holding *_segmentation.png masks)"
            )
        images = batch["image"].to(device, non_blocking=True)
        if device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        masks = batch["mask"].to(device, non_blocking=True)
        if masks.dim() == 3:
            masks = masks.unsqueeze(1)
        labels = batch["label"].to(device, non_blocking=True) if self.classify else None
        mask_logits, class_logits = model(images)
        return mask_logits, class_logits, masks, labels

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, int]:
        """The training loss of one batch and the batch size."""
        mask_logits, class_logits, masks, labels = self._forward(model, unpack_batch(batch), device)
        total, _, _ = self.criterion(mask_logits, masks, class_logits, labels)
        return total, int(masks.shape[0])

    @torch.inference_mode()
    def validate(
        self, model: nn.Module, loader: DataLoader, device: torch.device, dtype: torch.dtype | None
    ) -> dict[str, float]:
        """Validation metrics (:data:`SEG_METRICS`, plus :data:`CLS_METRICS` with a head) over ``loader``."""
        sums = torch.zeros(3, dtype=torch.float64)
        seen = 0
        counts, truths, preds = [], [], []
        for raw in loader:
            batch = unpack_batch(raw)
            with autocast(device, dtype):
                mask_logits, class_logits, masks, labels = self._forward(model, batch, device)
            total, seg, cls = self.criterion(mask_logits, masks, class_logits, labels)
            size = int(masks.shape[0])
            sums += (
                torch.tensor([float(total), float(seg), float(cls) if cls is not None else 0.0], dtype=torch.float64)
                * size
            )
            seen += size
            counts.append(_counts(mask_logits.float() > 0, masks > 0.5).cpu())
            if class_logits is not None and labels is not None:
                truths.append(labels.cpu())
                preds.append(class_logits.float().argmax(1).cpu())
        scores = scores_from_counts(torch.cat(counts).numpy())
        iou = scores["iou"]
        metrics = {
            "loss": float(sums[0]) / seen,
            "seg_loss": float(sums[1]) / seen,
            "dice": float(scores["dice"].mean()),
            "iou": float(iou.mean()),
            "jaccard_isic": float(np.where(iou >= ISIC_JACCARD_THRESHOLD, iou, 0).mean()),
            "pixel_accuracy": float(scores["pixel_accuracy"].mean()),
        }
        if self.classify:
            report = classification_report(torch.cat(truths).numpy(), torch.cat(preds).numpy(), classes=self.classes)
            metrics.update(
                {
                    "cls_loss": float(sums[2]) / seen,
                    "accuracy": report.accuracy,
                    "balanced_accuracy": report.balanced_accuracy,
                    "macro_f1": report.macro["f1"],
                    "melanoma_sensitivity": report.melanoma_sensitivity,
                    "joint_score": (metrics["dice"] + report.balanced_accuracy) / 2,
                }
            )
        return metrics

    def checkpoint_config(self) -> dict[str, Any]:
        """The config written next to each checkpoint's weights."""
        return self.config
