"""Public text says "random state" (scikit-learn's ``random_state``), never the other word for it.

Checked: the package source (names, docstrings, messages, help), the guide pages and the generated
CLI reference, the README, the examples, and the unreleased section of the CHANGELOG. The only
places the old word may appear are the table of renamed settings and the argument of faiss that
carries that name.
"""

from __future__ import annotations

import re
from pathlib import Path

from conftest import REPO

OLD = re.compile(r"(?<![.\w])seed(s|ed)?\b", re.IGNORECASE)
"""The word, not ``manual_seed`` or a library's ``.seed`` attribute or method."""

ALLOWED = ('RENAMED: dict[str, str] = {"seed": "random_state"}', "seed=random_state,")
"""The table of renamed settings, and faiss's ``Kmeans(..., seed=...)`` argument."""


def public_files() -> list[Path]:
    files = sorted((REPO / "src" / "hamkit").rglob("*.py"))
    files += sorted((REPO / "docs").rglob("*.md")) + sorted((REPO / "examples").rglob("*.py"))
    return [*files, REPO / "README.md"]


def offending_lines(path: Path, text: str) -> list[str]:
    return [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for number, line in enumerate(text.splitlines(), 1)
        if OLD.search(line) and not any(allowed in line for allowed in ALLOWED)
    ]


def test_public_text_says_random_state() -> None:
    found = [line for path in public_files() for line in offending_lines(path, path.read_text(encoding="utf-8"))]
    assert not found, "say random state (random_state, --random-state):\n" + "\n".join(found)


def test_the_unreleased_changelog_says_random_state() -> None:
    changelog = REPO / "CHANGELOG.md"
    unreleased = changelog.read_text(encoding="utf-8").split("## Unreleased", 1)[1].split("\n## ", 1)[0]
    assert not offending_lines(changelog, unreleased)


def test_the_check_finds_the_word() -> None:
    assert offending_lines(REPO, "split_dataset(records, seed=0)\nthe runs are seeded") == [
        ".:1: split_dataset(records, seed=0)",
        ".:2: the runs are seeded",
    ]
    assert not offending_lines(REPO, "torch.manual_seed(0); random.seed(1); index.cp.seed = 2")
