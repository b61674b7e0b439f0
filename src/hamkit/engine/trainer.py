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

__all__ = ["TrainConfig", "TrainingTask", "TrainResult", "Trainer", "seed_everything", "default_num_workers"]

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {  # one per settings.OPTIMIZERS
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": lambda params, lr, weight_decay: torch.optim.SGD(
        params, lr=lr, momentum=0.9, weight_decay=weight_decay, nesterov=True
    ),
}


def default_num_workers(dataset: Any = None) -> int:
    """DataLoader workers used when none are given.

    Zero for a dataset that reads from a decode cache (a memory-map read is cheaper than handing
    the batch over from a worker process on a small machine); otherwise up to 4, leaving
    one core free for the model.
    """
    if getattr(dataset, "cache", None) is not None:
        return 0
    return loader_workers()


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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


class Trainer:
    """Runs the epochs of a :class:`TrainingTask` on a model.

    Handles device placement, mixed precision (loss kept in float32), channels-last, the
    epoch-seeded (optionally class-weighted) sampler, progress bars, NaN/inf detection, the
    learning-rate schedule, gradient clipping, validation and the best checkpoint, early
    stopping, history files, resuming, and torchrun (DDP; rank 0 validates and writes).

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
        params = [p for p in model.parameters() if p.requires_grad]
        return OPTIMIZERS[self.config.optimizer](params, lr=self.config.lr, weight_decay=self.config.weight_decay)

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
        device = resolve_device(cfg.device)
        ctx = DistributedContext.from_env(device)
        try:
            device = ctx.device_for(device)
            dtype = amp_dtype(device, cfg.amp)
            channels_last = use_channels_last(model, device) if cfg.channels_last == "auto" else bool(cfg.channels_last)
            seed_everything(cfg.seed)
            model.to(device)
            if channels_last:
                model.to(memory_format=torch.channels_last)
            optimizer = self._optimizer(model)
            per_rank = math.ceil(len(train) / ctx.world_size)  # type: ignore[arg-type]  # ShardedSampler's length
            schedule = make_schedule(optimizer, cfg, per_rank // cfg.batch_size if per_rank > cfg.batch_size else 1)
            scheduler = schedule.scheduler
            scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
            out_dir = Path(cfg.out_dir) if cfg.out_dir is not None else None
            result = TrainResult(out_dir=out_dir)
            best_state: dict[str, torch.Tensor] | None = None
            start_epoch, bad_epochs = 0, 0

            if cfg.resume and out_dir is not None and (out_dir / "last" / STATE_NAME).is_file():
                weights, saved, state = load_training_state(out_dir / "last")
                check_resumable(out_dir, saved, task.checkpoint_config())
                try:
                    model.load_state_dict(weights)
                    optimizer.load_state_dict(state["optimizer"])
                except (RuntimeError, ValueError, KeyError) as err:
                    raise HamkitError(
                        f"{out_dir / 'last'}: the saved training state does not fit this model "
                        f"({str(err).splitlines()[0][:160]}); use another output folder, or drop "
                        "--resume to start over"
                    ) from err
                if scheduler is not None and state.get("scheduler"):
                    scheduler.load_state_dict(state["scheduler"])
                scaler.load_state_dict(state.get("scaler") or scaler.state_dict())
                start_epoch = int(state["epoch"])
                bad_epochs = int(state.get("bad_epochs", 0))
                result.history = list(state["history"])
                result.best_epoch = int(state["best_epoch"])
                result.best_score = float(state["best_score"])
                if (out_dir / "best").is_dir():
                    from hamkit.engine.checkpoint import load_model_files

                    best_state = load_model_files(out_dir / "best")[0]
                if start_epoch >= cfg.epochs or (cfg.early_stopping and bad_epochs >= cfg.early_stopping):
                    start_epoch = cfg.epochs  # the interrupted run had finished: nothing to do

            network = model
            if ctx.enabled:
                # static_graph: every step runs the same layers, so DDP learns once which
                # parameters never get a gradient (e.g. the deeper stages of an smp encoder
                # built with a reduced encoder_depth) instead of failing on them
                network = torch.nn.parallel.DistributedDataParallel(
                    model, device_ids=[device.index] if device.type == "cuda" else None, static_graph=True
                )
            workers = default_num_workers(train) if cfg.num_workers is None else cfg.num_workers
            sampler = ShardedSampler(
                len(train),  # type: ignore[arg-type]  # map-style datasets have a length
                None if sample_weights is None else torch.as_tensor(np.asarray(sample_weights), dtype=torch.float64),
                seed=cfg.seed,
                rank=ctx.rank,
                world_size=ctx.world_size,
            )
            # a last batch of one image breaks BatchNorm in training: drop the incomplete last batch
            # (the next epoch draws another order, so no image is always left out)
            loader = DataLoader(
                train,
                batch_size=cfg.batch_size,
                sampler=sampler,
                num_workers=workers,
                pin_memory=device.type == "cuda",
                persistent_workers=workers > 0,
                drop_last=len(sampler) > cfg.batch_size,
                worker_init_fn=WorkerInit(),  # the workers die with this process, however it ends
            )
            val_loader = None
            if val is not None and ctx.is_main:
                val_loader = DataLoader(
                    val,
                    batch_size=cfg.batch_size,
                    shuffle=False,
                    num_workers=workers,
                    pin_memory=device.type == "cuda",
                    persistent_workers=workers > 0,
                    worker_init_fn=WorkerInit(),
                )

            show = bool(cfg.progress) and ctx.is_main
            label = cfg.progress if isinstance(cfg.progress, str) else "training"
            bars = show and sys.stderr.isatty()
            epochs_bar = tqdm(
                range(start_epoch, cfg.epochs),
                desc=f"{label}: epochs",
                unit="epoch",
                disable=not bars,
                initial=start_epoch,
                total=cfg.epochs,
            )
            for epoch in epochs_bar:
                started = time.perf_counter()
                sampler.set_epoch(epoch)
                seed_everything(cfg.seed * 1_000_003 + epoch)  # augmentation etc.: same on resume
                model.train()
                total = torch.zeros((), dtype=torch.float64, device=device)
                seen = 0
                bar = tqdm(
                    loader, desc=f"{label}: epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False, disable=not bars
                )
                for step, batch in enumerate(_readable_errors(bar)):
                    with autocast(device, dtype):
                        loss, size = task.loss(network, batch, device)
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        where = f" The last good checkpoint is {out_dir / 'last'}." if out_dir and epoch else ""
                        raise TrainingError(
                            f"the training loss became {value} at epoch {epoch + 1}, batch {step + 1}."
                            f"{where} Lower the learning rate (now {cfg.lr:g}) or set grad_clip."
                        )
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    if cfg.grad_clip is not None:
                        scaler.unscale_(optimizer)
                        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    scaler.step(optimizer)
                    scaler.update()
                    schedule.after_batch()
                    total += loss.detach().double() * size
                    seen += size
                    bar.set_postfix(loss=f"{value:.4f}")
                lr = optimizer.param_groups[0]["lr"]
                schedule.after_epoch()
                row: dict[str, float] = {"epoch": epoch + 1, "train_loss": ctx.mean(float(total) / max(seen, 1))}
                metrics: dict[str, float] = {}
                if val_loader is not None:
                    model.eval()
                    metrics = task.validate(model, val_loader, device, dtype)
                metrics = ctx.broadcast(metrics)
                row.update({f"val_{k}": float(v) for k, v in metrics.items()})
                row["lr"] = lr
                row["time"] = time.perf_counter() - started
                result.history.append(row)
                if show and not bars:
                    shown = "  ".join(f"{k[4:]} {v:.3f}" for k, v in row.items() if k.startswith("val_"))
                    print(
                        f"{label}: epoch {epoch + 1}/{cfg.epochs}  train loss {row['train_loss']:.3f}  {shown}  "
                        f"{row['time']:.0f} s",
                        file=sys.stderr,
                        flush=True,
                    )

                score = float(metrics.get(cfg.monitor or "", math.nan)) if val is not None else math.nan
                if val is not None and cfg.monitor not in metrics:
                    raise HamkitError(
                        f"monitor={cfg.monitor!r} is not a validation metric; "
                        f"choose one of {', '.join(sorted(metrics))}"
                    )
                improved = val is None or self._is_better(score, result.best_score)
                if improved:
                    result.best_epoch, result.best_score, bad_epochs = epoch + 1, score, 0
                    best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                else:
                    bad_epochs += 1
                stop = cfg.early_stopping is not None and bad_epochs >= cfg.early_stopping
                if out_dir is not None and ctx.is_main:
                    config = task.checkpoint_config()
                    if improved:
                        save_model_files(out_dir / "best", best_state, config)  # type: ignore[arg-type]
                    save_training_state(
                        out_dir / "last",
                        model,
                        config,
                        {
                            "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict() if scheduler is not None else {},
                            "scaler": scaler.state_dict(),
                            "epoch": epoch + 1,
                            "bad_epochs": bad_epochs,
                            "history": result.history,
                            "best_epoch": result.best_epoch,
                            "best_score": result.best_score,
                        },
                    )
                    self.write_history(out_dir, result.history)
                ctx.barrier()
                epochs_bar.set_postfix(
                    {k: f"{v:.3f}" for k, v in row.items() if k.startswith("val_")}
                    or {"loss": f"{row['train_loss']:.4f}"}
                )
                if stop:
                    result.stopped_early = True
                    break
            if best_state is not None:
                model.load_state_dict(best_state)
            if channels_last and device.type == "cpu":  # predict as a loaded model does, bit for bit
                model.to(memory_format=torch.contiguous_format)
            return result
        finally:
            ctx.close()

    @staticmethod
    def write_history(out_dir: Path, history: Sequence[dict[str, float]]) -> None:
        """Write ``history.csv`` and ``history.json`` into ``out_dir`` (atomically)."""
        atomic_write_text(out_dir / "history.json", json.dumps(list(history), indent=1) + "\n")
        atomic_write_text(out_dir / "history.csv", _history_csv(history))
