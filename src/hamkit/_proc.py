"""Processes that end with hamkit's: worker processes die with their parent, and ``SIGTERM``
stops a command as an interrupt does.

A ``kill PID`` (``SIGTERM``) ends a Python process at once by default: no ``finally`` block, no
``atexit`` hook runs, so the DataLoader workers that were decoding images are re-parented to
init and live on, holding memory. Two mechanisms prevent that:

* :func:`sigterm_as_interrupt` (the command line installs it) turns ``SIGTERM`` into
  :class:`Terminated`, a :class:`KeyboardInterrupt`: the stack unwinds as it does on Ctrl-C,
  DataLoaders shut their workers down, temporary files are removed;
* :class:`WorkerInit` (the ``worker_init_fn`` of every DataLoader hamkit makes) asks Linux to
  kill the worker when its parent dies however it dies (``prctl(PR_SET_PDEATHSIG)``), ``kill
  -9`` included; :func:`process_pool` does the same for a pool of processes, and ends them at
  once when the block is interrupted (instead of finishing the queued work first).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from types import FrameType

__all__ = ["Terminated", "WorkerInit", "die_with_parent", "process_pool", "sigterm_as_interrupt"]

_PR_SET_PDEATHSIG = 1


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives ``SIGTERM`` (see
    :func:`sigterm_as_interrupt`); a :class:`KeyboardInterrupt`, so it unwinds as Ctrl-C does."""


def die_with_parent(parent: int | None = None) -> bool:
    """In a child process: have Linux send it ``SIGKILL`` when its parent process ends.

    Args:
        parent: The parent's process id as the parent saw it; when the child's parent is
            already another process (the parent died before this call), the child exits now.

    Returns:
        ``True`` where the request was made (Linux), ``False`` elsewhere.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):  # pragma: no cover - no prctl in this C library
        return False
    if parent is not None and os.getppid() != parent:
        os._exit(1)
    return True


class WorkerInit:
    """A DataLoader ``worker_init_fn`` (picklable) that makes the worker die with the process
    that created the DataLoader, then runs ``then(worker_id)``.

    Args:
        then: Another initialiser to run after it, or ``None``.

    Examples:
        >>> init = WorkerInit()
        >>> init.parent == os.getpid()
        True
    """

    def __init__(self, then: Callable[[int], None] | None = None) -> None:
        self.parent = os.getpid()
        self.then = then

    def __call__(self, worker_id: int) -> None:
        die_with_parent(self.parent)
        if self.then is not None:
            self.then(worker_id)


@contextlib.contextmanager
def process_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A :class:`~concurrent.futures.ProcessPoolExecutor` of ``workers`` processes that die with
    this one (:func:`die_with_parent`).

    On an exception in the block (Ctrl-C, ``SIGTERM`` as :class:`Terminated`, an error) the
    queued work is cancelled and the processes are killed at once: a plain ``with`` would first
    finish every task already submitted, which for ``pool.map`` over many files can be minutes.

    Examples:
        >>> with process_pool(2) as pool:
        ...     list(pool.map(abs, [-1, -2]))
        [1, 2]
    """
    pool = ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent, initargs=(os.getpid(),))
    try:
        yield pool
    except BaseException:
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            with contextlib.suppress(Exception):
                process.kill()
        raise
    pool.shutdown(wait=True)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, ``SIGTERM`` raises :class:`Terminated` in the main thread.

    Nothing changes outside the main thread, or where a ``SIGTERM`` handler other than the
    default one is installed (a host application's own). The previous handler comes back after
    the block.

    Examples:
        >>> with sigterm_as_interrupt():
        ...     pass
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous not in (signal.SIG_DFL, None):
        yield
        return

    def terminate(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
        raise Terminated()

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
