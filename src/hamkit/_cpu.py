"""How many CPUs this process may use: the one count every part of hamkit relies on."""

from __future__ import annotations

import os

__all__ = ["available_cpus", "loader_workers"]


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, which containers and ``taskset``
    narrow), at least 1.

    ``os.cpu_count()`` counts the machine's CPUs instead, which overstates a container's share.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def loader_workers(limit: int = 4) -> int:
    """DataLoader workers to decode for a model running in this process: up to ``limit``,
    leaving one CPU to the model (0 on a single CPU)."""
    return max(0, min(limit, available_cpus() - 1))
