"""Reviewing duplicates by eye: a PNG contact sheet and a self-contained HTML page of duplicate
pairs side by side with their scores (like the seed report's figure 1)."""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from hamkit._io import atomic_path, atomic_write_text
from hamkit.data.images import open_image
from hamkit.dedup.result import DedupResult
from hamkit.errors import DataError

__all__ = ["review_pairs", "contact_sheet", "review_html"]


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
) -> Path:
    """Save a self-contained HTML page (images embedded) of duplicate pairs with their scores.

    Returns:
        The written path.
    """
    rows = []
    for i, j, score in review_pairs(result, max_pairs, order):
        a, b = result.paths[i], result.paths[j]
        rows.append(
            f"<tr><td><img src='{_data_uri(a, thumb)}' alt='{html.escape(a.name)}'><br>{html.escape(str(a))}</td>"
            f"<td><img src='{_data_uri(b, thumb)}' alt='{html.escape(b.name)}'><br>{html.escape(str(b))}</td>"
            f"<td>{html.escape(_score_text(result, score))}</td></tr>"
        )
    body = "\n".join(rows) or "<tr><td colspan=3>no duplicate pairs found</td></tr>"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hamkit duplicate review</title>
<style>body{{font-family:sans-serif;margin:1.5em}} td{{padding:6px;vertical-align:top;font-size:12px}}
img{{border:1px solid #ccc}} table{{border-collapse:collapse}} tr{{border-bottom:1px solid #eee}}</style></head>
<body><h1>Duplicate review</h1><p>{html.escape(result.summary())}</p>
<table><tr><th>image A</th><th>image B</th><th>score</th></tr>
{body}
</table></body></html>
"""
    return atomic_write_text(path, page)
