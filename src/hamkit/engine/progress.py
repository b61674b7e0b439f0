"""Progress of inference over batches: a tqdm bar when asked for and stderr is a terminal.

Training reports per epoch (:class:`~hamkit.engine.trainer.Trainer`); inference (predict,
evaluate, write_masks) shows a bar over its batches the same way: on a terminal only, so logs
and pipes stay clean.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["batch_progress"]

_T = TypeVar("_T")


def batch_progress(batches: Iterable[_T], *, progress: bool | str, total: int | None = None) -> Iterator[_T]:
    """Iterate ``batches`` with a bar (named by ``progress`` when it is a string) on a terminal.

    Args:
        batches: The loader.
        progress: ``False`` for no bar; ``True`` or a label to show one.
        total: Number of batches, when ``batches`` has no length.
    """
    if not progress or not sys.stderr.isatty():
        yield from batches
        return
    from tqdm.auto import tqdm

    label = progress if isinstance(progress, str) else "predicting"
    yield from tqdm(batches, total=total, desc=label, unit="batch", leave=False)
