"""Training curves from an estimator's per-epoch history."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from hamkit._mpl import pyplot, save_png
from hamkit.errors import HamkitError

__all__ = ["plot_history"]


def plot_history(
    history: Sequence[dict[str, float]],
    path: str | os.PathLike[str],
    *,
    title: str = "Training",
    metrics: Sequence[str] | None = None,
    best_epoch: int | None = None,
) -> Path:
    """Plot losses (left) and validation metrics (right) per epoch and save a PNG.

    Args:
        history: One dict per epoch, as in ``LesionClassifier.history_`` (``epoch``,
            ``train_loss``, ``val_loss``, ``val_<metric>``...).
        path: Output PNG (written atomically).
        title: Figure title.
        metrics: Validation metrics to draw (default: every ``val_*`` that is not a loss).
        best_epoch: The epoch whose weights were kept, marked by a dashed line.

    Returns:
        The written path.

    Raises:
        HamkitError: An empty history.
    """
    if not history:
        raise HamkitError("no training history to plot")
    epochs = [row["epoch"] for row in history]
    keys = (
        [k for k in history[0] if k.startswith("val_") and not k.endswith("loss")]
        if metrics is None
        else [f"val_{m}" for m in metrics]
    )
    figure, (left, right) = pyplot().subplots(1, 2, figsize=(10, 3.8), dpi=100)
    for key in [k for k in history[0] if k.endswith("loss")]:
        left.plot(epochs, [row.get(key, float("nan")) for row in history], marker="o", label=key)
    left.set_xlabel("epoch")
    left.set_title("loss")
    left.legend(fontsize=8)
    for key in keys:
        right.plot(epochs, [row.get(key, float("nan")) for row in history], marker="o", label=key[4:])
    right.set_xlabel("epoch")
    right.set_title("validation")
    right.set_ylim(0, 1.02)
    if keys:
        right.legend(fontsize=8)
    from matplotlib.ticker import MaxNLocator

    for axes in (left, right):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        if best_epoch is not None:
            axes.axvline(best_epoch, color="0.4", linestyle="--", linewidth=1)
    if best_epoch is not None:
        right.annotate(
            f"kept: epoch {best_epoch}",
            xy=(best_epoch, 0.02),
            xytext=(4, 0),
            textcoords="offset points",
            fontsize=8,
            color="0.3",
        )
    figure.suptitle(title)
    figure.tight_layout()
    return save_png(figure, path)
