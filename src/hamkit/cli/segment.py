"""``hamkit segment MODEL IMAGES... --out MASK_DIR``: lesion masks at each image's original size."""

from __future__ import annotations

import argparse

from hamkit.cli._compat import add_quiet
from hamkit.cli._types import output_folder, positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``segment`` subcommand."""
    parser = subparsers.add_parser(
        "segment",
        help="write lesion masks with a saved segmenter",
        description="Predict a lesion mask for every image (files or folders) and write "
        "<image_id>_segmentation.png (0/255) at the image's original size into --out.",
    )
    parser.add_argument("model", help="a folder written by LesionSegmenter.save (e.g. RUN_DIR/model)")
    parser.add_argument("images", nargs="+", help="image files or folders (searched recursively)")
    parser.add_argument("--out", type=output_folder, required=True, help="folder for the masks")
    parser.add_argument("--threshold", type=float, default=0.5, help="lesion probability threshold (default 0.5)")
    parser.add_argument(
        "--postprocess",
        choices=("largest", "fill", "largest+fill"),
        default=None,
        help="keep the largest connected component and/or fill holes",
    )
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--device", default="auto")
    add_quiet(parser, "no progress messages")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``hamkit segment``."""
    import sys

    from hamkit.segment import LesionSegmenter

    if not args.quiet:
        print(f"hamkit segment: writing masks into {args.out} ...", file=sys.stderr)

    model = LesionSegmenter.load(args.model, device=args.device)
    written = model.write_masks(
        args.images,
        args.out,
        threshold=args.threshold,
        postprocess=args.postprocess,
        batch_size=args.batch_size,
        progress=False if args.quiet else "segment",
    )
    print(f"wrote {len(written)} mask(s) to {args.out}")
    return 0
