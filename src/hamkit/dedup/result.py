"""Results of a duplicate scan, a cross-set search and a split audit, and how they are saved."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hamkit._io import atomic_write_text, csv_text, path_lines, staged_folder
from hamkit.dedup.groups import DuplicateGroup
from hamkit.dedup.scenes import VerifiedCandidates
from hamkit.dedup.search import Pairs

__all__ = ["DedupResult", "CrossResult", "AuditResult"]


def jsonable_settings(params: dict[str, Any]) -> dict[str, Any]:
    """Settings as JSON values: numbers, strings, booleans and None as they are, sets as sorted
    lists of strings, other sequences as lists of strings, anything else as its ``str``."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            out[key] = value
        elif isinstance(value, (list, tuple, set, frozenset)) and not isinstance(value, str):
            out[key] = sorted(map(str, value)) if isinstance(value, (set, frozenset)) else [str(v) for v in value]
        else:
            out[key] = str(value)
    return out


def _pairs_csv(rows: list[tuple[Any, ...]], extra: list[str] | None = None) -> str:
    return csv_text(["path_a", "path_b", "score", *(extra or [])], rows)


def _score(value: Any) -> float | int:
    return round(float(value), 6) if isinstance(value, (float, np.floating)) else int(value)


@dataclass
class DedupResult:
    """What :meth:`hamkit.Deduplicator.find` found.

    Attributes:
        paths: Every image given, in order (indices below refer to it).
        pairs: Duplicate pairs (``pairs.i``, ``pairs.j`` index :attr:`paths`; ``pairs.score``
            is a cosine similarity, a Hamming distance, or 1.0 for exact duplicates).
        groups: Duplicate groups (two or more images each), with their weakest link.
        kept: Indices of the images to keep (one per group, plus every unique image).
        removed: Indices of the duplicates to remove.
        skipped: ``{index: reason}`` of the images that could not be read.
        method: ``"cnn"``, ``"phash"``, ``"dhash"`` or ``"exact"``.
        threshold: The threshold used (``None`` for exact).
        settings: The Deduplicator's settings.
        seconds: Wall time of the scan.
        candidates: ``method="verified"`` only: every candidate pair with its verification
            score, the ones below the threshold included (for :meth:`Deduplicator.calibrate
            <hamkit.Deduplicator.calibrate>` and the review of borderline pairs).
    """

    paths: list[Path]
    pairs: Pairs
    groups: list[DuplicateGroup]
    kept: np.ndarray
    removed: np.ndarray
    skipped: dict[int, str] = field(default_factory=dict)
    method: str = "cnn"
    threshold: float | int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    candidates: VerifiedCandidates | None = None

    @property
    def kept_paths(self) -> list[Path]:
        """Paths of the kept images."""
        return [self.paths[i] for i in self.kept]

    @property
    def removed_paths(self) -> list[Path]:
        """Paths of the removed duplicates."""
        return [self.paths[i] for i in self.removed]

    @property
    def counts(self) -> dict[str, int]:
        """Numbers of images, readable images, pairs, groups, kept, removed and skipped."""
        return {
            "images": len(self.paths),
            "readable": len(self.paths) - len(self.skipped),
            "pairs": len(self.pairs),
            "groups": len(self.groups),
            "in_groups": sum(g.size for g in self.groups),
            "kept": len(self.kept),
            "removed": len(self.removed),
            "skipped": len(self.skipped),
        }

    def group_labels(self) -> list[str | None]:
        """Per image, the id of its duplicate group (``"dup00001"``...) or ``None``.

        Pass it as an extra grouping key to :func:`hamkit.data.splits.split_dataset` so that no
        duplicate pair crosses splits.
        """
        labels: list[str | None] = [None] * len(self.paths)
        for number, group in enumerate(self.groups):
            for member in group.members:
                labels[member] = f"dup{number:05d}"
        return labels

    def conflicts(self, diagnoses: Mapping[str, str]) -> list[tuple[int, int, str, str]]:
        """Duplicate pairs whose images carry different diagnoses: one of the two labels is wrong.

        Args:
            diagnoses: ``{image_id: dx}`` (e.g. from :func:`hamkit.data.metadata.read_metadata`).

        Returns:
            ``(i, j, dx_i, dx_j)`` per conflicting pair.
        """
        out = []
        for a, b in zip(self.pairs.i.tolist(), self.pairs.j.tolist(), strict=True):
            da, db = diagnoses.get(Path(self.paths[a]).stem), diagnoses.get(Path(self.paths[b]).stem)
            if da is not None and db is not None and da != db:
                out.append((a, b, da, db))
        return out

    def save_conflicts(self, path: str | os.PathLike[str], diagnoses: Mapping[str, str]) -> Path:
        """Write :meth:`conflicts` as ``path_a,path_b,score,dx_a,dx_b`` atomically."""
        score_of = {(int(a), int(b)): s for a, b, s in zip(self.pairs.i, self.pairs.j, self.pairs.score, strict=True)}
        rows = [
            [str(self.paths[a]), str(self.paths[b]), _score(score_of[(a, b)]), da, db]
            for a, b, da, db in self.conflicts(diagnoses)
        ]
        return atomic_write_text(path, csv_text(["path_a", "path_b", "score", "dx_a", "dx_b"], rows))

    def suspect_lesion_ids(self, lesions: Mapping[str, str | None]) -> list[tuple[int, int, float, str, str]]:
        """Duplicate pairs whose images carry two different lesion ids, most alike first.

        With a method that finds the same lesion photographed again (``"lesion"``), these are
        the images that the metadata files under two lesions while the images say one: the
        leaks a split grouped by ``lesion_id`` alone lets through (``hamkit split --group-csv
        groups.csv`` keeps them together).

        Args:
            lesions: ``{image_id: lesion_id}``; images matched by file stem, images without a
                lesion id left out.

        Returns:
            ``(i, j, score, lesion_i, lesion_j)`` per pair, sorted by score (best first).

        Examples:
            >>> from hamkit.dedup.search import Pairs
            >>> result = DedupResult([Path("a.jpg"), Path("b.jpg"), Path("c.jpg")],
            ...     Pairs(np.array([0, 0]), np.array([1, 2]), np.array([0.75, 0.5]), "aligned"), [],
            ...     np.arange(3), np.zeros(0, np.int64))
            >>> result.suspect_lesion_ids({"a": "L1", "b": "L1", "c": "L2"})
            [(0, 2, 0.5, 'L1', 'L2')]
        """
        stems = [path.stem for path in self.paths]
        rows = []
        for a, b, score in zip(self.pairs.i.tolist(), self.pairs.j.tolist(), self.pairs.score.tolist(), strict=True):
            first, second = lesions.get(stems[a]), lesions.get(stems[b])
            if first and second and first != second:
                rows.append((a, b, float(score), first, second))
        rows.sort(key=lambda row: -row[2] if self.pairs.higher_is_better else row[2])
        return rows

    def save_suspects(
        self,
        path: str | os.PathLike[str],
        lesions: Mapping[str, str | None],
        diagnoses: Mapping[str, str] | None = None,
    ) -> Path:
        """Write :meth:`suspect_lesion_ids` as
        ``path_a,path_b,score,lesion_id_a,lesion_id_b,dx_a,dx_b`` atomically."""
        dx = diagnoses or {}
        rows = [
            [
                str(self.paths[a]),
                str(self.paths[b]),
                _score(score),
                la,
                lb,
                dx.get(self.paths[a].stem, ""),
                dx.get(self.paths[b].stem, ""),
            ]
            for a, b, score, la, lb in self.suspect_lesion_ids(lesions)
        ]
        header = ["path_a", "path_b", "score", "lesion_id_a", "lesion_id_b", "dx_a", "dx_b"]
        return atomic_write_text(path, csv_text(header, rows))

    def summary(self) -> str:
        """A one-paragraph summary."""
        c = self.counts
        chained = [g for g in self.groups if g.size > 2]
        text = (
            f"{c['images']} images ({c['skipped']} unreadable, skipped): {c['pairs']} duplicate pair(s) in "
            f"{c['groups']} group(s) by {self.method}"
            + (f" at threshold {self.threshold}" if self.threshold is not None else "")
            + f"; keep {c['kept']}, remove {c['removed']}."
        )
        if chained:
            worst = (
                min(chained, key=lambda g: g.weakest_link)
                if self.pairs.higher_is_better
                else max(chained, key=lambda g: g.weakest_link)
            )
            text += (
                f" {len(chained)} group(s) have more than two images; the weakest link of any is "
                f"{_score(worst.weakest_link)} (look at it if it is far from the threshold: chaining)."
            )
        if self.candidates is not None:
            text += (
                f" {len(self.candidates)} candidate pair(s) were checked by aligning the two images; "
                f"{len(self.pairs)} reached the threshold."
            )
        used = self.settings.get("backend_used")
        if used is not None and self.settings.get("method_settings", {}).get("backend") == "auto":
            where = "every scene in memory" if used == "local" else "the scenes on disk, loaded per batch"
            text += f" Backend 'auto' chose {used!r} for {c['images']} images ({where})."
        if not self.pairs.exact:
            text += (
                " The search was approximate (a faiss IVF/HNSW index): it may have missed pairs; "
                "use search_backend='numpy' for an exact search."
            )
        return text

    def save(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write ``kept.txt``, ``removed.txt``, ``pairs.csv``, ``groups.json``, ``summary.json``,
        ``skipped.txt`` and ``groups.csv`` (``image_id,group`` for ``hamkit split --group-csv``)
        into ``out_dir``, all or nothing (staged, then moved into place).

        Returns:
            The folder.

        Raises:
            DataError: A file name with a line break, which the one-path-per-line lists cannot
                hold (nothing is written).
            DiskFullError: The disk filled (nothing is written).
        """
        with staged_folder(out_dir) as stage:
            self._write(stage)
        return Path(out_dir)

    def _write(self, out: Path) -> None:
        atomic_write_text(out / "kept.txt", path_lines(self.kept_paths, out / "kept.txt"))
        atomic_write_text(out / "removed.txt", path_lines(self.removed_paths, out / "removed.txt"))
        rows = [
            (str(self.paths[i]), str(self.paths[j]), _score(s))
            for i, j, s in zip(self.pairs.i, self.pairs.j, self.pairs.score, strict=True)
        ]
        if self.candidates is not None:  # verified pairs: the alignment's inliers next to the score
            inliers = {
                (int(a), int(b)): int(n)
                for a, b, n in zip(self.candidates.i, self.candidates.j, self.candidates.inliers, strict=True)
            }
            text = _pairs_csv(
                [
                    (*row, inliers.get((int(i), int(j)), -1))
                    for row, i, j in zip(rows, self.pairs.i, self.pairs.j, strict=True)
                ],
                extra=["inliers"],
            )
        else:
            text = _pairs_csv(rows)
        atomic_write_text(out / "pairs.csv", text)
        groups = [
            {
                "members": [str(self.paths[m]) for m in g.members],
                "representative": str(self.paths[g.representative]),
                "weakest_link": _score(g.weakest_link),
            }
            for g in self.groups
        ]
        atomic_write_text(out / "groups.json", json.dumps(groups, indent=1) + "\n")
        _write_skipped({self.paths[i]: reason for i, reason in sorted(self.skipped.items())}, out / "skipped.txt")
        buffer = io.StringIO()  # image ids as they are: hamkit split --group-csv reads them back
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["image_id", "group"])
        for path, label in zip(self.paths, self.group_labels(), strict=True):
            if label is not None:
                writer.writerow([path.stem, label])
        atomic_write_text(out / "groups.csv", buffer.getvalue())
        summary = {
            "method": self.method,
            "threshold": self.threshold,
            "exact_search": self.pairs.exact,
            "counts": self.counts,
            "seconds": round(self.seconds, 3),
            "settings": self.settings,
            "text": self.summary(),
        }
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, default=str) + "\n")


def _write_skipped(skipped: dict[Path, str], target: Path) -> Path:
    """Write ``skipped.txt``: ``path<TAB>reason`` per unreadable image, one line each."""
    names = path_lines(list(skipped), target).splitlines()
    reasons = [" ".join(reason.split()) for reason in skipped.values()]  # one line each
    return atomic_write_text(target, "".join(f"{n}\t{r}\n" for n, r in zip(names, reasons, strict=True)))


@dataclass
class CrossResult:
    """Pairs that cross two sets (e.g. train vs test).

    Attributes:
        paths_a: The first set.
        paths_b: The second set.
        pairs: ``pairs.i`` indexes ``paths_a``, ``pairs.j`` indexes ``paths_b``.
        skipped: ``{path: reason}`` of unreadable images of either set.
    """

    paths_a: list[Path]
    paths_b: list[Path]
    pairs: Pairs
    skipped: dict[Path, str] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, str, float | int]]:
        """``(path_a, path_b, score)`` per pair."""
        return [
            (str(self.paths_a[i]), str(self.paths_b[j]), _score(s))
            for i, j, s in zip(self.pairs.i, self.pairs.j, self.pairs.score, strict=True)
        ]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the pairs as a CSV (``path_a,path_b,score``) atomically."""
        return atomic_write_text(path, _pairs_csv(self.rows()))

    def save_skipped(self, path: str | os.PathLike[str]) -> Path:
        """Write the unreadable images of both sets, ``path<TAB>reason`` per line (as
        ``skipped.txt`` of :meth:`DedupResult.save`), atomically.

        Raises:
            DataError: A file name with a line break (nothing is written).
        """
        return _write_skipped(dict(sorted(self.skipped.items(), key=lambda item: str(item[0]))), Path(path))


@dataclass
class AuditResult:
    """Near-duplicate pairs across the splits of a split CSV.

    Attributes:
        crossings: ``{"train-test": CrossResult, ...}`` for every pair of splits (of a folds
            CSV: ``{"fold0-fold1": ..., "fold0-test": ...}`` for every pair of folds and test).
        missing: Image ids of the split CSV without a file under the root.
    """

    crossings: dict[str, CrossResult]
    missing: list[str] = field(default_factory=list)

    @property
    def leaks(self) -> int:
        """Total number of duplicate pairs across splits (0 for a clean split)."""
        return sum(len(c.pairs) for c in self.crossings.values())

    def summary(self) -> str:
        """One line per pair of splits."""
        lines = [
            f"{name}: {len(c.pairs)} near-duplicate pair(s) across the split" for name, c in self.crossings.items()
        ]
        lines.append(f"total: {self.leaks}" + (" (clean)" if self.leaks == 0 else " (LEAKAGE)"))
        if not all(c.pairs.exact for c in self.crossings.values()):
            lines.append(
                "the search was approximate (a faiss IVF/HNSW index) and may have missed pairs: "
                "use search_backend='numpy' for an exact audit"
            )
        return "\n".join(lines)

    def save(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write ``audit.csv`` (``split_a,split_b,path_a,path_b,score``) and ``audit.json``, both
        or neither."""
        with staged_folder(out_dir) as out:
            self._write(out)
        return Path(out_dir)

    def _write(self, out: Path) -> None:
        rows = [(*name.split("-"), *row) for name, cross in self.crossings.items() for row in cross.rows()]
        atomic_write_text(out / "audit.csv", csv_text(["split_a", "split_b", "path_a", "path_b", "score"], rows))
        atomic_write_text(
            out / "audit.json",
            json.dumps(
                {
                    "leaks": self.leaks,
                    "by_split_pair": {k: len(v.pairs) for k, v in self.crossings.items()},
                    "exact": all(c.pairs.exact for c in self.crossings.values()),
                    "missing": self.missing,
                },
                indent=1,
            )
            + "\n",
        )
