"""External validation: hamkit evaluate MODEL --data A --data B gives one row per data set,
restricted to the classes each set has, with intervals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from hamkit.cli.main import main
from hamkit.data.images import find_images
from hamkit.data.metadata import read_metadata
from hamkit.metrics.external import external_metrics, format_external_table


def test_rows_are_restricted_to_the_classes_of_the_set():
    rng = np.random.default_rng(0)
    truth = np.array([0] * 20 + [1] * 30)  # a set with mel and nv only; the model has three classes
    proba = rng.dirichlet([1, 1, 1], size=50)
    proba[np.arange(50), truth] += 1.0
    proba /= proba.sum(1, keepdims=True)
    pred = proba.argmax(1)
    pred[:3] = 2  # the model may answer a class the set does not have
    row = external_metrics(truth, proba, pred, [f"L{i // 2}" for i in range(50)], ["mel", "nv", "bcc"])
    assert row["classes"] == ["mel", "nv"] and row["lesions"] == 25
    recall = [np.mean(pred[truth == k] == k) for k in (0, 1)]
    assert row["balanced_accuracy"] == pytest.approx(np.mean(recall))  # bcc's recall is not averaged in
    assert row["melanoma_sensitivity"] == pytest.approx(recall[0])
    assert row["macro_auc"] > 0.9
    for metric in ("balanced_accuracy", "macro_f1", "melanoma_sensitivity", "macro_auc"):
        low, high = row["intervals"][metric]
        assert low <= row[metric] <= high
    no_mel = external_metrics(truth[20:], proba[20:], pred[20:], [str(i) for i in range(30)], ["mel", "nv", "bcc"])
    assert math.isnan(no_mel["melanoma_sensitivity"]) and math.isnan(no_mel["macro_auc"])  # one class: no AUC
    assert "n/a" in format_external_table({"nevi only": no_mel})


def test_evaluate_on_several_data_sets(synthetic, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "classifier", "--data", str(synthetic.root), "--split-csv", str(synthetic.root / "split.csv")]
    net = ["--backbone", "mobilenet_v3_small", "--image-size", "32", "--no-pretrained", "--workers", "0"]
    assert main([*argv, "--out", str(run), *net, "--epochs", "1", "--quiet", "--device", "cpu"]) == 0
    capsys.readouterr()
    # a PH2-layout folder (nevi and melanoma only) and a DDI-layout one with a disease the model lacks
    records = read_metadata(synthetic.metadata_csv)
    files = find_images(synthetic.root)
    ph2 = tmp_path / "PH2Dataset"
    lines = ["|| Name || Histological Diagnosis || Clinical Diagnosis ||"]
    chosen = [r for r in records if r.dx in ("nv", "mel")][:12]
    for k, r in enumerate(chosen):
        name = f"IMD{k + 1:03d}"
        folder = ph2 / "PH2 Dataset images" / name / f"{name}_Dermoscopic_Image"
        folder.mkdir(parents=True)
        Image.open(files[r.image_id]).save(folder / f"{name}.bmp")
        lines.append(f"|| {name} || || {2 if r.dx == 'mel' else 0} ||")
    (ph2 / "PH2_dataset.txt").write_text("\n".join(lines) + "\n")
    ddi = tmp_path / "ddi"
    ddi.mkdir()
    rows = [",DDI_ID,DDI_file,skin_tone,malignant,disease"]
    for k, r in enumerate(records[:10]):
        Image.open(files[r.image_id]).save(ddi / f"{k:06d}.png")
        disease = "verruca-vulgaris" if k < 3 else {"mel": "melanoma", "bcc": "basal-cell-carcinoma"}.get(r.dx, "nevus")
        rows.append(f"{k},{k + 1},{k:06d}.png,12,False,{disease}")
    (ddi / "ddi_metadata.csv").write_text("\n".join(rows) + "\n")

    out = tmp_path / "external"
    command = ["evaluate", str(run / "model"), "--data", f"PH2={ph2}", "--data", f"DDI={ddi}", "--quiet"]
    assert main([*command, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].startswith("data set") and "PH2" in printed and "DDI" in printed
    assert "DDI: left out 3 image(s) of classes the model lacks (verruca vulgaris 3)" in printed
    saved = json.loads((out / "external_validation.json").read_text())
    assert set(saved["PH2"]["classes"]) <= {"mel", "nv"} and saved["PH2"]["images"] == 12
    assert saved["DDI"]["images"] == 7 and saved["DDI"]["source"] == "DDI"
    assert "| PH2 | 12 |" in (out / "external_validation.md").read_text()
    assert main([*command, "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["data_sets"]) == {"PH2", "DDI"}
