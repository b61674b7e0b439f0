"""Metrics broken down by patient and lesion metadata: for whom does the model work?

HAM10000's metadata has ``sex``, ``age``, ``localization`` (body site) and ``dx_type`` (how the
diagnosis was confirmed: histopathology, follow-up, consensus, confocal). :func:`subgroup_tables`
scores a classifier's decisions in every value of each column (age in the bands of
:data:`AGE_BANDS`), :func:`subgroup_means` a segmenter's per-image scores; each cell has its
number of images and lesions and a 95 % interval that resamples lesions
(:func:`hamkit.metrics.bootstrap.bootstrap_groups`). Cells with fewer than :data:`MIN_LESIONS` lesions
are marked ``small`` (shown greyed, never hidden, and left out of the largest gap); the largest
gap between the cells of a column is named per metric.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hamkit.errors import DataError
from hamkit.metrics.bootstrap import bootstrap_groups, metrics_from_confusion, percentile_interval

__all__ = [
    "AGE_BANDS",
    "DEFAULT_COLUMNS",
    "MIN_LESIONS",
    "age_band",
    "columns_from_records",
    "format_subgroups",
    "metadata_columns",
    "subgroup_means",
    "subgroup_tables",
]

DEFAULT_COLUMNS = ("sex", "age", "localization", "dx_type")
"""The metadata columns broken down by default (``age`` in :data:`AGE_BANDS`)."""

AGE_BANDS = ((0.0, 30.0, "<30"), (30.0, 50.0, "30-49"), (50.0, 70.0, "50-69"), (70.0, math.inf, ">=70"))
"""Age bands ``(from, below, label)``, in years."""

MIN_LESIONS = 10
"""A cell with fewer lesions than this is ``small``: shown greyed, left out of the largest gap."""

UNKNOWN = "unknown"

CLASSIFICATION_METRICS = ("balanced_accuracy", "accuracy", "melanoma_sensitivity", "melanoma_specificity")
"""The numbers of a classifier's cell; the first and third are compared across cells."""

_GAP_METRICS = ("balanced_accuracy", "melanoma_sensitivity")


def age_band(value: Any) -> str:
    """The band of :data:`AGE_BANDS` an age falls in (``unknown`` when empty or not a number).

    Examples:
        >>> [age_band(v) for v in ("25", 30, "49.0", 70.0, "", None)]
        ['<30', '30-49', '30-49', '>=70', 'unknown', 'unknown']
    """
    try:
        age = float(value)
    except (TypeError, ValueError):
        return UNKNOWN
    if not math.isfinite(age):
        return UNKNOWN
    return next(label for low, high, label in AGE_BANDS if low <= age < high) if age >= 0 else UNKNOWN


def metadata_columns(
    label_file: str | os.PathLike[str], image_ids: Sequence[str], columns: Sequence[str] = DEFAULT_COLUMNS
) -> dict[str, list[str]]:
    """The value of each metadata column for each image, read from the labels CSV.

    ``age`` is given as its band (``age_band``); an empty cell, or an image the file does not
    list, is ``unknown``.

    Args:
        label_file: The metadata CSV (e.g. ``HAM10000_metadata.csv``).
        image_ids: The images, in the order of the predictions.
        columns: The columns to read.

    Returns:
        ``{column: [value per image]}``; columns the file lacks are left out when they are
        among :data:`DEFAULT_COLUMNS`.

    Raises:
        DataError: A column not among the defaults that the file does not have.
    """
    path = Path(label_file)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        rows = {row.get("image_id") or row.get("image") or "": row for row in reader}
    missing = [c for c in columns if c not in header and c not in DEFAULT_COLUMNS]
    if missing:
        raise DataError(
            f"{path}: no column {', '.join(missing)} to break the metrics down by (--by); "
            f"its columns are {', '.join(header)}"
        )
    found: dict[str, list[str]] = {}
    for column in columns:
        if column not in header:
            continue
        values = [(rows.get(i) or {}).get(column, "") or "" for i in image_ids]
        found[column] = [age_band(v) for v in values] if column == "age" else [v.strip() or UNKNOWN for v in values]
    return found


def columns_from_records(
    records: Sequence[Any], image_ids: Sequence[str], columns: Sequence[str] = DEFAULT_COLUMNS
) -> dict[str, list[str]]:
    """:func:`metadata_columns` from read records (:class:`~hamkit.data.metadata.ImageRecord`) instead of the file.

    Examples:
        >>> from types import SimpleNamespace as R
        >>> columns_from_records([R(image_id="a", sex="male", age=31.0, localization="", dx_type="histo")], ["a"])
        {'sex': ['male'], 'age': ['30-49'], 'localization': ['unknown'], 'dx_type': ['histo']}
    """
    by_id = {r.image_id: r for r in records}
    found: dict[str, list[str]] = {}
    for column in columns:
        values = [getattr(by_id.get(i), column, None) for i in image_ids]
        found[column] = (
            [age_band(v) for v in values] if column == "age" else [str(v).strip() if v else UNKNOWN for v in values]
        )
    return found


def _classification_values(truth: np.ndarray, pred: np.ndarray, n_classes: int, mel: int | None) -> dict[str, float]:
    matrix = np.bincount(truth * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    values = metrics_from_confusion(matrix, mel)
    values.pop("macro_f1", None)
    if mel is not None:
        negatives = matrix.sum() - matrix[mel].sum()
        values["melanoma_specificity"] = (
            float((negatives - (matrix[:, mel].sum() - matrix[mel, mel])) / negatives) if negatives else float("nan")
        )
    return values


def _cells(columns: Mapping[str, Sequence[str]], groups: Sequence[Hashable]) -> list[tuple[str, str, np.ndarray, int]]:
    """``(column, value, image indices, lesions)`` of every cell, values in a stable order
    (age bands in age order, ``unknown`` last, others by number of images)."""
    lesion = np.asarray([str(g) for g in groups])
    cells = []
    for column, values in columns.items():
        array = np.asarray(values, dtype=object)
        if array.size != lesion.size:
            raise DataError(f"{column}: {array.size} values for {lesion.size} images")
        labels = [label for _, _, label in AGE_BANDS] if column == "age" else []
        seen = list(dict.fromkeys(array.tolist()))
        ordered = [v for v in labels if v in seen] + sorted(
            (v for v in seen if v not in labels and v != UNKNOWN), key=lambda v: (-(array == v).sum(), v)
        )
        ordered += [UNKNOWN] if UNKNOWN in seen else []
        for value in ordered:
            index = np.flatnonzero(array == value)
            cells.append((column, str(value), index, len(set(lesion[index].tolist()))))
    return cells


def _gaps(tables: dict[str, Any], metrics: Sequence[str]) -> dict[str, Any]:
    """Per metric, the column whose cells (not small) differ most, with the lowest and highest cell."""
    largest: dict[str, Any] = {}
    for metric in metrics:
        best = None
        for column, table in tables.items():
            rows = [
                r
                for r in table["rows"]
                if not r["small"]
                and metric not in r.get("small_metrics", [])
                and r["values"].get(metric) is not None
                and math.isfinite(r["values"][metric])
            ]
            if len(rows) < 2:
                continue
            low = min(rows, key=lambda r: r["values"][metric])
            high = max(rows, key=lambda r: r["values"][metric])
            gap = high["values"][metric] - low["values"][metric]
            entry = {
                "column": column,
                "gap": gap,
                "low": {"value": low["value"], "score": low["values"][metric], "lesions": low["lesions"]},
                "high": {"value": high["value"], "score": high["values"][metric], "lesions": high["lesions"]},
            }
            table.setdefault("gaps", {})[metric] = entry
            if best is None or gap > best["gap"]:
                best = entry
        if best is not None:
            largest[metric] = best
    return largest


def subgroup_tables(
    columns: Mapping[str, Sequence[str]],
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    groups: Sequence[Hashable],
    *,
    classes: Sequence[str],
    n_resamples: int = 1000,
    min_lesions: int = MIN_LESIONS,
    confidence: float = 0.95,
    random_state: int = 0,
) -> dict[str, Any]:
    """A classifier's decisions scored in every subgroup of every column.

    Args:
        columns: ``{column: value per image}`` (e.g. :func:`metadata_columns`).
        y_true: True class indices.
        y_pred: Decided class indices (the saved rule's).
        groups: The lesion of every image (counted per cell and resampled).
        classes: Class names (``mel`` for the melanoma numbers).
        n_resamples: Bootstrap resamples per cell (0: no intervals).
        min_lesions: Cells with fewer lesions are ``small``; the melanoma numbers of a cell with
            fewer melanoma lesions are listed in its ``small_metrics``.
        confidence: Coverage of the intervals.
        random_state: Random state of the draws.

    Returns:
        ``{"metrics": [...], "min_lesions": m, "tables": {column: {"rows": [{"value", "n",
        "lesions", "melanoma_lesions", "small", "small_metrics", "values", "intervals"}], "gaps":
        {metric: ...}}}, "largest_gap": {metric: {"column", "gap", "low", "high"}}}``.

    Examples:
        >>> y = np.array([0, 1, 0, 1, 0, 1, 1, 1])
        >>> found = subgroup_tables({"sex": ["male"] * 4 + ["female"] * 4}, y, np.array([0, 1, 1, 1, 0, 1, 1, 0]),
        ...                         [str(i) for i in range(8)], classes=["mel", "nv"], n_resamples=0, min_lesions=1)
        >>> [(r["value"], r["values"]["melanoma_sensitivity"]) for r in found["tables"]["sex"]["rows"]]
        [('female', 1.0), ('male', 0.5)]
        >>> found["largest_gap"]["melanoma_sensitivity"]["gap"]
        0.5
    """
    truth = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    names = list(classes)
    mel = names.index("mel") if "mel" in names else None
    if truth.shape != pred.shape or truth.size != len(groups):
        raise DataError(f"{truth.size} labels, {pred.size} decisions and {len(groups)} groups do not align")
    lesion = np.asarray([str(g) for g in groups])
    tables: dict[str, Any] = {}
    for column, value, index, lesions in _cells(columns, groups):
        values = _classification_values(truth[index], pred[index], len(names), mel)
        mel_lesions = len(set(lesion[index][truth[index] == mel].tolist())) if mel is not None else 0
        intervals: dict[str, list[float]] = {}
        if n_resamples > 0:
            draws = bootstrap_groups(lesion[index].tolist(), n_resamples, random_state)
            samples = [_classification_values(truth[index][d], pred[index][d], len(names), mel) for d in draws]
            intervals = {
                name: list(percentile_interval(np.array([s[name] for s in samples]), confidence)) for name in values
            }
        tables.setdefault(column, {"rows": []})["rows"].append(
            {
                "value": value,
                "n": int(index.size),
                "lesions": lesions,
                "melanoma_lesions": mel_lesions,
                "small": lesions < min_lesions,
                "small_metrics": (["melanoma_sensitivity"] if mel is not None and mel_lesions < min_lesions else []),
                "values": values,
                "intervals": intervals,
            }
        )
    return {
        "metrics": [m for m in CLASSIFICATION_METRICS if mel is not None or not m.startswith("melanoma")],
        "min_lesions": min_lesions,
        "tables": tables,
        "largest_gap": _gaps(tables, [m for m in _GAP_METRICS if mel is not None or m == "balanced_accuracy"]),
    }


def subgroup_means(
    columns: Mapping[str, Sequence[str]],
    per_sample: Mapping[str, Sequence[float] | np.ndarray],
    groups: Sequence[Hashable],
    *,
    n_resamples: int = 1000,
    min_lesions: int = MIN_LESIONS,
    confidence: float = 0.95,
    random_state: int = 0,
) -> dict[str, Any]:
    """Per-image scores (a segmenter's Dice, thresholded Jaccard...) averaged in every subgroup,
    with the same cells, intervals, small cells and largest gap as :func:`subgroup_tables`.

    Examples:
        >>> found = subgroup_means({"sex": ["male", "male", "female", "female"]}, {"dice": [0.9, 0.7, 0.5, 0.6]},
        ...                        ["a", "b", "c", "d"], n_resamples=0, min_lesions=1)
        >>> [(r["value"], round(r["values"]["dice"], 2)) for r in found["tables"]["sex"]["rows"]]
        [('female', 0.55), ('male', 0.8)]
    """
    scores = {name: np.asarray(v, dtype=np.float64) for name, v in per_sample.items()}
    lesion = np.asarray([str(g) for g in groups])
    tables: dict[str, Any] = {}
    for column, value, index, lesions in _cells(columns, groups):
        values = {name: float(np.nanmean(s[index])) for name, s in scores.items()}
        intervals: dict[str, list[float]] = {}
        if n_resamples > 0:
            draws = bootstrap_groups(lesion[index].tolist(), n_resamples, random_state)
            intervals = {
                name: list(percentile_interval(np.array([np.nanmean(s[index][d]) for d in draws]), confidence))
                for name, s in scores.items()
            }
        tables.setdefault(column, {"rows": []})["rows"].append(
            {
                "value": value,
                "n": int(index.size),
                "lesions": lesions,
                "small": lesions < min_lesions,
                "small_metrics": [],
                "values": values,
                "intervals": intervals,
            }
        )
    return {
        "metrics": list(scores),
        "min_lesions": min_lesions,
        "tables": tables,
        "largest_gap": _gaps(tables, list(scores)[:1]),
    }


def _number(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.3f}"


def gap_lines(found: Mapping[str, Any]) -> list[str]:
    """The largest gap per metric, one sentence each.

    Examples:
        >>> gap_lines({"largest_gap": {"balanced_accuracy": {"column": "sex", "gap": 0.1,
        ...     "low": {"value": "male", "score": 0.6, "lesions": 40}, "high": {"value": "female", "score": 0.7,
        ...     "lesions": 50}}}})
        ['largest gap in balanced accuracy: by sex, 0.600 (male, 40 lesions) vs 0.700 (female, 50 lesions)']
    """
    if not found.get("largest_gap"):
        return [
            f"largest gap: none named, no column has two subgroups with {found.get('min_lesions', MIN_LESIONS)} "
            "or more lesions"
        ]
    lines = []
    for metric, gap in (found.get("largest_gap") or {}).items():
        lines.append(
            f"largest gap in {metric.replace('_', ' ')}: by {gap['column']}, {_number(gap['low']['score'])} "
            f"({gap['low']['value']}, {gap['low']['lesions']} lesions) vs {_number(gap['high']['score'])} "
            f"({gap['high']['value']}, {gap['high']['lesions']} lesions)"
        )
    return lines


def format_subgroups(found: Mapping[str, Any]) -> list[str]:
    """The subgroup tables as text; small cells are marked ``*`` (their numbers are noise)."""
    metrics = list(found["metrics"])
    lines = [
        f"subgroups (95% intervals resampling lesions; * fewer than {found['min_lesions']} lesions, read with care):"
    ]
    for column, table in found["tables"].items():
        lines.append(f"  by {column}:")
        width = max(len(r["value"]) for r in table["rows"]) + 2
        head = "".join(f"{m.replace('_', ' '):>30}" for m in metrics)
        lines.append(f"    {'':<{width}}{'images':>7}{'lesions':>8}{head}")
        for row in table["rows"]:
            cells = ""
            for metric in metrics:
                value, interval = row["values"].get(metric), row["intervals"].get(metric)
                text = _number(value)
                if interval and interval[0] is not None and math.isfinite(interval[0]):
                    text += f" [{_number(interval[0])}-{_number(interval[1])}]"
                if metric in row.get("small_metrics", []):
                    text += "*"
                cells += f"{text:>30}"
            mark = "*" if row["small"] else " "
            lines.append(f"   {mark}{row['value']:<{width}}{row['n']:>7}{row['lesions']:>8}{cells}")
    return lines + gap_lines(found)
