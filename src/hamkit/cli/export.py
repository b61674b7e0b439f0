"""``hamkit export MODEL_DIR --out model.onnx``: a saved model as ONNX, checked against PyTorch."""

from __future__ import annotations

import argparse

from hamkit.cli._types import output_file, positive_float


def _opset(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number (an ONNX opset, e.g. 17), got {text!r}") from None
    if value < 7:
        raise argparse.ArgumentTypeError(f"must be an ONNX opset of 7 or later, got {text!r}")
    return value


def _onnx_file(text: str) -> str:
    """``--out``: the ONNX file to write; an existing folder is refused (the message shows
    ``FOLDER/model.onnx``), as is a name ending in ``/``."""
    return output_file(text, "model.onnx")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``export`` subcommand."""
    parser = subparsers.add_parser(
        "export",
        help="export a saved classifier or segmenter to ONNX",
        description="Export a saved LesionClassifier or LesionSegmenter to ONNX (input 'image': normalised "
        "NCHW float32 RGB, any batch size) and write <out stem>.preprocessing.json beside it (input size, "
        "mean, std, class names, what each output means, calibration). Then run ONNX Runtime on random "
        "inputs of two batch sizes and print the largest difference to PyTorch per output. Needs "
        'pip install "hamkit[onnx]".',
    )
    parser.add_argument("model", metavar="MODEL_DIR", help="a folder written by save() (e.g. RUN_DIR/model)")
    parser.add_argument("--format", choices=("onnx",), default="onnx", help="export format (default: onnx)")
    parser.add_argument(
        "--out",
        type=_onnx_file,
        required=True,
        metavar="FILE",
        help="the ONNX file to write, e.g. model.onnx (replaced if it exists; a folder is refused: give "
        "FOLDER/model.onnx); <stem>.preprocessing.json is written beside it",
    )
    parser.add_argument(
        "--opset",
        type=_opset,
        help="ONNX opset (default: the exporter's, 18 or later; below 18 for older runtimes)",
    )
    parser.add_argument("--no-check", action="store_true", help="skip the comparison with PyTorch")
    parser.add_argument(
        "--atol",
        type=positive_float,
        default=1e-4,
        help="largest difference to PyTorch allowed per output (default: 1e-4)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the summary as one JSON object on stdout instead of text"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``hamkit export``."""
    import json

    from hamkit.cli._compat import unused_flags, usage_error
    from hamkit.errors import HamkitError
    from hamkit.export import export_onnx

    wrong = unused_flags(args, ("--atol",), "--no-check", "no comparison with PyTorch is made")
    if wrong:
        return usage_error(args, wrong)
    try:
        result = export_onnx(args.model, args.out, opset=args.opset, check=not args.no_check, atol=args.atol)
    except HamkitError as err:  # the library's advice, as this command's flags
        message = str(err).replace("raise atol or pass check=False", "raise --atol or add --no-check")
        raise HamkitError(message.replace("pick opset", "pick --opset")) from err
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.summary())
        print(result.licence_line())
    return 0
