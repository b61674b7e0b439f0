"""``hamkit dedup``: find exact and near-duplicate images; ``hamkit audit``: leakage across splits."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from hamkit.backbones.defaults import EMBEDDING_BACKBONE
from hamkit.cli._compat import add_json, add_quiet
from hamkit.cli._parser import StoreOnce
from hamkit.cli._types import non_negative_int, output_folder, positive_int


class _MethodNames(Sequence[str]):
    """The registered dedup methods (:func:`hamkit.dedup.methods.method_names`), read when argparse
    first needs them (a value to check, a help page), so building the parser imports nothing."""

    def _names(self) -> list[str]:
        from hamkit.dedup.methods import method_names

        return method_names()

    def __getitem__(self, index: Any) -> Any:
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __contains__(self, value: object) -> bool:
        return value in self._names()


class _LateHelp(StoreOnce):
    """A stored option whose help text is made when a help page is (from the method registry)."""

    @property
    def help(self) -> str | None:
        """The help text: the callable given as ``help``, called now."""
        made = self.__dict__.get("_help")
        return made() if callable(made) else made

    @help.setter
    def help(self, value: Any) -> None:
        self.__dict__["_help"] = value


def _threshold_help() -> str:
    from hamkit.dedup.methods import METHODS, method_names

    method_names()
    parts = [
        f"{name}: {cls.threshold_meaning} (default {cls.default_threshold})"
        for name, cls in METHODS.items()
        if cls.default_threshold is not None
    ]
    return "; ".join(parts) + ". Not used by " + ", ".join(n for n, c in METHODS.items() if c.default_threshold is None)


def _backend_help() -> str:
    from hamkit.dedup.methods.verified import AUTO_DISK_ABOVE

    return (
        f"verified: auto (the default: disk above {AUTO_DISK_ABOVE:,} images, local otherwise; summary.json records "
        "the choice as backend_used), local (this process, every scene in memory: about 70 KB per image), disk (the "
        "stages of --shard in this process, scenes on disk: memory bounded for large collections; same results) or "
        "ray (those stages as Ray tasks on the cluster that ray.init finds, a local one when there is none; needs "
        "pip install 'hamkit[ray]')"
    )


#: ``{flag's dest: method parameter}``: the options that set a method's own settings. Each is
#: passed to the method only when given, and refused when the chosen method has no such setting.
METHOD_FLAGS = {
    "candidates": "candidates",
    "backbone": "backbone",
    "image_size": "image_size",
    "batch_size": "batch_size",
    "no_pretrained": "pretrained",
    "weights": "weights",
    "device": "device",
    "search_backend": "search_backend",
    "ivf_nprobe": "ivf",
    "backend": "backend",
}


def _method_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--method",
        default="verified",
        choices=_MethodNames(),
        metavar="METHOD",
        help="one of %(choices)s (default: verified, candidates confirmed by aligning the two images; offline)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        action=_LateHelp,
        help=_threshold_help,  # type: ignore[arg-type]
    )
    parser.add_argument(
        "--candidates",
        type=positive_int,
        default=None,
        metavar="K",
        help="verified and lesion: candidate partners checked per image (default 10; lesion: the images its "
        "strongest keypoints' descriptors vote for)",
    )
    parser.add_argument(
        "--backbone", default=None, help=f"cnn: CNN backbone (default: {EMBEDDING_BACKBONE}, installed weights)"
    )
    parser.add_argument("--image-size", type=positive_int, default=None, help="cnn: input size (default 224)")
    parser.add_argument(
        "--batch-size", type=positive_int, default=None, help="images per batch (default: the method's; cnn 64)"
    )
    parser.add_argument(
        "--no-pretrained",
        action="store_true",
        help="cnn: random CNN weights, to try the command only: they do not tell images apart (on 75 real "
        "HAM10000 images nearly every pair scored above the default threshold)",
    )
    parser.add_argument("--weights", help="cnn: local backbone weights file instead of a download")
    parser.add_argument("--workers", type=non_negative_int, default=None, help="decoding workers (default: automatic)")
    parser.add_argument("--device", default=None, help="cnn: device (default: auto)")
    parser.add_argument(
        "--embedding-cache",
        default=None,
        metavar="DIR",
        help="cache folder for CNN embeddings and hashes (default: $HAMKIT_CACHE or ~/.cache/hamkit)",
    )
    parser.add_argument(
        "--search-backend",
        default=None,
        choices=("auto", "numpy", "faiss", "faiss-ivf", "faiss-hnsw"),
        help="cnn pair search: auto (the default: exact below 250,000 images, then faiss IVF if installed), "
        "numpy (always exact), faiss, faiss-ivf or faiss-hnsw (approximate)",
    )
    parser.add_argument(
        "--ivf-nprobe",
        type=int,
        default=None,
        metavar="N",
        help="cnn: cells the faiss IVF search probes per image (default 16; more finds more, slower)",
    )
    add_quiet(parser)
    add_json(parser)


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
    subject.add_argument(
        "--merge",
        nargs="+",
        metavar="DIR",
        help="join the shards of a --shard run (its --out folder) into the results in --out; the same results as "
        "one process",
    )
    parser.add_argument("--out", type=output_folder, required=True, help="output folder")
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help="verified: run shard I of N (I = 0 .. N-1) into --out, a folder every shard reaches: decode its block "
        "of the images, then search and verify its share once every shard has decoded; rerun a shard that died "
        "and it goes on from its last finished stage; then hamkit dedup --merge OUT",
    )
    parser.add_argument(
        "--backend",
        default=None,
        choices=("auto", "local", "disk", "ray"),
        action=_LateHelp,
        help=_backend_help,
    )
    _method_options(parser)
    parser.add_argument(
        "--keep",
        default="first",
        choices=("first", "largest"),
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
        "training set): writes pairs.csv and skipped.txt (unreadable images of either set); OLD may not be IMAGES "
        "itself; --labels, --keep, --strict-groups and --no-review do not apply",
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


def _given_method_flags(args: argparse.Namespace) -> dict[str, Any]:
    given = {dest: getattr(args, dest, None) for dest in METHOD_FLAGS}
    return {dest: value for dest, value in given.items() if value not in (None, False)}


def flags_not_for_method(args: argparse.Namespace) -> str | None:
    """The usage error for method options given that ``--method`` has no setting for, or ``None``.

    Examples:
        >>> args = argparse.Namespace(method="phash", backbone="resnet18", no_pretrained=True)
        >>> flags_not_for_method(args)
        '--backbone, --no-pretrained do not apply to --method phash; drop them'
    """
    from hamkit.dedup.methods import get_method

    method = get_method(args.method)
    own = method.get_params(deep=False)
    refused = ["--" + dest.replace("_", "-") for dest in _given_method_flags(args) if METHOD_FLAGS[dest] not in own]
    if method.disk_cache is None and "--embedding-cache" in getattr(args, "given_flags", ()):
        refused.append("--embedding-cache")  # the method keeps nothing on disk
    if not refused:
        backend = getattr(args, "search_backend", None)
        if backend in ("numpy", "faiss", "faiss-hnsw") and getattr(args, "ivf_nprobe", None) is not None:
            return f"--ivf-nprobe does nothing with --search-backend {backend} (it sets the faiss IVF search); drop it"
        return None
    verb, pronoun = ("does", "it") if len(refused) == 1 else ("do", "them")
    return f"{', '.join(refused)} {verb} not apply to --method {args.method}; drop {pronoun}"


def method_from_args(args: argparse.Namespace) -> Any:
    """The dedup method named by ``--method``, with the method options that were given (those it
    has no setting for are left out: :func:`flags_not_for_method` refuses them first)."""
    from hamkit.dedup.methods import get_method
    from hamkit.dedup.search import IvfConfig

    method = get_method(args.method)
    own = method.get_params(deep=False)
    values = {METHOD_FLAGS[dest]: value for dest, value in _given_method_flags(args).items()}
    values = {key: value for key, value in values.items() if key in own}
    if "pretrained" in values:
        values["pretrained"] = False
    if "ivf" in values:
        values["ivf"] = IvfConfig(nprobe=values["ivf"])
    return method.set_params(**values)


def dedup_from_args(args: argparse.Namespace, **extra: Any) -> Any:
    """A Deduplicator configured from the shared command-line options."""
    from hamkit.dedup.deduplicator import Deduplicator

    method = method_from_args(args)
    threshold = args.threshold
    if threshold is not None and not method.higher_is_better and float(threshold).is_integer():
        threshold = int(threshold)
    return Deduplicator(
        method=method,
        threshold=threshold,
        num_workers=args.workers,
        cache_dir=args.embedding_cache,
        progress=not args.quiet,
        **extra,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``hamkit dedup``."""
    import json
    from pathlib import Path

    from hamkit.cli._compat import print_json, usage_error

    wrong = flags_not_for_method(args)
    if wrong:
        return usage_error(args, wrong)
    refused = flags_not_with_against(args)
    if refused:
        return usage_error(
            args,
            f"{', '.join(refused)} cannot be used with --against (it writes only pairs.csv, the pairs between the "
            "two sets: no groups to keep from, no review, no label check); drop "
            + ("it" if len(refused) == 1 else "them"),
        )
    wrong = _sharding_conflicts(args)
    if wrong:
        return usage_error(args, wrong)
    say = (lambda *_: None) if args.json else print
    if getattr(args, "merge", None):
        _merged_settings(args)
    dedup = dedup_from_args(args, keep=args.keep, group_mode="representative" if args.strict_groups else "connected")
    if args.shard:
        from hamkit.dedup.shards import parse_shard

        index, count = parse_shard(args.shard)
        folder = dedup.find_shard(args.images, args.out, index, count)
        if args.json:
            print_json({"shard": index, "of": count, "folder": str(folder), "out": str(args.out)})
        say(f"shard {index}/{count} done: {folder}")
        say(f"once every shard is done: hamkit dedup --merge {args.out} --out RESULTS")
        return 0
    records = _read_labels(args.labels) if args.labels else None
    decisions = None
    if getattr(args, "decisions", None):
        from hamkit.dedup.decisions import read_decisions

        decisions = read_decisions(args.decisions)
    if args.against:
        cross = dedup.find_cross(args.images, args.against)
        if cross is None:  # a torchrun rank other than 0
            return 0
        from hamkit._io import staged_folder

        out = Path(args.out)
        with staged_folder(out) as stage:  # pairs.csv and skipped.txt, both or neither
            cross.save(stage / "pairs.csv")
            cross.save_skipped(stage / "skipped.txt")
        if args.json:
            print_json(
                {
                    "images": len(cross.paths_a),
                    "against": len(cross.paths_b),
                    "pairs": len(cross.pairs),
                    "skipped": len(cross.skipped),
                    "skipped_files": [str(path) for path in cross.skipped],
                    "out": str(out),
                }
            )
        say(
            f"{len(cross.paths_a)} image(s) against {len(cross.paths_b)}: {len(cross.pairs)} duplicate pair(s) "
            f"across the two sets ({len(cross.skipped)} unreadable, skipped"
            + (", listed in skipped.txt)" if cross.skipped else ")")
        )
        for path, reason in list(cross.skipped.items())[:5]:
            say(f"skipped {path}: {' '.join(reason.split())}")
        if len(cross.skipped) > 5:
            say(f"... and {len(cross.skipped) - 5} more in {out / 'skipped.txt'}")
        say(f"results in {out}")
        return 0
    from hamkit._io import atomic_write_text, staged_folder
    from hamkit.dedup.inputs import check_list_names, resolve_images

    dedup._checked()  # a bad setting first, then the images
    if getattr(args, "merge", None):
        result = dedup.merge(args.merge, decisions=decisions)
    else:
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


def _sharding_conflicts(args: argparse.Namespace) -> str | None:
    """The usage error for flags that a sharded run (``--shard``, ``--merge``) cannot honour, or ``None``."""
    from hamkit.cli._compat import unused_flags

    merge, shard = getattr(args, "merge", None), getattr(args, "shard", None)
    backend = getattr(args, "backend", None)
    if merge:
        wrong = unused_flags(
            args, ("--workers", "--batch-size"), "--merge", "it joins finished shards: no image decoded"
        )
        if wrong:
            return wrong
    if shard:
        wrong = unused_flags(
            args, ("--threshold",), "--shard", "a shard keeps every candidate's score: give it to hamkit dedup --merge"
        )
        if wrong:
            return wrong
    if backend == "ray":
        wrong = unused_flags(args, ("--workers",), "--backend ray", "Ray decodes in one task per CPU")
        if wrong:
            return wrong
    if backend in ("disk", "ray") and (args.against or shard or merge):
        other = "--against" if args.against else "--shard" if shard else "--merge"
        return f"--backend {backend} runs the whole search itself and cannot be used with {other}; drop one of them"
    if merge and shard:
        return "--shard runs one shard and --merge joins finished ones: give one of them"
    if merge and args.against:
        return "--against cannot be used with --merge; drop one of them"
    if shard:
        given = [flag for flag in ("--labels", "--against", "--decisions") if getattr(args, flag[2:], None)]
        given += [flag for flag in ("--keep",) if flag in getattr(args, "given_flags", ())]
        given += [flag for flag, on in (("--strict-groups", args.strict_groups), ("--no-review", args.no_review)) if on]
        if given:
            verb, pronoun = ("applies", "it") if len(given) == 1 else ("apply", "them")
            return (
                f"{', '.join(given)} {verb} to the merged results, not a shard: give {pronoun} to hamkit dedup --merge"
            )
        if args.method != "verified":
            return f"--shard runs --method verified only, not {args.method}"
    if merge and args.method != "verified":
        return f"--merge joins shards of --method verified only, not {args.method}"
    return None


def _merged_settings(args: argparse.Namespace) -> None:
    """``--candidates`` from the shards' manifest when not given (a given one must match it)."""
    import json
    from pathlib import Path

    for folder in args.merge:
        for manifest in sorted(Path(folder).glob("shard-*-of-*/manifest.json")) + [Path(folder) / "manifest.json"]:
            if manifest.is_file():
                recorded = json.loads(manifest.read_text())
                if args.candidates is None:
                    args.candidates = int(recorded["candidates"])
                return


def _read_labels(path: str):
    """The metadata records, read before the scan so that a bad file fails at once."""
    from hamkit.data.metadata import read_labels

    return read_labels(path)
