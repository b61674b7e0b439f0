"""The original student report's recipe against hamkit's defaults, same backbone, data and epochs.

Report recipe: a random IMAGE-level split (photos of one lesion land on both sides), plain
cross-entropy, no class balancing, the last epoch kept. hamkit: a lesion-grouped stratified split,
a class-balanced sampler, the epoch with the best validation balanced accuracy kept.

Both models are scored on the same lesion-disjoint test split (hamkit's), which neither has seen;
the report recipe is also scored on its own random validation split, the way the original report did,
which shares lesions with its training images. A second table compares hamkit's class-balance
modes (sampler / loss / none), which is how the default was chosen.

    python benchmarks/report_recipe.py                                  # synthetic data (generated)
    python benchmarks/report_recipe.py --data HAM10000-SAMPLE/images \\
        --labels HAM10000-SAMPLE/HAM10000_metadata.csv
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from hamkit import LesionClassifier, SkinDataset, TrainConfig
from hamkit.data.dataset import find_label_file
from hamkit.data.images import find_images
from hamkit.data.metadata import read_labels
from hamkit.data.splits import split_dataset


def score(clf: LesionClassifier, data: SkinDataset) -> dict[str, float]:
    report = clf.evaluate(data)
    return {"accuracy": report.accuracy, "balanced_accuracy": report.balanced_accuracy, "macro_f1": report.macro["f1"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="image root (default: synthetic data, generated)")
    parser.add_argument("--labels", type=Path, help="metadata CSV (default: found under --data)")
    parser.add_argument("--n-lesions", type=int, default=400, help="synthetic lesions")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--skip-balance-study", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    tmp = Path(tempfile.mkdtemp(prefix="hamkit-report-recipe-"))
    if args.data is None:
        from hamkit.synthetic import make_synthetic

        synthetic = make_synthetic(
            tmp / "data", n_lesions=args.n_lesions, random_state=args.random_state, image_size=(160, 120)
        )
        root, labels_csv = synthetic.root, synthetic.metadata_csv
        source = f"synthetic ({synthetic.n_images} images, {args.n_lesions} lesions)"
    else:
        root = args.data
        labels_csv = args.labels or find_label_file(root)
        source = str(root)
    present = find_images(root)
    records = [r for r in read_labels(labels_csv) if r.image_id in present]
    source += f", {len(records)} labelled images"
    split = split_dataset(records, random_state=args.random_state)  # hamkit: grouped by lesion, stratified
    base = SkinDataset.from_paths(
        [present[r.image_id] for r in records],
        [r.label for r in records],
        image_size=args.image_size,
        cache=tmp / "cache",
    )
    test = base.subset(split.indices("test"))
    pool = np.concatenate([split.indices("train"), split.indices("val")])
    # the report's random image-level split of the same non-test images (train 6/7, val 1/7)
    rng = np.random.default_rng(args.random_state)
    shuffled = rng.permutation(pool)
    n_val = max(1, round(len(pool) / 7))
    report_val, report_train = shuffled[:n_val], shuffled[n_val:]
    train_lesions = {records[i].group for i in report_train}
    leaked = sum(records[i].group in train_lesions for i in report_val)

    recipe = TrainConfig(
        epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, random_state=args.random_state, augment="flips"
    )
    fit = dict(num_workers=0, progress=False)
    rows = []
    start = time.perf_counter()
    # plain CE, no balancing, no validation-based selection: the last epoch is kept
    report_clf = LesionClassifier(
        args.backbone, image_size=args.image_size, pretrained=False, recipe=replace(recipe, class_balance="none")
    )
    report_clf.fit(base.subset(report_train), None, **fit)
    rows.append(("report recipe, its own random val (leaky)", score(report_clf, base.subset(report_val))))
    rows.append(("report recipe, lesion-disjoint test", score(report_clf, test)))
    ours = LesionClassifier(args.backbone, image_size=args.image_size, pretrained=False, recipe=recipe)
    ours.fit(base.subset(split.indices("train")), base.subset(split.indices("val")), **fit)
    rows.append(("hamkit defaults, lesion-disjoint test", score(ours, test)))
    balance_rows = []
    if not args.skip_balance_study:
        for mode in ("sampler", "loss", "none"):
            clf = LesionClassifier(
                args.backbone, image_size=args.image_size, pretrained=False, recipe=replace(recipe, class_balance=mode)
            )
            clf.fit(base.subset(split.indices("train")), base.subset(split.indices("val")), **fit)
            balance_rows.append((f"class_balance={mode!r}", score(clf, test)))
    elapsed = time.perf_counter() - start
    print(
        f"report recipe vs hamkit: {source}; {args.backbone} at {args.image_size}px, {args.epochs} epochs, "
        f"lr {args.lr:g}, batch {args.batch_size}, random init; torch {torch.__version__}, {platform.machine()}"
    )
    print(
        f"the report's random split puts {leaked} of its {len(report_val)} validation images next to a photo of the "
        f"same lesion in training; the common test split has {len(test)} images"
    )
    print(f"{'':<42}{'accuracy':>10}{'bal. acc':>10}{'macro F1':>10}")
    for name, values in rows + ([("", {})] if balance_rows else []) + balance_rows:
        if not values:
            print("hamkit class-balance modes (grouped split, best epoch by val balanced accuracy):")
            continue
        print(f"{name:<42}{values['accuracy']:>10.3f}{values['balanced_accuracy']:>10.3f}{values['macro_f1']:>10.3f}")
    print(f"({elapsed:.0f} s)")


if __name__ == "__main__":
    from _shared import recorded

    with recorded():  # --results FILE: also save the output, with its provenance, as JSON
        main()
