"""``hamkit synth OUT``: write the built-in synthetic dataset in the HAM10000 layout."""

from __future__ import annotations

import argparse
from typing import Any

from hamkit.cli._types import output_folder


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``synth`` command to ``hamkit``'s subparsers.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.

    Returns:
        The ``synth`` parser.

    Examples:
        >>> parser = argparse.ArgumentParser()
        >>> sub = add_parser(parser.add_subparsers(dest="command"))
        >>> parser.parse_args(["synth", "out", "--n-lesions", "30"]).n_lesions
        30
    """
    parser = subparsers.add_parser(
        "synth",
        help="write a synthetic skin-lesion dataset in the HAM10000 layout",
        description=(
            "Write a synthetic dataset in exactly the HAM10000 layout: images in "
            "HAM10000_images_part_1/ and _part_2/, lesion masks, HAM10000_metadata.csv, "
            "ISIC2018_Task3_Training_GroundTruth.csv, and duplicates_groundtruth.csv listing the "
            "planted near-duplicates. Classes differ in colour, shape and texture, so models "
            "learn them quickly. The same random state gives byte-identical files."
        ),
    )
    parser.add_argument(
        "out", metavar="OUT", type=output_folder, help="output folder (created; must be empty unless --overwrite)"
    )
    parser.add_argument(
        "--n-lesions",
        type=int,
        default=150,
        metavar="N",
        help="number of lesions, at least 7 (default: 150)",
    )
    parser.add_argument(
        "--random-state",
        type=int,
        default=0,
        metavar="S",
        help="random state: the same value gives the same result (default: 0)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        default=(256, 192),
        metavar=("W", "H"),
        help="photo width and height in pixels (default: 256 192)",
    )
    parser.add_argument(
        "--photos-per-lesion",
        type=int,
        nargs=2,
        default=(1, 3),
        metavar=("MIN", "MAX"),
        help="fewest and most photos of one lesion (default: 1 3)",
    )
    parser.add_argument(
        "--duplicate-fraction",
        type=float,
        default=0.08,
        metavar="F",
        help="share of the photos that get a planted duplicate, 0..0.5 (default: 0.08)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty folder, replacing a dataset there",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Write the dataset and print a summary.

    Args:
        args: Parsed arguments of the ``synth`` command.

    Returns:
        0 on success.

    Raises:
        DataError: A bad argument or a non-empty output folder without ``--overwrite``.
    """
    from hamkit.synthetic.generator import make_synthetic

    dataset = make_synthetic(
        args.out,
        n_lesions=args.n_lesions,
        random_state=args.random_state,
        image_size=tuple(args.image_size),
        photos_per_lesion=tuple(args.photos_per_lesion),
        duplicate_fraction=args.duplicate_fraction,
        overwrite=args.overwrite,
    )
    print(dataset.summary())
    return 0
