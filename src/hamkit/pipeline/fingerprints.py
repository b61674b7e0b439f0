"""Content-hashed steps: a step is skipped when its inputs and settings have not changed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hamkit._io import atomic_write_text
from hamkit.data.cache import file_identity

__all__ = ["StepState", "files_fingerprint", "fingerprint"]


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable parts."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def files_fingerprint(paths: Iterable[str | os.PathLike[str]]) -> str:
    """A hash of the identity (path, size, mtime) of files: changes when any file changes."""
    digest = hashlib.sha256()
    for path in sorted(map(str, paths)):
        digest.update(repr(file_identity(path)).encode())
    return digest.hexdigest()[:20]


class StepState:
    """The record of one pipeline step in ``OUT/.hamkit/steps/<name>.json``.

    Args:
        out_dir: The run folder.
        name: The step's name.
        key: The fingerprint of the step's inputs and settings.
    """

    def __init__(self, out_dir: Path, name: str, key: str) -> None:
        self.path = out_dir / ".hamkit" / "steps" / f"{name}.json"
        self.name = name
        self.key = key

    def _stored(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def done(self, *outputs: Path) -> bool:
        """True when the step finished before with the same key and its outputs still exist."""
        stored = self._stored()
        return stored.get("key") == self.key and stored.get("finished", False) and all(p.exists() for p in outputs)

    def started_with_same_key(self) -> bool:
        """True when an unfinished earlier attempt had the same key (so its work can be resumed)."""
        return self._stored().get("key") == self.key

    def start(self, *stale: Path) -> None:
        """Record that the step starts; remove ``stale`` outputs of an attempt with another key."""
        if not self.started_with_same_key():
            for path in stale:
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
        atomic_write_text(self.path, json.dumps({"key": self.key, "finished": False}))

    def finish(self, **info: Any) -> None:
        """Record that the step finished."""
        atomic_write_text(self.path, json.dumps({"key": self.key, "finished": True, **info}, default=str))

    def info(self) -> dict[str, Any]:
        """What :meth:`finish` recorded."""
        return self._stored()
