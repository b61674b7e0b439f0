"""How groups are cut into folds: K-fold cross-validation, and the plan behind train / val / test.

:func:`~hamkit.data.splits.split_dataset` uses these helpers. Every group (a lesion, merged with
any duplicate group) lands in exactly one fold, and scikit-learn's
:class:`~sklearn.model_selection.StratifiedGroupKFold` keeps each class's share near-equal across
the folds. With ``folds=K`` a repair step then moves single groups so that every class appears in
every fold (always possible: a class needs at least ``K`` lesions). A train / val / test split is
``k`` such folds with whole folds per split (:func:`three_way_assignment`).

A folds CSV has the columns of a split CSV plus ``fold``: fold rows have ``split`` ``train`` and
their fold number (``0`` .. ``K-1``); rows of a held-out test split have ``split`` ``test`` and an
empty ``fold``. Read fold ``k`` as a train / val split with ``read_split_csv(path, fold=k)``,
``Split.fold(k)`` or ``SkinDataset.from_folder(root, split_csv=path, split="val", fold=k)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from hamkit.classes import CLASS_CODES
from hamkit.errors import DataError

__all__ = [
    "NO_FOLD",
    "assign_folds",
    "check_fold_count",
    "fold_assignment",
    "fold_summary",
    "format_fold_table",
    "three_way_assignment",
]

NO_FOLD = -1
"""The fold number of an item outside the folds (a held-out test image)."""

_SPLITS = ("train", "val", "test")  # hamkit.data.splits.SPLIT_NAMES
_MAX_FOLDS = 100


def _groups_per_class(labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """How many distinct groups hold at least one image of each class."""
    pairs = np.unique(np.stack([labels, groups]), axis=1)
    return np.bincount(pairs[0], minlength=int(labels.max()) + 1 if labels.size else 0)


def check_fold_count(
    n_folds: int,
    labels: np.ndarray,
    groups: np.ndarray,
    *,
    where: str = "",
    classes: Sequence[str] = CLASS_CODES,
    remedy: str | None = None,
) -> None:
    """Fail unless ``n_folds`` folds can be made with every class in every fold.

    Args:
        n_folds: The requested number of folds.
        labels: Class index per item.
        groups: Group index per item (``0`` .. ``G-1``).
        where: Text naming the items, e.g. ``" after the held-out test split"``.
        classes: The class names (for the message).
        remedy: Another way out for the message, e.g. ``"a smaller test= share"``.

    Raises:
        DataError: ``n_folds`` is below 2, or a class present in the data has fewer groups
            (lesions) than ``n_folds``; the message says how many folds would work (where 2 or
            more would), and ``remedy``.

    Examples:
        >>> labels, groups = np.array([0, 0, 1, 1]), np.array([0, 1, 2, 2])
        >>> check_fold_count(2, labels, groups, classes=["a", "b"])
        Traceback (most recent call last):
        ...
        hamkit.errors.DataError: 2 folds need at least 2 lesions per class, but class b has only 1; more data is needed
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise DataError(f"folds must be a whole number of at least 2, got {n_folds!r}")
    per_class = _groups_per_class(labels, groups)
    present = np.flatnonzero(per_class)
    fewest = int(present[np.argmin(per_class[present])])
    if per_class[fewest] < n_folds:
        ways = [f"folds={per_class[fewest]} or fewer"] if per_class[fewest] >= 2 else []  # never "folds=1"
        ways += [remedy] if remedy else []
        advice = "use " + ", or ".join([*ways, "more data"]) if ways else "more data is needed"
        raise DataError(
            f"{n_folds} folds need at least {n_folds} lesions per class, but class {_name(classes, fewest)} has only "
            f"{per_class[fewest]}{where}; {advice}"
        )


def _name(classes: Sequence[str], index: int) -> str:
    return str(classes[index]) if index < len(classes) else f"class {index}"


def _repair(folds: np.ndarray, labels: np.ndarray, groups: np.ndarray, n_folds: int) -> None:
    """Move single groups so every class appears in every fold (in place)."""
    size = np.bincount(groups)
    group_fold = np.full(size.size, NO_FOLD, dtype=np.int64)
    group_fold[groups] = folds
    for cls in np.unique(labels).tolist():
        mine = np.unique(groups[labels == cls])
        if mine.size < n_folds:
            continue
        for target in range(n_folds):
            if np.any(group_fold[mine] == target):
                continue
            counts = np.bincount(group_fold[mine], minlength=n_folds)
            donor = int(np.argmax(counts))
            if counts[donor] < 2:
                continue
            candidates = mine[group_fold[mine] == donor]
            moved = candidates[np.lexsort((candidates, size[candidates]))[0]]  # the smallest group
            group_fold[moved] = target
    folds[:] = group_fold[groups]


def assign_folds(
    labels: np.ndarray, groups: np.ndarray, n_folds: int, *, random_state: int = 0, classes: Sequence[str] = CLASS_CODES
) -> np.ndarray:
    """Cut the items into ``n_folds`` lesion-grouped, class-stratified folds.

    Args:
        labels: Class index per item.
        groups: Group index per item; every group lands in one fold.
        n_folds: Number of folds (at least 2, and at most the number of groups of any class).
        random_state: Random state of the shuffle.
        classes: The class names (for messages).

    Returns:
        ``int64`` fold number (``0`` .. ``n_folds - 1``) per item.

    Raises:
        DataError: Too few groups of a class for ``n_folds`` (see :func:`check_fold_count`).

    Examples:
        >>> labels = np.array([0, 0, 1, 1, 0, 1, 0, 1])
        >>> folds = assign_folds(labels, np.arange(8), 2)  # eight lesions of one image each
        >>> sorted(set(labels[folds == 0].tolist())), sorted(set(labels[folds == 1].tolist()))
        ([0, 1], [0, 1])
    """
    from sklearn.model_selection import StratifiedGroupKFold

    labels = np.asarray(labels, dtype=np.int64)
    _, groups = np.unique(np.asarray(groups), return_inverse=True)  # renumber 0..G-1
    check_fold_count(n_folds, labels, groups, classes=classes)
    folds = np.empty(labels.size, dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=int(n_folds), shuffle=True, random_state=random_state)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for fold, (_, index) in enumerate(splitter.split(np.zeros(labels.size), labels, groups)):
            folds[index] = fold
    _repair(folds, labels, groups, int(n_folds))
    return folds


def _fold_plan(fractions: Sequence[float], n_groups: int) -> tuple[int, list[int]]:
    """Choose the number of folds ``k`` and how many folds each split gets."""
    best: tuple[float, int, list[int]] | None = None
    for k in range(2, min(_MAX_FOLDS, n_groups) + 1):
        counts = [int(round(f * k)) for f in fractions]
        if sum(counts) != k:
            continue
        error = max(abs(c / k - f) for c, f in zip(counts, fractions, strict=True))
        if best is None or error < best[0] - 1e-12:
            best = (error, k, counts)
        if error < 1e-9:
            break
    if best is None:
        raise DataError(
            f"too few groups ({n_groups}) to split into fractions {list(fractions)}; use more data or fewer splits"
        )
    return best[1], best[2]


def _repair_missing_classes(
    assignment: np.ndarray, labels: np.ndarray, groups: np.ndarray, fractions: Sequence[float]
) -> None:
    """Move single groups so every class with >= 3 groups appears in every non-empty split."""
    active = [name for name, f in zip(_SPLITS, fractions, strict=True) if f > 0]
    _, first, group_size = np.unique(groups, return_index=True, return_counts=True)
    group_label = labels[first]  # groups are numbered 0..G-1, so index = group id
    group_split = assignment[first].copy()
    for cls in np.unique(labels).tolist():
        mine = np.flatnonzero(group_label == cls)
        if mine.size < len(active):
            continue
        for target in active:
            if np.any(group_split[mine] == target):
                continue
            donor = max(active, key=lambda name: int(np.sum(group_split[mine] == name)))
            candidates = mine[group_split[mine] == donor]
            if candidates.size < 2:
                continue
            moved = candidates[np.lexsort((candidates, group_size[candidates]))[0]]
            group_split[moved] = target
            assignment[groups == moved] = target


def three_way_assignment(
    labels: np.ndarray, groups: np.ndarray, values: Sequence[float], random_state: int
) -> np.ndarray:
    """The split name per item for ``values`` = (train, val, test) fractions (a :class:`str` array).

    ``k`` stratified group folds (the plan of :func:`_fold_plan`), whole folds per split, then a
    repair step that puts every class with at least three groups into every non-empty split.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = int(groups.max()) + 1
    k, counts = _fold_plan(values, n_groups)
    folds = np.empty(labels.size, dtype=np.int64)
    if np.bincount(labels).max() >= k:
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=random_state)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
            for fold, (_, test_index) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
                folds[test_index] = fold
    else:  # too small to stratify: shuffled groups, each to the fold with the fewest images
        sizes = np.bincount(groups)
        fold_sizes = np.zeros(k, dtype=np.int64)
        group_fold = np.empty(sizes.size, dtype=np.int64)
        for group in np.random.default_rng(random_state).permutation(sizes.size):
            group_fold[group] = int(np.argmin(fold_sizes))
            fold_sizes[group_fold[group]] += sizes[group]
        folds = group_fold[groups]
    bounds = np.cumsum([0, *counts])
    assignment = np.empty(len(labels), dtype=object)
    for name, start, stop in zip(_SPLITS, bounds[:-1], bounds[1:], strict=True):
        assignment[(folds >= start) & (folds < stop)] = name
    _repair_missing_classes(assignment, labels, groups, values)
    return assignment.astype(str)


def fold_assignment(
    labels: np.ndarray,
    groups: np.ndarray,
    n_folds: int,
    test: float | None,
    random_state: int,
    *,
    classes: Sequence[str] = CLASS_CODES,
    held_out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """``(split name, fold number, fractions)`` of ``n_folds`` folds, after an optional held-out
    test split (a ``test`` share, or the items where ``held_out`` is true)."""
    if test is not None and (isinstance(test, bool) or not isinstance(test, (int, float)) or not 0 <= test < 1):
        raise DataError(f"test must be a fraction from 0 up to (not including) 1, got {test!r}")
    share = float(test or 0.0)
    if held_out is not None:
        assignment = np.where(held_out, "test", "train")
        share = float(held_out.mean())
    elif share > 0:
        check_fold_count(n_folds, labels, groups, classes=classes)
        assignment = three_way_assignment(labels, groups, (1.0 - share, 0.0, share), random_state)
    else:
        assignment = np.full(labels.size, "train")
    rest = assignment == "train"
    where = " after the held-out test split" if share > 0 else ""
    remedy: str | None = None
    if held_out is not None:
        remedy = "another held-out source (hold_out_source=)"
    elif share > 0:
        remedy = "a smaller held-out test split" + _smaller_test(labels, groups, n_folds, share, random_state)
    check_fold_count(n_folds, labels[rest], groups[rest], where=where, classes=classes, remedy=remedy)
    folds = np.full(labels.size, NO_FOLD, dtype=np.int64)
    folds[rest] = assign_folds(labels[rest], groups[rest], n_folds, random_state=random_state, classes=classes)
    return assignment, folds, (1.0 - share, 0.0, share)


def _smaller_test(labels: np.ndarray, groups: np.ndarray, n_folds: int, share: float, random_state: int) -> str:
    """``", e.g. test=0.1"``: the largest test share below ``share`` (in steps of 0.025) that leaves
    ``n_folds`` lesions of every class for the folds, or ``""`` when none does."""
    for step in range(int(np.ceil(share / 0.025)) - 1, 0, -1):
        smaller = round(step * 0.025, 3)
        rest = three_way_assignment(labels, groups, (1.0 - smaller, 0.0, smaller), random_state) == "train"
        per_class = _groups_per_class(labels[rest], groups[rest])
        if per_class[np.flatnonzero(_groups_per_class(labels, groups))].min() >= n_folds:
            return f", e.g. test={smaller:g}"
    return ""


def fold_summary(
    labels: np.ndarray, groups: np.ndarray, folds: np.ndarray, classes: Sequence[str] = CLASS_CODES
) -> dict[str, dict[str, float | int]]:
    """Per fold (``"fold 0"`` ...) and for the held-out ``"test"`` rows, if any: images, groups,
    share of all images, and the count and share of each class (``"<code>_share"``)."""
    result: dict[str, dict[str, float | int]] = {}
    n = labels.size
    names = [(f"fold {k}", folds == k) for k in range(int(folds.max()) + 1)]
    if np.any(folds == NO_FOLD):
        names.append(("test", folds == NO_FOLD))
    for name, mask in names:
        counts = np.bincount(labels[mask], minlength=len(classes))
        row: dict[str, float | int] = {
            "images": int(mask.sum()),
            "groups": int(np.unique(groups[mask]).size),
            "fraction": float(mask.sum() / n) if n else 0.0,
        }
        for code, count in zip(classes, counts.tolist(), strict=True):
            row[code] = int(count)
        for code, count in zip(classes, counts.tolist(), strict=True):
            row[f"{code}_share"] = float(count / mask.sum()) if mask.any() else 0.0
        result[name] = row
    return result


def format_fold_table(
    labels: np.ndarray, groups: np.ndarray, folds: np.ndarray, classes: Sequence[str] = CLASS_CODES
) -> str:
    """:func:`fold_summary` as a plain-text table (images per class per fold, and the test rows)."""
    summary = fold_summary(labels, groups, folds, classes)
    width = max(7, *(len(c) + 1 for c in classes))
    header = f"{'fold':<8}{'images':>8}{'lesions':>9}{'share':>8}" + "".join(f"{c:>{width}}" for c in classes)
    lines = [header]
    for name, row in summary.items():
        lines.append(
            f"{name.removeprefix('fold '):<8}{row['images']:>8}{row['groups']:>9}{row['fraction']:>8.3f}"
            + "".join(f"{row[c]:>{width}}" for c in classes)
        )
    return "\n".join(lines)
