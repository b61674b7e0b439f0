"""Scores of a model's answers: classification, segmentation, calibration, intervals, subgroups.

Everything here works on arrays of labels, scores and masks (NumPy, scikit-learn, SciPy), never on
a network, so the estimators, ``hamkit evaluate``, ``hamkit run``'s report and the model card all
score through the same functions. One module per concept:

* :mod:`~hamkit.metrics.classification`: ISIC 2018 Task 3 metrics (:class:`ClassificationReport`)
  and a model's decisions scored beside the raw argmax (:func:`score_decisions`);
* :mod:`~hamkit.metrics.segmentation`: ISIC 2018 Task 1 per-image pixel counts, Dice, IoU and the
  thresholded Jaccard, and :class:`SegmentationReport`;
* :mod:`~hamkit.metrics.calibration`: temperature scaling, ECE, reliability bins and the
  prior-offset decision rule;
* :mod:`~hamkit.metrics.bootstrap`: confidence intervals that resample lesions, not images;
* :mod:`~hamkit.metrics.operating_points`: sensitivity at a specificity, the ISIC 2024 partial AUC,
  one class's operating point;
* :mod:`~hamkit.metrics.subgroups`: the same metrics by sex, age band, body site or any column;
* :mod:`~hamkit.metrics.clinical`: the at-a-glance summary a clinician reads first;
* :mod:`~hamkit.metrics.external`: external validation, one row per data set.

Every public name is importable from ``hamkit.metrics`` itself.
"""

from __future__ import annotations

from hamkit.metrics.bootstrap import (
    bootstrap_groups,
    classification_intervals,
    mean_intervals,
    percentile_interval,
)
from hamkit.metrics.calibration import (
    CalibrationFit,
    PriorRule,
    ReliabilityBins,
    TemperatureChoice,
    choose_temperature,
    expected_calibration_error,
    fit_calibration,
    fit_prior_offsets,
    fit_temperature,
    reliability_bins,
    softmax,
)
from hamkit.metrics.classification import (
    ClassificationReport,
    classification_report,
    headline_metrics,
    predictions_csv,
    score_decisions,
)
from hamkit.metrics.clinical import (
    at_a_glance,
    clinical_summary,
    decision_text,
    full_name,
    glance_lines,
    operating_point_lines,
    roc_marks,
)
from hamkit.metrics.external import EXTERNAL_METRICS, external_metrics, format_external_table
from hamkit.metrics.operating_points import (
    MIN_TPR,
    SENSITIVITIES,
    SPECIFICITIES,
    OperatingPoint,
    decision_point,
    fit_operating_point,
    operating_points,
    parse_operating_point,
    partial_auc,
    sensitivity_at_specificity,
    specificity_at_sensitivity,
)
from hamkit.metrics.segmentation import (
    ISIC_JACCARD_THRESHOLD,
    SegmentationReport,
    confusion_counts,
    confusion_counts_list,
    dice_score,
    iou_score,
    report_from_counts,
    scores_from_counts,
    segmentation_report,
    thresholded_jaccard,
)
from hamkit.metrics.subgroups import (
    AGE_BANDS,
    DEFAULT_COLUMNS,
    MIN_LESIONS,
    age_band,
    columns_from_records,
    format_subgroups,
    metadata_columns,
    subgroup_means,
    subgroup_tables,
)

__all__ = [
    "AGE_BANDS",
    "DEFAULT_COLUMNS",
    "EXTERNAL_METRICS",
    "ISIC_JACCARD_THRESHOLD",
    "MIN_LESIONS",
    "MIN_TPR",
    "SENSITIVITIES",
    "SPECIFICITIES",
    "CalibrationFit",
    "ClassificationReport",
    "OperatingPoint",
    "PriorRule",
    "ReliabilityBins",
    "SegmentationReport",
    "TemperatureChoice",
    "age_band",
    "at_a_glance",
    "bootstrap_groups",
    "choose_temperature",
    "classification_intervals",
    "classification_report",
    "clinical_summary",
    "columns_from_records",
    "confusion_counts",
    "confusion_counts_list",
    "decision_point",
    "decision_text",
    "dice_score",
    "expected_calibration_error",
    "external_metrics",
    "fit_calibration",
    "fit_operating_point",
    "fit_prior_offsets",
    "fit_temperature",
    "format_external_table",
    "format_subgroups",
    "full_name",
    "glance_lines",
    "headline_metrics",
    "iou_score",
    "mean_intervals",
    "metadata_columns",
    "operating_point_lines",
    "operating_points",
    "parse_operating_point",
    "partial_auc",
    "percentile_interval",
    "predictions_csv",
    "reliability_bins",
    "report_from_counts",
    "roc_marks",
    "score_decisions",
    "scores_from_counts",
    "segmentation_report",
    "sensitivity_at_specificity",
    "softmax",
    "specificity_at_sensitivity",
    "subgroup_means",
    "subgroup_tables",
    "thresholded_jaccard",
]
