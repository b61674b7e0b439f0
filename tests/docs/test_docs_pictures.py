"""The documentation's pictures: every picture a page shows exists, each is small, and
``docs/images/README.md`` says which run made them.

The pictures are made by ``docs/gen_pictures.py`` from a real ``hamkit run`` folder; its
helpers are tested here on small stand-ins (no browser, no run folder needed).
"""

from __future__ import annotations

import doctest
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
from conftest import REPO
from PIL import Image

IMAGES = REPO / "docs" / "images"
PAGES = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md")])
PICTURE = re.compile(r"!\[[^\]]*\]\((?P<md>[^)\s]+)[^)]*\)|<img\b[^>]*\bsrc=\"(?P<html>[^\"]+)\"")
MAX_BYTES = 300 * 1024
MAX_TOTAL = 1536 * 1024


def referenced(page: Path) -> list[str]:
    """The local picture paths a Markdown page shows (``![..](path)`` and ``<img src="path">``)."""
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
    paths = [m["md"] or m["html"] for m in PICTURE.finditer(text)]
    return [p for p in paths if not re.match(r"[a-z]+:", p)]


def load_gen_pictures() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_gen_pictures", REPO / "docs" / "gen_pictures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_pictures_shown_in_the_docs_exist(page: Path) -> None:
    missing = [path for path in referenced(page) if not (page.parent / path).is_file()]
    assert not missing, f"{page.relative_to(REPO)} shows pictures that do not exist: {missing}"


def test_the_pages_show_the_pictures() -> None:
    shown = {(page.parent / path).resolve() for page in PAGES for path in referenced(page)}
    pictures = sorted(IMAGES.glob("*.png"))
    assert len(pictures) >= 5
    unused = [p.name for p in pictures if p.resolve() not in shown]
    assert not unused, f"docs/images/ holds pictures no page shows: {unused}"
    for page in ("README.md", "docs/index.md", "docs/tutorials/pipeline.md", "docs/tutorials/dedup.md"):
        assert referenced(REPO / page), f"{page} shows no picture"
    for name in ("segmentation", "classification"):
        assert referenced(REPO / "docs" / "tutorials" / f"{name}.md"), f"tutorials/{name}.md shows no picture"


def test_pictures_are_small_pngs() -> None:
    pictures = sorted(IMAGES.glob("*.png"))
    for picture in pictures:
        size = picture.stat().st_size
        assert size < MAX_BYTES, f"{picture.name} is {size // 1024} KB; rerun docs/gen_pictures.py"
        with Image.open(picture) as image:
            assert image.format == "PNG" and image.width <= 1200, picture.name
    assert sum(p.stat().st_size for p in pictures) < MAX_TOTAL


def test_the_pictures_say_which_run_made_them() -> None:
    note = (IMAGES / "README.md").read_text(encoding="utf-8")
    assert "gen_pictures.py" in note and "hamkit run" in note and "10,015 images" in note
    assert re.search(r"\d{4}-\d\d-\d\dT", note), "the run's date"
    for picture in IMAGES.glob("*.png"):
        assert f"`{picture.name}`" in note, f"README.md does not describe {picture.name}"
    assert "shared" not in note and "/tmp/" not in note


def test_gen_pictures_helpers(tmp_path: Path) -> None:
    gen = load_gen_pictures()
    assert doctest.testmod(gen).failed == 0
    assert gen.shown_path("hamkit run --data /d/x --out /o", {"/d/x": "data/ham10000", "/o": "runs/a"}) == (
        "hamkit run --data data/ham10000 --out runs/a"
    )
    big = tmp_path / "big.png"
    Image.new("RGB", (2400, 600), (200, 120, 90)).save(big)
    small = gen.compress_png(big, tmp_path / "out" / "small.png", 1000)
    with Image.open(small) as image:
        assert image.size == (1000, 250) and image.mode == "P"
    with pytest.raises(gen.DataError, match="summary.json is missing"):
        gen.read_summary(tmp_path)
    with pytest.raises(gen.DataError, match="--chromium"):
        gen.find_browser("no-such-browser-here")


def test_gen_pictures_draws_the_confusion_matrix_from_the_predictions(tmp_path: Path) -> None:
    gen = load_gen_pictures()
    (tmp_path / "classifier").mkdir()
    rows = ["image_id,lesion_id,true,predicted,p_mel,p_nv", "a,l1,mel,mel,0.9,0.1", "b,l2,nv,mel,0.6,0.4"]
    rows += ["c,l3,nv,nv,0.2,0.8"]
    (tmp_path / "classifier" / "test_predictions.csv").write_text("\n".join(rows) + "\n")
    drawn = gen.draw_confusion_matrix(tmp_path, tmp_path / "confusion.png")
    with Image.open(drawn) as image:
        assert image.format == "PNG" and image.width > 100
    assert gen.relative_source(tmp_path / "x" / "confusion_matrix.png", tmp_path / "run") == (
        "classifier/test_predictions.csv"
    )
