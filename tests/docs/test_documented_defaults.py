"""Defaults stated in the documentation are the code's defaults.

* every public function, method and class of hamkit whose Google-style ``Args:`` entry states
  a default ("(default 256)", "``"sampler"`` (the default)", "Defaults to ``X``") states the
  value of its signature (:func:`inspect.signature`);
* every option of the ``hamkit`` command whose help says "(default: X)" has that argparse
  default; per-method defaults ("verified: ... (default 0.5); cnn: ...") are the methods' own;
* the guides' tables of per-method defaults, and their sentences of the form
  "`name=value` (default)" / "by default (`name=value`)", match the code.

Only what parses as a value is compared: "(default: automatic)" or "(default: the HAM10000
codes ...)" describe a default in words and are skipped, and so is a stated value for a
parameter whose signature default is ``None`` (the value then comes from elsewhere, e.g. a
per-method table, which is checked on its own). Names are found by walking the package, so
renamed modules and functions need no change here.
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from doc_defaults import (
    Documented,
    cli_mismatches,
    docstring_mismatches,
    hamkit_modules,
    markdown_claims,
    markdown_method_tables,
    markdown_mismatches,
    method_defaults,
    option_defaults,
    parameter_owners,
    parse_value,
    public_callables,
    rst_method_tables,
    same,
)

from hamkit.cli.main import build_parser

# --------------------------------------------------------------------------- the package's callables


def test_docstring_defaults_match_the_signatures() -> None:
    wrong, compared = docstring_mismatches(public_callables())
    assert compared >= 5, f"only {compared} documented defaults found: is the docstring parser broken?"
    assert not wrong, "\n".join(wrong)


# --------------------------------------------------------------------------- the per-method defaults


def test_module_docstring_tables_of_method_defaults_match_the_code() -> None:
    defaults, rows = method_defaults(), 0
    for module in hamkit_modules():
        for method, stated in rst_method_tables(inspect.getdoc(module) or ""):
            rows += 1
            value = None if stated in ("--", "none") else parse_value(stated)
            assert method in defaults and same(value, defaults[method]), (
                f"{module.__name__}: the table says {method} defaults to {stated}, the code {defaults.get(method)!r}"
            )
    assert rows >= len(defaults)


# --------------------------------------------------------------------------- the command line


def test_cli_help_defaults_match_argparse() -> None:
    wrong, compared = cli_mismatches(build_parser(), method_defaults())
    assert compared >= 10, f"only {compared} defaults found in the help texts: is the parser walk broken?"
    assert not wrong, "\n".join(wrong)


# --------------------------------------------------------------------------- the guides


PAGES = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md")])


@pytest.fixture(scope="module")
def owners_of() -> dict[str, list[tuple[str, Any]]]:
    """Every public callable's parameters: any may be the one meant (fit's keywords are a recipe's fields)."""
    return parameter_owners([documented.obj for documented, _ in public_callables()])


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_guide_defaults_match_the_code(page: Path, owners_of: dict[str, list[tuple[str, Any]]]) -> None:
    options = option_defaults(build_parser())
    wrong = markdown_mismatches(page.read_text(encoding="utf-8"), owners_of, method_defaults(), options)
    assert not wrong, f"{page.relative_to(REPO)}:\n" + "\n".join(wrong)


def test_module_docstring_sentences_match_the_code(owners_of: dict[str, list[tuple[str, Any]]]) -> None:
    """Sentences such as "by default (``connectivity=2``)" in module docstrings, as in the guides."""
    wrong = []
    for module in hamkit_modules():
        text = (inspect.getdoc(module) or "").replace("``", "`")
        wrong += [f"{module.__name__}: {w}" for w in markdown_mismatches(text, owners_of, method_defaults())]
    assert not wrong, "\n".join(wrong)


def test_the_guide_parsers_find_the_defaults_they_are_for() -> None:
    """The patterns above still match the guides (a reworded page must not silently escape the test)."""
    dedup = (REPO / "docs" / "tutorials" / "dedup.md").read_text(encoding="utf-8")
    assert {m for m, _ in markdown_method_tables(dedup)} >= set(method_defaults())
    claims = {name for page in PAGES for name, _ in markdown_claims(page.read_text(encoding="utf-8"))}
    assert len(claims) >= 4, claims


# --------------------------------------------------------------------------- the checks themselves


def test_the_checks_catch_a_wrong_default() -> None:
    def resize(image: Any, size: int = 256, mode: str = "bilinear", strict: bool = True) -> None:
        """Resize.

        Args:
            image: The image.
            size: Target size (default 128).
            mode: ``"nearest"`` (the default) or ``"bilinear"``.
            strict: Raise on a bad image. Defaults to ``False``.
        """

    def fine(size: int = 256, pattern: str | None = None) -> None:
        """Fine.

        Args:
            size: Target size (default 256; a multiple of 32).
            pattern: Names (default ``"0"``, ``"1"``...), or a description (default: the position).
        """

    wrong, compared = docstring_mismatches(
        [
            (Documented("resize", resize), inspect.getdoc(resize) or ""),
            (Documented("fine", fine), inspect.getdoc(fine) or ""),
        ]
    )
    assert compared == 4
    assert [w.split(":")[1].split()[0] for w in wrong] == ["size", "mode", "strict"]

    parser = argparse.ArgumentParser(prog="tool")
    parser.add_argument("--epochs", type=int, default=10, help="epochs (default: 12)")
    parser.add_argument("--size", type=int, nargs=2, default=(256, 192), help="width height (default: 256 192)")
    parser.add_argument("--keep", default="first", choices=("first", "largest"), help="first (default) or largest")
    parser.add_argument("--threshold", type=float, default=None, help="phash: distance (default 6); exact: (default 0)")
    wrong, compared = cli_mismatches(parser, {"phash": 8, "exact": 0})
    assert compared == 5
    assert [w.split()[1].rstrip(":") for w in wrong] == ["--epochs", "--threshold"]

    owners: dict[str, list[tuple[str, Any]]] = {
        "candidates": [("Deduplicator", 10)],
        "loss": [("LesionSegmenter", "bce+dice")],
    }
    text = """
| method | threshold | default |
|---|---|---|
| `phash` | max Hamming distance | 6 |

Each image proposes (`candidates=12` by default) partners; `loss="bce+dice"` (default).
"""
    assert len(markdown_mismatches(text, owners, {"phash": 8})) == 2
    options: dict[str, list[tuple[str, Any]]] = {
        "--method": [("tool dedup", "verified")],
        "--keep": [("tool dedup", "first")],
    }
    text = "Downloads weights (with the default `--method cnn`); `--keep first` (the default), `--keep largest`."
    assert len(markdown_mismatches(text, {}, {}, options)) == 1
