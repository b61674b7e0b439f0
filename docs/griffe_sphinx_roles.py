"""Griffe extension for the API reference: render the Sphinx roles of hamkit's docstrings.

hamkit's docstrings are Google style, but name other objects with Sphinx roles such as
``:class:`~hamkit.classify.LesionClassifier``` or ``:meth:`fit```. Markdown would show those
literally. This extension rewrites each role into an *optional* mkdocs-autorefs cross-reference
(``<autoref identifier="..." optional>``): a link where the target is rendered in the API
reference, plain code text elsewhere (no warning either way). Relative names are resolved in the
docstring's scope. It also turns two reStructuredText constructs into Markdown: simple tables
(columns drawn with ``=====  =====`` lines) become Markdown tables, and ``text::`` (a paragraph
introducing a literal block) becomes ``text:``.

mkdocs.yml loads it as a file: ``extensions: [docs/griffe_sphinx_roles.py]``.
"""

from __future__ import annotations

import contextlib
import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|exc|obj|const|any):`(?P<tilde>~?)(?P<target>[^`]+)`")
BORDER = re.compile(r"^(?P<indent>[ \t]*)=+(?:[ \t]+=+)+[ \t]*$")
LITERAL_INTRO = re.compile(r"(?m)^(?P<text>[ \t]*\S+[ \t].*[^:\s])::[ \t]*$")  # two words or more


def resolve(obj: Any, target: str) -> str:
    """The full dotted path of ``target`` as seen from ``obj`` (``target`` unchanged if unknown).

    Args:
        obj: The griffe object whose docstring names ``target``.
        target: A dotted name, absolute (``hamkit.x.f``) or relative (``f``, ``Class.method``).

    Returns:
        The resolved path, or ``target`` itself.
    """
    if target.startswith("hamkit."):
        return target
    head, _, rest = target.partition(".")
    for scope in (obj, getattr(obj, "parent", None)):
        if scope is None:
            continue
        if getattr(scope, "is_class", False) and head in scope.all_members:  # inherited members too
            return f"{scope.path}.{target}"
        with contextlib.suppress(griffe.NameResolutionError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            resolved = scope.resolve(head)
            return f"{resolved}.{rest}" if rest else resolved
    return target


def _columns(border: str) -> list[tuple[int, int]]:
    """Character spans of the columns of an RST simple-table border line."""
    return [(m.start(), m.end()) for m in re.finditer(r"=+", border)]


def _cells(line: str, spans: list[tuple[int, int]]) -> list[str]:
    """Cut a table line at the column starts (the last column runs to the end of the line)."""
    starts = [start for start, _ in spans] + [len(line) + 1]
    return [line[starts[i] : starts[i + 1]].strip() for i in range(len(spans))]


def _join(first: str, more: str) -> str:
    """Join the lines of a wrapped cell (a word broken after a hyphen stays one word)."""
    if not more:
        return first
    return f"{first}{more}" if first.endswith("-") else f"{first} {more}".strip()


def rst_tables(text: str) -> str:
    r"""Turn reStructuredText simple tables (border, header, border, rows, border) into Markdown.

    A row whose first cell is empty continues the row above it (a cell wrapped over lines).

    Args:
        text: A docstring.

    Returns:
        The docstring with Markdown tables.

    Examples:
        >>> rows = ["===  =====", "idx  code", "===  =====", "0    mel", "1    nv", "     (nevus)", "===  ====="]
        >>> print(rst_tables("\n".join(rows)))
        | idx | code |
        |---|---|
        | 0 | mel |
        | 1 | nv (nevus) |
    """
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = BORDER.match(lines[i])
        ends = [j for j in range(i + 1, len(lines)) if lines[j].strip() == lines[i].strip()][:2] if match else []
        if not match or len(ends) < 2:
            out.append(lines[i])
            i += 1
            continue
        spans = _columns(lines[i])
        rows: list[list[str]] = []
        for j in [*range(i + 1, ends[0]), *range(ends[0] + 1, ends[1])]:
            cells = _cells(lines[j], spans)
            if rows and not cells[0] and j != i + 1:
                rows[-1] = [_join(a, b) for a, b in zip(rows[-1], cells, strict=True)]
            elif any(cells):
                rows.append(cells)
        indent = match["indent"]
        table = [f"{indent}| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        out += [table[0], f"{indent}|" + "---|" * len(spans), *table[1:]]
        i = ends[1] + 1
    return "\n".join(out)


def rewrite(text: str, obj: Any) -> str:
    """Rewrite the Sphinx roles and ``::`` literal introductions of one docstring.

    Args:
        text: The docstring.
        obj: The object it documents (for resolving relative names).

    Returns:
        The docstring with autorefs instead of roles.

    Examples:
        >>> rewrite("See :func:`~hamkit.data.splits.split_dataset`.", None)
        'See <autoref identifier="hamkit.data.splits.split_dataset" optional><code>split_dataset</code></autoref>.'
        >>> rewrite("unpacks the zips::", None)
        'unpacks the zips:'
    """

    def role(match: re.Match[str]) -> str:
        target = match["target"].strip()
        title = target.rsplit(".", 1)[-1] if match["tilde"] else target
        identifier = resolve(obj, target) if obj is not None else target
        return f'<autoref identifier="{html.escape(identifier)}" optional><code>{html.escape(title)}</code></autoref>'

    text = rst_tables(ROLE.sub(role, text))
    return LITERAL_INTRO.sub(lambda m: f"{m['text']}:", text)


class SphinxRoles(griffe.Extension):
    """Rewrite docstrings once griffe has built the whole object tree."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Rewrite the docstring of every object (modules, classes, functions, attributes)."""
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value, obj)
