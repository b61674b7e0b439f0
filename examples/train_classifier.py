"""Train and evaluate a 7-class lesion classifier on a leakage-free split.

Usage: python examples/train_classifier.py [WORK_DIR]

Writes a small synthetic dataset and a split grouped by lesion into WORK_DIR (default: a new
temporary folder), trains a small CNN from random weights (``pretrained=False``: nothing is
downloaded) with class-balanced sampling, keeps the epoch with the best validation balanced
accuracy, scores it on the test split, saves it, loads it back and classifies three images.

These settings (64-pixel images, random weights, four epochs) only make the example quick on a
CPU. For real data use a pretrained backbone at 224-384 pixels and more epochs (the ``gpu``
preset of ``hamkit run`` is a good start).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from hamkit import LesionClassifier, TrainConfig, make_synthetic, read_metadata, split_dataset


def main(work: Path) -> None:
    """Write the dataset and split into ``work``, then train, evaluate, save, reload and predict."""
    work.mkdir(parents=True, exist_ok=True)
    data = make_synthetic(work / "data", n_lesions=60, random_state=0, image_size=(96, 72), overwrite=True)
    split_csv = split_dataset(read_metadata(data.metadata_csv), random_state=0).save(work / "split.csv")

    recipe = TrainConfig(epochs=4, batch_size=16, lr=1e-3, class_balance="sampler", random_state=0)
    model = LesionClassifier("resnet18", image_size=64, pretrained=False, recipe=recipe, device="cpu")
    model.fit(
        data.root,
        split_csv=split_csv,  # trains on the "train" rows, picks the epoch on "val"
        out_dir=work / "run",
        num_workers=0,
        progress=False,
    )
    for row in model.history_:
        print(
            f"epoch {row['epoch']:.0f}: train loss {row['train_loss']:.3f}, "
            f"val balanced accuracy {row['val_balanced_accuracy']:.3f}"
        )
    print(f"kept epoch {model.best_epoch_}")

    report = model.evaluate(data.root, split_csv=split_csv, split="test")
    print(report.format_table())
    report.save(work / "test_report.json")
    report.plot_confusion_matrix(work / "confusion_matrix.png")

    model.save(work / "model")
    again = LesionClassifier.load(work / "model", device="cpu")
    images = sorted(data.image_dirs[0].glob("*.jpg"))[:3]
    for path, probabilities in zip(images, again.predict_proba(images), strict=True):
        best = int(probabilities.argmax())
        print(f"{path.name}: {again.classes_[best]} (p={probabilities[best]:.2f})")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="hamkit-classifier-")))
