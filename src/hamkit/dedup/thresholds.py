"""Choosing a duplicate threshold from lesion ids, and pairs whose labels disagree.

HAM10000's ``lesion_id`` is free ground truth: two images of the same lesion may well be
duplicates, and two images of *different* lesions are (almost always) not. A threshold is good
when raising it further loses many within-lesion pairs but few across lesions are left to lose.
:func:`calibrate_scores` counts, for every candidate threshold, the pairs at or above it within
and across lesions and suggests the lowest threshold at which the pairs across lesions are at
most a small share (:data:`MAX_ACROSS_SHARE`) of all the pairs it admits.

The pairs across lesions that remain at a good threshold are worth a look: on HAM10000 most of
them are the same lesion filed under two ids (the metadata misses them), which is a leak that
grouping by ``lesion_id`` alone cannot prevent.

Examples:
    >>> scores = np.array([0.95, 0.9, 0.2, 0.15, 0.1, 0.8])
    >>> same = np.array([True, True, False, False, False, True])  # 3 pairs within lesions
    >>> table = calibrate_scores(scores, same, thresholds=[0.1, 0.5])
    >>> [(row.threshold, row.within, row.across) for row in table.rows]
    [(0.1, 3, 3), (0.5, 3, 0)]
    >>> table.suggested
    0.5
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hamkit._io import atomic_write_text
from hamkit.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from hamkit.dedup.result import DedupResult

__all__ = [
    "MAX_ACROSS_SHARE",
    "Calibration",
    "CalibrationRow",
    "calibrate_result",
    "calibrate_scores",
]

MAX_ACROSS_SHARE = 0.05
"""The suggested threshold is the lowest at which, and above which, at most this share of the
pairs at or above the threshold is across lesions."""


@dataclass(frozen=True)
class CalibrationRow:
    """Pair counts at one threshold.

    Attributes:
        threshold: The threshold.
        within: Pairs at or above it whose images have the same lesion id.
        across: Pairs at or above it across different lesion ids.
    """

    threshold: float
    within: int
    across: int


@dataclass
class Calibration:
    """Pairs within and across lesions per threshold, and the threshold suggested.

    Attributes:
        rows: One :class:`CalibrationRow` per threshold, ascending.
        suggested: The suggested threshold (``None`` when no threshold meets the rule).
        reason: One sentence that says why.
        current: The threshold in use, if known.
        unlabelled: Candidate pairs with an image that has no lesion id (not counted).
    """

    rows: list[CalibrationRow]
    suggested: float | None
    reason: str
    current: float | None = None
    unlabelled: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    def at(self, threshold: float) -> CalibrationRow:
        """The row of the largest threshold not above ``threshold`` (the first row if none)."""
        below = [row for row in self.rows if row.threshold <= threshold + 1e-9]
        return below[-1] if below else self.rows[0]

    def summary(self) -> str:
        """The suggestion and the counts at the suggested and the current threshold."""
        text = self.reason
        if self.current is not None:
            row = self.at(self.current)
            text += (
                f" At the threshold in use ({self.current:g}): {row.within} pair(s) within lesions, "
                f"{row.across} across."
            )
        return text

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write ``threshold,within,across`` rows atomically."""
        lines = ["threshold,within,across\n"] + [f"{r.threshold:g},{r.within},{r.across}\n" for r in self.rows]
        return atomic_write_text(path, "".join(lines))

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """Plot pairs within and across lesions against the threshold (PNG, written atomically)."""
        from hamkit._mpl import pyplot, save_png

        plt = pyplot()
        figure, axis = plt.subplots(figsize=(6.4, 3.8))
        thresholds = [r.threshold for r in self.rows]
        axis.plot(thresholds, [r.within for r in self.rows], label="pairs within a lesion", color="tab:blue")
        axis.plot(thresholds, [r.across for r in self.rows], label="pairs across lesions", color="tab:red")
        if self.suggested is not None:
            axis.axvline(self.suggested, color="black", linestyle="--", label=f"suggested {self.suggested:g}")
        if self.current is not None and self.current != self.suggested:
            axis.axvline(self.current, color="grey", linestyle=":", label=f"in use {self.current:g}")
        axis.set_yscale("symlog", linthresh=10)
        axis.set_xlabel("threshold (pairs at or above it)")
        axis.set_ylabel("pairs")
        axis.legend(frameon=False)
        axis.grid(alpha=0.3)
        return save_png(figure, path, bbox_inches="tight")


def calibrate_scores(
    scores: np.ndarray,
    same_lesion: np.ndarray,
    *,
    thresholds: Sequence[float] | None = None,
    higher_is_better: bool = True,
    current: float | None = None,
    max_across_share: float = MAX_ACROSS_SHARE,
) -> Calibration:
    """Count pairs within and across lesions per threshold and suggest one.

    Args:
        scores: Score of every candidate pair (all of them, not only those above a threshold).
        same_lesion: Per pair, whether both images have the same lesion id.
        thresholds: Thresholds to tabulate (default: 0.05 steps over the scores' range).
        higher_is_better: False for distances (a pair counts at a threshold when its score is
            at or *below* it).
        current: The threshold in use, to report next to the suggestion.
        max_across_share: See :data:`MAX_ACROSS_SHARE`.

    Returns:
        The :class:`Calibration`.
    """
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same_lesion, dtype=bool)
    if thresholds is None:
        low, high = (float(scores.min()), float(scores.max())) if len(scores) else (0.0, 1.0)
        thresholds = np.round(np.arange(np.floor(low * 20) / 20, high + 1e-9, 0.05), 4).tolist() or [high]
    grid = sorted(float(t) for t in thresholds)
    if not higher_is_better:
        grid = grid[::-1]  # strictest last, as for similarities
    rows = []
    for t in grid:
        hit = scores >= t if higher_is_better else scores <= t
        rows.append(CalibrationRow(t, int((hit & same).sum()), int((hit & ~same).sum())))
    suggested = None
    if not (~same).any():  # no pair across lesions: nothing shows where different lesions start
        reason = (
            f"No threshold is suggested: none of the {len(scores)} candidate pair(s) is across lesions, so "
            "nothing shows where the scores of different lesions start; keep the threshold in use."
        )
        return Calibration(rows, None, reason, current)
    # the lowest threshold from which on every stricter one also admits few pairs across lesions
    for index in range(len(rows)):
        tail = rows[index:]
        if rows[index].within + rows[index].across and all(
            r.across <= max_across_share * (r.within + r.across) for r in tail
        ):
            suggested = rows[index].threshold
            break
    if suggested is None:
        reason = (
            "No threshold keeps the pairs across lesions below "
            f"{max_across_share:.0%} of the pairs found: the scores do not separate lesions."
        )
    else:
        row = next(r for r in rows if r.threshold == suggested)
        reason = (
            f"Suggested threshold {suggested:g}: the lowest at which at most {max_across_share:.0%} of "
            f"the pairs admitted are across lesions ({row.within} within, {row.across} across at "
            f"{suggested:g}); look at the pairs across lesions: many are one lesion under two ids."
        )
    return Calibration(rows, suggested, reason, current)


def calibrate_result(
    result: DedupResult,
    labels: str | os.PathLike[str] | Mapping[str, str | None],
    thresholds: Sequence[float] | None = None,
) -> Calibration:
    """:func:`calibrate_scores` on the pairs (or every scored candidate) of a duplicate search.

    Args:
        result: A :class:`~hamkit.dedup.result.DedupResult`; with ``candidates`` (the
            ``"verified"`` method) every candidate is counted, below the threshold too.
        labels: A metadata CSV with ``image_id`` and ``lesion_id`` columns, or
            ``{image_id: lesion_id}``. Images are matched by file stem.
        thresholds: Thresholds to tabulate (default: 0.05 steps over the scores).

    Returns:
        The :class:`Calibration`, with ``unlabelled`` set.

    Raises:
        DataError: No lesion ids in ``labels`` for any image of a pair.
    """
    lesions = _lesion_ids(labels)
    found = result.candidates if result.candidates is not None else result.pairs
    i, j, scores = found.i, found.j, found.score
    stems = [p.stem for p in result.paths]
    lesion_i = np.array([lesions.get(stems[a]) for a in i.tolist()], dtype=object)
    lesion_j = np.array([lesions.get(stems[b]) for b in j.tolist()], dtype=object)
    known = np.array([a is not None and b is not None for a, b in zip(lesion_i, lesion_j, strict=True)], bool)
    if len(i) and not known.any():
        raise DataError(
            "calibrate: none of the images of the pairs has a lesion id in the labels "
            "(images are matched to image_id by file name without extension)"
        )
    calibration = calibrate_scores(
        scores[known],
        lesion_i[known] == lesion_j[known],
        thresholds=thresholds,
        higher_is_better=result.pairs.higher_is_better,
        current=None if result.threshold is None else float(result.threshold),
    )
    calibration.unlabelled = int((~known).sum())
    return calibration


def _lesion_ids(labels: str | os.PathLike[str] | Mapping[str, str | None]) -> dict[str, str | None]:
    if isinstance(labels, Mapping):
        return dict(labels)
    from hamkit.data.metadata import read_metadata

    return {r.image_id: r.lesion_id for r in read_metadata(labels)}
