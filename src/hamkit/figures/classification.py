"""Figures of a classifier's test probabilities: per-class ROC curves and the reliability diagram."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from hamkit._mpl import pyplot, save_png
from hamkit.classes import CLASS_CODES, CLASS_NAMES
from hamkit.metrics.calibration import reliability_bins

_MARKERS = {"saved decision": "o", "sensitivity at specificity 0.80": "^", "sensitivity at specificity 0.90": "v"}

__all__ = ["plot_reliability", "plot_roc_curves"]


def plot_roc_curves(
    labels: np.ndarray,
    proba: np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike[str],
    *,
    title: str = "ROC curves (one class vs the rest)",
    marks: Mapping[str, Sequence[tuple[float, float, str]]] | None = None,
) -> Path:
    """One-vs-rest ROC curve of every class with its AUC in the legend (scikit-learn's ``roc_curve``).

    Classes with no positive or no negative test image are listed as "not defined". The legend
    gives the full diagnosis name beside each ``dx`` code.

    Args:
        labels: True class indices.
        proba: ``(N, K)`` probabilities.
        classes: Class names.
        path: Output PNG.
        title: Figure title.
        marks: Operating points to mark, ``{class: [(fpr, tpr, label), ...]}`` (e.g.
            :func:`hamkit.metrics.clinical.roc_marks`: the saved decision, melanoma's sensitivity at
            specificity 0.80 and 0.90).

    Returns:
        The written PNG.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    labels = np.asarray(labels)
    figure, axes = pyplot().subplots(figsize=(6, 5.5), dpi=100)
    colours = pyplot().get_cmap("tab10")
    labelled: set[str] = set()
    for k, code in enumerate(classes):
        positive = labels == k
        if positive.all() or not positive.any():
            axes.plot([], [], color=colours(k), label=f"{code}: not defined ({int(positive.sum())} positives)")
            continue
        fpr, tpr, _ = roc_curve(positive, proba[:, k])
        auc = roc_auc_score(positive, proba[:, k])
        name = f"{CLASS_NAMES[CLASS_CODES.index(code)]} ({code})" if code in CLASS_CODES else code
        axes.plot(fpr, tpr, color=colours(k), linewidth=1.5, label=f"{name}: AUC {auc:.3f} (n={int(positive.sum())})")
        for x, y, what in (marks or {}).get(code, []):
            style = _MARKERS.get(what, "s")
            shown = what not in labelled
            labelled.add(what)
            axes.plot(
                [x],
                [y],
                linestyle="none",
                marker=style,
                markersize=7,
                markeredgecolor="black",
                color=colours(k),
                label=what if shown else None,
                zorder=3,
            )
    axes.plot([0, 1], [0, 1], color="0.7", linestyle=":", linewidth=1)
    axes.set_xlabel("false positive rate (1 - specificity)")
    axes.set_ylabel("true positive rate (sensitivity)")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.set_aspect("equal")
    axes.legend(loc="lower right", fontsize=7)
    axes.set_title(title)
    figure.tight_layout()
    return save_png(figure, path)


def plot_reliability(
    labels: np.ndarray,
    curves: dict[str, np.ndarray],
    path: str | os.PathLike[str],
    *,
    n_bins: int = 15,
    title: str = "Reliability of the top-class confidence",
) -> Path:
    """Reliability diagram: accuracy against confidence per bin, one line per set of probabilities.

    Args:
        labels: True class indices.
        curves: ``{name: (N, K) probabilities}``, e.g. before and after temperature scaling;
            each legend entry gives its ECE.
        path: Output PNG.
        n_bins: Equal-width confidence bins.
        title: Figure title.

    Returns:
        The written PNG.
    """
    figure, (top, bottom) = pyplot().subplots(
        2, 1, figsize=(6, 6.5), dpi=100, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot([0, 1], [0, 1], color="0.7", linestyle=":", linewidth=1, label="perfect calibration")
    width = 1.0 / n_bins / (len(curves) + 1)
    for i, (name, proba) in enumerate(curves.items()):
        bins = reliability_bins(proba, labels, n_bins)
        used = bins.count > 0
        top.plot(
            bins.confidence[used], bins.accuracy[used], marker="o", markersize=4, label=f"{name}: ECE {bins.ece:.3f}"
        )
        centres = bins.edges[:-1] + width * (i + 0.5)
        bottom.bar(centres, bins.count, width=width, label=name)
    top.set_ylabel("accuracy")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1.01)
    top.legend(loc="upper left", fontsize=8)
    top.set_title(title)
    bottom.set_xlabel("confidence of the predicted class")
    bottom.set_ylabel("images")
    figure.tight_layout()
    return save_png(figure, path)
