"""K-fold cross-validation of an estimator over a folds CSV (``hamkit split --folds K``).

Each fold is held out in turn and scored once, by a fresh copy of the estimator
(:func:`sklearn.base.clone`, so every fold starts from the same parameters and its own random
weights) that never saw it: not for training, and not for choosing anything. The copy trains on
the other folds, less an **inner validation set** carved out of them, on which it chooses its
best epoch (and, with ``calibrate=True``, its temperature and decision rule): the next fold after
the held-out one (cyclically) when there are three folds or more, a lesion-grouped, stratified
hold-out of the one training fold when there are two (:data:`INNER_HOLDOUT`). Choosing the
epoch on the fold that is then scored would make every fold's score optimistic. The result
reports every fold's metrics with their mean and spread, and says how each epoch was chosen.
Folds are lesion-grouped (and duplicate-grouped, as ``hamkit split`` wrote them), so no lesion
is scored by a model that saw it. A held-out test split in the CSV is left alone: score the
final model on it once, after choosing the settings with the folds.

For arrays in memory, scikit-learn's own ``cross_validate`` works on
:class:`~hamkit.classify.LesionClassifier` too (``fit(X, y)`` and ``score``); this helper is
for image folders, where the folds must follow the lesions.
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sklearn.base import clone

from hamkit._io import atomic_write_text
from hamkit.data.dataset import SkinDataset
from hamkit.errors import DataError, HamkitError

__all__ = ["CrossValidationResult", "cross_validate_folds", "fold_numbers", "report_metrics"]

#: The metrics kept per fold, by report type: ``ClassificationReport`` and ``SegmentationReport``.
CLASSIFICATION_METRICS = ("balanced_accuracy", "accuracy", "macro_f1", "melanoma_sensitivity", "macro_roc_auc")
SEGMENTATION_METRICS = ("mean_dice", "mean_iou", "thresholded_jaccard", "balanced_accuracy")

INNER_HOLDOUT = 5
"""With two folds, the inner validation set is one of this many lesion-grouped, stratified parts
of the training fold (a fifth of it)."""

SELECTION = (
    "each fold's epoch{calibration} chosen on an inner validation set carved out of its training folds "
    "({inner}); the held-out fold is scored once, by a model that chose nothing on it"
)
"""How :func:`cross_validate_folds` chooses (the result's ``selection``)."""


def fold_numbers(split_csv: str | os.PathLike[str]) -> list[int]:
    """The fold numbers of a folds CSV, sorted.

    Raises:
        DataError: No such file, or a file without a ``fold`` column or without folds.
    """
    path = Path(split_csv)
    if not path.is_file():
        raise DataError(f"{path}: folds CSV not found; write one with `hamkit split --folds K`")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if "fold" not in (reader.fieldnames or []):
            raise DataError(f"{path}: no fold column; write a folds CSV with `hamkit split --folds K`")
        found = {int(row["fold"]) for row in reader if (row.get("fold") or "").strip() not in ("", "-1")}
    if len(found) < 2:
        raise DataError(f"{path}: {len(found)} fold(s); cross-validation needs at least 2")
    return sorted(found)


def report_metrics(report: Any) -> dict[str, float]:
    """The headline numbers of a classification or segmentation report, as floats."""
    if hasattr(report, "mean_dice"):
        summary = report.summary()
        return {k: float(summary[k]) for k in SEGMENTATION_METRICS if k in summary}
    values = {
        "balanced_accuracy": report.balanced_accuracy,
        "accuracy": report.accuracy,
        "macro_f1": report.macro["f1"],
        "melanoma_sensitivity": report.melanoma_sensitivity,
        "macro_roc_auc": report.macro_roc_auc,
    }
    return {k: float(v) for k, v in values.items()}


@dataclass
class CrossValidationResult:
    """Per-fold metrics of a cross-validation, with their mean and standard deviation.

    Attributes:
        folds: The fold numbers, in order.
        metrics: One ``{metric: value}`` per fold, scored on that fold.
        best_epochs: The epoch each fold's model kept.
        reports: The full report of each fold (``ClassificationReport`` / ``SegmentationReport``).
        selection: How each fold's epoch (and calibration) was chosen, in words.
        inner_validation: Per fold, what chose its epoch: ``"fold J"`` (a training fold) or
            ``"grouped hold-out"`` (part of the one training fold), with its number of images.

    Examples:
        >>> result = CrossValidationResult(folds=[0, 1], metrics=[{"dice": 0.90}, {"dice": 0.80}])
        >>> round(result.mean()["dice"], 3), round(result.std()["dice"], 3)
        (0.85, 0.071)
    """

    folds: list[int]
    metrics: list[dict[str, float]]
    best_epochs: list[int] = field(default_factory=list)
    reports: list[Any] = field(default_factory=list, repr=False)
    selection: str = ""
    inner_validation: list[dict[str, Any]] = field(default_factory=list)

    def _values(self, name: str) -> list[float]:
        return [m[name] for m in self.metrics if name in m and not math.isnan(m[name])]

    @property
    def names(self) -> list[str]:
        """The metric names, in report order."""
        return list(self.metrics[0]) if self.metrics else []

    def mean(self) -> dict[str, float]:
        """The mean of each metric over the folds (NaN folds left out)."""
        return {n: statistics.fmean(v) if (v := self._values(n)) else math.nan for n in self.names}

    def std(self) -> dict[str, float]:
        """The sample standard deviation of each metric over the folds."""
        return {n: statistics.stdev(v) if len(v := self._values(n)) > 1 else math.nan for n in self.names}

    def as_dict(self) -> dict[str, Any]:
        """Folds, per-fold metrics, mean and std as plain values (NaN as ``None``)."""

        def clean(values: dict[str, float]) -> dict[str, float | None]:
            return {k: None if math.isnan(v) else v for k, v in values.items()}

        return {
            "folds": self.folds,
            "per_fold": [clean(m) for m in self.metrics],
            "best_epochs": self.best_epochs,
            "selection": self.selection,
            "inner_validation": self.inner_validation,
            "mean": clean(self.mean()),
            "std": clean(self.std()),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`as_dict` as JSON (atomically)."""
        return atomic_write_text(Path(path), json.dumps(self.as_dict(), indent=2) + "\n")

    def format_table(self) -> str:
        """A plain-text table: one row per fold, then mean and std."""
        names = self.names
        width = max([len("mean") + 2] + [len(n) for n in names])
        lines = ["fold  " + "  ".join(f"{n:>{width}}" for n in names)]
        for fold, metrics in zip(self.folds, self.metrics, strict=True):
            lines.append(f"{fold:<4}  " + "  ".join(f"{metrics.get(n, math.nan):>{width}.3f}" for n in names))
        lines.append("mean  " + "  ".join(f"{v:>{width}.3f}" for v in self.mean().values()))
        lines.append("std   " + "  ".join(f"{v:>{width}.3f}" for v in self.std().values()))
        if self.selection:
            lines.append(self.selection)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_table()


def _fold_table(split_csv: str | os.PathLike[str]) -> dict[str, tuple[int, str]]:
    """``{image_id: (fold, group)}`` of the folded rows of a folds CSV (the ``group`` column joins
    lesions and duplicates; without it, the lesion id, else the image id)."""
    table = {}
    with Path(split_csv).open(newline="", encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle):
            fold = (row.get("fold") or "").strip()
            if fold and fold != "-1":
                image_id = row["image_id"].strip()
                group = (row.get("group") or "").strip() or (row.get("lesion_id") or "").strip() or image_id
                table[image_id] = (int(fold), group)
    return table


def _inner_split(
    train: SkinDataset, k: int, available: list[int], table: dict[str, tuple[int, str]], random_state: int
) -> tuple[list[int], list[int], str]:
    """Positions in ``train`` (the folds other than ``k``) of the inner training and validation
    sets, and what the validation set is: the next fold after ``k``, or with two folds a grouped,
    stratified hold-out of the training fold."""
    if len(available) >= 3:
        inner = available[(available.index(k) + 1) % len(available)]
        chosen = [i for i, image_id in enumerate(train.image_ids) if table[image_id][0] == inner]
        what = f"fold {inner}"
    else:
        from sklearn.model_selection import StratifiedGroupKFold

        groups = [table[image_id][1] for image_id in train.image_ids]
        parts = StratifiedGroupKFold(n_splits=INNER_HOLDOUT, shuffle=True, random_state=random_state)
        with warnings.catch_warnings():  # a class with fewer lesions than parts lands in some parts only
            warnings.filterwarnings("ignore", message="The least populated class in y")
            _, held = next(parts.split(train.image_ids, train.labels, groups))
        chosen = sorted(int(i) for i in held)
        what = "grouped hold-out"
    inner_val = set(chosen)
    return [i for i in range(len(train)) if i not in inner_val], chosen, what


def _random_state_of(estimator: Any) -> int:
    """The random_state of the estimator's recipe (0 for an estimator without one)."""
    recipe = getattr(estimator, "recipe", None) or getattr(estimator, "_DEFAULT_RECIPE", None)
    return int(getattr(recipe, "random_state", 0) or 0)


def cross_validate_folds(
    estimator: Any,
    data: str | os.PathLike[str],
    *,
    split_csv: str | os.PathLike[str],
    folds: list[int] | None = None,
    masks: str | os.PathLike[str] | bool | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    on_missing: str = "error",
    progress: bool = True,
    calibrate: bool = False,
    labels: Any = None,
    **fit: Any,
) -> CrossValidationResult:
    """Train one copy of ``estimator`` per fold and score it once on that fold, which chose nothing.

    For held-out fold ``k``, the copy trains on the other folds less an inner validation set
    carved out of them (the next fold after ``k``, cyclically; with two folds, a lesion-grouped
    stratified fifth of the training fold), chooses its best epoch on that inner set (and with
    ``calibrate`` its temperature and decision rule), and is then scored on fold ``k``.

    Args:
        estimator: An unfitted :class:`~hamkit.classify.LesionClassifier` or
            :class:`~hamkit.segment.LesionSegmenter` (cloned for every fold).
        data: The data folder (HAM10000 layout).
        split_csv: A folds CSV from ``hamkit split --folds K`` (or ``split_dataset(..., folds=K)``).
        folds: Run only these folds (default: all of them).
        masks: For a segmenter: the masks folder (default: found under ``data``).
        out_dir: Write each fold's checkpoints and history under ``out_dir/fold_<k>/``, its
            model under ``out_dir/fold_<k>/model/`` and the result as ``out_dir/crossval.json``.
        on_missing: ``"error"`` or ``"skip"`` for images without a file (or mask).
        progress: Print one line per fold (and the trainer's progress).
        calibrate: A classifier is calibrated (temperature and decision rule,
            :meth:`~hamkit.classify.LesionClassifier.calibrate`) on the inner validation set
            before it is scored, as ``hamkit run`` calibrates on its validation split.
        labels: The data root's labels file or records (any format
            :func:`~hamkit.data.metadata.read_labels` reads; default: the HAM10000 metadata).
        **fit: Other keyword arguments of the estimator's ``fit`` (``cache``, ``num_workers``...);
            the recipe is the estimator's (its ``random_state`` also fixes the two-fold hold-out).

    Returns:
        The :class:`CrossValidationResult`; its ``selection`` and ``inner_validation`` say how
        each fold's epoch was chosen.

    Raises:
        DataError: The CSV has no folds, or a fold asked for is not in it.
        HamkitError: The estimator has no ``fit`` / ``evaluate``, or its settings are bad, or
            ``calibrate`` for an estimator without ``calibrate``.

    Examples:
        >>> from hamkit import LesionClassifier, TrainConfig
        >>> clf = LesionClassifier("mobilenet_v3_small", image_size=128, pretrained=False,
        ...                        recipe=TrainConfig(epochs=14, optimizer="adamw", lr=1e-3))
        >>> result = cross_validate_folds(clf, "HAM10000", split_csv="folds.csv")  # doctest: +SKIP
        >>> print(result.format_table())  # doctest: +SKIP
    """
    if not (hasattr(estimator, "fit") and hasattr(estimator, "evaluate") and hasattr(estimator, "get_params")):
        raise HamkitError(
            f"cannot cross-validate a {type(estimator).__name__}; pass a LesionClassifier or LesionSegmenter"
        )
    if calibrate and not hasattr(estimator, "calibrate"):
        raise HamkitError(f"calibrate=True: a {type(estimator).__name__} has no calibrate(); pass calibrate=False")
    available = fold_numbers(split_csv)
    chosen = available if folds is None else list(folds)
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        raise DataError(f"{split_csv}: no fold {unknown[0]}; it has folds {', '.join(map(str, available))}")
    table = _fold_table(split_csv)
    segmenting = hasattr(estimator, "predict_mask_proba")
    mask_option: dict[str, Any] = {"masks": True if masks is None else masks} if segmenting else {}
    root = Path(out_dir) if out_dir is not None else None
    inner_text = (
        "the next fold after the held-out one"
        if len(available) >= 3
        else f"a lesion-grouped, stratified 1/{INNER_HOLDOUT} of the training fold"
    )
    result = CrossValidationResult(
        folds=[],
        metrics=[],
        selection=SELECTION.format(calibration=" and calibration" if calibrate else "", inner=inner_text),
    )
    for number, k in enumerate(chosen, start=1):
        outer = SkinDataset.from_folder(
            data, labels=labels, split_csv=split_csv, split="train", fold=k, on_missing=on_missing, **mask_option
        )
        held_out = SkinDataset.from_folder(
            data, labels=labels, split_csv=split_csv, split="val", fold=k, on_missing=on_missing, **mask_option
        )
        inner_train, inner_val, what = _inner_split(outer, k, available, table, _random_state_of(estimator))
        train, val = outer.subset(inner_train), outer.subset(inner_val)
        label = f"fold {k} ({number}/{len(chosen)})"
        if progress:
            print(
                f"{label}: {len(train)} training images, {len(val)} choosing the epoch ({what}), "
                f"{len(held_out)} held out",
                file=sys.stderr,
                flush=True,
            )
        model = clone(estimator)
        folder = root / f"fold_{k}" if root is not None else None
        model.fit(train, val, out_dir=folder, progress=label if progress else False, **fit)
        if calibrate:
            model.calibrate(val)
        report = model.evaluate(held_out)
        if folder is not None:
            model.save(folder / "model")
            report.save(folder / "fold_report.json")
        result.folds.append(k)
        result.metrics.append(report_metrics(report))
        result.best_epochs.append(int(getattr(model, "best_epoch_", 0)))
        result.inner_validation.append({"chosen_on": what, "images": len(val), "training_images": len(train)})
        result.reports.append(report)
    if root is not None:
        result.save(root / "crossval.json")
    return result
