"""Tests of entry-point plugins, with real packages installed by pip into temporary folders.

The example package ``examples/plugin_package`` (distribution ``hamkit-tinynet``), a package
whose module fails to import (``hamkit-broken``) and a package whose entry points clash with a
built-in, with the example plugin and with a reserved prefix (``hamkit-clash``) are installed
with ``pip install --target``; the registry is then queried in subprocesses whose
``PYTHONPATH`` holds those folders, so this test process never sees the plugins.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

import hamkit

ROOT = REPO
EXAMPLE = ROOT / "examples" / "plugin_package"

BROKEN_CODE = "raise ImportError(\"hamkit_broken needs the package 'not_installed_dependency'\")\n"
CLASH_CODE = textwrap.dedent(
    """
    from hamkit.backbones.registry import BackboneSpec

    def _build(*, task, pretrained, **kwargs):
        import torch
        return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())

    RESNET18 = BackboneSpec("resnet18", ("classification",), _build, 3, description="impostor")
    SPEC = BackboneSpec("specnet", ("classification",), _build, 3, description="a spec object")
    NOT_A_SPEC = 42

    def make_tinynet():
        return BackboneSpec("tinynet", ("classification",), _build, 3, description="impostor")

    def make_meannet():
        return BackboneSpec("whatever", ("classification",), _build, 3, description="mean colour")
    """
)
CLASH_ENTRY_POINTS = {
    "resnet18": "hamkit_clash:RESNET18",
    "tinynet": "hamkit_clash:make_tinynet",
    "timm:evil": "hamkit_clash:SPEC",
    "specnet": "hamkit_clash:SPEC",
    "meannet": "hamkit_clash:make_meannet",
    "badobj": "hamkit_clash:NOT_A_SPEC",
}


def _write_package(root: Path, dist: str, module: str, entry_points: dict[str, str], code: str) -> Path:
    (root / module).mkdir(parents=True)
    (root / module / "__init__.py").write_text(code)
    eps = "\n".join(f'"{name}" = "{value}"' for name, value in entry_points.items())
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools>=68"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{dist}"
            version = "0.3.0"

            [tool.setuptools]
            packages = ["{module}"]

            [project.entry-points."hamkit.backbones"]
            """
        )
        + eps
        + "\n"
    )
    return root


def _pip_install(target: Path, *sources: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--disable-pip-version-check",
        "--quiet",
        "--target",
        str(target),
    ]
    result = subprocess.run(command + [str(s) for s in sources], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Install the three plugin packages once: tinynet + broken first, clash later on the path."""
    pytest.importorskip("setuptools")
    base = tmp_path_factory.mktemp("plugins")
    example = base / "src" / "plugin_package"
    shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    broken = _write_package(
        base / "src" / "broken", "hamkit-broken", "hamkit_broken", {"brokennet": "hamkit_broken:brokennet"}, BROKEN_CODE
    )
    clash = _write_package(base / "src" / "clash", "hamkit-clash", "hamkit_clash", CLASH_ENTRY_POINTS, CLASH_CODE)
    first, second = base / "first", base / "second"
    _pip_install(first, example, broken)
    _pip_install(second, clash)
    return {"first": first, "second": second}


def _run(script: str, pythonpath: list[Path], **env: str) -> dict[str, Any]:
    environ = {k: v for k, v in os.environ.items() if k != "HAMKIT_DISABLE_PLUGINS"}
    checkout = Path(hamkit.__file__).resolve().parents[1]  # the hamkit under test, not another install
    environ.update(env, PYTHONPATH=os.pathsep.join(str(p) for p in [*pythonpath, checkout]))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


SCENARIO = """
import contextlib, io, json, sys, warnings
warnings.simplefilter("always")
out = {}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import hamkit.backbones.registry as r
    from hamkit.errors import PluginError
    out["names"] = r.list_backbones()
    out["torch_after_list"] = "torch" in sys.modules
    out["plugins_imported_after_list"] = [m for m in ("hamkit_tinynet", "hamkit_broken",
                                          "hamkit_clash") if m in sys.modules]
    out["infos_before"] = [[p.name, p.package, p.version, p.status] for p in r.list_plugins()]
    out["warnings_discovery"] = [str(w.message) for w in caught]
    spec = r.get_backbone("tinynet")
    out["tinynet"] = [spec.name, spec.source, spec.feature_dim, list(spec.tasks)]
    import torch
    torch.manual_seed(0)
    model = r.create_backbone("tinynet").eval()
    out["tinynet_shape"] = list(model(torch.randn(2, 3, 64, 64)).shape)
    out["tinynet_attr"] = model.feature_dim
    n_before = len(caught)
    errors = []
    for _ in range(2):
        try:
            r.get_backbone("brokennet")
        except PluginError as err:
            errors.append([str(err), type(err.__cause__).__name__, str(err.__cause__)])
    out["broken_errors"] = errors
    out["broken_warnings"] = [str(w.message) for w in caught[n_before:]]
    out["classification"] = r.list_backbones(task="classification")
    out["names_after"] = r.list_backbones()
    resnet = r.get_backbone("resnet18")
    out["resnet18"] = [resnet.source, resnet.feature_dim]
    out["builtin_seg"] = r.list_backbones("deeplab*", task="segmentation")
    meannet = r.get_backbone("meannet")
    out["meannet"] = [meannet.name, meannet.source, meannet.description]
    out["specnet_source"] = r.get_backbone("specnet").source
    out["infos_after"] = [[p.name, p.package, p.status, p.error] for p in r.list_plugins(load=True)]
    from hamkit.cli.main import main
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        out["cli_plugins_rc"] = main(["plugins", "--load"])
        out["cli_backbones_rc"] = main(["backbones", "tiny"])
    out["cli_output"] = buffer.getvalue()
    out["all_warnings"] = [str(w.message) for w in caught]
print(json.dumps(out))
"""


@pytest.fixture(scope="session")
def scenario(installed: dict[str, Path]) -> dict[str, Any]:
    return _run(SCENARIO, [installed["first"], installed["second"]])


def test_discovery_is_lazy(scenario: dict[str, Any]) -> None:
    assert {"tinynet", "brokennet", "meannet", "specnet", "badobj"} <= set(scenario["names"])
    assert scenario["torch_after_list"] is False
    assert scenario["plugins_imported_after_list"] == []
    assert ["tinynet", "hamkit-tinynet", "0.1.0", "not loaded"] in scenario["infos_before"]


def test_example_plugin_works(scenario: dict[str, Any]) -> None:
    assert scenario["tinynet"] == ["tinynet", "hamkit-tinynet", 64, ["classification"]]
    assert scenario["tinynet_shape"] == [2, 64]
    assert scenario["tinynet_attr"] == 64
    assert "tinynet" in scenario["classification"]


def test_clashes_warn_naming_both_packages_and_keep_the_first(scenario: dict[str, Any]) -> None:
    messages = scenario["warnings_discovery"]
    builtin = [m for m in messages if "'resnet18'" in m]
    assert len(builtin) == 1 and "'hamkit-clash'" in builtin[0] and "'hamkit'" in builtin[0]
    plugin = [m for m in messages if "'tinynet'" in m]
    assert len(plugin) == 1 and "'hamkit-clash'" in plugin[0] and "'hamkit-tinynet'" in plugin[0]
    reserved = [m for m in messages if "'timm:evil'" in m]
    assert len(reserved) == 1 and "'hamkit-clash'" in reserved[0] and "'timm'" in reserved[0]
    assert scenario["resnet18"] == ["hamkit", 512]  # the built-in is kept
    assert scenario["tinynet"][1] == "hamkit-tinynet"  # the first plugin is kept
    assert len(scenario["builtin_seg"]) == 3
    shadowed = {(i[0], i[1]) for i in scenario["infos_after"] if i[2] == "shadowed"}
    assert shadowed == {("resnet18", "hamkit-clash"), ("tinynet", "hamkit-clash"), ("timm:evil", "hamkit-clash")}


def test_failing_plugin(scenario: dict[str, Any]) -> None:
    first, second = scenario["broken_errors"]
    assert first == second
    message, cause_type, cause = first
    assert "'brokennet'" in message and "'hamkit-broken'" in message
    assert "HAMKIT_DISABLE_PLUGINS=1" in message
    assert cause_type == "ImportError" and "not_installed_dependency" in cause
    warned = scenario["broken_warnings"]
    assert len(warned) == 1  # warned once, however often it is asked for
    assert "'hamkit-broken'" in warned[0] and "not_installed_dependency" in warned[0]
    assert "brokennet" not in scenario["classification"]
    assert "brokennet" not in scenario["names_after"]
    failed = {i[0]: i[3] for i in scenario["infos_after"] if i[2] == "failed"}
    assert set(failed) == {"brokennet", "badobj"}
    assert failed["brokennet"].startswith("ImportError: hamkit_broken needs")
    assert failed["badobj"].startswith("TypeError:") and "42" in failed["badobj"]


def test_spec_objects_and_zero_argument_callables(scenario: dict[str, Any]) -> None:
    assert scenario["meannet"] == ["meannet", "hamkit-clash", "mean colour"]
    assert scenario["specnet_source"] == "hamkit-clash"
    loaded = {i[0] for i in scenario["infos_after"] if i[2] == "loaded"}
    assert loaded == {"tinynet", "meannet", "specnet"}


def test_cli_reports_plugins(scenario: dict[str, Any]) -> None:
    assert scenario["cli_plugins_rc"] == 1  # --load found failures
    assert scenario["cli_backbones_rc"] == 0
    lines = [line.split() for line in scenario["cli_output"].splitlines()]
    assert ["NAME", "PACKAGE", "VERSION", "STATUS", "ERROR"] in lines
    assert ["tinynet", "hamkit-tinynet", "0.1.0", "loaded"] in lines
    assert any(line[:5] == ["brokennet", "hamkit-broken", "0.3.0", "failed", "ImportError:"] for line in lines)
    assert ["tinynet", "classification", "64", "128x128", "-", "-", "hamkit-tinynet"] in lines


def test_disable_env_hides_all_plugins(installed: dict[str, Path]) -> None:
    result = _run(
        """
        import json, sys
        import hamkit.backbones.registry as r
        from hamkit.errors import BackboneNotFoundError
        try:
            r.get_backbone("tinynet")
            found = True
        except BackboneNotFoundError:
            found = False
        print(json.dumps({"names": r.list_backbones(), "plugins": len(r.list_plugins(load=True)),
                          "found": found, "torch": "torch" in sys.modules}))
        """,
        [installed["first"], installed["second"]],
        HAMKIT_DISABLE_PLUGINS="1",
    )
    assert result["plugins"] == 0 and result["found"] is False and result["torch"] is False
    assert {"tinynet", "brokennet", "meannet"}.isdisjoint(result["names"])
    assert "resnet18" in result["names"]


def test_importing_the_plugin_module_directly(installed: dict[str, Path]) -> None:
    result = _run(
        """
        import json, warnings
        caught = warnings.catch_warnings(record=True).__enter__()
        warnings.simplefilter("always")
        import hamkit_tinynet  # the decorator runs outside the registry's loader
        import hamkit.backbones.registry as r
        from hamkit.errors import HamkitError
        spec = r.get_backbone("tinynet")
        try:
            r.register_backbone("tinynet", feature_dim=3)(lambda **kw: None)
            clash = ""
        except HamkitError as err:
            clash = str(err)
        print(json.dumps({"source": spec.source,
                          "same_builder": spec.builder is hamkit_tinynet.tinynet,
                          "status": {p.name: p.status for p in r.list_plugins()}, "clash": clash,
                          "warnings": [str(w.message) for w in caught
                                       if "hamkit" in str(w.message)]}))
        """,
        [installed["first"]],
    )
    assert result["source"] == "hamkit-tinynet" and result["same_builder"] is True
    assert result["status"] == {"tinynet": "loaded", "brokennet": "not loaded"}
    assert result["warnings"] == []
    assert "already registered" in result["clash"] and "'hamkit-tinynet'" in result["clash"]


def test_plugin_that_calls_sys_exit_on_import_is_a_failed_plugin(tmp_path, monkeypatch) -> None:
    """``sys.exit`` in a plugin's module must not end the program that imports it."""
    import importlib.metadata
    import warnings

    from hamkit.backbones.plugins import PluginRecord, load
    from hamkit.errors import PluginError

    (tmp_path / "exiting_plugin.py").write_text("import sys\nsys.exit(7)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = importlib.metadata.EntryPoint("exitnet", "exiting_plugin:build", "hamkit.backbones")
    record = PluginRecord(entry, "hamkit-exit", "1.0")
    with warnings.catch_warnings(record=True), pytest.raises(PluginError) as err:
        load(record)
    assert record.status == "failed" and "sys.exit(7)" in (record.error or "")
    assert "'exitnet'" in str(err.value)
