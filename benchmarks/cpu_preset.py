"""How the ``cpu`` preset of ``hamkit run`` was sized: one model trained on the real images,
its seconds per epoch and its lesion-disjoint test metrics.

The preset must finish the whole of ``hamkit run`` on the 10,015 HAM10000 images in 30 minutes
on 2 CPU cores, so each candidate setting (backbone, image size, epochs, batch, learning rate,
optimizer) is trained here on a split made as the pipeline makes it (lesion-grouped, 0.75 / 0.125 /
0.125, random state 0; without the duplicate groups), timed, and scored on the test split: raw argmax, then after
``LesionClassifier.calibrate`` on the validation split. Each run prints one JSON line (and
appends it to ``--json``); docs/benchmarks.md tabulates them with each setting's seconds per
epoch as a ratio of the reference named there (ResNet-18 at 112 px, the issue's baseline).

    python benchmarks/cpu_preset.py --data ../shared/data/ham10000-200px --task classifier \\
        --backbone resnet18 --image-size 112 --epochs 8
    python benchmarks/cpu_preset.py --data ../shared/data/ham10000-200px --task segmenter \\
        --backbone smp:Unet:resnet18 --image-size 96 --epochs 4
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _shared import provenance

from hamkit import LesionClassifier, LesionSegmenter, SkinDataset, TrainConfig
from hamkit.data.crops import DEFAULT_MARGIN, lesion_crops
from hamkit.data.dataset import find_label_file, find_mask_dir
from hamkit.data.images import find_images, image_size_of
from hamkit.data.metadata import read_labels
from hamkit.data.splits import split_dataset
from hamkit.metrics.calibration import expected_calibration_error
from hamkit.metrics.operating_points import parse_operating_point


def headline(report: object) -> dict[str, float]:
    """The numbers a clinician reads first, from a :class:`hamkit.metrics.ClassificationReport`."""
    return {
        "accuracy": report.accuracy,  # type: ignore[attr-defined]
        "balanced_accuracy": report.balanced_accuracy,  # type: ignore[attr-defined]
        "macro_f1": report.macro["f1"],  # type: ignore[attr-defined]
        "melanoma_sensitivity": report.melanoma_sensitivity,  # type: ignore[attr-defined]
        "macro_auc": report.macro_roc_auc,  # type: ignore[attr-defined]
    }


def crops_from(source: str, base: SkinDataset, records: list, data: Path, margin: float, cache: Path) -> np.ndarray:
    """The lesion-centred crop of every image of ``base``: around the data's own masks
    (``source == "truth"``) or around the masks a saved segmenter predicts."""
    if source == "truth":
        mask_dir = find_mask_dir(data)
        assert mask_dir is not None, "no mask folder"
        with_masks = SkinDataset.from_paths(
            base.paths,
            masks=[mask_dir / f"{r.image_id}_segmentation.png" for r in records],
            image_size=base.image_size,
            cache=cache,
        )
        masks = np.stack([with_masks[i]["mask"][0].numpy() for i in range(len(with_masks))])
        aspects = [w / h for w, h in (image_size_of(p) for p in base.paths)]
        return lesion_crops(masks, aspects, margin=margin)
    segmenter = LesionSegmenter.load(source)
    return lesion_crops(segmenter.predict(base, batch_size=64), margin=margin)


def segmenter_of(source: str) -> dict[str, object] | None:
    """What the row's crops came from, for the results file: the saved segmenter's network and recipe."""
    if source == "truth":
        return None
    segmenter = LesionSegmenter.load(source)
    recipe = segmenter.recipe or TrainConfig()
    return {
        "backbone": segmenter.backbone,
        "image_size": segmenter.image_size,
        "epochs": recipe.epochs,
        "lr": recipe.lr,
        "best_epoch": getattr(segmenter, "best_epoch_", None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="HAM10000 folder (official layout)")
    parser.add_argument("--task", choices=("classifier", "segmenter"), default="classifier")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--class-balance", default="sampler")
    parser.add_argument("--pretrained", action="store_true", help="start from the backbone's pretrained weights")
    parser.add_argument("--augment", default="flips", help="none, flips, light or strong")
    parser.add_argument("--warmup-epochs", type=float, default=0.0, help="linear learning-rate warm-up")
    parser.add_argument("--ema-decay", type=float, default=0.0, help="moving average of the weights (0: off)")
    parser.add_argument(
        "--note", help="recorded with the row, e.g. that other jobs shared the machine (its seconds are not a cost)"
    )
    parser.add_argument("--freeze", type=float, default=0.0, help="share of the layers kept at their starting weights")
    parser.add_argument(
        "--input-lr-scale",
        type=float,
        default=1.0,
        help="the first layer's learning rate as a share of --lr (1: one rate)",
    )
    parser.add_argument(
        "--random-state",
        type=int,
        default=0,
        help="the training's random state (initial head, sampling, augmentation); the split keeps 0",
    )
    parser.add_argument("--tta", action="store_true", help="also score with flip test-time augmentation")
    parser.add_argument("--no-classify", action="store_true", help="segmenter without the diagnosis head")
    parser.add_argument("--monitor", default=None, help="validation metric that picks the best epoch")
    parser.add_argument(
        "--operating-point",
        default="mel:sensitivity=0.85",
        help="also score the decision hamkit run saves: calibrate on val with this target ('none': skip)",
    )
    parser.add_argument(
        "--crop-masks",
        help="train and score on lesion-centred crops around these masks: 'truth' (the data's own masks) "
        "or a saved LesionSegmenter folder (its predicted masks)",
    )
    parser.add_argument(
        "--crop-margin", type=float, default=DEFAULT_MARGIN, help="crop side / the lesion's longer side"
    )
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images (0: all)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/hamkit-bench-cache"))
    parser.add_argument("--json", type=Path, help="append the result as one JSON line to this file")
    parser.add_argument("--save", type=Path, help="save the trained model to this folder")
    args = parser.parse_args()

    present = find_images(args.data)
    records = [r for r in read_labels(find_label_file(args.data)) if r.image_id in present]
    if args.limit:
        records = records[: args.limit]
    split = split_dataset(records, (0.75, 0.125, 0.125), random_state=0)
    masks = None
    if args.task == "segmenter":
        mask_dir = find_mask_dir(args.data)
        assert mask_dir is not None, "no mask folder"
        masks = [mask_dir / f"{r.image_id}_segmentation.png" for r in records]
    base = SkinDataset.from_paths(
        [present[r.image_id] for r in records],
        [r.label for r in records],
        masks,
        image_size=args.image_size,
        cache=args.cache,
    )
    crop_s = 0.0
    if args.crop_masks:
        start = time.perf_counter()
        base = base.with_crops(crops_from(args.crop_masks, base, records, args.data, args.crop_margin, args.cache))
        crop_s = time.perf_counter() - start
    parts = {name: base.subset(split.indices(name)) for name in ("train", "val", "test")}
    balance = args.class_balance
    recipe = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        class_balance=balance,
        augment=args.augment,
        warmup_epochs=args.warmup_epochs,
        ema_decay=args.ema_decay,
        freeze=args.freeze,
        input_lr_scale=args.input_lr_scale,
        random_state=args.random_state,
        monitor=args.monitor or None,
    )
    model: LesionClassifier | LesionSegmenter
    if args.task == "classifier":
        model = LesionClassifier(args.backbone, image_size=args.image_size, pretrained=args.pretrained, recipe=recipe)
    else:
        model = LesionSegmenter(
            args.backbone,
            image_size=args.image_size,
            pretrained=args.pretrained,
            classify=not args.no_classify,
            recipe=recipe,
        )
    start = time.perf_counter()
    model.fit(parts["train"], parts["val"], progress=False)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    report = model.evaluate(parts["test"])
    test_s = time.perf_counter() - start
    if args.save:
        model.save(args.save)
    row: dict[str, object] = {k: v for k, v in vars(args).items() if k not in ("data", "cache", "json", "save")}
    row.update(
        train_images=len(parts["train"]),
        test_images=len(parts["test"]),
        train_s=round(train_s, 1),
        s_per_epoch=round(train_s / args.epochs, 1),
        test_s=round(test_s, 1),
        crop_s=round(crop_s, 1),
        crop_masks=None if not args.crop_masks else "truth" if args.crop_masks == "truth" else "segmenter",
        crop_segmenter=segmenter_of(args.crop_masks) if args.crop_masks else None,
        best_epoch=model.best_epoch_,
        **provenance(),
    )
    if isinstance(model, LesionClassifier):
        row.update(headline(report))
        if args.tta:
            row.update({f"tta_{k}": v for k, v in headline(model.evaluate(parts["test"], tta=True)).items()})
        raw = model.predict_proba(parts["test"])
        model.calibrate(parts["val"])
        tuned = model.evaluate(parts["test"])
        row.update({f"tuned_{k}": v for k, v in headline(tuned).items()})
        target = parse_operating_point(args.operating_point)
        if target is not None:  # the rule hamkit run saves: the operating point on top of the tuned rule
            model.calibrate(parts["val"], target=target)
            row.update({f"rule_{k}": v for k, v in headline(model.evaluate(parts["test"])).items()})
        labels = np.asarray(parts["test"].labels)
        row.update(
            temperature=model.temperature_,
            ece_before=expected_calibration_error(raw, labels),
            ece_after=expected_calibration_error(model.predict_proba(parts["test"]), labels),
        )
    else:
        row.update({k: v for k, v in report.summary().items() if isinstance(v, (int, float))})
    row["history"] = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in h.items()} for h in model.history_]
    print(json.dumps(row))
    if args.json:
        with args.json.open("a") as handle:
            handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
