"""``hamkit download ham10000 ROOT``: fetch HAM10000 from its official Dataverse record."""

from __future__ import annotations

import argparse
from typing import Any

from hamkit.cli._types import output_folder

DATASETS: tuple[str, ...] = ("ham10000",)
"""Datasets the command can download."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``download`` command to ``hamkit``'s subparsers.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.

    Returns:
        The ``download`` parser.

    Examples:
        >>> parser = argparse.ArgumentParser()
        >>> sub = add_parser(parser.add_subparsers(dest="command"))
        >>> args = parser.parse_args(["download", "ham10000", "data", "--file", "a.zip"])
        >>> args.dataset, args.root, args.files
        ('ham10000', 'data', ['a.zip'])
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "download",
        help="download HAM10000 (images, metadata, lesion masks) from Harvard Dataverse",
        description=(
            "Download HAM10000 from its official Harvard Dataverse record "
            "(doi:10.7910/DVN/DBW86T) into ROOT: HAM10000_images_part_1/ and _part_2/, "
            "HAM10000_metadata.csv and HAM10000_segmentations_lesion_tschandl/. File ids and "
            "checksums are read from the Dataverse API; every file is checksum-verified. "
            "Rerunning skips finished files and resumes partial downloads."
        ),
    )
    parser.add_argument("dataset", choices=DATASETS, metavar="DATASET", help="the dataset to download: ham10000")
    parser.add_argument("root", metavar="ROOT", type=output_folder, help="the dataset folder (created if missing)")
    parser.add_argument(
        "--base-url",
        metavar="URL",
        default=None,
        help="the Dataverse server (default: https://dataverse.harvard.edu)",
    )
    parser.add_argument(
        "--doi",
        default=None,
        help="the dataset's persistent id (default: doi:10.7910/DVN/DBW86T)",
    )
    parser.add_argument(
        "--file",
        dest="files",
        action="append",
        metavar="NAME",
        default=None,
        help="fetch this file of the record instead of the default four (repeatable), e.g. "
        "ISIC2018_Task3_Test_Images.zip",
    )
    parser.add_argument(
        "--keep-archives", action="store_true", help="keep the downloaded zips in ROOT/.hamkit-download/"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds to wait for a connection or a read (default: 60)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=3,
        metavar="N",
        help="retries of a failed request or corrupt download (default: 3)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bars or step messages; print the final layout only"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Download the dataset, printing each step and the final layout.

    Args:
        args: Parsed arguments of the ``download`` command.

    Returns:
        0 on success.

    Raises:
        DownloadError: The download failed; the message says why and what to do (the command
            line prints it without a traceback and exits with status 1).
    """
    from hamkit.ham10000.download import download_ham10000, layout_summary

    options: dict[str, Any] = {}
    if args.base_url is not None:
        options["base_url"] = args.base_url
    if args.doi is not None:
        options["doi"] = args.doi
    root = download_ham10000(
        args.root,
        files=args.files,
        progress=not args.quiet,
        timeout=args.timeout,
        retries=args.retries,
        keep_archives=args.keep_archives,
        log=None if args.quiet else print,
        **options,
    )
    print(layout_summary(root, args.files))
    return 0
