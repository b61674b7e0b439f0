"""``hamkit train classifier|segmenter``: train an estimator on a data root and a split CSV."""

from __future__ import annotations

import argparse

from hamkit.cli._types import (
    non_negative_int,
    output_folder,
    positive_float,
    positive_int,
)


def _common(
    parser: argparse.ArgumentParser, *, backbone: str, image_size: int, epochs: int, batch_size: int, lr: float
) -> None:
    parser.add_argument("--data", required=True, help="data root (HAM10000 layout: images, metadata CSV)")
    parser.add_argument("--split", required=True, help="split CSV written by `hamkit split`")
    parser.add_argument(
        "--out", type=output_folder, required=True, help="run folder: model/, best/, last/, history.csv"
    )
    parser.add_argument("--backbone", default=backbone, help=f"registry name (default: {backbone})")
    parser.add_argument(
        "--image-size", type=positive_int, default=image_size, help=f"input size (default: {image_size})"
    )
    parser.add_argument("--epochs", type=positive_int, default=epochs, help=f"epochs (default: {epochs})")
    parser.add_argument(
        "--batch-size", type=positive_int, default=batch_size, help=f"batch size (default: {batch_size})"
    )
    parser.add_argument("--lr", type=positive_float, default=lr, help=f"learning rate (default: {lr:g})")
    parser.add_argument("--optimizer", default="adam", choices=("adam", "adamw", "sgd"))
    parser.add_argument(
        "--class-balance",
        default="sampler",
        choices=("sampler", "loss", "none"),
        help="class balancing (default: sampler)",
    )
    parser.add_argument("--early-stopping", type=positive_int, default=None, metavar="EPOCHS", help="patience")
    parser.add_argument(
        "--no-pretrained", action="store_true", help="start from random weights (no download; for offline machines)"
    )
    parser.add_argument("--weights", help="local backbone weights (.safetensors/.pt/.pth) instead of a download")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    parser.add_argument("--cache", help="decode-cache folder (default: OUT/cache)")
    parser.add_argument(
        "--workers", type=non_negative_int, default=None, help="DataLoader workers (default: automatic)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps (default: auto)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand and its ``classifier`` / ``segmenter`` sub-subcommands."""
    parser = subparsers.add_parser(
        "train",
        help="train a classifier or a segmenter",
        description="Train an estimator; the run folder gets checkpoints, history "
        "and the final model (best validation epoch) in OUT/model.",
    )
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    clf = kinds.add_parser("classifier", help="7-class diagnosis (LesionClassifier)")
    _common(clf, backbone="resnet50", image_size=384, epochs=10, batch_size=32, lr=1e-4)
    clf.add_argument(
        "--monitor",
        default="balanced_accuracy",
        help="validation metric choosing the best epoch (default: balanced_accuracy)",
    )
    seg = kinds.add_parser("segmenter", help="lesion masks, optionally with a diagnosis head (LesionSegmenter)")
    _common(seg, backbone="deeplabv3_resnet50", image_size=256, epochs=10, batch_size=8, lr=1e-4)
    seg.add_argument("--masks", help="masks folder (default: the *_segmentation.png folder under --data)")
    seg.add_argument("--classify", action="store_true", help="add the classification head (multi-task)")
    seg.add_argument("--loss", default="bce+dice", choices=("bce+dice", "bce", "dice"))
    seg.add_argument(
        "--monitor",
        default=None,
        help="validation metric choosing the best epoch (default: dice; joint_score with --classify)",
    )
    seg.add_argument(
        "--mask-threshold", type=int, default=None, help="grey level above which a pixel of a non-binary mask is lesion"
    )
    seg.add_argument(
        "--skip-missing",
        action="store_true",
        help="leave out images without a file or a mask (listed) instead of stopping",
    )
    clf.add_argument(
        "--skip-missing", action="store_true", help="leave out split images without a file (listed) instead of stopping"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``hamkit train``."""
    from pathlib import Path

    out = Path(args.out)
    fit_args = dict(
        split_csv=args.split,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        class_balance=None if args.class_balance == "none" else args.class_balance,
        early_stopping=args.early_stopping,
        num_workers=args.workers,
        cache=args.cache or out / "cache",
        out_dir=out,
        resume=args.resume,
        seed=args.seed,
        progress=not args.quiet,
    )
    if args.kind == "classifier":
        from hamkit.classify import LesionClassifier

        model = LesionClassifier(
            args.backbone,
            image_size=args.image_size,
            pretrained=not args.no_pretrained,
            weights=args.weights,
            device=args.device,
        )
        model.fit(args.data, monitor=args.monitor, on_missing="skip" if args.skip_missing else "error", **fit_args)
    else:
        from hamkit.segment import LesionSegmenter

        model = LesionSegmenter(
            args.backbone,
            image_size=args.image_size,
            pretrained=not args.no_pretrained,
            weights=args.weights,
            classify=args.classify,
            device=args.device,
        )
        model.fit(
            args.data,
            masks=args.masks,
            monitor=args.monitor,
            loss=args.loss,
            mask_threshold=args.mask_threshold,
            on_missing="skip" if args.skip_missing else "error",
            **fit_args,
        )
    for image_id, reason in sorted(getattr(model, "skipped_", {}).items()):
        print(f"skipped {image_id}: {reason}")
    model.save(out / "model")
    best = model.history_[model.best_epoch_ - 1] if model.history_ else {}
    scores = ", ".join(f"{k[4:]} {v:.3f}" for k, v in best.items() if k.startswith("val_"))
    print(
        f"trained {args.kind} {args.backbone} for {len(model.history_)} epoch(s); best epoch "
        f"{model.best_epoch_}" + (f" (validation: {scores})" if scores else "")
    )
    print(f"model saved to {out / 'model'}; history in {out / 'history.csv'}")
    return 0
