"""The training engine shared by :class:`~hamkit.LesionClassifier` and
:class:`~hamkit.LesionSegmenter`: device and mixed precision, the epoch loop with progress bars,
history, best and last checkpoints, early stopping, resume, and torchrun (DDP).

An estimator describes its job with a :class:`~hamkit.engine.trainer.TrainingTask` (how to
compute the loss of a batch, and how to score a validation set); the
:class:`~hamkit.engine.trainer.Trainer` does the rest.

The public names are re-exported here and load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hamkit._lazy import lazy_attributes

_LAZY: dict[str, str] = {
    "TrainConfig": "hamkit.engine.recipe",
    "Trainer": "hamkit.engine.trainer",
    "TrainResult": "hamkit.engine.trainer",
    "TrainingTask": "hamkit.engine.trainer",
    "fit_estimator": "hamkit.engine.fitting",
    "balance_weights": "hamkit.engine.fitting",
    "dataset_labels": "hamkit.engine.fitting",
    "Estimator": "hamkit.engine.estimator",
    "resolve_device": "hamkit.engine.device",
}
__all__ = [
    "Estimator",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingTask",
    "balance_weights",
    "dataset_labels",
    "fit_estimator",
    "resolve_device",
]
__getattr__, __dir__ = lazy_attributes("hamkit.engine", globals(), _LAZY)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from hamkit.engine.device import resolve_device
    from hamkit.engine.estimator import Estimator
    from hamkit.engine.fitting import balance_weights, dataset_labels, fit_estimator
    from hamkit.engine.recipe import TrainConfig
    from hamkit.engine.trainer import Trainer, TrainingTask, TrainResult
