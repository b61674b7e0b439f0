"""The classifier's inference: probabilities, decisions, evaluation and the scikit-learn score."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from hamkit.classify.task import collect_logits
from hamkit.engine.device import amp_dtype, resolve_device
from hamkit.engine.inputs import prepare_inputs
from hamkit.engine.progress import batch_progress
from hamkit.errors import DataError
from hamkit.metrics import ClassificationReport, classification_report

__all__ = ["ClassifierInference"]


class ClassifierInference:
    """Inference methods of :class:`~hamkit.classify.LesionClassifier` (a mixin: it needs the
    estimator's fitted network, normalisation, ``image_size``, ``device`` and ``classes_``)."""

    image_size: int
    num_classes: int | None
    device: str
    classes_: list[str]
    _check_fitted: Any
    normalisation: Any
    _as_dataset: Any

    # ------------------------------------------------------------------ inference
    def predict_proba(
        self,
        images: Any,
        *,
        batch_size: int = 64,
        tta: bool = False,
        num_workers: int = 0,
        progress: bool | str = False,
    ) -> np.ndarray:
        """Class probabilities ``(N, num_classes)``.

        Args:
            images: Paths, a folder, PIL images, uint8 arrays, a preprocessed float tensor, or a
                dataset (see :mod:`hamkit.engine.inputs`).
            batch_size: Inference batch size.
            tta: Average over the image and its horizontal and vertical flips.
            num_workers: DataLoader workers for decoding.
            progress: A bar over the batches on a terminal (a string names it).

        Returns:
            Probabilities, rows summing to 1, in input order.
        """
        logits, _ = self._logits(images, batch_size=batch_size, tta=tta, num_workers=num_workers, progress=progress)
        return self._proba(logits)

    def _proba(self, logits: torch.Tensor) -> np.ndarray:
        return (logits / float(getattr(self, "temperature_", 1.0))).softmax(1).numpy()

    def predict(self, images: Any, **kwargs: Any) -> np.ndarray:
        """Predicted class indices: :meth:`decide` on :meth:`predict_proba`.

        Before :meth:`calibrate` this is the argmax of the probabilities; after it, the
        decision rule chosen on validation data.
        """
        return self.decide(self.predict_proba(images, **kwargs))

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """Class decisions from probabilities returned by :meth:`predict_proba`.

        ``argmax(log(proba) + class_offsets_)``; without :meth:`calibrate` the offsets are 0 and
        this is the plain argmax. It is the one decision path: :meth:`predict`, :meth:`evaluate`,
        ``hamkit predict``, ``hamkit evaluate`` and ``hamkit run`` all decide through it, and the
        ONNX export's preprocessing file writes the same formula down.

        Args:
            proba: ``(N, num_classes)`` probabilities.

        Returns:
            ``N`` class indices.
        """
        scores = np.log(np.clip(np.asarray(proba, dtype=np.float64), 1e-12, None))
        offsets = getattr(self, "class_offsets_", None)
        return (scores + offsets if offsets is not None else scores).argmax(1)

    def _check_labels(self, labels: np.ndarray) -> None:
        count = len(self.classes_)
        if labels.size and (labels.min() < 0 or labels.max() >= count):
            raise DataError(
                f"needs labelled data with class indices 0..{count - 1}; got labels {sorted(set(labels.tolist()))[:8]}"
            )

    def _logits(
        self,
        images: Any,
        *,
        batch_size: int,
        tta: bool,
        num_workers: int,
        with_labels: bool = False,
        progress: bool | str = False,
    ) -> tuple[torch.Tensor, np.ndarray]:
        network = self._check_fitted()
        mean, std = self.normalisation()
        inputs = prepare_inputs(images, image_size=self.image_size, mean=mean, std=std)
        device = resolve_device(self.device)
        network.to(device).eval()
        loader: Any
        if isinstance(inputs.dataset, TensorDataset):  # already in memory: slice, do not re-stack
            tensors = inputs.dataset.tensors
            images = tensors[0]
            loader = [
                {
                    "image": images[i : i + batch_size],
                    **({"label": tensors[1][i : i + batch_size]} if len(tensors) > 1 else {}),
                }
                for i in range(0, len(images), batch_size)
            ]
        else:
            loader = DataLoader(
                inputs.dataset,
                batch_size=batch_size,
                shuffle=False,
                num_workers=num_workers,
                pin_memory=device.type == "cuda",
            )
        batches = batch_progress(loader, progress=progress, total=len(loader))
        return collect_logits(network, batches, device, amp_dtype(device), with_labels=with_labels, tta=tta)

    def evaluate(
        self,
        data: Any,
        *,
        split_csv: str | os.PathLike[str] | None = None,
        split: str = "test",
        labels: Any = None,
        batch_size: int = 64,
        tta: bool = False,
        num_workers: int = 0,
        progress: bool | str = False,
    ) -> ClassificationReport:
        """Score the classifier on labelled data.

        Args:
            data: A labelled ``SkinDataset``, a data root with ``split_csv`` (``split`` rows are
                used), or a torch ``Dataset`` yielding labels.
            split_csv: Split CSV for a data root.
            split: Which split of ``split_csv`` to use.
            labels: For a data root: its labels file or records (any format
                :func:`~hamkit.data.metadata.read_labels` reads); every label must be one of the
                model's classes (a data set with fewer classes is fine).
            batch_size: Inference batch size.
            tta: Flip test-time augmentation.
            num_workers: DataLoader workers.
            progress: A bar over the batches on a terminal (a string names it).

        Returns:
            The :class:`~hamkit.metrics.ClassificationReport`.
        """
        dataset = self._as_dataset(
            data, split=split, split_csv=split_csv, augment=False, cache=None, labels=labels, classes=self.classes_
        )
        logits, labels = self._logits(
            dataset, batch_size=batch_size, tta=tta, num_workers=num_workers, with_labels=True, progress=progress
        )
        self._check_labels(labels)
        proba = self._proba(logits)
        return classification_report(labels, self.decide(proba), proba, classes=self.classes_)

    def score(self, images: Any, labels: Any, **kwargs: Any) -> float:
        """Balanced accuracy of :meth:`predict` on ``images`` against integer ``labels`` (the
        ISIC 2018 Task 3 metric; scikit-learn's ``GridSearchCV`` and ``cross_validate`` use it)."""
        from sklearn.metrics import balanced_accuracy_score

        return float(balanced_accuracy_score(np.asarray(labels), self.predict(images, **kwargs)))
