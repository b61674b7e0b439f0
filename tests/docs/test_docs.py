"""The documentation: its code runs, its references match the code, and the site builds.

* the ``python`` blocks of the guide pages run, in order, in a temporary folder (a block after
  ``<!-- no-test: reason -->`` is only compiled; a block that includes an example file with
  ``--8<--`` is run by ``tests/docs/test_examples.py``);
* every docstring example of every hamkit module passes ``doctest``;
* ``docs/cli.md`` is what ``docs/gen_cli.py`` generates from the argument parser;
* the API reference documents every name of ``hamkit.__all__``;
* numbers the guides quote from the benchmark pages are on those pages;
* ``mkdocs build --strict`` passes (skipped where MkDocs is not installed).
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import inspect
import io
import json
import os
import pkgutil
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import REPO

import hamkit
from hamkit.backbones import registry

DOCS = REPO / "docs"
GUIDES = [
    "quickstart.md",
    "installation.md",
    "data.md",
    "datasets.md",
    "backbones.md",
    "plugins.md",
    "faq.md",
    "tutorials/dedup.md",
    "tutorials/classification.md",
    "tutorials/segmentation.md",
    "tutorials/pipeline.md",
]
BLOCK = re.compile(r"^(?:<!-- (?P<mark>[^>]*?) -->\n)?```python\n(?P<code>.*?)^```", re.MULTILINE | re.DOTALL)
SNIPPET = re.compile(r'^--8<-- "(?P<path>[^"]+)"\s*$')
DOCTEST_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run in an empty folder, with temporary files and backbone registrations kept to the test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("HAMKIT_CACHE", str(tmp_path / "hamkit-cache"))
    with registry.isolated():
        yield tmp_path


def python_blocks(page: str) -> list[tuple[str, str]]:
    """``(marker, code)`` of each python block of a docs page, in order."""
    return [(m["mark"] or "", m["code"]) for m in BLOCK.finditer((DOCS / page).read_text())]


def load_doc_script(name: str) -> ModuleType:
    """Import a script that lives in docs/ (not a package) by its path."""
    spec = importlib.util.spec_from_file_location(f"docs_{name}", DOCS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- guide code blocks


@pytest.mark.parametrize("page", GUIDES)
def test_guide_code_blocks_run(page: str, isolated: Path) -> None:
    blocks = python_blocks(page)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for number, (mark, code) in enumerate(blocks, start=1):
        where = f"{page}, python block {number}"
        snippet = SNIPPET.match(code.strip())
        if snippet:  # an included file: examples/*.py are run by test_examples.py
            path = REPO / snippet["path"]
            assert path.is_file(), f"{where}: includes missing file {snippet['path']}"
            assert path.parent == REPO / "examples" or "plugin_package" in path.parts, where
            continue
        compiled = compile(code, where, "exec")
        if mark:
            assert re.fullmatch(r"no-test: \S.*", mark), f"{where}: marker must read '<!-- no-test: reason -->'"
            continue
        exec(compiled, namespace)  # noqa: S102 - running the documentation's own code is the test


def test_every_guide_page_with_code_is_tested() -> None:
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if "```python" in p.read_text()}
    assert pages <= set(GUIDES) | {"index.md"}, f"add these pages to GUIDES: {sorted(pages - set(GUIDES))}"


def test_quickstart_shows_the_readme_commands() -> None:
    readme = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), flags=re.DOTALL)
    quickstart = (DOCS / "quickstart.md").read_text()
    for command in readme:
        assert command in quickstart, f"docs/quickstart.md lacks the README command {command.strip()!r}"


def documented_commands() -> list[tuple[str, str]]:
    """``(page, command line)`` of every ``hamkit ...`` command in the bash blocks of the docs."""
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.DOTALL):
            for line in block.splitlines():
                for part in line.split("&&"):
                    words = shlex.split(part.split(" > ")[0], comments=True)
                    if words[:1] == ["hamkit"]:
                        found.append((str(page.relative_to(DOCS)), shlex.join(words)))
    return found


def test_documented_commands_parse() -> None:
    from hamkit.cli.main import build_parser

    commands = documented_commands()
    assert len(commands) >= 20
    for page, command in commands:
        try:
            args = build_parser().parse_args(shlex.split(command)[1:])
        except SystemExit as stop:  # --version and --help exit 0
            assert stop.code == 0, f"{page}: `{command}` does not parse"
            continue
        assert getattr(args, "_run", None) is not None, f"{page}: `{command}` names no subcommand"


def test_pipeline_config_examples_are_valid(isolated: Path) -> None:
    from hamkit.pipeline.config import load_config

    blocks = re.findall(r"```toml\n(.*?)```", (DOCS / "tutorials" / "pipeline.md").read_text(), flags=re.DOTALL)
    assert blocks
    for number, text in enumerate(blocks):
        path = isolated / f"block{number}.toml"
        path.write_text(text)
        assert load_config(path)  # unknown sections, settings or wrong types raise


# --------------------------------------------------------------------------- docstring examples


def hamkit_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(hamkit.__path__, "hamkit.")]
    return ["hamkit", *sorted(n for n in names if not n.endswith("__main__"))]


def run_doctests(module: ModuleType) -> tuple[int, str]:
    """Run a module's docstring examples; return the number of failures and the report."""
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=DOCTEST_FLAGS)
    output = io.StringIO()
    for test in finder.find(module, module.__name__):
        runner.run(test, out=output.write)
    return runner.failures, output.getvalue()


@pytest.mark.parametrize("name", hamkit_modules())
def test_docstring_examples(name: str, isolated: Path) -> None:
    failures, report = run_doctests(importlib.import_module(name))
    assert failures == 0, report


@pytest.mark.parametrize("name", ["gen_cli", "griffe_sphinx_roles"])
def test_docs_scripts_docstring_examples(name: str) -> None:
    failures, report = run_doctests(load_doc_script(name))
    assert failures == 0, report


# Public names whose docstring has no ``Examples:`` section yet. The list must shrink: the test
# fails when a name not listed here lacks examples, and when a listed name has gained them.
KNOWN_WITHOUT_EXAMPLES = {
    "DataError",
    "BackboneNotFoundError",
    "PluginError",
    "WeightsError",
    "TrainingError",
    "read_isic_groundtruth",
    "run_pipeline",
    "PipelineResult",
    "SegmentationPrediction",
    "SegmentationReport",
    "DedupResult",
    "ClassificationReport",
}


def test_public_names_are_documented_with_examples() -> None:
    lacking = set()
    for name in hamkit.__all__:
        obj = getattr(hamkit, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        doc = inspect.getdoc(obj) or ""
        assert doc.strip(), f"hamkit.{name} has no docstring"
        if "Examples:" not in doc:
            lacking.add(name)
    assert lacking <= KNOWN_WITHOUT_EXAMPLES, f"add an Examples: section to {sorted(lacking - KNOWN_WITHOUT_EXAMPLES)}"
    assert KNOWN_WITHOUT_EXAMPLES <= lacking, (
        f"{sorted(KNOWN_WITHOUT_EXAMPLES - lacking)} now have examples: remove them from KNOWN_WITHOUT_EXAMPLES"
    )


# --------------------------------------------------------------------------- CLI reference


def test_cli_reference_is_generated_from_the_parser() -> None:
    expected = load_doc_script("gen_cli").render()
    assert (DOCS / "cli.md").read_text() == expected, "docs/cli.md is out of date: run `python docs/gen_cli.py`"


def test_cli_reference_names_every_subcommand_and_option() -> None:
    gen_cli = load_doc_script("gen_cli")
    from hamkit.cli.main import build_parser

    page = (DOCS / "cli.md").read_text()
    commands = list(gen_cli.subcommands(build_parser()))
    assert {name for name, _, _ in commands} >= {
        "run",
        "synth",
        "download",
        "split",
        "dedup",
        "audit",
        "train",
        "train classifier",
        "train segmenter",
        "predict",
        "evaluate",
        "segment",
        "backbones",
        "plugins",
    }
    for name, parser, _ in commands:
        assert f"## hamkit {name}\n" in page, name
        section = page.split(f"## hamkit {name}\n", 1)[1].split("\n## ", 1)[0]
        for action in gen_cli.arguments(parser):
            for option in action.option_strings or [gen_cli.metavar(action)]:
                assert f"`{option}" in section, f"hamkit {name}: {option} is not documented"


# --------------------------------------------------------------------------- API reference


def directives() -> dict[str, str]:
    """``{object path: page}`` of every ``::: path`` directive of the API reference."""
    found: dict[str, str] = {}
    for page in sorted((DOCS / "api").glob("*.md")):
        for path in re.findall(r"^::: (\S+)\s*$", page.read_text(), flags=re.MULTILINE):
            found[path] = page.name
    return found


def resolve(path: str) -> Any:
    """Import the longest module prefix of a dotted path, then follow attributes."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(path)


def test_api_reference_documents_every_public_name() -> None:
    documented = directives()
    for path in documented:
        resolve(path)  # no directive points to a missing object
    for name in hamkit.__all__:
        obj = getattr(hamkit, name)
        assert any(path.rsplit(".", 1)[-1] == name and resolve(path) is obj for path in documented), (
            f"hamkit.{name} has no `::: <module>.{name}` section in docs/api/*.md"
        )


def test_api_overview_lists_every_public_name() -> None:
    overview = (DOCS / "api" / "index.md").read_text()
    missing = [name for name in hamkit.__all__ if f"[`{name}`]" not in overview]
    assert not missing, f"add {missing} to the table of docs/api/index.md"


def test_every_page_is_in_the_navigation() -> None:
    nav = (REPO / "mkdocs.yml").read_text()
    excluded = {"images/README.md"}  # mkdocs.yml's exclude_docs: where the pictures come from, not a page
    pages = [str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if not p.name.startswith("benchmarks_")]
    pages = [p for p in pages if p not in excluded]
    assert [p for p in pages if f" {p}\n" not in nav] == []


# --------------------------------------------------------------------------- quoted numbers


def test_numbers_quoted_from_benchmarks_are_on_the_benchmark_page() -> None:
    tutorial = (DOCS / "tutorials" / "dedup.md").read_text()
    quoted = tutorial.split("## At scale", 1)[1].split("\n## ", 1)[0]
    source = re.search(r"\]\(\.\./(benchmarks[\w]*\.md)\)", quoted)
    assert source, "the 'At scale' section must link the benchmark page it quotes"
    benchmark = (DOCS / source[1]).read_text()
    values = re.findall(r"\b(\d+(?:\.\d+)?) (?:s|MiB|GiB)\b", quoted)
    assert len(values) >= 5
    for value in values:
        assert value in benchmark, f"{value} is quoted in tutorials/dedup.md but not on {source[1]}"


# --------------------------------------------------------------------------- the site


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(tmp_path / "site")],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    api = "\n".join(p.read_text() for p in (tmp_path / "site" / "api").rglob("index.html"))
    assert "LesionClassifier" in api and "split_dataset" in api
    # the griffe extension turned Sphinx roles and RST tables into links and Markdown tables
    assert not re.search(r":(class|func|meth|mod|data|attr):<code>", api)
    assert "=====" not in api
    tutorial = (tmp_path / "site" / "tutorials" / "dedup" / "index.html").read_text()
    assert "planted_duplicates" in tutorial  # examples/dedup_folder.py was included by the snippet


# --------------------------------------------------------------------------- benchmark tables


def test_benchmark_tables_are_generated_from_the_results_files() -> None:
    gen = load_doc_script("gen_benchmarks")
    page = (DOCS / "benchmarks.md").read_text()
    blocks = re.findall(r"<!-- generated: (\w+) -->", page)
    assert blocks, "docs/benchmarks.md has no generated block"
    assert set(blocks) <= set(gen.BLOCKS)
    assert gen.render(page) == page, "docs/benchmarks.md is out of date: run `python docs/gen_benchmarks.py`"
    for other in gen.PAGES:
        text = other.read_text()
        assert gen.render(text) == text, f"docs/{other.name} is out of date: run `python docs/gen_benchmarks.py`"


def test_a_changed_results_number_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gen = load_doc_script("gen_benchmarks")
    results = tmp_path / "results"
    results.mkdir()
    for file in (REPO / "benchmarks" / "results").iterdir():
        (results / file.name).write_text(file.read_text())
    page = (DOCS / "benchmarks.md").read_text()
    monkeypatch.setattr(gen, "RESULTS", results)
    sizing = results / "cpu_preset_sizing.jsonl"
    rows = [json.loads(line) for line in sizing.read_text().splitlines()]
    rows[0]["best_epoch"] = 99
    sizing.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert gen.render(page) != page


def _changed(value: Any, key: str = "") -> Any:
    """``value`` with every number moved by one and every saved output text changed."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "\nchanged" if key == "output" else value
    if isinstance(value, list):
        return [_changed(item) for item in value]
    if isinstance(value, dict):
        return {k: _changed(v, k) for k, v in value.items()}
    return value


def _results_read_by(gen: ModuleType, name: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, list[str]]:
    """What block ``name`` renders, and the results files it reads to render it."""
    read: list[str] = []
    original = Path.read_text

    def spy(self: Path, *args: Any, **kwargs: Any) -> str:
        if self.parent == gen.RESULTS:
            read.append(self.name)
        return original(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(Path, "read_text", spy)
        text = gen.BLOCKS[name]()
    return text, read


def test_every_generated_block_sits_on_a_page_once() -> None:
    gen = load_doc_script("gen_benchmarks")
    found = [name for page in gen.PAGES for name in re.findall(r"<!-- generated: (\w+) -->", page.read_text())]
    assert sorted(found) == sorted(gen.BLOCKS), "each generator renders exactly one block of one page"
    for page in gen.PAGES:
        for body in re.findall(r"<!-- generated: \w+ -->\n(.*?)<!-- end: ", page.read_text(), flags=re.S):
            assert body.strip(), f"docs/{page.name} has an empty generated block: run `python docs/gen_benchmarks.py`"


@pytest.mark.parametrize("name", sorted(load_doc_script("gen_benchmarks").BLOCKS))
def test_a_changed_results_file_changes_its_block(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every block is rendered from its results files: change every number in them and the block changes,
    so a page that was not regenerated after a rerun fails the test above."""
    gen = load_doc_script("gen_benchmarks")
    before, read = _results_read_by(gen, name, monkeypatch)
    assert read, f"block {name} reads no file under benchmarks/results/"
    shutil.copytree(gen.RESULTS, tmp_path / "results")
    for file in set(read):
        path = tmp_path / "results" / file
        if file.endswith(".jsonl"):
            lines = [json.dumps(_changed(json.loads(line))) for line in path.read_text().splitlines() if line]
            path.write_text("\n".join(lines) + "\n")
        else:
            path.write_text(json.dumps(_changed(json.loads(path.read_text()))))
    monkeypatch.setattr(gen, "RESULTS", tmp_path / "results")
    assert gen.BLOCKS[name]() != before


def test_the_threshold_recommendations_quote_the_quality_results() -> None:
    """The figures the dedup page's recommendations quote are in the quality results file's output."""
    page = (DOCS / "benchmarks_dedup.md").read_text()
    section = page.split("## Recommended default thresholds", 1)[1].split("\n## ", 1)[0]
    output = json.loads((REPO / "benchmarks" / "results" / "dedup_quality.json").read_text())["output"]
    quoted = re.findall(r"\b\d+\.\d+%|\b0\.9\d{2,3}\b", section)
    assert len(quoted) > 10, quoted
    missing = [number for number in quoted if number not in output]
    assert not missing, f"docs/benchmarks_dedup.md quotes {missing}, which benchmarks/results/dedup_quality.json lacks"
