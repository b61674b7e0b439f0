"""matplotlib without a display, and figures saved atomically as PNG."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hamkit._io import atomic_path

__all__ = ["pyplot", "save_png"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (works on machines without a screen)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_png(figure: Any, path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Save ``figure`` as a PNG at ``path`` atomically, then close it.

    Args:
        figure: A matplotlib figure.
        path: The target file.
        **kwargs: Passed to ``figure.savefig`` (e.g. ``bbox_inches="tight"``).

    Returns:
        The written path.
    """
    target = Path(path)
    try:
        with atomic_path(target) as tmp:
            figure.savefig(tmp, format="png", **kwargs)
    finally:
        pyplot().close(figure)
    return target
