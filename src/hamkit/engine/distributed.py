"""torchrun / DDP support: one process per GPU (or CPU process with gloo), rank 0 writes.

Launch any hamkit training under ``torchrun --nproc_per_node N script.py``; the engine reads
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` from the environment, initialises the process group
(NCCL on GPUs, gloo on CPUs), shards the training data with a distributed sampler and keeps all
file output and validation on rank 0.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

__all__ = ["DistributedContext", "ShardedSampler"]


@dataclass
class DistributedContext:
    """Where this process stands in a distributed run.

    Attributes:
        world_size: Number of processes (1 outside torchrun).
        rank: This process's rank.
        local_rank: Its rank on this machine (selects the GPU).
        initialized_here: Whether hamkit created the process group (and so destroys it).
    """

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that writes files and validates."""
        return self.rank == 0

    @classmethod
    def from_env(cls, device: torch.device) -> DistributedContext:
        """Read torchrun's environment and initialise the process group if needed."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        created = False
        if not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend)
            created = True
        return cls(world_size, rank, local_rank, created)

    def device_for(self, device: torch.device) -> torch.device:
        """The device of this rank (``cuda:LOCAL_RANK`` on GPUs)."""
        if self.enabled and device.type == "cuda":
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return device

    def barrier(self) -> None:
        """Wait for every rank (no-op outside DDP)."""
        if self.enabled:
            dist.barrier()

    def broadcast(self, value: Any) -> Any:
        """Send a picklable value from rank 0 to every rank and return it."""
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def mean(self, value: float) -> float:
        """Average a float over ranks."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        if dist.get_backend() == "nccl":
            tensor = tensor.cuda()
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def close(self) -> None:
        """Destroy the process group if hamkit created it."""
        if self.initialized_here and dist.is_initialized():
            dist.destroy_process_group()
            self.initialized_here = False


class ShardedSampler(Sampler[int]):
    """Epoch-dependent sampling, optionally weighted, sharded over ranks.

    Every epoch draws one order of ``num_samples`` indices from a generator started from
    ``random_state + epoch`` (so a resumed run sees the same order as an uninterrupted one); each rank
    takes every ``world_size``-th index. With ``weights`` indices are drawn with replacement in
    proportion to the weights (class balancing in constant memory: no image is copied); without,
    it is a plain shuffle.

    Args:
        n: Dataset size.
        weights: Per-sample weights, or ``None`` for a uniform shuffle.
        random_state: Base random state (the epoch is added to it).
        rank: This process's rank.
        world_size: Number of processes.
        shuffle: Shuffle at all (ignored with weights).
    """

    def __init__(
        self,
        n: int,
        weights: Sequence[float] | torch.Tensor | None = None,
        *,
        random_state: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
    ) -> None:
        self.n = n
        self.weights = torch.as_tensor(weights, dtype=torch.float64) if weights is not None else None
        self.random_state = random_state
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.epoch = 0
        self.per_rank = math.ceil(n / world_size)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order to draw."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.random_state + self.epoch)
        total = self.per_rank * self.world_size
        if self.weights is not None:
            order = torch.multinomial(self.weights, total, replacement=True, generator=generator)
        elif self.shuffle:
            order = torch.randperm(self.n, generator=generator)
        else:
            order = torch.arange(self.n)
        if order.numel() < total:  # pad so every rank gets the same number of samples
            order = torch.cat([order, order[: total - order.numel()]])
        return iter(order[self.rank : total : self.world_size].tolist())

    def __len__(self) -> int:
        return self.per_rank
