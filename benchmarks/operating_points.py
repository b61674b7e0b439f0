"""Melanoma sensitivity targets on a trained ``hamkit run`` classifier: what each costs.

Loads the saved classifier of a ``hamkit run`` folder, computes its probabilities on the run's
validation and test splits once, and for each melanoma sensitivity target calibrates a copy on
validation (``calibrate(val, min_recall={"mel": target})``: temperature and decision rule,
melanoma recall protected) and scores it on test. The network is the same for every row; only
the operating point moves. Writes ``benchmarks/results/operating_points.json`` with the commit,
command, date and machine:

    python benchmarks/operating_points.py --run RUN_DIR --data ham10000-200px
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np
from _shared import provenance

from hamkit import LesionClassifier, SkinDataset
from hamkit.metrics import classification_report

HERE = Path(__file__).resolve().parent
TARGETS = (None, 0.6, 0.7, 0.75, 0.8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a hamkit run folder (classifier/model, split.csv)")
    parser.add_argument("--data", type=Path, required=True, help="the data folder the run used")
    parser.add_argument("--results", type=Path, default=HERE / "results" / "operating_points.json")
    args = parser.parse_args()
    model = LesionClassifier.load(args.run / "classifier" / "model")
    mean, std = model.normalisation()
    sets = {
        name: SkinDataset.from_folder(
            args.data, split_csv=args.run / "split.csv", split=name, image_size=model.image_size, mean=mean, std=std
        )
        for name in ("val", "test")
    }
    labels = {name: np.asarray(data.labels) for name, data in sets.items()}
    print(f"validation {len(labels['val'])} images, test {len(labels['test'])} images")
    rows = []
    for target in TARGETS:
        fitted = copy.deepcopy(model)  # calibrate() starts again from the network's logits
        fitted.calibrate(sets["val"], min_recall={"mel": target} if target else None)
        test = classification_report(
            labels["test"], fitted.decide(fitted.predict_proba(sets["test"])), classes=list(model.classes_)
        )
        rows.append(
            {
                "mel_target_on_val": target,
                "alpha": fitted.prior_alpha_,
                "test_balanced_accuracy": test.balanced_accuracy,
                "test_macro_f1": test.macro["f1"],
                "test_melanoma_sensitivity": test.melanoma_sensitivity,
                "test_accuracy": test.accuracy,
                "test_recall": dict(zip(model.classes_, test.recall, strict=True)),
                "notes": fitted.calibration_.get("notes", []),
            }
        )
        print(json.dumps(rows[-1]))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    found = {"benchmark": "operating_points", "run": "the cpu preset's full run", "rows": rows, **provenance()}
    args.results.write_text(json.dumps(found, indent=1) + "\n")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
