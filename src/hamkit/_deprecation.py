"""The one way hamkit keeps an old name working for a while after it is renamed or removed.

The policy (docs/architecture.md, "Deprecation policy"): nothing is deprecated before the first
release; after it, a public name (a module, function, class, method, parameter, CLI flag, preset
or registered name) that changes keeps working for at least one minor release, with a
``FutureWarning`` (Python) or a one-line warning (CLI) that names the new spelling and the release
that removes the old one. Every such shim is made by :func:`deprecate`, which records it in
:data:`SHIMS`; ``tests/test_package.py`` fails once the installed version reaches a shim's
``remove_in``, so no shim outlives its announced release.

Examples:
    >>> import warnings
    >>> old = Deprecation("hamkit.old_name", "hamkit.new_name", since="0.3.0", remove_in="0.4.0")
    >>> old.message()
    'hamkit.old_name is deprecated since 0.3.0; use hamkit.new_name (hamkit.old_name goes in 0.4.0)'
    >>> overdue("0.3.1", [old]), overdue("0.4.0", [old]) == [old]
    ([], True)
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["SHIMS", "Deprecation", "deprecate", "overdue", "version_tuple"]


@dataclass(frozen=True)
class Deprecation:
    """One old name kept working for a while.

    Attributes:
        old: The old spelling (``"hamkit.datasets"``, ``"--root"``, ``"LesionSegmenter.predict_proba"``).
        new: What to use instead.
        since: The release that deprecated it.
        remove_in: The release that removes it (at least one minor release after ``since``).
    """

    old: str
    new: str
    since: str
    remove_in: str

    def message(self) -> str:
        """The warning's text: the old name, the new one and the release that removes the old one."""
        return f"{self.old} is deprecated since {self.since}; use {self.new} ({self.old} goes in {self.remove_in})"

    def warn(self, stacklevel: int = 3) -> None:
        """Warn (``FutureWarning``) that the old name was used."""
        warnings.warn(self.message(), FutureWarning, stacklevel=stacklevel)


SHIMS: list[Deprecation] = []
"""Every shim in hamkit (empty: nothing was deprecated since the first release)."""


def deprecate(old: str, new: str, *, since: str, remove_in: str) -> Deprecation:
    """Record a shim in :data:`SHIMS` and return it; call its :meth:`Deprecation.warn` where the old name is used.

    Raises:
        ValueError: ``remove_in`` is not after ``since``.
    """
    if version_tuple(remove_in) <= version_tuple(since):
        raise ValueError(f"{old}: remove_in {remove_in} must come after since {since}")
    shim = Deprecation(old, new, since, remove_in)
    SHIMS.append(shim)
    return shim


def version_tuple(version: str) -> tuple[int, ...]:
    """``"0.3.0"`` -> ``(0, 3, 0)`` (the leading numbers; local and pre-release parts are ignored).

    Examples:
        >>> version_tuple("0.10.1"), version_tuple("0.3.0+local"), version_tuple("1.0rc1")
        ((0, 10, 1), (0, 3, 0), (1, 0))
    """
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0].split("rc")[0])[:3])


def overdue(version: str, shims: Sequence[Deprecation] | None = None) -> list[Deprecation]:
    """The shims that ``version`` should no longer have (their ``remove_in`` is reached)."""
    return [s for s in (SHIMS if shims is None else shims) if version_tuple(version) >= version_tuple(s.remove_in)]
