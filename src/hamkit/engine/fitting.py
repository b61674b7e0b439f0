"""The one fit skeleton of every hamkit estimator, and class balancing.

An estimator's ``fit`` turns its inputs into datasets and then calls :func:`fit_estimator`
with its training task; everything else (the recipe, label checks, class balancing, the network
initialised from the random state, the :class:`~hamkit.engine.trainer.Trainer`, the fitted attributes) happens here, the
same way for the classifier and the segmenter.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from hamkit.backbones.registry import describe_initial_weights
from hamkit.engine.device import resolve_device
from hamkit.engine.inputs import unpack_batch
from hamkit.engine.recipe import TrainConfig
from hamkit.engine.trainer import Trainer, TrainingTask, TrainResult
from hamkit.errors import DataError

__all__ = ["dataset_labels", "balance_weights", "check_labels", "fit_estimator", "warn_one_class"]


def dataset_labels(dataset: Dataset) -> np.ndarray:
    """The class index of every item of a dataset.

    Uses a ``labels`` or ``targets`` attribute when there is one (``SkinDataset``, torchvision
    ``ImageFolder``, a ``TensorDataset`` of images and labels), otherwise reads every item once.
    """
    for name in ("labels", "targets"):
        values = getattr(dataset, name, None)
        if values is not None:
            return np.asarray(values, dtype=np.int64)
    tensors = getattr(dataset, "tensors", None)
    if isinstance(tensors, tuple) and len(tensors) > 1:
        return np.asarray(tensors[1], dtype=np.int64)
    return np.array(
        [int(unpack_batch(dataset[i])["label"]) for i in range(len(dataset))],  # type: ignore[arg-type]
        dtype=np.int64,
    )


def balance_weights(labels: np.ndarray, num_classes: int, *, power: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-frequency weights for class balancing.

    Args:
        labels: Class index per training sample.
        num_classes: Number of classes.
        power: The sampling weight of a sample is ``1 / count ** power`` of its class: ``1``
            draws every class equally often, ``0.5`` each class in proportion to the square root
            of its size (``class_balance="sqrt"``).

    Returns:
        ``(per_sample, per_class)``: sampling weight per sample (``1 / count ** power`` of its
        class) and loss weight per class (``n / (K * count)``, mean 1 over the ``K`` classes
        present; 0 for absent classes).

    Examples:
        >>> per_sample, per_class = balance_weights(np.array([0, 0, 0, 1]), 2)
        >>> per_sample.tolist(), per_class.tolist()
        ([0.3333333333333333, 0.3333333333333333, 0.3333333333333333, 1.0], [0.6666666666666666, 2.0])
        >>> per_sample, _ = balance_weights(np.array([0, 0, 0, 0, 1]), 2, power=0.5)
        >>> per_sample.tolist()  # class 0 drawn 4 x 0.5 = 2 times as often as class 1
        [0.5, 0.5, 0.5, 0.5, 1.0]
    """
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    per_class = np.zeros(num_classes)
    per_class[present] = labels.size / (present.sum() * counts[present])
    per_sample = 1.0 / counts[labels] ** power
    return per_sample, per_class


def check_labels(labels: np.ndarray, num_classes: int, what: str) -> np.ndarray:
    """Refuse labels outside ``0..num_classes-1`` (and an empty training set), in one line."""
    if labels.size == 0 and what == "training":
        raise DataError("the training split is empty")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"the {what} data has labels {sorted(set(labels.tolist()))[:10]} but num_classes={num_classes}; "
            f"every image needs a class 0..{num_classes - 1}: set num_classes to match the data"
        )
    return labels


def warn_one_class(labels: np.ndarray, names: Any = None) -> bool:
    """Warn, in one line, when the training labels hold a single class: the network can only learn
    to answer that class, which no score on other data would show until too late.

    Args:
        labels: Class index per training item.
        names: Class names by index (for the message), or ``None``.

    Returns:
        Whether it warned.

    Examples:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_one_class(np.array([1, 1, 1]), ["mel", "nv"])
        True
        >>> str(caught[0].message).split(":")[0]
        'the training data holds one class only (nv, 3 images)'
    """
    present = np.unique(labels)
    if present.size != 1:
        return False
    index = int(present[0])
    name = str(names[index]) if names is not None and index < len(names) else f"class {index}"
    warnings.warn(
        f"the training data holds one class only ({name}, {labels.size} images): the model can only learn to "
        "answer that class; check the metadata and the split (every class needs training images)",
        stacklevel=3,
    )
    return True


class _Fittable(Protocol):
    classes_: list[str]
    pretrained: Any
    weights: Any
    device: str

    def _build(self, *, pretrained: Any, weights: Any) -> nn.Module: ...


def fit_estimator(
    estimator: _Fittable,
    recipe: TrainConfig,
    train: Dataset,
    val: Dataset | None,
    make_task: Callable[[torch.Tensor | None], TrainingTask],
    *,
    balance: bool,
) -> TrainResult:
    """Train ``estimator``'s network by ``recipe`` and set its fitted attributes.

    Args:
        estimator: The estimator (it builds its network with ``_build``).
        recipe: The run's settings, with ``monitor`` resolved.
        train: Training data.
        val: Validation data, or ``None``.
        make_task: Builds the estimator's :class:`~hamkit.engine.trainer.TrainingTask` from the
            class weights of the loss (``None`` unless ``class_balance="loss"``).
        balance: Whether the data has class labels to check and to balance by
            (``recipe.class_balance``); a segmenter without a diagnosis head has none.

    Returns:
        The trainer's :class:`~hamkit.engine.trainer.TrainResult`.

    Sets ``network_``, ``history_``, ``best_epoch_``, ``stopped_early_``, ``skipped_``,
    ``recipe_`` and, with labels, ``class_prior_`` (training class frequencies).
    """
    trainer = Trainer(recipe)  # checks the recipe before any data is read
    fitted: Any = estimator
    fitted.recipe_ = recipe  # recorded in the checkpoints the trainer writes
    sample_weights = None
    class_weights = None
    if balance:
        count = len(estimator.classes_)
        labels = check_labels(dataset_labels(train), count, "training")
        warn_one_class(labels, getattr(estimator, "classes_", None))
        if val is not None:
            check_labels(dataset_labels(val), count, "validation")
        power = 0.5 if recipe.class_balance == "sqrt" else 1.0
        per_sample, per_class = balance_weights(labels, count, power=power)
        if recipe.class_balance in ("sampler", "sqrt"):
            sample_weights = per_sample
        elif recipe.class_balance == "loss":
            class_weights = torch.tensor(per_class, dtype=torch.float32, device=resolve_device(recipe.device))
        estimator.class_prior_ = np.bincount(labels, minlength=count) / labels.size  # type: ignore[attr-defined]
    torch.manual_seed(recipe.random_state)  # the head's initialisation is fixed by the random state
    network = estimator._build(pretrained=estimator.pretrained, weights=estimator.weights)
    fitted.initial_weights_ = describe_initial_weights(
        fitted.backbone, pretrained=estimator.pretrained, weights=estimator.weights
    )
    result = trainer.fit(network, make_task(class_weights), train, val, sample_weights=sample_weights)
    fitted.network_ = network.eval()
    fitted.history_ = result.history
    fitted.best_epoch_ = result.best_epoch
    fitted.stopped_early_ = result.stopped_early
    fitted.skipped_ = {**getattr(train, "skipped", {}), **getattr(val, "skipped", {})}
    return result
