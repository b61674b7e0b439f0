"""ONNX export: ONNX Runtime matches PyTorch, any batch size runs, the preprocessing file lets an
ONNX user reproduce ``predict``, saved folders and the command line work, and bad input fails in
one line."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("onnxscript")

from hamkit import HamkitError, LesionClassifier, TrainConfig  # noqa: E402
from hamkit.cli.main import main  # noqa: E402
from hamkit.export import ExportResult, export_onnx, preprocessing_path  # noqa: E402
from hamkit.segment import LesionSegmenter  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_thread")

RECIPE = TrainConfig(epochs=1, batch_size=8, random_state=0)
FAST = {"num_workers": 0, "progress": False}
TINY_SEG = {"encoder_depth": 3, "decoder_channels": [16, 8, 8]}


def images(n: int, size: int, random_state: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(random_state))


@pytest.fixture(scope="module")
def classifier() -> LesionClassifier:
    """A classifier fitted for one epoch, then calibrated: temperature and class offsets set."""
    data = torch.utils.data.TensorDataset(images(28, 32), torch.arange(28) % 7)
    clf = LesionClassifier("resnet18", image_size=32, pretrained=False, recipe=RECIPE, device="cpu")
    clf.fit(data, data, **FAST)
    return clf.calibrate(data)


@pytest.fixture(scope="module")
def segmenter() -> LesionSegmenter:
    """A multi-task segmenter (mask and diagnosis head) fitted for one epoch."""
    masks = torch.zeros(14, 1, 32, 32)
    masks[:, :, 8:24, 8:24] = 1
    data = torch.utils.data.TensorDataset(images(14, 32, random_state=1), torch.arange(14) % 7, masks)
    seg = LesionSegmenter(
        "smp:Unet:resnet18",
        image_size=32,
        pretrained=False,
        classify=True,
        backbone_kwargs=TINY_SEG,
        recipe=RECIPE,
        device="cpu",
    )
    return seg.fit(data, data, **FAST)


def run_onnx(path: Path, batch: torch.Tensor) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": batch.numpy()})


# ---------------------------------------------------------------------------- classifier
@pytest.fixture(scope="module")
def classifier_export(classifier, tmp_path_factory) -> ExportResult:
    # opset 17 takes the TorchScript exporter, several times faster than torch.export (tested below)
    return export_onnx(classifier, tmp_path_factory.mktemp("clf") / "model.onnx", opset=17)


def test_classifier_matches_pytorch_at_any_batch_size(classifier, classifier_export):
    result = classifier_export
    assert result.kind == "LesionClassifier" and result.outputs == ("logits",)
    assert result.exporter == "torchscript" and result.opset == 17
    assert result.checked_batch_sizes == (1, 3) and set(result.max_abs_diff) == {"logits"}
    assert result.max_abs_diff["logits"] < 1e-4
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    for n in (1, 5):
        batch = images(n, 32, random_state=10 + n)
        (logits,) = session.run(None, {"image": batch.numpy()})
        with torch.inference_mode():
            expected = classifier.network_(batch).numpy()
        assert logits.shape == (n, 7) and np.abs(logits - expected).max() < 1e-4


def test_preprocessing_file_reproduces_predict(classifier, classifier_export):
    info = json.loads(classifier_export.preprocessing_path.read_text())
    assert classifier_export.preprocessing_path == classifier_export.path.with_name("model.preprocessing.json")
    assert info["kind"] == "LesionClassifier" and info["onnx_file"] == "model.onnx"
    assert info["input"]["name"] == "image" and info["input"]["layout"] == "NCHW"
    assert info["input"]["channel_order"] == "RGB" and info["input"]["shape"] == ["batch", 3, 32, 32]
    mean, std = classifier.normalisation()
    assert info["mean"] == list(mean) and info["std"] == list(std)
    assert info["classes"] == classifier.classes_ and set(info["outputs"]) == {"logits"}
    post = info["postprocessing"]
    assert post["calibrated"] is True and post["temperature"] == pytest.approx(classifier.temperature_)
    assert post["class_offsets"] == pytest.approx(list(classifier.class_offsets_))
    batch = images(6, 32, random_state=3)
    (logits,) = run_onnx(classifier_export.path, batch)
    scaled = logits / post["temperature"]
    proba = np.exp(scaled - scaled.max(1, keepdims=True))
    proba /= proba.sum(1, keepdims=True)
    assert np.abs(proba - classifier.predict_proba(batch)).max() < 1e-5
    decision = (np.log(np.clip(proba, 1e-12, None)) + np.asarray(post["class_offsets"])).argmax(1)
    assert np.array_equal(decision, classifier.predict(batch))


def test_files_honour_the_umask_and_the_model_is_left_as_it_was(classifier, classifier_export):
    mask = os.umask(0o022)
    os.umask(mask)
    for path in (classifier_export.path, classifier_export.preprocessing_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert not [p for p in classifier_export.path.parent.iterdir() if p.name.startswith(".")]  # no temp files
    assert not classifier.network_.training and next(classifier.network_.parameters()).dtype == torch.float32


def test_result_as_json_and_one_line(classifier_export):
    as_dict = classifier_export.to_dict()
    assert json.loads(json.dumps(as_dict))["max_abs_diff"]["logits"] == classifier_export.max_abs_diff["logits"]
    assert "\n" not in classifier_export.summary() and "logits" in classifier_export.summary()


# ---------------------------------------------------------------------------- segmenter
def test_segmenter_with_head_has_both_outputs(segmenter, tmp_path):
    result = export_onnx(segmenter, tmp_path / "seg.onnx")  # the default: torch.export, opset 18 or later
    assert result.outputs == ("mask_logits", "class_logits")
    assert result.exporter == "dynamo" and result.opset >= 18
    assert max(result.max_abs_diff.values()) < 1e-4 and set(result.max_abs_diff) == set(result.outputs)
    for n in (1, 5):
        batch = images(n, 32, random_state=20 + n)
        mask_logits, class_logits = run_onnx(result.path, batch)
        with torch.inference_mode():
            expected_mask, expected_class = segmenter.network_(batch)
        assert mask_logits.shape == (n, 1, 32, 32) and class_logits.shape == (n, 7)
        assert np.abs(mask_logits - expected_mask.numpy()).max() < 1e-4
        assert np.abs(class_logits - expected_class.numpy()).max() < 1e-4
    info = json.loads(preprocessing_path(result.path).read_text())
    assert info["kind"] == "LesionSegmenter" and list(info["outputs"]) == ["mask_logits", "class_logits"]
    assert info["outputs"]["mask_logits"]["shape"] == ["batch", 1, 32, 32]
    assert info["postprocessing"]["threshold"] == 0.5


def test_segmenter_without_head_from_a_saved_folder(tmp_path):
    seg = LesionSegmenter("smp:Unet:resnet18", image_size=32, pretrained=False, backbone_kwargs=TINY_SEG)
    seg.network_ = seg._build(pretrained=False, weights=None).eval()
    seg.save(tmp_path / "model")
    result = export_onnx(tmp_path / "model", tmp_path / "seg.onnx", opset=17)  # opset 17: the TorchScript exporter
    assert result.outputs == ("mask_logits",) and result.opset == 17 and result.exporter == "torchscript"
    assert result.max_abs_diff["mask_logits"] < 1e-4
    assert run_onnx(result.path, images(5, 32))[0].shape == (5, 1, 32, 32)


# ---------------------------------------------------------------------------- command line
def test_cli_exports_a_saved_classifier(classifier, tmp_path, capsys):
    classifier.save(tmp_path / "model")
    out = tmp_path / "out" / "clf.onnx"
    assert main(["export", str(tmp_path / "model"), "--out", str(out), "--opset", "17", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["kind"] == "LesionClassifier" and printed["opset"] == 17
    assert printed["max_abs_diff"]["logits"] < 1e-4 and printed["checked_batch_sizes"] == [1, 3]
    info = json.loads((tmp_path / "out" / "clf.preprocessing.json").read_text())
    assert info["postprocessing"]["temperature"] == pytest.approx(classifier.temperature_)
    assert main(["export", str(tmp_path / "model"), "--format", "onnx", "--out", str(out), "--opset", "17"]) == 0
    line, licence = capsys.readouterr().out.splitlines()
    assert "max abs difference" in line and "logits" in line and licence.startswith("inherited licence")
    assert main(["export", str(tmp_path / "model"), "--out", str(out), "--opset", "17", "--no-check"]) == 0
    assert "not checked" in capsys.readouterr().out


def test_cli_refuses_a_folder_that_is_no_model(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    assert main(["export", str(tmp_path / "notes"), "--out", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hamkit export: error:") and "not a saved hamkit model" in err
    assert not (tmp_path / "m.onnx").exists()


# ---------------------------------------------------------------------------- failures
def test_a_failed_parity_check_writes_nothing(classifier, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("hamkit.export._parity", lambda *args: {"logits": 0.5})
    with pytest.raises(HamkitError, match=r"differs from PyTorch \(logits by 5.00e-01, above atol 0.0001\)"):
        export_onnx(classifier, tmp_path / "model.onnx", opset=17)
    assert list(tmp_path.iterdir()) == []
    classifier.save(tmp_path / "model")
    assert main(["export", str(tmp_path / "model"), "--out", str(tmp_path / "m.onnx"), "--opset", "17"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "raise --atol or add --no-check" in err and not (tmp_path / "m.onnx").exists()


def test_missing_packages_and_bad_arguments_fail_in_one_line(classifier, tmp_path, monkeypatch):
    with pytest.raises(HamkitError, match="not fitted"):
        export_onnx(LesionClassifier("resnet18", image_size=32, pretrained=False), tmp_path / "m.onnx")
    with pytest.raises(HamkitError, match="batch_size must be at least 2"):
        export_onnx(classifier, tmp_path / "m.onnx", batch_size=1)
    with pytest.raises(HamkitError, match="cannot export a dict"):
        export_onnx({}, tmp_path / "m.onnx")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"kind": "Deduplicator"}')
    with pytest.raises(HamkitError, match="a Deduplicator model, which cannot be exported"):
        export_onnx(tmp_path / "other", tmp_path / "m.onnx")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(HamkitError) as caught:
        export_onnx(classifier, tmp_path / "m.onnx")
    assert str(caught.value) == 'ONNX export needs onnxruntime, which is not installed; pip install "hamkit[onnx]"'
    assert not (tmp_path / "m.onnx").exists()


def test_a_network_torch_export_cannot_trace_goes_through_torchscript(classifier, tmp_path, monkeypatch):
    def untraceable(*args):
        raise RuntimeError("data-dependent control flow\nmore detail")

    monkeypatch.setattr("hamkit.export._export_dynamo", untraceable)
    with pytest.warns(UserWarning, match=r"could not trace the network \(RuntimeError: data-dependent control flow\)"):
        result = export_onnx(classifier, tmp_path / "model.onnx")
    assert result.exporter == "torchscript" and result.max_abs_diff["logits"] < 1e-4
