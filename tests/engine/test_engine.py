"""The shared training engine on tiny tensor data (fast, deterministic)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from hamkit.engine.checkpoint import load_model_files, load_training_state
from hamkit.engine.device import amp_dtype, resolve_device
from hamkit.engine.distributed import ShardedSampler
from hamkit.engine.trainer import TrainConfig, Trainer
from hamkit.errors import HamkitError, TrainingError


class ToyTask:
    """Two-class logistic regression: loss = CE, validation = accuracy and loss."""

    def __init__(self, poison_at: int | None = None) -> None:
        self.calls = 0
        self.poison_at = poison_at

    def loss(self, model, batch, device):
        x, y = batch
        self.calls += 1
        out = model(x.to(device)).float()
        loss = nn.functional.cross_entropy(out, y.to(device))
        if self.poison_at is not None and self.calls >= self.poison_at:
            loss = loss * float("nan")
        return loss, len(y)

    def validate(self, model, loader, device, dtype):
        xs, ys = zip(*[(x, y) for x, y in loader], strict=True)
        with torch.no_grad():
            out = model(torch.cat(xs).to(device)).float()
        y = torch.cat(ys)
        return {
            "loss": float(nn.functional.cross_entropy(out, y)),
            "accuracy": float((out.argmax(1) == y).float().mean()),
        }

    def checkpoint_config(self):
        return {"kind": "toy"}


def toy_data(n: int = 96, random_state: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(random_state)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return TensorDataset(x, y)


def model(random_state: int = 0) -> nn.Module:
    torch.manual_seed(random_state)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 2))


def config(**kw) -> TrainConfig:
    base = dict(epochs=4, batch_size=16, lr=0.05, num_workers=0, progress=False, device="cpu", monitor="accuracy")
    base.update(kw)
    return TrainConfig(**base)


def test_device_and_amp_choice():
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    assert amp_dtype(torch.device("cpu")) is None and amp_dtype(torch.device("cpu"), True) == torch.bfloat16
    with pytest.raises(HamkitError, match="unknown device"):
        resolve_device("tpu9")


def test_sampler_is_epoch_seeded_weighted_and_sharded():
    s = ShardedSampler(10, random_state=3)
    s.set_epoch(1)
    first = list(s)
    s.set_epoch(2)
    assert list(s) != first
    s.set_epoch(1)
    assert list(s) == first and sorted(first) == list(range(10))
    ranks = [ShardedSampler(10, random_state=3, rank=r, world_size=3) for r in range(3)]
    shards = [list(r) for r in ranks]
    assert all(len(x) == 4 for x in shards) and set(sum(shards, [])) == set(range(10))
    labels = np.array([0] * 90 + [1] * 10)
    weights = 1.0 / np.bincount(labels)[labels]
    drawn = labels[list(ShardedSampler(100, weights, random_state=0))]
    assert 0.35 < drawn.mean() < 0.65  # the 10% class is drawn about half the time


def test_training_learns_and_writes_history(tmp_path):
    net = model()
    val = toy_data(random_state=1)
    with torch.no_grad():
        untrained = (net.eval()(val.tensors[0]).argmax(1) == val.tensors[1]).float().mean().item()
    result = Trainer(config(out_dir=tmp_path)).fit(net, ToyTask(), toy_data(), val)
    assert len(result.history) == 4
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.best_score == max(h["val_accuracy"] for h in result.history)
    # a linear boundary: measured 0.958 (92 of 96) at epoch 3 (2026-12-06); one more miss is allowed
    assert result.best_score >= 91 / 96 > untrained + 0.2, (result.best_score, untrained)
    saved = json.loads((tmp_path / "history.json").read_text())
    assert [h["epoch"] for h in saved] == [1, 2, 3, 4]
    assert (tmp_path / "history.csv").read_text().splitlines()[0].startswith("epoch,train_loss,val_loss")
    best, cfg = load_model_files(tmp_path / "best")
    assert cfg == {"kind": "toy"}
    for key, value in net.state_dict().items():  # the model holds the best epoch's weights
        assert torch.equal(best[key], value)


def test_early_stopping_and_monitor_validation(tmp_path):
    result = Trainer(config(epochs=30, lr=1e-7, early_stopping=2, monitor="accuracy")).fit(
        model(), ToyTask(), toy_data(), toy_data(random_state=1)
    )
    assert result.stopped_early and len(result.history) == 3 and result.best_epoch == 1
    with pytest.raises(HamkitError, match="monitor='f1' is not a validation metric"):
        Trainer(config(monitor="f1")).fit(model(), ToyTask(), toy_data(), toy_data(random_state=1))


class Interrupt(ToyTask):
    """Simulates Ctrl-C in the middle of an epoch."""

    def __init__(self, at_call: int) -> None:
        super().__init__()
        self.at_call = at_call

    def loss(self, model, batch, device):
        if self.calls + 1 == self.at_call:
            raise KeyboardInterrupt
        return super().loss(model, batch, device)


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path):
    data, val = toy_data(), toy_data(random_state=1)
    straight = model()
    Trainer(config(out_dir=tmp_path / "a")).fit(straight, ToyTask(), data, val)
    with pytest.raises(KeyboardInterrupt):  # 6 batches per epoch: stopped inside epoch 3
        Trainer(config(out_dir=tmp_path / "b")).fit(model(), Interrupt(at_call=15), data, val)
    _, _, state = load_training_state(tmp_path / "b" / "last")
    assert state["epoch"] == 2
    resumed = model(random_state=99)  # whatever the fresh weights, resume loads the checkpoint
    result = Trainer(config(out_dir=tmp_path / "b", resume=True)).fit(resumed, ToyTask(), data, val)
    for key, value in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    history = json.loads((tmp_path / "b" / "history.json").read_text())
    assert [h["train_loss"] for h in history] == [h["train_loss"] for h in result.history]


class Recording(ToyTask):
    """Keeps a copy of the weights after every batch (the loss of batch k sees the weights after k - 1 steps)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, torch.Tensor]] = []

    def loss(self, model, batch, device):
        self.seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return super().loss(model, batch, device)


def test_moving_average_of_the_weights_is_what_is_validated_and_returned(tmp_path):
    data = toy_data()
    task = Recording()
    net = model()
    decay = 0.9
    Trainer(config(epochs=2, ema_decay=decay, out_dir=tmp_path)).fit(net, task, data)  # no val: the last epoch
    final_raw, _, state = load_training_state(tmp_path / "last")
    # the average by hand: the first step's weights, then lerp with min(decay, (1 + t) / (10 + t))
    steps = [*task.seen[1:], final_raw]
    expected = {k: v.clone() for k, v in steps[0].items()}
    for t, weights in enumerate(steps[1:], start=1):
        keep = min(decay, (1 + t) / (10 + t))
        for k in expected:
            expected[k] = expected[k] * keep + weights[k] * (1 - keep)
    assert state["ema_updates"] == len(steps)
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=1e-5, atol=1e-6)
        assert not torch.equal(value, final_raw[key])  # the raw weights are not what is returned
    best, _ = load_model_files(tmp_path / "best")
    assert all(torch.equal(best[k], v) for k, v in net.state_dict().items())


def test_resume_with_a_moving_average_gives_the_same_result(tmp_path):
    data, val = toy_data(), toy_data(random_state=1)
    straight = model()
    first = Trainer(config(out_dir=tmp_path / "a", ema_decay=0.8)).fit(straight, ToyTask(), data, val)
    with pytest.raises(KeyboardInterrupt):
        Trainer(config(out_dir=tmp_path / "b", ema_decay=0.8)).fit(model(), Interrupt(at_call=15), data, val)
    resumed = model(random_state=99)
    again = Trainer(config(out_dir=tmp_path / "b", ema_decay=0.8, resume=True)).fit(resumed, ToyTask(), data, val)
    assert [h["val_accuracy"] for h in again.history] == [h["val_accuracy"] for h in first.history]
    for key, value in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key
    with pytest.raises(KeyboardInterrupt):  # interrupted without an average, resumed with one
        Trainer(config(out_dir=tmp_path / "c")).fit(model(), Interrupt(at_call=15), data, val)
    with pytest.raises(HamkitError, match="kept no moving average"):
        Trainer(config(out_dir=tmp_path / "c", ema_decay=0.8, resume=True)).fit(model(), ToyTask(), data, val)


def batch_normed(random_state: int = 0) -> nn.Module:
    torch.manual_seed(random_state)
    return nn.Sequential(
        nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Linear(8, 2)
    )


def test_frozen_layers_keep_their_weights_and_statistics_and_train_again_afterwards():
    net = batch_normed()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    data, val = toy_data(), toy_data(random_state=1)
    # 5 layers with parameters; 0.5 freezes the first 2: the first Linear and its BatchNorm
    Trainer(config(freeze=0.5)).fit(net, ToyTask(), data, val)
    after = net.state_dict()
    for key in ("0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var"):
        assert torch.equal(after[key], before[key]), key
    for key in ("3.weight", "4.weight", "4.running_mean", "5.weight"):
        assert not torch.equal(after[key], before[key]), key
    assert all(p.requires_grad for p in net.parameters())  # the model leaves as it came
    # without freeze the same first layers move
    free = batch_normed()
    Trainer(config()).fit(free, ToyTask(), data, val)
    assert not torch.equal(free.state_dict()["0.weight"], before["0.weight"])
    assert not torch.equal(free.state_dict()["1.running_mean"], before["1.running_mean"])


def test_layer_rates_rise_from_the_input_to_the_head_and_the_schedule_scales_them_alike():
    from hamkit.engine.trainer import layer_rate_groups

    net = batch_normed()
    groups = layer_rate_groups(net, 0.01, 0.1)
    rates = [g["lr"] for g in groups]
    assert len(groups) == 5 and rates[0] == pytest.approx(0.001) and rates[-1] == pytest.approx(0.01)
    assert all(a < b for a, b in zip(rates, rates[1:], strict=False))  # geometric, input to head
    assert rates[2] == pytest.approx(0.01 * 0.1**0.5)
    assert [len(g["params"]) for g in groups] == [2, 2, 2, 2, 2]
    assert layer_rate_groups(net, 0.01, 1.0) == [{"params": list(net.parameters()), "lr": 0.01}]
    net[0].weight.requires_grad_(False)  # a frozen parameter is left out
    assert len(layer_rate_groups(net, 0.01, 0.1)[0]["params"]) == 1

    # in training: the first layer moves less than with one rate; the history logs the head's rate
    data, val = toy_data(), toy_data(random_state=1)
    moved = {}
    for scale in (1.0, 0.01):
        trained = batch_normed()
        start = trained[0].weight.detach().clone()
        result = Trainer(config(epochs=2, input_lr_scale=scale, scheduler="none")).fit(trained, ToyTask(), data, val)
        moved[scale] = float((trained[0].weight - start).abs().sum())
        assert result.history[0]["lr"] == pytest.approx(config().lr)
    assert moved[0.01] < 0.1 * moved[1.0]


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_checkpoint(tmp_path):
    with pytest.raises(TrainingError, match="loss became nan at epoch 2.*last good checkpoint"):
        Trainer(config(out_dir=tmp_path)).fit(model(), ToyTask(poison_at=8), toy_data(), toy_data(random_state=1))
    _, _, state = load_training_state(tmp_path / "last")
    assert state["epoch"] == 1 and all(math.isfinite(h["train_loss"]) for h in state["history"])


def test_bad_settings_are_rejected():
    for kwargs, message in [
        ({"epochs": 0}, "epochs"),
        ({"optimizer": "lion"}, "unknown optimizer"),
        ({"resume": True}, "needs out_dir"),
    ]:
        with pytest.raises(HamkitError, match=message):
            Trainer(config(**kwargs))
    with pytest.raises(TrainingError, match="empty"):
        Trainer(config()).fit(model(), ToyTask(), TensorDataset(torch.zeros(0, 4), torch.zeros(0).long()))


DDP_SCRIPT = textwrap.dedent("""
    import json, os, sys, torch
    sys.path.insert(0, sys.argv[2])
    from test_engine import ToyTask, config, model, toy_data
    from hamkit.engine.trainer import Trainer

    class WithUnusedLayer(torch.nn.Module):  # like an smp encoder built with a reduced encoder_depth
        def __init__(self):
            super().__init__()
            self.body = model()
            self.unused = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.body(x)

    net = WithUnusedLayer()
    result = Trainer(config(out_dir=sys.argv[1], epochs=3)).fit(net, ToyTask(), toy_data(), toy_data(random_state=1))
    flat = torch.cat([p.detach().flatten() for p in net.parameters()])
    with open(os.path.join(sys.argv[1], f"rank{os.environ['RANK']}.json"), "w") as f:
        json.dump({"params": flat.tolist(), "epochs": len(result.history)}, f)
""")


def test_ddp_on_two_cpu_processes(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            str(tmp_path / "run"),
            os.path.dirname(__file__),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    ranks = [json.loads((tmp_path / "run" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["params"] == ranks[1]["params"]  # DDP kept the replicas identical (unused layer too)
    assert ranks[0]["epochs"] == ranks[1]["epochs"] == 3
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history) == 3 and "val_accuracy" in history[0]  # rank 0 validated and wrote


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("early_stopping", 0),
        ("early_stopping", -1),
        ("weight_decay", -0.1),
        ("grad_clip", 0.0),
        ("num_workers", -2),
        ("ema_decay", 1.0),
        ("ema_decay", -0.5),
        ("freeze", 1.0),
        ("freeze", -0.1),
        ("input_lr_scale", 0.0),
        ("input_lr_scale", 1.5),
    ],
)
def test_train_config_rejects_values_that_would_misbehave_later(field, value):
    from hamkit.engine.trainer import TrainConfig

    with pytest.raises(HamkitError, match=field):
        TrainConfig(**{field: value}).validate()
