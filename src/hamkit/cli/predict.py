"""``hamkit predict MODEL IMAGES...``: class probabilities of images, as a table or a CSV.

The ``prediction`` column is :meth:`LesionClassifier.decide <hamkit.classify.LesionClassifier.decide>`
of the probabilities: the decision rule saved with the model (its class offsets after
``calibrate``), the same rule as ``LesionClassifier.predict``, ``hamkit evaluate`` and the ONNX
export's recipe; never a plain argmax of its own.
"""

from __future__ import annotations

import argparse

from hamkit.cli._compat import add_quiet, add_segmenter
from hamkit.cli._types import non_negative_int, output_file, positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``predict`` subcommand."""
    parser = subparsers.add_parser(
        "predict",
        help="classify images with a saved classifier",
        description="Predict the diagnosis of images (files or folders). Writes "
        "image_id,prediction,<one probability column per class>.",
    )
    parser.add_argument("model", help="a folder written by LesionClassifier.save (e.g. RUN_DIR/model)")
    parser.add_argument("images", nargs="+", help="image files or folders (searched recursively)")
    parser.add_argument(
        "--out",
        type=output_file,
        help="CSV file to write (default: print to the terminal); replaced if it exists, and where it is a symbolic "
        "link the file it points to is replaced (the message names it)",
    )
    parser.add_argument("--tta", action="store_true", help="flip test-time augmentation")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument(
        "--workers",
        type=non_negative_int,
        default=0,
        help="processes decoding the images (default: 0, decoded in this process)",
    )
    parser.add_argument("--device", default="auto")
    add_segmenter(parser)
    add_quiet(parser, "no progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``hamkit predict``."""
    from hamkit._io import atomic_write_text, csv_text, written_as
    from hamkit.classify import LesionClassifier
    from hamkit.cli._compat import segmenter_for
    from hamkit.engine.inputs import prepare_inputs

    model = LesionClassifier.load(args.model, device=args.device)
    segmenter = segmenter_for(args, model.lesion_crop, args.model)
    mean, std = model.normalisation()
    inputs = prepare_inputs(args.images, image_size=model.image_size, mean=mean, std=std)
    proba = model.predict_proba(
        inputs.dataset,
        batch_size=args.batch_size,
        tta=args.tta,
        num_workers=args.workers,
        progress=False if args.quiet else "predict",
        segmenter=segmenter,
    )
    decisions = model.decide(proba)  # the saved decision rule: one decision path for every caller
    text = csv_text(  # an image id cannot start a spreadsheet formula
        ["image_id", "prediction", *model.classes_],
        (
            [image_id, model.classes_[int(decided)], *(f"{p:.6f}" for p in row)]
            for image_id, row, decided in zip(inputs.image_ids, proba, decisions, strict=True)
        ),
    )
    if args.out:
        atomic_write_text(args.out, text)
        print(f"wrote {len(inputs.image_ids)} predictions to {written_as(args.out)}")
    else:
        print(text, end="")
    return 0
