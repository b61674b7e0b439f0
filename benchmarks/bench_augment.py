"""Training augmentation choices on the real images: the ``cpu`` preset's classifier trained once
per choice (``none``, ``flips``, ``light``, ``strong``) with the same budget, split and random state.

The split is made as ``benchmarks/cpu_preset.py`` makes it (lesion-grouped, 0.75 / 0.125 / 0.125,
random state 0, without the duplicate groups) and the images come through the same decode cache. Each
model is MobileNetV3-small at 128 px from random weights, AdamW 1e-3 with weight decay 0.05,
batch 32, the class-balanced sampler; the best epoch is the one with the best validation
balanced accuracy, and its weights are scored on the test split. Each choice prints one JSON line
(and appends it to ``--json``); the table at the end puts them side by side, with each choice's
seconds per epoch (its fastest epoch: on a shared machine the others are slowed by other jobs) as
a ratio of ``flips`` (the default) and its balanced accuracies as differences from it.

    python benchmarks/bench_augment.py --data ham10000-200px --epochs 8 \\
        --json /tmp/bench_augment.jsonl
    python benchmarks/bench_augment.py --table /tmp/bench_augment.jsonl   # the table again
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

CHOICES = ("none", "flips", "light", "strong")


def train_one(choice: str, parts: dict, args: argparse.Namespace) -> dict[str, object]:
    """Train and score the classifier with ``augment=choice``; one result row."""
    import torch

    from hamkit import LesionClassifier, TrainConfig

    recipe = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer="adamw",
        weight_decay=args.weight_decay,
        class_balance="sampler",
        augment=choice,
        random_state=args.random_state,
    )
    model = LesionClassifier(args.backbone, image_size=args.image_size, pretrained=False, recipe=recipe)
    start = time.perf_counter()
    model.fit(parts["train"], parts["val"], progress=False)
    train_s = time.perf_counter() - start
    best = model.history_[model.best_epoch_ - 1]
    report = model.evaluate(parts["test"])
    return {
        "choice": choice,
        "epochs": args.epochs,
        "best_epoch": model.best_epoch_,
        "val_balanced_accuracy": round(best["val_balanced_accuracy"], 4),
        "val_macro_f1": round(best["val_macro_f1"], 4),
        "test_balanced_accuracy": round(report.balanced_accuracy, 4),
        "test_macro_f1": round(report.macro["f1"], 4),
        "train_s": round(train_s, 1),
        "s_per_epoch": round(train_s / args.epochs, 1),
        "train_images": len(parts["train"]),
        "val_images": len(parts["val"]),
        "test_images": len(parts["test"]),
        "load_average": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "history": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in h.items()} for h in model.history_],
    }


def fastest_epoch_s(row: dict) -> float:
    """The fastest epoch of a result row, validation included (its mean when it has no history)."""
    times = [h["time"] for h in row.get("history", []) if "time" in h]
    return min(times) if times else float(row["s_per_epoch"])


def table(rows: list[dict]) -> str:
    """The side-by-side table (Markdown) of result rows; ratios and differences against ``flips``."""
    reference = next((r for r in rows if r["choice"] == "flips"), None)
    lines = [
        "| augment | best epoch | val bal. acc | val macro F1 | test bal. acc | test macro F1 | s/epoch (fastest) "
        "| s/epoch vs flips | val bal. acc vs flips | test bal. acc vs flips |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if reference is not None:
            ratio = f"{fastest_epoch_s(r) / fastest_epoch_s(reference):.2f}x"
            d_val = f"{r['val_balanced_accuracy'] - reference['val_balanced_accuracy']:+.3f}"
            d_test = f"{r['test_balanced_accuracy'] - reference['test_balanced_accuracy']:+.3f}"
        else:
            ratio = d_val = d_test = ""
        lines.append(
            f"| {r['choice']} | {r['best_epoch']}/{r['epochs']} | {r['val_balanced_accuracy']:.3f} "
            f"| {r['val_macro_f1']:.3f} | {r['test_balanced_accuracy']:.3f} | {r['test_macro_f1']:.3f} "
            f"| {fastest_epoch_s(r):.0f} | {ratio} | {d_val} | {d_test} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="HAM10000 folder (official layout)")
    parser.add_argument("--choices", nargs="+", default=list(CHOICES), choices=CHOICES)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--backbone", default="mobilenet_v3_small")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images (0: all)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/hamkit-bench-cache"))
    parser.add_argument("--json", type=Path, help="append each result as one JSON line to this file")
    parser.add_argument("--table", type=Path, help="only print the table of a --json file written before")
    args = parser.parse_args()
    if args.table:
        rows = [json.loads(line) for line in args.table.read_text().splitlines() if line.strip()]
        print(table(rows))
        return
    if args.data is None:
        parser.error("--data is required (or --table FILE)")

    from hamkit import SkinDataset
    from hamkit.data.dataset import find_label_file
    from hamkit.data.images import find_images
    from hamkit.data.metadata import read_labels
    from hamkit.data.splits import split_dataset

    present = find_images(args.data)
    label_file = find_label_file(args.data)
    if label_file is None:
        parser.error(f"{args.data}: no HAM10000_metadata.csv")
    records = [r for r in read_labels(label_file) if r.image_id in present]
    if args.limit:
        records = records[: args.limit]
    split = split_dataset(records, (0.75, 0.125, 0.125), random_state=0)
    base = SkinDataset.from_paths(
        [present[r.image_id] for r in records],
        [r.label for r in records],
        image_size=args.image_size,
        cache=args.cache,
    )
    parts = {name: base.subset(split.indices(name)) for name in ("train", "val", "test")}
    rows = []
    for choice in args.choices:
        row = train_one(choice, parts, args)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.json:
            with args.json.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
