"""A person's decisions on duplicate pairs (same / different), read back by dedup and split.

A decisions CSV has the columns ``image_a,image_b,decision``: two image ids (file stems, as in
HAM10000's ``image_id``) and ``same`` or ``different``. The review page
(:func:`hamkit.dedup.review.review_html`) writes one; ``hamkit dedup --decisions`` and
:meth:`hamkit.Deduplicator.find` take it, so that a pair decided ``different`` never groups and a
pair decided ``same`` always does, and the review never asks about a decided pair again;
``hamkit split --decisions`` keeps the two images of every ``same`` pair in one split.

Examples:
    >>> decisions = Decisions({("ISIC_1", "ISIC_2"): True, ("ISIC_4", "ISIC_3"): False})
    >>> decisions.get("ISIC_2", "ISIC_1"), decisions.get("ISIC_3", "ISIC_4"), decisions.get("ISIC_1", "ISIC_3")
    (True, False, None)
    >>> decisions.same_groups(["ISIC_1", "ISIC_2", "ISIC_3"])
    ['same00000', 'same00000', None]
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hamkit._io import atomic_write_text, csv_text
from hamkit.dedup.pairs import Pairs
from hamkit.errors import DataError

__all__ = ["DECISION_COLUMNS", "Decisions", "apply_decisions", "read_decisions"]

DECISION_COLUMNS = ("image_a", "image_b", "decision")
"""The columns of a decisions CSV."""

_WORDS = {"same": True, "different": False}


def _key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


@dataclass
class Decisions:
    """Pairs of image ids decided ``same`` (True) or ``different`` (False), in either order.

    Attributes:
        pairs: ``{(image_a, image_b): same}``.
    """

    pairs: Mapping[tuple[str, str], bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pairs = {_key(a, b): bool(same) for (a, b), same in self.pairs.items()}

    def __len__(self) -> int:
        return len(self.pairs)

    def get(self, a: str, b: str) -> bool | None:
        """True (same), False (different) or None (not decided) for the pair of ids ``a``, ``b``."""
        return self.pairs.get(_key(a, b))

    def same(self) -> list[tuple[str, str]]:
        """The pairs decided ``same``."""
        return [pair for pair, same in self.pairs.items() if same]

    def same_groups(self, image_ids: Sequence[str]) -> list[str | None]:
        """Per image id, a group id shared by the images linked by ``same`` decisions (or None).

        Pass it as an extra grouping of :func:`hamkit.data.splits.split_dataset`.
        """
        parent = {image: image for pair in self.same() for image in pair}

        def root(x: str) -> str:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for a, b in self.same():
            parent[root(a)] = root(b)
        names: dict[str, str] = {}
        out: list[str | None] = []
        for image in image_ids:
            if image not in parent:
                out.append(None)
                continue
            out.append(names.setdefault(root(image), f"same{len(names):05d}"))
        return out

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the decisions CSV atomically (sorted by image ids)."""
        rows = [[a, b, "same" if same else "different"] for (a, b), same in sorted(self.pairs.items())]
        return atomic_write_text(path, csv_text(list(DECISION_COLUMNS), rows))

    def merged(self, other: Decisions | Iterable[tuple[str, str, bool]]) -> Decisions:
        """These decisions with ``other``'s added (``other`` wins where both decided a pair)."""
        items = other.pairs.items() if isinstance(other, Decisions) else (((a, b), s) for a, b, s in other)
        return Decisions({**self.pairs, **{_key(a, b): bool(s) for (a, b), s in items}})


def read_decisions(path: str | os.PathLike[str]) -> Decisions:
    """Read a decisions CSV (``image_a,image_b,decision``; ``same`` or ``different``).

    Image ids may be given as file names or paths: their stems are used.

    Raises:
        DataError: The file is missing, lacks a column, or has a decision other than
            ``same`` / ``different`` (the message names the file and the line).
    """
    source = Path(path)
    if not source.is_file():
        raise DataError(f"{source}: decisions file not found; write one from the review page (review.html)")
    pairs: dict[tuple[str, str], bool] = {}
    with source.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in DECISION_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(
                f"{source}: a decisions file needs the columns image_a,image_b,decision; missing {', '.join(missing)}"
            )
        for line, row in enumerate(reader, start=2):
            word = (row["decision"] or "").strip().lower()
            if word not in _WORDS:
                raise DataError(
                    f"{source}: line {line}: decision must be 'same' or 'different', got {row['decision']!r}"
                )
            a, b = (Path((row[c] or "").strip()).stem for c in ("image_a", "image_b"))
            if not a or not b or a == b:
                raise DataError(f"{source}: line {line}: needs two different image ids, got {a!r} and {b!r}")
            pairs[_key(a, b)] = _WORDS[word]
    return Decisions(pairs)


def apply_decisions(decisions: Decisions, paths: Sequence[Path], pairs: Pairs) -> Pairs:
    """``pairs`` without the pairs decided ``different`` and with those decided ``same``.

    A pair decided ``same`` that the search did not find is added with the best score of the
    metric (1.0 for scores, 0 for distances); images are matched by file stem.

    Args:
        decisions: The decisions.
        paths: The images (``pairs`` index them).
        pairs: The pairs found.

    Returns:
        The pairs to group, sorted by ``(i, j)``.
    """
    if not len(decisions):
        return pairs
    stems = [Path(p).stem for p in paths]
    where: dict[str, list[int]] = {}
    for index, stem in enumerate(stems):
        where.setdefault(stem, []).append(index)
    best = 1.0 if pairs.higher_is_better else 0.0
    kept = {
        (int(a), int(b)): float(s)
        for a, b, s in zip(pairs.i, pairs.j, pairs.score, strict=True)
        if decisions.get(stems[int(a)], stems[int(b)]) is not False
    }
    for a, b in decisions.same():
        for x in where.get(a, ()):
            for y in where.get(b, ()):
                kept[(min(x, y), max(x, y))] = best
    order = sorted(kept)
    dtype = pairs.score.dtype if len(pairs.score) else np.float32
    return Pairs(
        np.array([a for a, _ in order], dtype=np.int64),
        np.array([b for _, b in order], dtype=np.int64),
        np.array([kept[k] for k in order], dtype=dtype),
        pairs.metric,
        pairs.exact,
    )
