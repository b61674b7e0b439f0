"""The epoch loop shared by every hamkit estimator."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from hamkit._cpu import loader_workers
from hamkit._io import atomic_write_text
from hamkit._proc import WorkerInit
from hamkit.engine.checkpoint import (
    STATE_NAME,
    check_resumable,
    load_training_state,
    save_model_files,
    save_training_state,
)
from hamkit.engine.device import amp_dtype, autocast, resolve_device, use_channels_last
from hamkit.engine.distributed import DistributedContext, ShardedSampler
from hamkit.engine.recipe import TrainConfig
from hamkit.engine.schedule import make_schedule
from hamkit.errors import DataError, HamkitError, TrainingError

__all__ = [
    "TrainConfig",
    "TrainingTask",
    "TrainResult",
    "Trainer",
    "set_random_state",
    "default_num_workers",
    "freeze_layers",
    "layer_rate_groups",
    "parameter_layers",
]

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {  # one per settings.OPTIMIZERS
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": lambda params, lr, weight_decay: torch.optim.SGD(
        params, lr=lr, momentum=0.9, weight_decay=weight_decay, nesterov=True
    ),
}


_Tensors = tuple[torch.Tensor, ...] | list[torch.Tensor]


def _ema_update(decay: float) -> Callable[[_Tensors, _Tensors, torch.Tensor | int], None]:
    """The ``multi_avg_fn`` of :class:`torch.optim.swa_utils.AveragedModel` for an exponential
    moving average whose decay starts small, ``min(decay, (1 + t) / (10 + t))`` after ``t``
    updates, so the starting weights (a freshly initialised head) fade out within the run."""

    @torch.no_grad()
    def update(averaged: _Tensors, current: _Tensors, updates: torch.Tensor | int) -> None:
        t = float(updates)
        keep = min(decay, (1.0 + t) / (10.0 + t))
        if averaged[0].is_floating_point():
            torch._foreach_lerp_(averaged, current, 1.0 - keep)
        else:  # integer buffers (BatchNorm's batch counter) follow the model
            for mine, theirs in zip(averaged, current, strict=True):
                mine.copy_(theirs)

    return update


def parameter_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The modules of ``model`` that hold parameters of their own (a convolution, a normalisation,
    a linear layer), in the order the model registers them: from the input towards the head for
    the registry's backbones. ``freeze`` and ``input_lr_scale`` count layers this way."""
    return [m for m in model.modules() if next(m.parameters(recurse=False), None) is not None]


def freeze_layers(model: torch.nn.Module, share: float) -> tuple[list[torch.nn.Module], list[torch.nn.Parameter]]:
    """Stop the gradient of the first ``share`` of ``model``'s layers (the ``freeze`` setting).

    A layer is a module that holds parameters of its own (a convolution, a normalisation, a
    linear layer); they are counted in the order the model registers them, which for the
    backbones of the registry (and segmentation-models-pytorch's encoders, registered before
    their decoders) runs from the input towards the head.

    Args:
        model: The network.
        share: The share of its layers to freeze, ``0 <= share < 1`` (rounded down to whole layers).

    Returns:
        The frozen layers (the trainer keeps them in eval mode, so their batch-norm statistics
        stay as loaded) and the parameters whose ``requires_grad`` was turned off (to turn back
        on after training).

    Examples:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 2, 1))
        >>> layers, params = freeze_layers(net, 0.5)
        >>> [type(m).__name__ for m in layers], [p.requires_grad for p in net.parameters()]
        (['Conv2d'], [False, False, True, True, True, True])
    """
    layers = parameter_layers(model)
    frozen = layers[: int(share * len(layers))]
    params = [p for layer in frozen for p in layer.parameters(recurse=False) if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    return frozen, params


def layer_rate_groups(model: torch.nn.Module, lr: float, input_scale: float = 1.0) -> list[dict[str, Any]]:
    """The optimizer's parameter groups for the ``input_lr_scale`` setting.

    Layers are counted as :func:`freeze_layers` counts them (modules with parameters of their
    own, input first); layer ``k`` of ``n`` trains at ``lr * input_scale ** (1 - k / (n - 1))``,
    so the first at ``lr * input_scale`` and the last (the head) at ``lr``. Parameters that do
    not require a gradient (frozen layers) are left out.

    Args:
        model: The network.
        lr: The head's learning rate.
        input_scale: The first layer's rate as a share of ``lr``, ``0 < input_scale <= 1``.

    Returns:
        One group (``{"params": [...], "lr": rate}``) per layer with trainable parameters, input
        first; a single group at ``lr`` when ``input_scale`` is 1.

    Examples:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 2, 1))
        >>> [round(g["lr"], 4) for g in layer_rate_groups(net, 0.01, 0.25)]
        [0.0025, 0.005, 0.01]
    """
    if input_scale >= 1.0:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]
    layers = parameter_layers(model)
    last = max(1, len(layers) - 1)
    groups = []
    for k, layer in enumerate(layers):
        params = [p for p in layer.parameters(recurse=False) if p.requires_grad]
        if params:
            groups.append({"params": params, "lr": lr * input_scale ** (1.0 - k / last)})
    return groups


def default_num_workers(dataset: Any = None) -> int:
    """DataLoader workers used when none are given.

    Zero for a dataset that reads from a decode cache (a memory-map read is cheaper than handing
    the batch over from a worker process on a small machine); otherwise up to 4, leaving
    one core free for the model.
    """
    if getattr(dataset, "cache", None) is not None:
        return 0
    return loader_workers()


def set_random_state(random_state: int) -> None:
    """Set the state of Python's, NumPy's and torch's global generators."""
    random.seed(random_state)
    np.random.seed(random_state % 2**32)
    torch.manual_seed(random_state)


class TrainingTask(Protocol):
    """What an estimator tells the :class:`Trainer` about its job."""

    def loss(self, model: torch.nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, int]:
        """Forward a training batch; return the mean loss (float32) and the batch size."""
        ...

    def validate(
        self, model: torch.nn.Module, loader: DataLoader, device: torch.device, dtype: torch.dtype | None
    ) -> dict[str, float]:
        """Score a validation set; return metrics by name (including ``"loss"``)."""
        ...

    def checkpoint_config(self) -> dict[str, Any]:
        """The JSON config saved next to every checkpoint (to rebuild the model)."""
        ...


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        history: One dict per epoch: ``epoch``, ``train_loss``, ``val_<metric>``..., ``lr``, ``time``.
        best_epoch: The epoch (1-based) whose weights the model holds now.
        best_score: Its monitored score (NaN without validation data).
        stopped_early: Whether early stopping ended the run.
        out_dir: Where checkpoints and history were written, or ``None``.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = math.nan
    stopped_early: bool = False
    out_dir: Path | None = None


def _readable_errors(batches: Any) -> Any:
    """Iterate ``batches``, turning a DataError re-raised from a DataLoader worker (whose message
    carries the worker's whole traceback) back into its one-line message."""
    iterator = iter(batches)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except DataError as err:
            text = str(err)
            if "Original Traceback" not in text:
                raise
            last = [line for line in text.strip().splitlines() if line.strip()][-1]
            raise DataError(last.split("DataError: ", 1)[-1]) from None
        yield batch


def _history_csv(history: Sequence[dict[str, float]]) -> str:
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return buffer.getvalue()


@dataclass
class _Run:
    """What the steps of one :meth:`Trainer.fit` share: the model and its optimisation, where it
    runs, and the state the epochs update."""

    model: torch.nn.Module
    network: torch.nn.Module  # the model, or its DistributedDataParallel wrapper under torchrun
    task: TrainingTask
    ctx: DistributedContext
    device: torch.device
    dtype: torch.dtype | None
    channels_last: bool
    optimizer: torch.optim.Optimizer
    schedule: Any
    scaler: torch.amp.GradScaler
    out_dir: Path | None
    result: TrainResult
    best_state: dict[str, torch.Tensor] | None = None
    averaged: torch.optim.swa_utils.AveragedModel | None = None  # the moving average (ema_decay)
    frozen: list[torch.nn.Module] = dataclasses.field(default_factory=list)  # layers held in eval mode (freeze)
    unfreeze: list[torch.nn.Parameter] = dataclasses.field(default_factory=list)  # given back their gradient at the end
    start_epoch: int = 0
    bad_epochs: int = 0


def _judged(run: _Run) -> torch.nn.Module:
    """The weights that are validated and kept: the moving average when there is one."""
    return run.model if run.averaged is None else run.averaged.module


class Trainer:
    """Runs the epochs of a :class:`TrainingTask` on a model.

    Handles device placement, mixed precision (loss kept in float32), channels-last, the
    epoch-dependent (optionally class-weighted) sampler, progress bars, NaN/inf detection, the
    learning-rate schedule, gradient clipping, validation and the best checkpoint, early
    stopping, an exponential moving average of the weights (``ema_decay``: validated, kept and
    returned instead of the raw weights), history files, resuming, and torchrun (DDP; rank 0
    validates and writes).

    Args:
        config: The run's settings.
    """

    def __init__(self, config: TrainConfig) -> None:
        config.validate()
        if config.monitor is None:
            config = dataclasses.replace(config, monitor="loss")
        self.config = config

    # -------------------------------------------------------------- building blocks
    def _optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        config = self.config
        groups = layer_rate_groups(model, config.lr, config.input_lr_scale)
        return OPTIMIZERS[config.optimizer](groups, lr=config.lr, weight_decay=config.weight_decay)

    def _is_better(self, score: float, best: float) -> bool:
        if math.isnan(score):
            return False
        if math.isnan(best):
            return True
        return score > best if self.config.monitor_mode == "max" else score < best

    # -------------------------------------------------------------- the loop
    def fit(
        self,
        model: torch.nn.Module,
        task: TrainingTask,
        train: Dataset,
        val: Dataset | None = None,
        sample_weights: Sequence[float] | np.ndarray | None = None,
    ) -> TrainResult:
        """Train ``model`` in place; on return it holds the best weights.

        Args:
            model: The network (moved to the device here).
            task: The estimator's loss and validation.
            train: Training data.
            val: Validation data, or ``None``.
            sample_weights: Per-sample sampling weights (class balancing), or ``None``.

        Returns:
            The :class:`TrainResult`.

        Raises:
            TrainingError: The loss became NaN/inf, or the training data is empty.
            HamkitError: Bad settings or an unusable resume folder.
        """
        from tqdm.auto import tqdm

        cfg = self.config
        if len(train) == 0:  # type: ignore[arg-type]
            raise TrainingError("the training data is empty")
        ctx = DistributedContext.from_env(resolve_device(cfg.device))
        run: _Run | None = None
        try:
            run = self._start(model, task, train, ctx)
            if cfg.resume and run.out_dir is not None and (run.out_dir / "last" / STATE_NAME).is_file():
                self._resume(run)
            sampler, loader, val_loader = self._loaders(run, train, val, sample_weights)
            show = bool(cfg.progress) and ctx.is_main
            label = cfg.progress if isinstance(cfg.progress, str) else "training"
            bars = show and sys.stderr.isatty()
            epochs_bar = tqdm(
                range(run.start_epoch, cfg.epochs),
                desc=f"{label}: epochs",
                unit="epoch",
                disable=not bars,
                initial=run.start_epoch,
                total=cfg.epochs,
            )
            for epoch in epochs_bar:
                started = time.perf_counter()
                sampler.set_epoch(epoch)
                set_random_state(cfg.random_state * 1_000_003 + epoch)  # augmentation etc.: same on resume
                bar = tqdm(
                    loader, desc=f"{label}: epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False, disable=not bars
                )
                row = self._train_epoch(run, bar, epoch)
                metrics: dict[str, float] = {}
                if val_loader is not None:
                    judged = _judged(run)
                    judged.eval()
                    metrics = task.validate(judged, val_loader, run.device, run.dtype)
                metrics = ctx.broadcast(metrics)
                row.update({f"val_{k}": float(v) for k, v in metrics.items()})
                row["lr"] = row.pop("lr")
                row["time"] = time.perf_counter() - started
                run.result.history.append(row)
                if show and not bars:
                    shown = "  ".join(f"{k[4:]} {v:.3f}" for k, v in row.items() if k.startswith("val_"))
                    print(
                        f"{label}: epoch {epoch + 1}/{cfg.epochs}  train loss {row['train_loss']:.3f}  {shown}  "
                        f"{row['time']:.0f} s",
                        file=sys.stderr,
                        flush=True,
                    )
                improved = self._keep_if_better(run, metrics, epoch, validated=val is not None)
                stop = cfg.early_stopping is not None and run.bad_epochs >= cfg.early_stopping
                if run.out_dir is not None and ctx.is_main:
                    self._save(run, epoch, improved)
                ctx.barrier()
                epochs_bar.set_postfix(
                    {k: f"{v:.3f}" for k, v in row.items() if k.startswith("val_")}
                    or {"loss": f"{row['train_loss']:.4f}"}
                )
                if stop:
                    run.result.stopped_early = True
                    break
            if run.best_state is not None:
                model.load_state_dict(run.best_state)
            if run.channels_last and run.device.type == "cpu":  # predict as a loaded model does, bit for bit
                model.to(memory_format=torch.contiguous_format)
            return run.result
        finally:
            if run is not None:  # the model leaves as it came: every layer trainable again
                for param in run.unfreeze:
                    param.requires_grad_(True)
            ctx.close()

    # -------------------------------------------------------------- the loop's steps
    def _start(self, model: torch.nn.Module, task: TrainingTask, train: Dataset, ctx: DistributedContext) -> _Run:
        """Set the random state, place the model, and make the optimizer, schedule and gradient scaler."""
        cfg = self.config
        device = ctx.device_for(resolve_device(cfg.device))
        dtype = amp_dtype(device, cfg.amp)
        channels_last = use_channels_last(model, device) if cfg.channels_last == "auto" else bool(cfg.channels_last)
        set_random_state(cfg.random_state)
        model.to(device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        frozen, unfreeze = freeze_layers(model, float(cfg.freeze)) if cfg.freeze else ([], [])
        optimizer = self._optimizer(model)
        per_rank = math.ceil(len(train) / ctx.world_size)  # type: ignore[arg-type]  # ShardedSampler's length
        schedule = make_schedule(optimizer, cfg, per_rank // cfg.batch_size if per_rank > cfg.batch_size else 1)
        out_dir = Path(cfg.out_dir) if cfg.out_dir is not None else None
        network = model
        if ctx.enabled:
            # static_graph: every step runs the same layers, so DDP learns once which
            # parameters never get a gradient (e.g. the deeper stages of an smp encoder
            # built with a reduced encoder_depth) instead of failing on them
            network = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None, static_graph=True
            )
        averaged = None
        if cfg.ema_decay:
            averaged = torch.optim.swa_utils.AveragedModel(
                model, multi_avg_fn=_ema_update(float(cfg.ema_decay)), use_buffers=True
            )
        return _Run(
            averaged=averaged,
            model=model,
            network=network,
            task=task,
            ctx=ctx,
            device=device,
            dtype=dtype,
            channels_last=channels_last,
            optimizer=optimizer,
            schedule=schedule,
            scaler=torch.amp.GradScaler(device.type, enabled=dtype == torch.float16),
            out_dir=out_dir,
            result=TrainResult(out_dir=out_dir),
            frozen=frozen,
            unfreeze=unfreeze,
        )

    def _resume(self, run: _Run) -> None:
        """Continue from ``out_dir/last``: weights, optimizer, schedule, scaler, history and best epoch."""
        assert run.out_dir is not None
        weights, saved, state = load_training_state(run.out_dir / "last")
        check_resumable(run.out_dir, saved, run.task.checkpoint_config())
        try:
            run.model.load_state_dict(weights)
            run.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise HamkitError(
                f"{run.out_dir / 'last'}: the saved training state does not fit this model "
                f"({str(err).splitlines()[0][:160]}); use another output folder, or drop "
                "--resume to start over"
            ) from err
        scheduler = run.schedule.scheduler
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        run.scaler.load_state_dict(state.get("scaler") or run.scaler.state_dict())
        if run.averaged is not None:
            if "ema" not in state:
                raise HamkitError(
                    f"{run.out_dir / 'last'}: the interrupted run kept no moving average (ema_decay was off); "
                    "resume with the same ema_decay, or use another output folder"
                )
            run.averaged.module.load_state_dict(state["ema"])
            run.averaged.n_averaged.fill_(int(state["ema_updates"]))
        run.start_epoch = int(state["epoch"])
        run.bad_epochs = int(state.get("bad_epochs", 0))
        run.result.history = list(state["history"])
        run.result.best_epoch = int(state["best_epoch"])
        run.result.best_score = float(state["best_score"])
        if (run.out_dir / "best").is_dir():
            from hamkit.engine.checkpoint import load_model_files

            run.best_state = load_model_files(run.out_dir / "best")[0]
        stopped = self.config.early_stopping and run.bad_epochs >= self.config.early_stopping
        if run.start_epoch >= self.config.epochs or stopped:
            run.start_epoch = self.config.epochs  # the interrupted run had finished: nothing to do

    def _loaders(
        self, run: _Run, train: Dataset, val: Dataset | None, sample_weights: Sequence[float] | np.ndarray | None
    ) -> tuple[ShardedSampler, DataLoader, DataLoader | None]:
        """The epoch-dependent (optionally weighted, sharded) sampler and the training and validation loaders."""
        cfg = self.config
        workers = default_num_workers(train) if cfg.num_workers is None else cfg.num_workers
        sampler = ShardedSampler(
            len(train),  # type: ignore[arg-type]  # map-style datasets have a length
            None if sample_weights is None else torch.as_tensor(np.asarray(sample_weights), dtype=torch.float64),
            random_state=cfg.random_state,
            rank=run.ctx.rank,
            world_size=run.ctx.world_size,
        )
        common: dict[str, Any] = {
            "batch_size": cfg.batch_size,
            "num_workers": workers,
            "pin_memory": run.device.type == "cuda",
            "persistent_workers": workers > 0,
        }
        # a last batch of one image breaks BatchNorm in training: drop the incomplete last batch
        # (the next epoch draws another order, so no image is always left out)
        # worker_init_fn: the workers die with this process, however it ends
        loader = DataLoader(
            train, sampler=sampler, drop_last=len(sampler) > cfg.batch_size, worker_init_fn=WorkerInit(), **common
        )
        val_loader = (
            DataLoader(val, shuffle=False, worker_init_fn=WorkerInit(), **common)
            if val is not None and run.ctx.is_main
            else None
        )
        return sampler, loader, val_loader

    def _train_epoch(self, run: _Run, batches: Any, epoch: int) -> dict[str, float]:
        """One pass over the training batches: ``{"epoch", "train_loss", "lr"}`` (the rate the epoch used)."""
        cfg = self.config
        run.model.train()
        for layer in run.frozen:  # frozen batch norms keep their loaded statistics
            layer.eval()
        total = torch.zeros((), dtype=torch.float64, device=run.device)
        seen = 0
        for step, batch in enumerate(_readable_errors(batches)):
            with autocast(run.device, run.dtype):
                loss, size = run.task.loss(run.network, batch, run.device)
            value = float(loss.detach())
            if not math.isfinite(value):
                where = f" The last good checkpoint is {run.out_dir / 'last'}." if run.out_dir and epoch else ""
                raise TrainingError(
                    f"the training loss became {value} at epoch {epoch + 1}, batch {step + 1}."
                    f"{where} Lower the learning rate (now {cfg.lr:g}) or set grad_clip."
                )
            run.optimizer.zero_grad(set_to_none=True)
            run.scaler.scale(loss).backward()
            if cfg.grad_clip is not None:
                run.scaler.unscale_(run.optimizer)
                torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
            run.scaler.step(run.optimizer)
            run.scaler.update()
            if run.averaged is not None:
                run.averaged.update_parameters(run.model)
            run.schedule.after_batch()
            total += loss.detach().double() * size
            seen += size
            batches.set_postfix(loss=f"{value:.4f}")
        lr = run.optimizer.param_groups[-1]["lr"]  # the head's rate (the last group; see input_lr_scale)
        run.schedule.after_epoch()
        return {"epoch": epoch + 1, "train_loss": run.ctx.mean(float(total) / max(seen, 1)), "lr": lr}

    def _keep_if_better(self, run: _Run, metrics: dict[str, float], epoch: int, *, validated: bool) -> bool:
        """Remember the epoch's weights when its monitored score is the best so far (every epoch
        without validation); count the epochs without improvement. Returns whether it improved."""
        cfg = self.config
        score = float(metrics.get(cfg.monitor or "", math.nan)) if validated else math.nan
        if validated and cfg.monitor not in metrics:
            raise HamkitError(
                f"monitor={cfg.monitor!r} is not a validation metric; choose one of {', '.join(sorted(metrics))}"
            )
        improved = not validated or self._is_better(score, run.result.best_score)
        if improved:
            run.result.best_epoch, run.result.best_score, run.bad_epochs = epoch + 1, score, 0
            run.best_state = {k: v.detach().to("cpu", copy=True) for k, v in _judged(run).state_dict().items()}
        else:
            run.bad_epochs += 1
        return improved

    def _save(self, run: _Run, epoch: int, improved: bool) -> None:
        """Write ``best/`` (when the epoch improved), ``last/`` with everything a resume needs, and the history."""
        assert run.out_dir is not None
        config = run.task.checkpoint_config()
        if improved:
            save_model_files(run.out_dir / "best", run.best_state, config)  # type: ignore[arg-type]
        scheduler = run.schedule.scheduler
        save_training_state(
            run.out_dir / "last",
            run.model,
            config,
            {
                "optimizer": run.optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else {},
                "scaler": run.scaler.state_dict(),
                "epoch": epoch + 1,
                "bad_epochs": run.bad_epochs,
                "history": run.result.history,
                "best_epoch": run.result.best_epoch,
                "best_score": run.result.best_score,
                **(
                    {}
                    if run.averaged is None
                    else {
                        "ema": {k: v.detach().to("cpu") for k, v in run.averaged.module.state_dict().items()},
                        "ema_updates": int(run.averaged.n_averaged),
                    }
                ),
            },
        )
        self.write_history(run.out_dir, run.result.history)

    @staticmethod
    def write_history(out_dir: Path, history: Sequence[dict[str, float]]) -> None:
        """Write ``history.csv`` and ``history.json`` into ``out_dir`` (atomically)."""
        atomic_write_text(out_dir / "history.json", json.dumps(list(history), indent=1) + "\n")
        atomic_write_text(out_dir / "history.csv", _history_csv(history))
