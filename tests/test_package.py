"""The package as a user meets it: imports, the console script, python -m hamkit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import hamkit

PROBE = (
    "import sys, json, hamkit; from hamkit.cli.main import build_parser; build_parser(); "
    "print(json.dumps(sorted(m for m in ('torch', 'torchvision', 'timm', "
    "'segmentation_models_pytorch', 'sklearn', 'matplotlib') if m in sys.modules)))"
)


def test_import_and_help_do_not_import_heavy_libraries():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_help_lists_the_commands():
    # that --help stays fast is checked by what it imports (the test above), not by a clock
    out = subprocess.run([sys.executable, "-m", "hamkit", "--help"], capture_output=True, text=True, check=True)
    for command in ("synth", "split", "backbones", "plugins"):
        assert command in out.stdout


def test_version_and_no_command():
    out = subprocess.run([sys.executable, "-m", "hamkit", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"hamkit {hamkit.__version__}"
    assert subprocess.run([sys.executable, "-m", "hamkit"], capture_output=True).returncode == 2


def test_public_names_resolve():
    for name in hamkit.__all__:
        assert getattr(hamkit, name) is not None, name
    assert "SkinDataset" in dir(hamkit)


def test_error_is_printed_without_traceback(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "hamkit", "split", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "s.csv")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "missing.csv: file not found" in out.stderr


@pytest.mark.parametrize(
    "statement",
    [
        "from hamkit.dedup import Deduplicator, DedupResult, AuditResult",
        "from hamkit.data import SkinDataset, split_dataset, read_metadata, DecodeCache",
        "from hamkit.pipeline import run_pipeline, PipelineResult, load_config",
        "from hamkit.engine import TrainConfig, Trainer, fit_estimator",
        "from hamkit.classify import LesionClassifier, ClassifierNetwork",
        "from hamkit.segment import LesionSegmenter, SegmentationPrediction",
        "from hamkit.figures import segmentation_panels, plot_history, plot_roc_curves",
        "from hamkit.synthetic import make_synthetic, plant_copies",
        "from hamkit.ham10000 import download_ham10000, IMAGE_DIRS, METADATA_CSV",
        "from hamkit.backbones import BackboneSpec, PluginInfo",
    ],
)
def test_every_subpackage_re_exports_its_public_names(statement: str) -> None:
    exec(statement, {})


def test_the_old_package_names_are_gone() -> None:
    import importlib

    for name in ("hamkit.datasets", "hamkit.report"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(name)


def _project_version() -> str:
    import tomllib
    from pathlib import Path

    return tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]["version"]


def test_no_shim_outlives_the_release_that_removes_it() -> None:
    """The deprecation policy (docs/architecture.md): a shim made by hamkit._deprecation.deprecate
    fails this test once the project's version reaches its ``remove_in``."""
    from hamkit._deprecation import SHIMS, overdue

    version = _project_version()
    late = overdue(version)
    assert not late, "remove these shims (or move the version back): " + "; ".join(s.message() for s in late)
    assert all(s.since and s.remove_in for s in SHIMS)


def test_the_policy_check_catches_a_shim_past_its_release() -> None:
    import warnings

    from hamkit._deprecation import Deprecation, deprecate, overdue

    shim = Deprecation("hamkit.old", "hamkit.new", since="0.2.0", remove_in="0.3.0")
    assert overdue("0.2.9", [shim]) == [] and overdue("0.3.0", [shim]) == [shim] and overdue("1.0", [shim]) == [shim]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shim.warn(stacklevel=1)
    assert caught[0].category is FutureWarning and "hamkit.old goes in 0.3.0" in str(caught[0].message)
    with pytest.raises(ValueError, match="must come after"):
        deprecate("x", "y", since="0.4.0", remove_in="0.4.0")


def test_the_version_is_0_3_0_in_the_project_and_the_changelog() -> None:
    from pathlib import Path

    assert _project_version() == "0.3.0"
    changelog = (Path(__file__).resolve().parents[1] / "CHANGELOG.md").read_text()
    assert "## Unreleased" in changelog and "0.3.0" in changelog.split("## Unreleased", 1)[1].split("\n## ", 1)[0]
