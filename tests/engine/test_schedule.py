"""The learning-rate schedules, with and without warm-up."""

from __future__ import annotations

import math

import pytest
import torch

from hamkit.engine.recipe import TrainConfig
from hamkit.engine.schedule import make_schedule
from hamkit.errors import HamkitError


def _rates(config: TrainConfig, steps_per_epoch: int) -> list[float]:
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=config.lr)
    schedule = make_schedule(optimizer, config, steps_per_epoch)
    rates = []
    for _ in range(config.epochs):
        for _ in range(steps_per_epoch):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            schedule.after_batch()
        schedule.after_epoch()
    return rates


def test_without_warmup_the_schedule_steps_per_epoch_as_before() -> None:
    rates = _rates(TrainConfig(epochs=4, lr=1.0), steps_per_epoch=3)
    per_epoch = rates[::3]
    assert rates == [r for r in per_epoch for _ in range(3)]  # constant within an epoch
    assert per_epoch == pytest.approx([0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)])


def test_warmup_rises_linearly_then_cosine_decays_per_batch() -> None:
    rates = _rates(TrainConfig(epochs=3, lr=1.0, warmup_epochs=1), steps_per_epoch=4)
    assert rates[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    after = rates[4:]
    assert after[0] == pytest.approx(1.0)
    assert all(b < a for a, b in zip(after, after[1:], strict=False))  # strictly decreasing
    assert after[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 8)))


def test_warmup_with_a_constant_or_step_schedule() -> None:
    flat = _rates(TrainConfig(epochs=2, lr=1.0, warmup_epochs=0.5, scheduler="none"), steps_per_epoch=4)
    assert flat == pytest.approx([0.5, 1.0, 1, 1, 1, 1, 1, 1])
    step = _rates(TrainConfig(epochs=4, lr=1.0, warmup_epochs=1, scheduler="step"), steps_per_epoch=3)
    assert step[3:] == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01])


@pytest.mark.parametrize("value", [-1.0, 5.0, math.inf])
def test_warmup_out_of_range_is_refused(value: float) -> None:
    with pytest.raises(HamkitError, match="warmup_epochs must be between 0 and epochs"):
        TrainConfig(epochs=4, warmup_epochs=value).validate()
