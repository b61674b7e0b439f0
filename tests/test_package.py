"""The package as a user meets it: imports, the console script, python -m hamkit."""

from __future__ import annotations

import json
import subprocess
import sys
import time

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


def test_help_is_fast_and_lists_the_commands():
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "hamkit", "--help"], capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - start
    for command in ("synth", "split", "backbones", "plugins"):
        assert command in out.stdout
    assert elapsed < 5  # measured ~0.1 s; generous bound against a loaded CI machine


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


def test_the_old_package_names_still_work_with_a_warning() -> None:
    import hamkit.datasets
    import hamkit.synthetic

    with pytest.warns(FutureWarning, match="hamkit.synthetic.make_synthetic"):
        assert hamkit.datasets.make_synthetic is hamkit.synthetic.make_synthetic
