"""Train a lesion segmenter with a diagnosis head (multi-task), evaluate it, write masks.

Usage: python examples/train_segmenter.py [WORK_DIR]

Writes a small synthetic dataset (with lesion masks) and a split grouped by lesion into
WORK_DIR (default: a new temporary folder), trains a U-Net with a ResNet-18 encoder from random
weights (``pretrained=False``: nothing is downloaded) and a classification head on the pooled
deepest encoder features, in one forward pass. The best epoch is chosen by ``joint_score`` (mean
of validation Dice and the head's balanced accuracy). The test split is scored at each image's
original resolution against the original mask files, as ISIC 2018 Task 1 does.

The settings (64-pixel inputs, a three-stage encoder, random weights, three epochs) only make
the example quick on a CPU; on real data use a pretrained backbone at 256-384 pixels.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from hamkit import LesionSegmenter, TrainConfig, make_synthetic, read_metadata, split_dataset


def main(work: Path) -> None:
    """Write the dataset and split into ``work``, then train, evaluate, save, reload and write masks."""
    work.mkdir(parents=True, exist_ok=True)
    data = make_synthetic(work / "data", n_lesions=50, random_state=0, image_size=(96, 72), overwrite=True)
    split_csv = split_dataset(read_metadata(data.metadata_csv), random_state=0).save(work / "split.csv")

    model = LesionSegmenter(
        "smp:Unet:resnet18",
        image_size=64,
        pretrained=False,
        classify=True,
        cls_weight=1.0,
        recipe=TrainConfig(epochs=3, batch_size=8, lr=3e-3, random_state=0),
        device="cpu",
        backbone_kwargs={"encoder_depth": 3, "decoder_channels": [32, 16, 8]},
    )
    model.fit(
        data.root,
        masks=data.masks_dir,
        split_csv=split_csv,
        out_dir=work / "run",
        num_workers=0,
        progress=False,
    )
    for row in model.history_:
        print(
            f"epoch {row['epoch']:.0f}: train loss {row['train_loss']:.3f}, val dice {row['val_dice']:.3f}, "
            f"val balanced accuracy {row['val_balanced_accuracy']:.3f}"
        )
    print(f"kept epoch {model.best_epoch_} (monitor: joint_score)")

    report = model.evaluate(
        data.root, masks=data.masks_dir, split_csv=split_csv, split="test", postprocess="largest+fill"
    )
    print(report.format_table())
    report.save(work / "test_report.json")
    report.save_csv(work / "per_image.csv")
    model.plot_examples(data.root, work / "examples.png", masks=data.masks_dir, split_csv=split_csv, n=4)

    model.save(work / "model")
    again = LesionSegmenter.load(work / "model", device="cpu")
    images = sorted(data.image_dirs[1].glob("*.jpg"))[:3]
    written = again.write_masks(images, work / "masks", postprocess="largest+fill")
    prediction = again.segment(images)  # masks and class probabilities from one pass
    for path, mask, label in zip(written, prediction.masks, prediction.class_predictions, strict=True):
        print(
            f"{path.name}: {mask.shape[1]}x{mask.shape[0]} mask, {mask.mean():.0%} lesion, "
            f"class {again.classes_[int(label)]}"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="hamkit-segmenter-")))
