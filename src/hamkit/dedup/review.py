"""Reviewing duplicates by eye: a PNG contact sheet and a self-contained HTML page of duplicate
pairs side by side with their scores (like the original report's figure 1).

With labels, the page shows each image's ``lesion_id`` and ``dx`` and puts first the pairs a
person must look at (:func:`review_items`): every pair whose two images carry different
diagnoses, then the pairs nearest the threshold; groups of three or more images are shown whole.
Each pair has a same / different choice, and the page saves the choices as a decisions CSV
(:mod:`hamkit.dedup.decisions`) that ``hamkit dedup --decisions`` and ``hamkit split
--decisions`` take; a decided pair is not shown again."""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from hamkit._io import atomic_path, atomic_write_text
from hamkit.data.images import open_image
from hamkit.dedup.decisions import DECISION_COLUMNS, Decisions
from hamkit.dedup.result import DedupResult
from hamkit.errors import DataError

__all__ = ["review_pairs", "review_items", "contact_sheet", "review_html"]


def review_pairs(result: DedupResult, max_pairs: int = 24, order: str = "borderline") -> list[tuple[int, int, float]]:
    """The pairs to show: ``order="borderline"`` (the default: closest to the threshold first,
    where mistakes hide; for ``method="verified"`` the candidates just *below* the threshold
    are among them, so that a missed duplicate can be seen too) or ``"best"`` (most alike first)."""
    if order not in ("best", "borderline"):
        raise DataError(f"order must be 'best' or 'borderline', got {order!r}")
    i, j, scores = result.pairs.i, result.pairs.j, result.pairs.score.astype(np.float64)
    if order == "borderline" and result.candidates is not None and result.threshold is not None:
        aligned = result.candidates.score > 0  # the candidates that aligned at all
        i, j = result.candidates.i[aligned], result.candidates.j[aligned]
        scores = result.candidates.score[aligned].astype(np.float64)
    if order == "borderline" and result.threshold is not None:
        key = np.abs(scores - float(result.threshold))
    else:
        key = -scores if result.pairs.higher_is_better else scores
        if order == "borderline":
            key = -key
    ranking = np.argsort(key, kind="stable")[:max_pairs]
    return [(int(i[k]), int(j[k]), float(scores[k])) for k in ranking]


def review_items(
    result: DedupResult,
    *,
    diagnoses: Mapping[str, str] | None = None,
    decisions: Decisions | None = None,
    max_pairs: int = 100,
) -> list[tuple[int, int, float, str]]:
    """The pairs a person must look at, each with why: ``(i, j, score, reason)``.

    First every found pair whose images carry different diagnoses (``"diagnoses differ"``: one
    label is wrong, or the two are not one lesion), then the pairs nearest the threshold
    (``"near the threshold"``, as :func:`review_pairs` orders them, candidates just below it
    included), up to ``max_pairs`` in all. Pairs already in ``decisions`` are left out.

    Args:
        result: A :class:`~hamkit.dedup.result.DedupResult`.
        diagnoses: ``{image_id: dx}``; without it, no pair is chosen for its diagnoses.
        decisions: Pairs already decided (not asked again).
        max_pairs: Pairs at most.

    Returns:
        The pairs, conflicts first.
    """
    stems = [p.stem for p in result.paths]
    decided = decisions or Decisions()
    out: list[tuple[int, int, float, str]] = []
    seen: set[tuple[int, int]] = set()

    def add(i: int, j: int, score: float, reason: str) -> None:
        key = (min(i, j), max(i, j))
        if key in seen or decided.get(stems[i], stems[j]) is not None or len(out) >= max_pairs:
            return
        seen.add(key)
        out.append((i, j, score, reason))

    if diagnoses:
        for i, j, score in zip(result.pairs.i.tolist(), result.pairs.j.tolist(), result.pairs.score.tolist()):
            a, b = diagnoses.get(stems[i]), diagnoses.get(stems[j])
            if a and b and a != b:
                add(i, j, float(score), "diagnoses differ")
    for i, j, score in review_pairs(result, max(max_pairs, 1) + len(decided), "borderline"):
        add(i, j, score, "near the threshold")
    return out


def _thumb(path: Path, size: int) -> Image.Image:
    try:
        image = open_image(path, size)
    except DataError:
        image = Image.new("RGB", (size, size), (200, 200, 200))
    return ImageOps.pad(image, (size, size), color=(255, 255, 255))


def _score_text(result: DedupResult, score: float) -> str:
    if result.method == "exact":
        return "identical pixels"
    if result.pairs.metric == "aligned":
        side = "" if result.threshold is None else (" (kept)" if score >= float(result.threshold) else " (below)")
        return f"aligned {score:.2f}{side}"
    if result.pairs.higher_is_better:
        return f"cosine {score:.3f}"
    return f"Hamming {int(score)}"


def contact_sheet(
    result: DedupResult,
    path: str | os.PathLike[str],
    *,
    max_pairs: int = 24,
    thumb: int = 160,
    order: str = "borderline",
    columns: int = 2,
) -> Path:
    """Save a PNG grid of duplicate pairs (two thumbnails and the score per cell).

    Args:
        result: A :class:`~hamkit.dedup.result.DedupResult`.
        path: Output PNG (written atomically).
        max_pairs: Pairs shown at most.
        thumb: Thumbnail side in pixels.
        order: ``"best"`` or ``"borderline"`` (see :func:`review_pairs`).
        columns: Pairs per row.

    Returns:
        The written path.
    """
    chosen = review_pairs(result, max_pairs, order)
    label_h, pad = 34, 8
    cell_w, cell_h = 2 * thumb + 3 * pad, thumb + label_h + pad
    rows = max(1, -(-len(chosen) // columns))
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    if not chosen:
        draw.text((pad, pad), "no duplicate pairs found", fill=(0, 0, 0))
    for k, (i, j, score) in enumerate(chosen):
        x, y = (k % columns) * cell_w, (k // columns) * cell_h
        sheet.paste(_thumb(result.paths[i], thumb), (x + pad, y + pad))
        sheet.paste(_thumb(result.paths[j], thumb), (x + 2 * pad + thumb, y + pad))
        draw.text((x + pad, y + thumb + pad + 2), f"{result.paths[i].stem}  ~  {result.paths[j].stem}", fill=(0, 0, 0))
        draw.text((x + pad, y + thumb + pad + 16), _score_text(result, score), fill=(160, 0, 0))
    target = Path(path)
    with atomic_path(target) as tmp:
        sheet.save(tmp, format="PNG")
    return target


def _data_uri(path: Path, size: int) -> str:
    buffer = io.BytesIO()
    _thumb(path, size).save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def review_html(
    result: DedupResult,
    path: str | os.PathLike[str],
    *,
    max_pairs: int = 100,
    thumb: int = 200,
    order: str = "borderline",
    lesions: Mapping[str, str | None] | None = None,
    diagnoses: Mapping[str, str] | None = None,
    decisions: Decisions | None = None,
) -> Path:
    """Save a self-contained HTML page (images embedded) of duplicate pairs to decide on.

    Each pair shows both images with their ``lesion_id`` and ``dx`` (when given), the score, why
    it is shown and a same / different choice; groups of three or more images follow, whole. The
    page's button saves the choices as ``decisions.csv`` (``image_a,image_b,decision``), with the
    decisions given here kept in it.

    Args:
        result: A :class:`~hamkit.dedup.result.DedupResult`.
        path: Output HTML (written atomically).
        max_pairs: Pairs shown at most.
        thumb: Thumbnail side in pixels.
        order: With no labels and no decisions: ``"best"`` or ``"borderline"`` (see
            :func:`review_pairs`); otherwise the pairs are :func:`review_items`.
        lesions: ``{image_id: lesion_id}`` to show beside each image.
        diagnoses: ``{image_id: dx}`` to show beside each image (and to choose pairs by).
        decisions: Pairs decided before: not shown again, and kept in the saved CSV.

    Returns:
        The written path.
    """
    if diagnoses is None and decisions is None and lesions is None:
        chosen = [(i, j, s, "") for i, j, s in review_pairs(result, max_pairs, order)]
    else:
        chosen = review_items(result, diagnoses=diagnoses, decisions=decisions, max_pairs=max_pairs)

    def cell(index: int) -> str:
        image = result.paths[index]
        facts = []
        if lesions is not None:
            facts.append(f"lesion_id {html.escape(str(lesions.get(image.stem) or '?'))}")
        if diagnoses is not None:
            facts.append(f"dx {html.escape(str(diagnoses.get(image.stem) or '?'))}")
        return (
            f"<td><img src='{_data_uri(image, thumb)}' alt='{html.escape(image.name)}'><br>"
            f"{html.escape(str(image))}<br><b>{' &middot; '.join(facts)}</b></td>"
        )

    rows = []
    for number, (i, j, score, reason) in enumerate(chosen):
        a, b = html.escape(result.paths[i].stem, quote=True), html.escape(result.paths[j].stem, quote=True)
        choice = "".join(
            f"<label><input type='radio' name='p{number}' value='{word}' data-a='{a}' data-b='{b}'> {word}</label><br>"
            for word in ("same", "different")
        )
        rows.append(
            f"<tr>{cell(i)}{cell(j)}<td>{html.escape(_score_text(result, score))}<br><i>{html.escape(reason)}</i>"
            f"</td><td>{choice}</td></tr>"
        )
    body = "\n".join(rows) or "<tr><td colspan=4>no duplicate pairs to review</td></tr>"
    groups = []
    for group in result.groups:
        if group.size < 3:
            continue
        cells = "".join(cell(m) for m in group.members[:12])
        more = f"<td>... {group.size - 12} more</td>" if group.size > 12 else ""
        groups.append(
            f"<p>group of {group.size} (weakest link {group.weakest_link:g})</p><table><tr>{cells}{more}</tr></table>"
        )
    previous = (
        []
        if decisions is None
        else [[x, y, "same" if same else "different"] for (x, y), same in sorted(decisions.pairs.items())]
    )
    header = ",".join(DECISION_COLUMNS)
    script = f"""<script>
const previous = {json.dumps(previous)};
function saveDecisions() {{
  const rows = new Map(previous.map(r => [r[0] + "," + r[1], r]));
  document.querySelectorAll("input[type=radio]:checked").forEach(box => {{
    const [x, y] = [box.dataset.a, box.dataset.b].sort();
    rows.set(x + "," + y, [x, y, box.value]);
  }});
  const text = "{header}\\n" + [...rows.values()].map(r => r.join(",")).join("\\n") + "\\n";
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], {{type: "text/csv"}}));
  link.download = "decisions.csv";
  link.click();
}}
</script>"""
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hamkit duplicate review</title>
<style>body{{font-family:sans-serif;margin:1.5em}} td{{padding:6px;vertical-align:top;font-size:12px}}
img{{border:1px solid #ccc}} table{{border-collapse:collapse}} tr{{border-bottom:1px solid #eee}}</style></head>
<body><h1>Duplicate review</h1><p>{html.escape(result.summary())}</p>
<p>Decide each pair, then <button type="button" onclick="saveDecisions()">save decisions.csv</button> and pass it
to <code>hamkit dedup --decisions</code> and <code>hamkit split --decisions</code> ({len(previous)} pair(s) decided
before are kept in it and not shown again).</p>
<table><tr><th>image A</th><th>image B</th><th>score</th><th>decision</th></tr>
{body}
</table>
{"<h2>Groups of three or more</h2>" + "".join(groups) if groups else ""}
{script}
</body></html>
"""
    return atomic_write_text(path, page)
