"""Where hamkit keeps what it can rebuild: converted weights, embeddings, hashes, decoded images.

One root for every cache: ``$HAMKIT_CACHE`` when set, else ``$XDG_CACHE_HOME/hamkit``, else
``~/.cache/hamkit``. Everything under it can be deleted at any time; hamkit rebuilds it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_root"]

CACHE_ENV = "HAMKIT_CACHE"
"""The environment variable that moves hamkit's cache folder."""


def cache_root() -> Path:
    """The folder hamkit caches into (it may not exist yet).

    Returns:
        ``$HAMKIT_CACHE``, else ``$XDG_CACHE_HOME/hamkit``, else ``~/.cache/hamkit``.

    Examples:
        >>> os.environ["HAMKIT_CACHE"] = "/tmp/hamkit-cache"
        >>> cache_root().as_posix()
        '/tmp/hamkit-cache'
    """
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "hamkit"
