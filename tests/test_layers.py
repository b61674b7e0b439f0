"""The layers of docs/architecture.md, enforced: no module imports from a layer above its own, and no
import cycle anywhere."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "hamkit"


def layer_table() -> dict[str, int]:
    """``{package or module: layer}`` from the table under "## Layers" in docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    layers: dict[str, int] = {}
    for line in section.splitlines():
        row = re.match(r"^\|\s*(\d+)\s*\|([^|]*)\|", line)
        if row:
            for name in re.findall(r"`(hamkit[\w.]*)`", row.group(2)):
                layers[name] = int(row.group(1))
    return layers


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every hamkit module ``path`` imports, at the top or inside a function, type-only included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "hamkit" or name.startswith("hamkit.")}


def layer_of(module: str, layers: dict[str, int]) -> int | None:
    """The layer of the longest table entry that is ``module`` or a package containing it."""
    parts = module.split(".")
    for end in range(len(parts), 1, -1):
        name = ".".join(parts[:end])
        if name in layers:
            return layers[name]
    return None


def test_the_table_names_every_module() -> None:
    layers = layer_table()
    assert len(layers) >= 20, "the layer table in docs/architecture.md was not found"
    unplaced = sorted(
        module_name(path)
        for path in SOURCE.rglob("*.py")
        if module_name(path) != "hamkit" and layer_of(module_name(path), layers) is None
    )
    assert not unplaced, f"modules without a layer in docs/architecture.md: {unplaced}"


def test_no_import_points_up_the_layers() -> None:
    layers = layer_table()
    upward = []
    for path in sorted(SOURCE.rglob("*.py")):
        module = module_name(path)
        own = layer_of(module, layers)
        if module == "hamkit" or own is None:
            continue  # the top-level package only names things lazily
        for imported in imports_of(path):
            theirs = layer_of(imported, layers)
            if imported == "hamkit" or (theirs is not None and theirs > own):
                upward.append(f"{module} (layer {own}) imports {imported} (layer {theirs})")
    assert not upward, "imports against docs/architecture.md:\n" + "\n".join(upward)


def test_the_checker_catches_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom hamkit.pipeline import run_pipeline\n\ndef f():\n    import hamkit.cli.main\n")
    layers = layer_table()
    found = imports_of(module)
    assert found == {"hamkit.pipeline", "hamkit.cli.main"}
    assert layer_of("hamkit.cli.main", layers) > layer_of("hamkit.data.splits", layers)  # type: ignore[operator]


# --------------------------------------------------------------------------- cycles


def import_graph(source: Path = SOURCE) -> dict[str, set[str]]:
    """``{module: the hamkit modules it imports}``, every import counted (top level, inside a
    function, type-only), and importing ``a.b.c`` counted as importing the packages ``a.b`` too
    (Python runs their ``__init__`` first), except the packages the importer is itself inside."""

    def name_of(path: Path) -> str:
        parts = path.relative_to(source.parent).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    modules = {name_of(path): path for path in source.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        parts = name.split(".")
        own = {".".join(parts[:end]) for end in range(1, len(parts) + 1)}
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)  # from a.b import c (a module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        targets = set()
        for imported in found:
            pieces = imported.split(".")
            for end in range(2, len(pieces) + 1):
                target = ".".join(pieces[:end])
                if target in modules and target not in own:
                    targets.add(target)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_anywhere() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_cycle_check_catches_a_cycle_through_a_package(tmp_path: Path) -> None:
    package = tmp_path / "hamkit"
    (package / "est").mkdir(parents=True)
    (package / "export").mkdir()
    (package / "__init__.py").write_text("")
    (package / "est" / "__init__.py").write_text("from hamkit.est.model import Model\n")
    (package / "est" / "model.py").write_text("from hamkit.est.other import x\nfrom hamkit.export.mixin import Mixin\n")
    (package / "est" / "other.py").write_text("x = 1\n")
    (package / "export" / "__init__.py").write_text("def export():\n    from hamkit.est import Model\n")
    (package / "export" / "mixin.py").write_text("class Mixin: ...\n")
    graph = {name.replace(str(tmp_path), ""): deps for name, deps in import_graph(package).items()}
    assert cycles(graph) == [["hamkit.est", "hamkit.est.model", "hamkit.export"]]
    (package / "export" / "__init__.py").write_text("")
    assert cycles(import_graph(package)) == []  # a package importing its own modules is no cycle
