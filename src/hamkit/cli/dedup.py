"""``hamkit dedup``: find exact and near-duplicate images; ``hamkit audit``: leakage across splits."""

from __future__ import annotations

import argparse
from typing import Any

from hamkit.cli._compat import add_json, add_quiet, flag
from hamkit.cli._types import non_negative_int, output_folder, positive_int


def _method_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--method",
        default="verified",
        choices=("verified", "cnn", "phash", "dhash", "exact", "lesion"),
        help="verified (default: candidates confirmed by aligning the two images; offline), cnn, phash, dhash, "
        "exact, or lesion (the same lesion photographed again, copies included: SIFT keypoints; offline)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="verified: min aligned-content score in (0, 1] (default 0.5); cnn: min cosine similarity "
        "(default 0.93); phash: max Hamming distance (default 8); dhash: max Hamming distance "
        "(default 4); lesion: min keypoint-match score in (0, 1) (default 0.5, 10 RANSAC inliers)",
    )
    parser.add_argument(
        "--candidates",
        type=positive_int,
        default=10,
        metavar="K",
        help="verified and lesion: candidate partners checked per image (default 10)",
    )
    parser.add_argument("--backbone", default="mobilenet_v2", help="CNN backbone (default: mobilenet_v2)")
    parser.add_argument("--image-size", type=positive_int, default=224)
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument(
        "--no-pretrained", action="store_true", help="random CNN weights (finds near-exact copies only)"
    )
    parser.add_argument("--weights", help="local backbone weights file instead of a download")
    parser.add_argument("--workers", type=non_negative_int, default=None, help="decoding workers (default: automatic)")
    parser.add_argument("--device", default="auto")
    flag(
        parser,
        "--embedding-cache",
        old=("--cache",),
        default=None,
        metavar="DIR",
        help="cache folder for CNN embeddings and hashes (default: $HAMKIT_CACHE or ~/.cache/hamkit)",
    )
    parser.add_argument(
        "--search-backend",
        default="auto",
        choices=("auto", "numpy", "faiss", "faiss-ivf", "faiss-hnsw"),
        help="cnn pair search: auto (exact below 250,000 images, then faiss IVF if installed), "
        "numpy (always exact), faiss, faiss-ivf or faiss-hnsw (approximate)",
    )
    parser.add_argument(
        "--ivf-nprobe",
        type=int,
        default=None,
        metavar="N",
        help="cells the faiss IVF search probes per image (default 16; more finds more, slower)",
    )
    add_quiet(parser)
    add_json(parser)


class _Given(argparse._StoreAction):
    """Store the value and remember that the flag was given (``args.given_flags``), so that a
    flag given with its default value can still be refused where it does not apply."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option_string=None) -> None:
        """Store ``values`` and add this flag to ``namespace.given_flags``."""
        super().__call__(parser, namespace, values, option_string)
        namespace.given_flags = (*getattr(namespace, "given_flags", ()), self.option_strings[0])


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``dedup`` subcommand."""
    parser = subparsers.add_parser(
        "dedup",
        help="find exact and near-duplicate images",
        description="Find duplicate images in a folder (recursively) or a text file of paths. Writes kept.txt, "
        "removed.txt, pairs.csv, groups.json, groups.csv, summary.json, skipped.txt and a review sheet into OUT.",
    )
    subject = parser.add_mutually_exclusive_group(required=True)
    subject.add_argument(
        "images",
        nargs="?",
        default=argparse.SUPPRESS,
        metavar="IMAGES",
        help="a folder of images (searched recursively), or a text file with one image path per line",
    )
    subject.add_argument("--data", dest="images", metavar="DIR", help="the same as IMAGES, as a flag")
    parser.add_argument("--out", type=output_folder, required=True, help="output folder")
    _method_options(parser)
    parser.add_argument(
        "--keep",
        default="first",
        choices=("first", "largest"),
        action=_Given,
        help="which image of a group to keep: first by path (default) or largest",
    )
    parser.add_argument(
        "--strict-groups",
        action="store_true",
        help="every group member must match the group's representative (guards against chaining)",
    )
    parser.add_argument("--no-review", action="store_true", help="do not write review.png / review.html")
    parser.add_argument(
        "--labels",
        metavar="METADATA_CSV",
        help="HAM10000-style metadata (image_id, lesion_id, dx): writes calibration.csv / .png "
        "(pairs within and across lesions per threshold, with a suggested threshold), "
        "conflicts.csv (duplicates whose diagnoses differ) and suspect_lesion_ids.csv (duplicates "
        "filed under two lesion_ids, best first); the review page shows lesion_id and dx",
    )
    parser.add_argument(
        "--decisions",
        metavar="CSV",
        help="decisions saved from review.html (image_a,image_b,decision: same or different): a pair "
        "decided different never groups, one decided same always does, and neither is shown for review again",
    )
    parser.add_argument(
        "--against",
        metavar="OLD",
        help="only pairs between IMAGES and this folder or list (e.g. new data against a "
        "training set): writes pairs.csv; --labels, --keep, --strict-groups and --no-review do not apply",
    )
    return parser


#: The flags that shape groups, reviews or label checks of one set: ``--against`` (pairs between
#: two sets, written as pairs.csv) has none of these, so it refuses them instead of ignoring them.
_NOT_WITH_AGAINST = ("--labels", "--keep", "--strict-groups", "--no-review", "--decisions")


def flags_not_with_against(args: argparse.Namespace) -> list[str]:
    """The flags given with ``--against`` that it cannot honour (empty without ``--against``).

    Examples:
        >>> args = argparse.Namespace(against="old", labels=None, given_flags=("--keep",), strict_groups=True,
        ...                           no_review=False)
        >>> flags_not_with_against(args)
        ['--keep', '--strict-groups']
    """
    if not getattr(args, "against", None):
        return []
    given = {
        "--labels": getattr(args, "labels", None) is not None,
        "--keep": "--keep" in getattr(args, "given_flags", ()),
        "--strict-groups": bool(getattr(args, "strict_groups", False)),
        "--no-review": bool(getattr(args, "no_review", False)),
        "--decisions": getattr(args, "decisions", None) is not None,
    }
    return [flag for flag in _NOT_WITH_AGAINST if given[flag]]


def dedup_from_args(args: argparse.Namespace, **extra: Any) -> Any:
    """A Deduplicator configured from the shared command-line options."""
    from hamkit.dedup.deduplicator import Deduplicator
    from hamkit.dedup.search import IvfConfig

    threshold = args.threshold
    if threshold is not None and args.method in ("phash", "dhash") and float(threshold).is_integer():
        threshold = int(threshold)
    return Deduplicator(
        method=args.method,
        backbone=args.backbone,
        threshold=threshold,
        image_size=args.image_size,
        batch_size=args.batch_size,
        device=args.device,
        pretrained=not args.no_pretrained,
        weights=args.weights,
        num_workers=args.workers,
        cache_dir=args.embedding_cache,
        search_backend=args.search_backend,
        ivf=None if args.ivf_nprobe is None else IvfConfig(nprobe=args.ivf_nprobe),
        progress=not args.quiet,
        candidates=args.candidates,
        **extra,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``hamkit dedup``."""
    import json
    from pathlib import Path

    from hamkit.cli._compat import print_json, usage_error

    refused = flags_not_with_against(args)
    if refused:
        return usage_error(
            args,
            f"{', '.join(refused)} cannot be used with --against (it writes only pairs.csv, the pairs between the "
            "two sets: no groups to keep from, no review, no label check); drop "
            + ("it" if len(refused) == 1 else "them"),
        )
    say = (lambda *_: None) if args.json else print
    dedup = dedup_from_args(args, keep=args.keep, group_mode="representative" if args.strict_groups else "connected")
    records = _read_labels(args.labels) if args.labels else None
    decisions = None
    if getattr(args, "decisions", None):
        from hamkit.dedup.decisions import read_decisions

        decisions = read_decisions(args.decisions)
    if args.against:
        cross = dedup.find_cross(args.images, args.against)
        if cross is None:  # a torchrun rank other than 0
            return 0
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        cross.save(out / "pairs.csv")
        if args.json:
            print_json(
                {
                    "images": len(cross.paths_a),
                    "against": len(cross.paths_b),
                    "pairs": len(cross.pairs),
                    "skipped": len(cross.skipped),
                    "out": str(out),
                }
            )
        say(
            f"{len(cross.paths_a)} image(s) against {len(cross.paths_b)}: {len(cross.pairs)} duplicate pair(s) "
            f"across the two sets ({len(cross.skipped)} unreadable, skipped)"
        )
        say(f"results in {out}")
        return 0
    from hamkit._io import atomic_write_text, staged_folder
    from hamkit.dedup.inputs import check_list_names, resolve_images

    dedup._checked()  # a bad setting first, then the images
    images = resolve_images(args.images)
    check_list_names(images, Path(args.out) / "kept.txt")  # before the scan, not after it
    result = dedup.find(images, decisions=decisions)
    if result is None:  # a torchrun rank other than 0
        return 0
    out = Path(args.out)
    lines = [result.summary()]
    lesions = {r.image_id: r.lesion_id for r in records} if records is not None else None
    with staged_folder(out) as stage:  # the whole result set or nothing (a full disk, an interrupt)
        result.save(stage)
        if not args.no_review:
            from hamkit.dedup.review import contact_sheet, review_html

            contact_sheet(result, stage / "review.png")
            review_html(
                result,
                stage / "review.html",
                lesions=lesions,
                diagnoses=None if records is None else {r.image_id: r.dx for r in records},
                decisions=decisions,
            )
        summary = json.loads((stage / "summary.json").read_text())
        if decisions is not None:
            summary["decisions"] = len(decisions)
        if records is not None:
            diagnoses = {r.image_id: r.dx for r in records}
            stems = {path.stem for path in result.paths}
            summary["labels"] = {
                "images_without_labels": sum(1 for path in result.paths if path.stem not in diagnoses),
                "labels_without_images": sum(1 for image_id in diagnoses if image_id not in stems),
            }
            if any(summary["labels"].values()):
                lines.append(
                    f"{summary['labels']['images_without_labels']} image(s) have no row in {args.labels} (left out "
                    f"of the label check and calibration); {summary['labels']['labels_without_images']} of its "
                    "image id(s) match no image here"
                )
            conflicts = result.conflicts(diagnoses)
            result.save_conflicts(stage / "conflicts.csv", diagnoses)
            summary["label_conflicts"] = len(conflicts)
            lines.append(
                f"{len(conflicts)} duplicate pair(s) carry different diagnoses (label conflicts): conflicts.csv"
            )
            if any(r.lesion_id for r in records):
                assert lesions is not None
                suspects = result.suspect_lesion_ids(lesions)
                result.save_suspects(stage / "suspect_lesion_ids.csv", lesions, diagnoses)
                summary["suspect_lesion_ids"] = len(suspects)
                lines.append(
                    f"{len(suspects)} duplicate pair(s) are filed under two lesion_ids (suspect_lesion_ids.csv); "
                    "hamkit split --group-csv groups.csv keeps them in one split"
                )
                calibration = dedup.calibrate(result, {r.image_id: r.lesion_id for r in records})
                calibration.to_csv(stage / "calibration.csv")
                calibration.plot(stage / "calibration.png")
                row = calibration.at(float(result.threshold)) if result.threshold is not None else None
                summary["calibration"] = {
                    "suggested_threshold": calibration.suggested,
                    "reason": calibration.reason,
                    "pairs_within_lesions": None if row is None else row.within,
                    "pairs_across_lesions": None if row is None else row.across,
                }
                lines.append(calibration.summary())
        if records is not None or decisions is not None:
            atomic_write_text(stage / "summary.json", json.dumps(summary, indent=1, default=str) + "\n")
    for line in lines:
        say(line)
    if args.json:
        print_json({**summary, "out": str(out)})
    say(f"results in {out}")
    return 0


def _read_labels(path: str):
    """The metadata records, read before the scan so that a bad file fails at once."""
    from hamkit.data.metadata import read_labels

    return read_labels(path)
