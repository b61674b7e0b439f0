"""Learning-rate schedules of the training loop, with an optional linear warm-up.

Without warm-up the schedule steps once per epoch, as it always has: ``"cosine"`` anneals to
zero over the run, ``"step"`` multiplies by 0.1 at a third and two thirds, ``"none"`` keeps the
rate. With ``warmup_epochs > 0`` the schedule steps after every batch instead: the rate rises
linearly from ``lr / (warm-up steps)`` to ``lr`` over the warm-up, then follows the chosen
schedule over the remaining steps. Fine-tuning pretrained weights profits from it: the new head
starts random, and full-rate updates through it in the first batches disturb the pretrained
layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hamkit.engine.recipe import TrainConfig

__all__ = ["Schedule", "make_schedule"]


@dataclass
class Schedule:
    """A scheduler and when to step it.

    Attributes:
        scheduler: The torch scheduler, or ``None`` for a constant rate.
        per_batch: Step after every batch (``True``) or after every epoch.
    """

    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    per_batch: bool

    def after_batch(self) -> None:
        """Call after each optimiser step."""
        if self.scheduler is not None and self.per_batch:
            self.scheduler.step()

    def after_epoch(self) -> None:
        """Call at the end of each epoch."""
        if self.scheduler is not None and not self.per_batch:
            self.scheduler.step()


def _factor(config: TrainConfig, step: int, total: int, warmup: int) -> float:
    """The rate multiplier after ``step`` optimiser steps of ``total`` (``warmup`` of them warm-up)."""
    if step < warmup:
        return (step + 1) / warmup
    if config.scheduler == "none":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if config.scheduler == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 0.1 ** min(2, int(progress * 3))  # "step": x0.1 at a third and two thirds


def make_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int) -> Schedule:
    """The learning-rate schedule of a run.

    Args:
        optimizer: The run's optimiser.
        config: The recipe (``scheduler``, ``epochs``, ``warmup_epochs``).
        steps_per_epoch: Optimiser steps per epoch (on this process).

    Returns:
        The :class:`Schedule`.

    Examples:
        >>> model = torch.nn.Linear(2, 2)
        >>> opt = torch.optim.SGD(model.parameters(), lr=1.0)
        >>> schedule = make_schedule(opt, TrainConfig(epochs=2, warmup_epochs=1), steps_per_epoch=2)
        >>> rates = []
        >>> for _ in range(4):
        ...     rates.append(round(opt.param_groups[0]["lr"], 3))
        ...     schedule.after_batch()
        >>> rates
        [0.5, 1.0, 1.0, 0.5]
    """
    epochs = config.epochs
    if config.warmup_epochs <= 0:
        if config.scheduler == "cosine":
            return Schedule(torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs), per_batch=False)
        if config.scheduler == "step":
            step_size = max(1, math.ceil(epochs / 3))
            return Schedule(torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=0.1), False)
        return Schedule(None, per_batch=False)
    steps = max(1, int(steps_per_epoch))
    total = steps * epochs
    warmup = max(1, min(total, round(config.warmup_epochs * steps)))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _factor(config, step, total, warmup))
    return Schedule(scheduler, per_batch=True)
