"""The classifier's loss and validation for the shared trainer, and batched inference."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from hamkit.engine.device import autocast
from hamkit.engine.inputs import unpack_batch
from hamkit.errors import DataError
from hamkit.metrics import classification_report

__all__ = ["ClassificationTask", "collect_logits", "VALIDATION_METRICS"]

VALIDATION_METRICS = ("balanced_accuracy", "accuracy", "macro_f1", "melanoma_sensitivity", "loss")


def _to_device(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    images = images.to(device, non_blocking=True)
    if device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    return images


class ClassificationTask:
    """The classifier's loss and validation for the :class:`~hamkit.engine.trainer.Trainer`.

    Args:
        criterion: The loss (cross-entropy, class-weighted or not).
        classes: Class names, in index order.
        config: The checkpoint config written next to every checkpoint.
    """

    def __init__(self, criterion: nn.Module, classes: Sequence[str], config: dict[str, Any]) -> None:
        self.criterion = criterion
        self.classes = list(classes)
        self.config = config

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, int]:
        """Cross-entropy of one training batch (float32) and its size."""
        batch = unpack_batch(batch)
        labels = batch["label"].to(device, non_blocking=True)
        logits = model(_to_device(batch["image"], device))
        return self.criterion(logits.float(), labels), int(labels.shape[0])

    def validate(
        self, model: nn.Module, loader: DataLoader, device: torch.device, dtype: torch.dtype | None
    ) -> dict[str, float]:
        """Loss, accuracy, balanced accuracy, macro F1 and melanoma sensitivity of a validation set."""
        logits, labels = collect_logits(model, loader, device, dtype, with_labels=True)
        loss = float(nn.functional.cross_entropy(logits, torch.from_numpy(labels)))
        report = classification_report(labels, logits.argmax(1).numpy(), classes=self.classes)
        return {
            "loss": loss,
            "accuracy": report.accuracy,
            "balanced_accuracy": report.balanced_accuracy,
            "macro_f1": report.macro["f1"],
            "melanoma_sensitivity": report.melanoma_sensitivity,
        }

    def checkpoint_config(self) -> dict[str, Any]:
        """The config saved with every checkpoint."""
        return self.config


@torch.inference_mode()
def collect_logits(
    model: nn.Module,
    loader: Iterable[Any],
    device: torch.device,
    dtype: torch.dtype | None,
    *,
    with_labels: bool = False,
    tta: bool = False,
) -> tuple[torch.Tensor, np.ndarray]:
    """Float32 CPU logits (and labels) of every item, in loader order.

    With ``tta`` the probabilities of the image and its horizontal and vertical flips are
    averaged and returned as log-probabilities.
    """
    outputs, labels = [], []
    for raw in loader:
        batch = unpack_batch(raw)
        images = _to_device(batch["image"], device)
        with autocast(device, dtype):
            logits = model(images).float()
            if tta:
                probs = (
                    logits.softmax(1)
                    + model(images.flip(3)).float().softmax(1)
                    + model(images.flip(2)).float().softmax(1)
                )
                logits = (probs / 3).log()
        outputs.append(logits.cpu())
        if with_labels:
            if "label" not in batch:
                raise DataError("the data has no labels to evaluate against")
            labels.append(batch["label"].cpu())
    label_array = torch.cat(labels).numpy() if labels else np.zeros(0, dtype=np.int64)
    return torch.cat(outputs), label_array
