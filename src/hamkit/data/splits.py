"""Leakage-free train / validation / test splits.

A split is GROUPED: every image of a lesion (and, with ``extra_groups``, every image of a
duplicate group found by the Deduplicator) lands in the same split, so no lesion is seen in
training and again in testing. It is also STRATIFIED by diagnosis and
reproducible (the same random state gives the same split).

How: the grouping keys are merged into connected components (two images that share any key are
in one group), scikit-learn's :class:`~sklearn.model_selection.StratifiedGroupKFold` cuts the
groups into ``k`` folds with near-equal class shares, and whole folds are assigned to the
splits (``k = 8`` for the default 0.75 / 0.125 / 0.125: 6 folds train, 1 val, 1 test). On the
full HAM10000 metadata this gives class shares within 0.1 percentage points of the overall shares
and split sizes within 0.05 points of their fractions. On very small data a final repair step
moves single groups so that every class with at least three groups appears in every split; data
too small to stratify at all (the largest class has fewer images than folds) is split by
shuffled groups.

With ``folds=K`` the same grouping gives ``K`` cross-validation folds instead (see
:mod:`hamkit.data.folds`), optionally after keeping a held-out test split apart (``test=``).
"""

from __future__ import annotations

import csv
import io
import math
import os
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hamkit._io import atomic_write_text
from hamkit.classes import CLASS_CODES
from hamkit.data.folds import (
    NO_FOLD,
    fold_assignment,
    fold_summary,
    format_fold_table,
    three_way_assignment,
)
from hamkit.data.metadata import ImageRecord, classes_of
from hamkit.errors import DataError

__all__ = [
    "DEFAULT_FRACTIONS",
    "SPLIT_NAMES",
    "read_audit_sets",
    "Split",
    "merge_groups",
    "read_split_csv",
    "split_dataset",
]

SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.75, 0.125, 0.125)


def merge_groups(*keys: Sequence[Hashable | None]) -> np.ndarray:
    """Merge several grouping keys into one: items sharing ANY key end up in one group.

    Args:
        *keys: Sequences of equal length, one key per item; ``None`` (or ``""``) means
            "no group" for that key.

    Returns:
        ``int64`` group index per item, numbered 0.. in order of first appearance.

    Raises:
        DataError: The sequences differ in length or none is given.

    Examples:
        >>> merge_groups(["L1", "L1", "L2", "L3"], [None, "d1", "d1", None]).tolist()
        [0, 0, 0, 1]
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not keys:
        raise DataError("merge_groups needs at least one grouping key")
    n = len(keys[0])
    if any(len(k) != n for k in keys):
        raise DataError(f"grouping keys differ in length: {[len(k) for k in keys]}")
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    for key in keys:
        valid = np.array([k is not None and k != "" for k in key], dtype=bool)
        index = np.flatnonzero(valid)
        if index.size == 0:
            continue
        _, first_of, inverse = np.unique(
            np.array([str(key[i]) for i in index], dtype=object),  # type: ignore[call-overload,type-var]
            return_index=True,
            return_inverse=True,
        )
        rows.append(index)
        cols.append(index[first_of[inverse]])  # link each item to the first item with its key
    graph = coo_matrix(
        (
            np.ones(sum(r.size for r in rows)),
            (np.concatenate(rows or [np.zeros(0, int)]), np.concatenate(cols or [np.zeros(0, int)])),
        ),
        shape=(n, n),
    )
    _, labels = connected_components(graph, directed=False)
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))  # renumber components by first appearance
    return order[inverse].astype(np.int64)


@dataclass
class Split:
    """A train / val / test assignment of images.

    Attributes:
        image_ids: Image id per item.
        lesion_ids: Lesion id per item (``None`` where unknown).
        labels: Class index per item.
        groups: Merged group index per item (lesions plus any extra grouping).
        assignment: Split name per item (``"train"``, ``"val"`` or ``"test"``).
        random_state: The random state used.
        fractions: The requested fractions (with folds: ``(1 - test, 0, test)``).
        folds: With ``split_dataset(..., folds=K)``: the fold number (``0`` .. ``K-1``) per item,
            ``-1`` for the held-out test items; ``None`` for a plain train / val / test split.
        classes: The class names ``labels`` index (the seven HAM10000 codes by default).
    """

    image_ids: list[str]
    lesion_ids: list[str | None]
    labels: np.ndarray
    groups: np.ndarray
    assignment: np.ndarray
    random_state: int
    fractions: tuple[float, float, float]
    folds: np.ndarray | None = None
    classes: tuple[str, ...] = CLASS_CODES

    @property
    def n_folds(self) -> int:
        """The number of cross-validation folds (0 for a plain train / val / test split)."""
        return 0 if self.folds is None else int(self.folds.max()) + 1

    def fold(self, k: int) -> Split:
        """Fold ``k`` as a plain split: ``val`` is fold ``k``, ``train`` the other folds, ``test`` unchanged.

        Raises:
            DataError: This split has no folds, or there is no fold ``k``.

        Examples:
            >>> recs = [ImageRecord(f"I{i}", "nv" if i % 3 else "mel", f"L{i // 2}") for i in range(60)]
            >>> folds = split_dataset(recs, folds=3)
            >>> [len(folds.fold(k).indices("val")) > 0 for k in range(3)]
            [True, True, True]
        """
        if self.folds is None:
            raise DataError("this split has no folds; make one with split_dataset(records, folds=K)")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < self.n_folds:
            raise DataError(f"there is no fold {k!r}; the folds are 0..{self.n_folds - 1}")
        assignment = np.where(self.folds == k, "val", np.where(self.folds == NO_FOLD, "test", "train"))
        train, _, test = self.fractions
        return Split(
            image_ids=self.image_ids,
            lesion_ids=self.lesion_ids,
            labels=self.labels,
            groups=self.groups,
            assignment=assignment,
            random_state=self.random_state,
            fractions=(train * (self.n_folds - 1) / self.n_folds, train / self.n_folds, test),
            classes=self.classes,
        )

    def indices(self, name: str) -> np.ndarray:
        """Positions of the items in split ``name``."""
        if name not in SPLIT_NAMES:
            raise DataError(f"unknown split {name!r}; expected one of {', '.join(SPLIT_NAMES)}")
        return np.flatnonzero(self.assignment == name)

    def as_dict(self) -> dict[str, str]:
        """``{image_id: split name}``."""
        return dict(zip(self.image_ids, self.assignment.tolist(), strict=True))

    def crossing_groups(self, groups: Sequence[Hashable | None] | np.ndarray) -> int:
        """How many groups of another grouping (e.g. duplicate groups) span more than one split.

        Args:
            groups: One key per item (``None`` for no group).

        Returns:
            The number of groups whose items are not all in one split (0 for a clean split).
        """
        seen: dict[Hashable, str] = {}
        crossing: set[Hashable] = set()
        for key, name in zip(groups, self.assignment.tolist(), strict=True):
            if key is None or key == "":
                continue
            if seen.setdefault(key, name) != name:
                crossing.add(key)
        return len(crossing)

    def summary(self) -> dict[str, dict[str, float | int]]:
        """Per split: images, groups, share of all images, and count and share per class.

        With folds, per fold (``"fold 0"`` ...) and ``"test"`` (if held out) instead, with each
        class's share of the fold as ``"<code>_share"``.
        """
        if self.folds is not None:
            return fold_summary(self.labels, self.groups, self.folds, self.classes)
        result: dict[str, dict[str, float | int]] = {}
        n = len(self.image_ids)
        for name in SPLIT_NAMES:
            mask = self.assignment == name
            counts = np.bincount(self.labels[mask], minlength=len(self.classes))
            row: dict[str, float | int] = {
                "images": int(mask.sum()),
                "groups": int(np.unique(self.groups[mask]).size),
                "fraction": float(mask.sum() / n) if n else 0.0,
            }
            for code, count in zip(self.classes, counts.tolist(), strict=True):
                row[code] = int(count)
            result[name] = row
        return result

    def format_table(self) -> str:
        """The summary as a plain-text table (images per class per split, or per fold)."""
        if self.folds is not None:
            return format_fold_table(self.labels, self.groups, self.folds, self.classes)
        summary = self.summary()
        width = max(7, *(len(c) + 1 for c in self.classes))
        header = f"{'split':<6}{'images':>8}{'lesions':>9}{'share':>8}" + "".join(f"{c:>{width}}" for c in self.classes)
        lines = [header]
        for name, row in summary.items():
            lines.append(
                f"{name:<6}{row['images']:>8}{row['groups']:>9}{row['fraction']:>8.3f}"
                + "".join(f"{row[c]:>{width}}" for c in self.classes)
            )
        return "\n".join(lines)

    def to_csv(self) -> str:
        """The split as CSV text: ``image_id,lesion_id,dx,split,group`` (and ``fold`` with folds)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(
            ["image_id", "lesion_id", "dx", "split", "group"] + (["fold"] if self.folds is not None else [])
        )
        for i, image_id in enumerate(self.image_ids):
            row = [image_id, self.lesion_ids[i] or "", self.classes[self.labels[i]], self.assignment[i]]
            row.append(f"g{self.groups[i]:06d}")
            if self.folds is not None:
                row.append("" if self.folds[i] == NO_FOLD else str(self.folds[i]))
            writer.writerow(row)
        return buffer.getvalue()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_csv` to ``path`` atomically and return the path."""
        return atomic_write_text(path, self.to_csv())


def _validate_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(f) for f in fractions)
    if len(values) != 3:
        raise DataError(f"fractions must be three numbers (train, val, test), got {list(fractions)}")
    if not all(math.isfinite(f) for f in values):
        raise DataError(f"fractions must be finite numbers (train, val, test), got {list(values)}")
    if any(f < 0 for f in values) or values[0] <= 0:
        raise DataError(f"fractions must be >= 0 with a positive train fraction, got {list(values)}")
    if abs(sum(values) - 1.0) > 1e-6:
        raise DataError(f"fractions must add up to 1, got {list(values)} (sum {sum(values):g})")
    return values


def _merged_groups(
    records: Sequence[ImageRecord], extra_groups: Sequence[Sequence[Hashable | None]], duplicates: Any
) -> np.ndarray:
    """The lesion ids merged with every record's other group keys (patient...), the extra keys and
    the duplicate groups of a DedupResult."""
    names = list(dict.fromkeys(name for r in records for name, _ in r.keys))
    keys: list[Sequence[Hashable | None]] = [
        [f"{name}={dict(r.keys).get(name)}" if dict(r.keys).get(name) else None for r in records] for name in names
    ]
    keys.extend(extra_groups)
    if duplicates is not None:
        if not (hasattr(duplicates, "paths") and hasattr(duplicates, "group_labels")):
            raise DataError(f"duplicates= takes the result of Deduplicator.find, got a {type(duplicates).__name__}")
        group_of = {Path(p).stem: g for p, g in zip(duplicates.paths, duplicates.group_labels(), strict=True)}
        keys.append([group_of.get(r.image_id) for r in records])
    return merge_groups([r.group for r in records], *keys)


def split_dataset(
    records: Sequence[ImageRecord],
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    *,
    random_state: int = 0,
    extra_groups: Sequence[Sequence[Hashable | None]] = (),
    duplicates: Any = None,
    folds: int | None = None,
    test: float | None = None,
    hold_out_source: str | None = None,
) -> Split:
    """Split images into train / val / test (or K folds), grouped by lesion and stratified by diagnosis.

    The groups join every key the records carry: the lesion id and each of their
    :attr:`~hamkit.data.metadata.ImageRecord.keys` (e.g. ``patient_id``, read with
    ``read_labels(path, group_by=[...])``), plus ``extra_groups`` and ``duplicates``: two images
    that share ANY key are in one group, and a group never spans two splits.

    Args:
        records: The images (from :func:`~hamkit.data.metadata.read_metadata`).
        fractions: Train, val and test fractions (they must add up to 1).
        random_state: Random state of the shuffle; the same inputs and random state give the same split.
        extra_groups: More grouping keys, one sequence per key aligned with ``records``
            (``None`` = no group), e.g. the Deduplicator's duplicate-group ids: images that share
            a lesion OR any extra key always land in the same split.
        duplicates: A :class:`~hamkit.dedup.result.DedupResult` (from ``Deduplicator.find``):
            its duplicate groups become one more grouping key, matched to ``records`` by image
            id (the file name without extension). The one-call hand-off from dedup to split.
        folds: Make ``folds`` cross-validation folds instead of a train / val / test split:
            the result's :attr:`Split.folds` numbers them, :meth:`Split.fold` gives fold ``k`` as
            a train / val split, and :meth:`Split.save` writes a ``fold`` column.
        test: With ``folds``: first keep this fraction apart as a held-out ``test`` split (no
            fold); the folds are made from the rest. Without it every image is in a fold.
        hold_out_source: Make the test split a whole data set or institution: every image
            whose :attr:`~hamkit.data.metadata.ImageRecord.source` is this name (and every image
            grouped with one of them) is ``test``; the rest is split into train and val in the
            ratio of ``fractions`` (or into ``folds``).

    Returns:
        The :class:`Split`.

    Raises:
        DataError: Bad fractions, too few groups for the requested split, ``folds`` below 2,
            more folds than some class has lesions, or ``test`` without ``folds``.

    Examples:
        >>> recs = [ImageRecord(f"I{i}", "nv" if i % 3 else "mel", f"L{i // 2}") for i in range(80)]
        >>> split = split_dataset(recs, random_state=0)
        >>> split.crossing_groups([r.lesion_id for r in recs])
        0
        >>> split_dataset(recs, folds=4, test=0.125).n_folds
        4
    """
    values = _validate_fractions(fractions)
    if folds is None and test is not None:
        raise DataError("test= needs folds=; for a train / val / test split give fractions=")
    if folds is not None and values != DEFAULT_FRACTIONS:
        raise DataError("fractions= does not apply with folds=; give test= for a held-out test split")
    if not records:
        raise DataError("cannot split an empty dataset")
    classes = classes_of(records)
    labels = np.array([r.label for r in records], dtype=np.int64)
    groups = _merged_groups(records, extra_groups, duplicates)
    held = _held_out(records, groups, hold_out_source) if hold_out_source is not None else None
    if held is not None and test is not None:
        raise DataError("give test= or hold_out_source=, not both: the held-out source is the test split")
    fold_of = None
    if folds is None and held is not None:
        assignment = np.full(len(records), "test", dtype=object)
        rest = np.flatnonzero(~held)
        train, val, _ = values
        inner = (train / (train + val), val / (train + val), 0.0)
        _, regrouped = np.unique(groups[rest], return_inverse=True)
        assignment[rest] = three_way_assignment(labels[rest], regrouped, inner, random_state)
        assignment = assignment.astype(str)
        values = (train * (1 - held.mean()) / (train + val), val * (1 - held.mean()) / (train + val), held.mean())
        _warn_missing_classes(labels, groups, assignment, values, classes)
    elif folds is None:
        assignment = three_way_assignment(labels, groups, values, random_state)
        _warn_missing_classes(labels, groups, assignment, values, classes)
    else:
        assignment, fold_of, values = fold_assignment(
            labels, groups, folds, test, random_state, classes=classes, held_out=held
        )
    return Split(
        image_ids=[r.image_id for r in records],
        lesion_ids=[r.lesion_id for r in records],
        labels=labels,
        groups=groups,
        assignment=assignment,
        random_state=random_state,
        fractions=tuple(float(v) for v in values),  # type: ignore[arg-type]
        folds=fold_of,
        classes=classes,
    )


def _held_out(records: Sequence[ImageRecord], groups: np.ndarray, source: str) -> np.ndarray:
    """Which items the test split holds when ``source`` is held out: its images and every image
    grouped with one of them (the same lesion, patient or duplicate in another set)."""
    mine = np.array([r.source == source for r in records], dtype=bool)
    if not mine.any():
        sources = sorted({r.source for r in records if r.source})
        raise DataError(
            f"no image comes from source {source!r}; the sources are {', '.join(sources) or 'not recorded'}"
        )
    held = np.isin(groups, np.unique(groups[mine]))
    if held.all():
        raise DataError(f"every image is from source {source!r} (or grouped with one); nothing is left to train on")
    return held


def _warn_missing_classes(
    labels: np.ndarray,
    groups: np.ndarray,
    assignment: np.ndarray,
    values: Sequence[float],
    classes: Sequence[str] = CLASS_CODES,
) -> None:
    """One warning naming each class that has images but none in a split that is not empty
    (a class with fewer lesions than there are splits), so that its missing scores are no surprise."""
    gaps = []
    for cls in np.unique(labels):
        lesions = len(np.unique(groups[labels == cls]))
        absent = [
            name
            for name, share in zip(SPLIT_NAMES, values, strict=True)
            if share > 0 and np.any(assignment == name) and not np.any(assignment[labels == cls] == name)
        ]
        if absent:
            gaps.append(f"{classes[cls]} ({lesions} lesion(s)) has no image in {' or '.join(absent)}")
    if gaps:
        warnings.warn(
            "too few lesions to put every class in every split: "
            + "; ".join(gaps)
            + " (that class's recall cannot be measured on that split)",
            stacklevel=3,
        )


def _read_split_rows(path: Path, fold: int | None) -> tuple[dict[str, str], dict[str, int]]:
    """``({image_id: split}, {image_id: fold})`` of a split or folds CSV, checked row by row."""
    if not path.is_file():
        raise DataError(f"{path}: split file not found; write one with `hamkit split`")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in reader.fieldnames or []]
        reader.fieldnames = header
        missing = [c for c in ("image_id", "split") if c not in header]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(header)}")
        if fold is not None and "fold" not in header:
            raise DataError(
                f"{path}: no fold column, so fold {fold} cannot be read; write one with `hamkit split --folds K`"
            )
        result: dict[str, str] = {}
        folds: dict[str, int] = {}
        for line, row in enumerate(reader, start=2):
            image_id, name = (row["image_id"] or "").strip(), (row["split"] or "").strip()
            if name not in SPLIT_NAMES:
                raise DataError(
                    f"{path}, line {line}: unknown split {name!r}; expected one of {', '.join(SPLIT_NAMES)}"
                )
            if image_id in result:
                raise DataError(f"{path}, line {line}: image_id {image_id!r} is listed twice")
            result[image_id] = name
            number = (row.get("fold") or "").strip()
            if number:
                if not number.isdigit():
                    raise DataError(f"{path}, line {line}: fold {number!r} is not a whole number")
                folds[image_id] = int(number)
            elif fold is not None and name != "test":
                raise DataError(f"{path}, line {line}: a {name} row without a fold; only test rows have none")
    if not result:
        raise DataError(f"{path}: no rows")
    return result, folds


def read_split_csv(path: str | os.PathLike[str], *, fold: int | None = None) -> dict[str, str]:
    """Read a split CSV (columns ``image_id`` and ``split`` at least) as ``{image_id: split}``.

    Args:
        path: The CSV, e.g. from :meth:`Split.save` or ``hamkit split``.
        fold: For a folds CSV (``hamkit split --folds K``, with a ``fold`` column): fold ``fold``
            reads as ``val`` and the other folds as ``train``; ``test`` rows stay ``test``.
            Without it a folds CSV reads as its ``split`` column (every fold ``train``).

    Raises:
        DataError: Missing file or columns, an unknown split name, a repeated image id, or a
            ``fold`` the file does not have.
    """
    path = Path(path)
    result, folds = _read_split_rows(path, fold)
    if fold is not None:
        count = max(folds.values(), default=-1) + 1
        if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < count:
            raise DataError(f"{path}: there is no fold {fold!r}; the file has folds 0..{count - 1}")
        result = {i: name if i not in folds else ("val" if folds[i] == fold else "train") for i, name in result.items()}
    return result


def read_audit_sets(path: str | os.PathLike[str]) -> tuple[tuple[str, ...], dict[str, str]]:
    """The sets an audit compares pairwise, and the set of every image of a split or folds CSV.

    A split CSV's sets are its splits (``train``, ``val``, ``test``). A folds CSV's (``hamkit
    split --folds K``) are its folds, ``fold0`` .. ``fold<K-1>``, and ``test`` (the held-out
    rows): every fold is validated on once, so a duplicate pair across any two folds leaks, and
    comparing its ``split`` column (every fold ``train``) would find nothing.

    Args:
        path: The CSV.

    Returns:
        ``(names, {image_id: name})``, the names in order.

    Raises:
        DataError: As :func:`read_split_csv`, and a folds CSV with a train row without a fold.

    Examples:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "folds.csv").write_text("image_id,split,fold\\na,train,0\\nb,train,1\\nc,test,\\n")
        >>> read_audit_sets(folder / "folds.csv")
        (('fold0', 'fold1', 'test'), {'a': 'fold0', 'b': 'fold1', 'c': 'test'})
    """
    path = Path(path)
    result, folds = _read_split_rows(path, None)
    if not folds:
        return SPLIT_NAMES, result
    result, folds = _read_split_rows(path, 0)  # every non-test row has a fold
    names = tuple(f"fold{k}" for k in range(max(folds.values()) + 1)) + ("test",)
    return names, {i: f"fold{folds[i]}" if i in folds else name for i, name in result.items()}
