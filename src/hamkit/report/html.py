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
from hamkit.classes import CLASS_CODES
from hamkit.pipeline.config import to_toml

__all__ = ["write_report", "versions"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{margin-bottom:0} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0} td,th{border:1px solid #ddd;padding:4px 8px;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.4em 0} pre{background:#f7f7f7;padding:1em;overflow:auto}
.note{color:#555;font-size:.92em} .bad{color:#b00;font-weight:bold} .good{color:#070;font-weight:bold}
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
    for name in ("hamkit", "torch", "torchvision", "timm", "segmentation-models-pytorch", "numpy", "scikit-learn",
                 "pillow"):
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


def _classification_html(report: dict[str, Any]) -> str:
    rows = [[code, report["precision"][k], report["recall"][k], report["f1"][k], report["support"][k],
             (report["roc_auc"] or [None] * 7)[k]] for k, code in enumerate(report["classes"])]
    rows.append(["macro avg", report["macro"]["precision"], report["macro"]["recall"], report["macro"]["f1"],
                 report["n_samples"], report.get("macro_roc_auc")])
    rows.append(["weighted avg", report["weighted"]["precision"], report["weighted"]["recall"],
                 report["weighted"]["f1"], report["n_samples"], None])
    headline = (f"<p>Accuracy <b>{_fmt(report['accuracy'])}</b>, balanced accuracy (ISIC 2018 Task 3) "
                f"<b>{_fmt(report['balanced_accuracy'])}</b>, macro F1 <b>{_fmt(report['macro']['f1'])}</b>, "
                f"melanoma sensitivity <b>{_fmt(report.get('melanoma_sensitivity'))}</b> on "
                f"{report['n_samples']} test images.</p>")
    return headline + _table(["class", "precision", "recall", "F1", "support", "ROC AUC"], rows)


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
    pie = plot_class_balance([r.label for r in ctx.records], figures / "class_balance.png",
                             title="Class balance")
    counts = {code: 0 for code in CLASS_CODES}
    for r in ctx.records:
        counts[r.dx] += 1
    parts.append("<h2>Dataset</h2>")
    parts.append(f"<p>{data['images']} images of {data['lesions']} lesions from <code>{html.escape(data['root'])}"
                 f"</code> (labels <code>{html.escape(data['labels'])}</code>; masks "
                 f"<code>{html.escape(str(data['masks']))}</code>).</p>")
    if data["listed_but_missing"] or data["unlabelled_images"]:
        parts.append(f"<p class='note'>{data['listed_but_missing']} image(s) listed in the labels are not in the "
                     f"folder and {data['unlabelled_images']} image file(s) have no label; both are left out.</p>")
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
    header = ["split", "images", "lesion groups", "share", *CLASS_CODES]
    parts.append(_table(header, [[name, row["images"], row["groups"], row["fraction"], *[row[c] for c in CLASS_CODES]]
                                 for name, row in split.items()]))
    leaks = summary.get("audit", {})
    total = sum(sum(v.values()) for v in leaks.values())
    status = "<span class='good'>0 duplicate pairs cross the splits</span>" if total == 0 else \
        f"<span class='bad'>{total} duplicate pairs cross the splits</span>"
    parts.append(f"<p>Grouped by lesion and duplicate group, stratified by class. Leakage audit "
                 f"({', '.join(leaks) or 'none'}): {status}.</p>")

    for name, title in (("classifier", "Classifier"), ("segmenter", "Segmenter")):
        folder = out / name
        if name not in summary:
            status = ctx.result.steps.get(name, "not run")
            parts.append(f"<h2>{title}</h2><p class='note'>{html.escape(status)}</p>")
            continue
        parts.append(f"<h2>{title}</h2>")
        section = ctx.settings[name]
        parts.append(f"<p class='note'>{html.escape(section['backbone'])} at {section['image_size']} px, "
                     f"{section['epochs']} epochs, batch {section['batch_size']}, lr {section['lr']:g}, "
                     f"pretrained {section['pretrained']}.</p>")
        report = summary[name]
        if name == "segmenter":
            seg = report["summary"]
            parts.append(_table(["metric", "value"], [
                ["test images", seg["n_images"]], ["mean Dice", seg["mean_dice"]], ["mean IoU", seg["mean_iou"]],
                ["ISIC 2018 thresholded Jaccard", seg["thresholded_jaccard"]],
                ["mean pixel accuracy", seg["mean_pixel_accuracy"]], ["scored at", seg["resolution"]]]))
            if report.get("classification"):
                parts.append("<h3>Classification head</h3>" + _classification_html(report["classification"]))
        else:
            parts.append(_classification_html(report))
        for png, alt in (("training_curves.png", "training curves"), ("confusion_matrix.png", "confusion matrix"),
                         ("examples.png", "input, ground truth and prediction")):
            if (folder / png).is_file():
                target = figures / f"{name}_{png}"
                shutil.copyfile(folder / png, target)
                parts.append(_img(target, f"{title} {alt}"))

    parts.append("<h2>Config and versions</h2>")
    parts.append(f"<pre>{html.escape(to_toml(ctx.settings))}</pre>")
    parts.append(_table(["component", "version"], [[k, v] for k, v in versions().items()]))
    steps = ctx.result.steps
    parts.append(f"<p class='note'>Steps: {html.escape(json.dumps(steps))}</p>")

    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>hamkit report</title>"
            f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>"
            f"<h1>hamkit report</h1><p class='note'>Run folder <code>{html.escape(str(out))}</code></p>"
            + "\n".join(parts) + "</body></html>\n")
    return atomic_write_text(out / "report.html", page)
