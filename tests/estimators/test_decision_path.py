"""One decision path: ``LesionClassifier.predict``, ``hamkit predict``, ``hamkit evaluate`` and the
ONNX export's recipe decide alike with a saved decision rule that moves decisions off the argmax."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hamkit import LesionClassifier
from hamkit.cli.main import main
from hamkit.data.dataset import SkinDataset
from hamkit.engine.inputs import prepare_inputs, unpack_batch


def _offsets_that_move_decisions(proba: np.ndarray, target: int) -> np.ndarray:
    """Offsets lifting class ``target`` past the argmax for about half the images, with the
    threshold in the widest gap of the middle third of margins (no decision rests on a near-tie)."""
    log_p = np.log(np.clip(proba, 1e-12, None))
    margins = np.sort(log_p.max(1) - log_p[:, target])
    middle = margins[len(margins) // 3 : 2 * len(margins) // 3 + 1]
    gap = int(np.argmax(np.diff(middle)))
    offsets = np.zeros(proba.shape[1])
    offsets[target] = (middle[gap] + middle[gap + 1]) / 2
    return offsets


@pytest.fixture(scope="module")
def saved(synthetic, tmp_path_factory) -> tuple[Path, SkinDataset, LesionClassifier]:
    """A tiny classifier fitted for one epoch, calibrated, its offsets forced to move decisions, saved."""
    split_csv = synthetic.root / "split.csv"
    clf = LesionClassifier("resnet18", image_size=32, pretrained=False, device="cpu")
    clf.set_params(recipe__epochs=1, recipe__batch_size=32, recipe__random_state=0).fit(
        synthetic.root, split_csv=split_csv, num_workers=0, progress=False
    )
    clf.calibrate(synthetic.root, split_csv=split_csv)
    test = SkinDataset.from_folder(synthetic.root, split_csv=split_csv, split="test")
    proba = clf.predict_proba([str(p) for p in test.paths])
    target = int(np.bincount(proba.argmax(1), minlength=7).argmin())  # a class the argmax rarely picks
    clf.class_offsets_ = _offsets_that_move_decisions(proba, target)
    decided = clf.decide(proba)
    assert 0 < (decided != proba.argmax(1)).sum() < len(decided)  # the rule changes some decisions, not all
    folder = tmp_path_factory.mktemp("decision") / "model"
    clf.save(folder)
    return folder, test, LesionClassifier.load(folder, device="cpu")


def test_predict_cli_evaluate_agree_on_the_saved_rule(saved, synthetic, tmp_path, capsys):
    folder, test, model = saved
    paths = [str(p) for p in test.paths]
    proba = model.predict_proba(paths)
    expected = model.predict(paths)
    assert np.array_equal(expected, model.decide(proba)) and not np.array_equal(expected, proba.argmax(1))

    # hamkit predict writes the saved rule's decision, not the argmax
    assert main(["predict", str(folder), *paths, "--out", str(tmp_path / "p.csv"), "--quiet", "--device", "cpu"]) == 0
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [r["image_id"] for r in rows] == test.image_ids
    assert [r["prediction"] for r in rows] == [model.classes_[i] for i in expected]

    # LesionClassifier.evaluate and hamkit evaluate count the same decisions
    matrix = np.zeros((7, 7), dtype=int)
    np.add.at(matrix, (test.labels, expected), 1)
    assert model.evaluate(test).confusion_matrix == matrix.tolist()
    argv = ["evaluate", str(folder), "--data", str(synthetic.root), "--split-csv", str(synthetic.root / "split.csv")]
    assert main([*argv, "--out", str(tmp_path / "eval"), "--quiet", "--device", "cpu"]) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["n_samples"] == len(paths) and report["confusion_matrix"] == matrix.tolist()


def test_the_onnx_recipe_agrees(saved, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from hamkit.export import export_onnx

    _, test, model = saved
    result = export_onnx(model, tmp_path / "model.onnx", opset=17)
    recipe = json.loads(result.preprocessing_path.read_text())["postprocessing"]
    mean, std = model.normalisation()
    inputs = prepare_inputs([str(p) for p in test.paths], image_size=model.image_size, mean=mean, std=std)
    batch = torch.stack([unpack_batch(inputs.dataset[i])["image"] for i in range(len(test))])
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"image": batch.numpy()})
    scaled = logits / recipe["temperature"]
    proba = np.exp(scaled - scaled.max(1, keepdims=True))
    proba /= proba.sum(1, keepdims=True)
    decision = (np.log(np.clip(proba, 1e-12, None)) + np.asarray(recipe["class_offsets"])).argmax(1)
    assert np.array_equal(decision, model.predict(batch))
    assert np.array_equal(decision, model.predict([str(p) for p in test.paths]))
