"""Melanoma sensitivity targets on a trained ``hamkit run`` classifier: what each costs.

Loads the saved classifier of a ``hamkit run`` folder and computes its scores on the run's
validation and test splits once. For each target it then does what
``hamkit calibrate --operating-point mel:sensitivity=TARGET`` (and ``hamkit run``'s
``classifier.operating_point``) does, on those scores: :func:`hamkit.metrics.calibration.fit_calibration`
on validation (temperature, the melanoma-protecting prior rule, then melanoma's offset moved to
the target), and scores the decisions on test, with 95 % lesion-bootstrap intervals. The network
is the same for every row; only the operating point moves. Writes
``benchmarks/results/operating_points.json`` with the commit, command, date and machine:

    python benchmarks/operating_points.py --run RUN_DIR --data ham10000-200px
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from _shared import provenance

from hamkit import LesionClassifier, SkinDataset
from hamkit.classify.inference import decide
from hamkit.metrics.bootstrap import classification_intervals, metrics_from_confusion
from hamkit.metrics.calibration import fit_calibration, softmax

HERE = Path(__file__).resolve().parent
TARGETS = (None, 0.75, 0.8, 0.85, 0.9)


def scores(model: LesionClassifier, data: SkinDataset) -> np.ndarray:
    """Logits up to a per-row constant: ``T * log p`` undoes the saved temperature ``T``."""
    proba = model.predict_proba(data)
    return np.log(np.clip(proba, 1e-12, None)) * float(getattr(model, "temperature_", 1.0))


def lesions(split_csv: Path, image_ids: list[str]) -> list[str]:
    """The lesion of every image (the image itself when the split CSV names no lesion)."""
    with split_csv.open(newline="") as handle:
        lesion = {row["image_id"]: row.get("lesion_id") or row["image_id"] for row in csv.DictReader(handle)}
    return [lesion[i] for i in image_ids]


def row_for(
    target: float | None,
    fit: Any,
    z_test: np.ndarray,
    y_test: np.ndarray,
    groups: list[str],
    classes: list[str],
) -> dict[str, Any]:
    """Test metrics (and intervals) of the decisions that ``fit`` makes on the test scores."""
    mel = classes.index("mel")
    k = len(classes)
    pred = decide(softmax(z_test / fit.temperature.temperature), fit.offsets)
    matrix = np.bincount(y_test * k + pred, minlength=k * k).reshape(k, k)
    point = metrics_from_confusion(matrix, mel)
    spread = classification_intervals(y_test, pred, groups, k, mel=mel)
    others = y_test != mel
    specificity = float(np.mean(pred[others] != mel))
    op = fit.operating_point
    return {
        "mel_sensitivity_target_on_val": target,
        "val_mel_sensitivity": None if op is None else op.sensitivity,
        "alpha": fit.rule.alpha,
        "test": {name: float(value) for name, value in point.items()},
        "test_intervals": {name: [float(a), float(b)] for name, (a, b) in spread.items()},
        "test_melanoma_specificity": specificity,
        "test_recall": {c: float(matrix[i, i] / max(matrix[i].sum(), 1)) for i, c in enumerate(classes)},
    }


def run_crops(path: Path) -> dict[str, tuple[float, float, float, float]]:
    """``classifier/lesion_crops.csv`` of a run: each image's crop."""
    with path.open(newline="") as handle:
        return {
            row["image_id"]: (float(row["left"]), float(row["top"]), float(row["right"]), float(row["bottom"]))
            for row in csv.DictReader(handle)
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a hamkit run folder (classifier/model, split.csv)")
    parser.add_argument("--data", type=Path, required=True, help="the data folder the run used")
    parser.add_argument("--results", type=Path, default=HERE / "results" / "operating_points.json")
    parser.add_argument("--note", default="", help="a line recorded with the results")
    args = parser.parse_args()
    model = LesionClassifier.load(args.run / "classifier" / "model")
    classes = [str(c) for c in model.classes_]
    mean, std = model.normalisation()
    split_csv = args.run / "split.csv"
    sets = {
        name: SkinDataset.from_folder(
            args.data, split_csv=split_csv, split=name, image_size=model.image_size, mean=mean, std=std
        )
        for name in ("val", "test")
    }
    if model.lesion_crop:  # a classifier of lesion crops: the crops the run's segmenter placed
        crops = run_crops(args.run / "classifier" / "lesion_crops.csv")
        sets = {name: data.with_crops([crops[i] for i in data.image_ids]) for name, data in sets.items()}
    z = {name: scores(model, data) for name, data in sets.items()}
    y = {name: np.asarray(data.labels, dtype=np.int64) for name, data in sets.items()}
    groups = lesions(split_csv, list(sets["test"].image_ids))
    print(f"validation {len(y['val'])} images, test {len(y['test'])} images of {len(set(groups))} lesions")
    rows = []
    for target in TARGETS:
        fit = fit_calibration(
            z["val"],
            y["val"],
            prior=np.asarray(model.class_prior_),
            classes=classes,
            target={"mel": {"sensitivity": target}} if target else None,
        )
        rows.append(row_for(target, fit, z["test"], y["test"], groups, classes))
        print(json.dumps({k: rows[-1][k] for k in ("mel_sensitivity_target_on_val", "test")}))
    found = {
        "benchmark": "operating_points",
        "run": "the cpu preset's full run (hamkit run --data ham10000-200px)",
        "note": args.note,
        "test_images": len(y["test"]),
        "test_lesions": len(set(groups)),
        "rows": rows,
        **provenance(),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(found, indent=1) + "\n")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
