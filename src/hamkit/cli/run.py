"""``hamkit run``: the whole job end to end, as ``hamkit.pipeline.run_pipeline``."""

from __future__ import annotations

import argparse

from hamkit.cli._compat import GROUP_BY_HELP, IMAGE_COLUMN_HELP, LABEL_COLUMN_HELP, add_json, add_quiet
from hamkit.cli._types import output_folder


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``run`` subcommand."""
    parser = subparsers.add_parser(
        "run",
        help="the whole job: dedup, leakage-free split, classifier, segmenter, report",
        description="Run dedup -> leakage-free split -> leakage audit -> classifier -> segmenter -> report. Without "
        "--data the built-in synthetic dataset is generated. Rerunning the same command skips the steps whose "
        "inputs and settings have not changed and continues an interrupted training.",
    )
    parser.add_argument("--data", metavar="DIR", help="HAM10000-layout folder (default: synthetic data)")
    parser.add_argument("--config", help="TOML settings file (see --print-config)")
    parser.add_argument(
        "--labels",
        metavar="FILE",
        help="labels file (data.labels): HAM10000_metadata.csv, ISIC ground truth, or any CSV with an image "
        "column and a label column of your own classes (default: the HAM10000 metadata under --data)",
    )
    parser.add_argument("--label-column", metavar="NAME", help=LABEL_COLUMN_HELP + " (data.label_column)")
    parser.add_argument("--image-column", metavar="NAME", help=IMAGE_COLUMN_HELP + " (data.image_column)")
    parser.add_argument("--group-by", metavar="COLUMNS", help=GROUP_BY_HELP + " (data.group_by)")
    parser.add_argument(
        "--hold-out-source",
        metavar="NAME",
        help="test on a whole data set or institution: the rows whose source column is NAME (split.hold_out_source)",
    )
    parser.add_argument(
        "--preset",
        choices=("demo", "cpu", "report", "gpu"),
        help="defaults: cpu (real data on a laptop CPU, under 30 min for HAM10000; the default with "
        "--data), demo (the synthetic data, minutes; the default without --data), report (the "
        "original report's recipe), gpu (pretrained, larger, meant for a GPU; its time and scores are "
        "unmeasured: no run on a GPU has been timed)",
    )
    parser.add_argument("--out", type=output_folder, help="run folder (required unless --print-config)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one setting without a TOML file, e.g. --set classifier.epochs=3 (repeatable; the value is "
        'read as TOML: 3, 1e-4, true, "resnet50" or a bare word)',
    )
    parser.add_argument("--print-config", action="store_true", help="print the effective settings as TOML and exit")
    add_quiet(parser)
    add_json(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``hamkit run``."""
    from hamkit.cli._compat import group_columns, unused_flags, usage_error
    from hamkit.errors import HamkitError

    if args.print_config:
        wrong = unused_flags(
            args, ("--out", "--quiet", "--json"), "--print-config", "it prints the settings and runs nothing"
        )
        if wrong:
            return usage_error(args, wrong)
    from hamkit.pipeline.config import default_preset, load_config, parse_set, to_toml

    overrides = parse_set(args.set)
    preset = args.preset or default_preset(args.data, load_config(args.config) if args.config else None)
    given: dict[str, object] = {}
    if args.labels is not None:
        given["labels"] = args.labels
    if args.label_column is not None:
        given["label_column"] = args.label_column
    if args.image_column is not None:
        given["image_column"] = args.image_column
    if args.group_by is not None:
        given["group_by"] = group_columns(args.group_by)
    if given:
        overrides.setdefault("data", {}).update(given)
    if args.hold_out_source is not None:
        overrides.setdefault("split", {})["hold_out_source"] = args.hold_out_source
    settings = load_config(args.config, preset, overrides)
    if args.print_config:
        print(to_toml(settings), end="")
        return 0
    if not args.out:
        raise HamkitError("--out is required (the run folder)")
    from hamkit.pipeline.validate import check_settings

    check_settings(settings, args.data)  # before torch is imported: a typo costs a second, not a run
    from hamkit.pipeline.run import run_pipeline

    result = run_pipeline(args.out, data=args.data, config=settings, preset=preset, progress=not args.quiet)
    if args.json:
        from hamkit.cli._compat import print_json

        print_json(
            {"steps": result.steps, "seconds": result.seconds, "summary": result.summary, "report": result.report}
        )
        return 0
    for step, status in result.steps.items():
        seconds = result.seconds.get(step)
        print(f"{step:<11}{status:<9}" + (f"{seconds:7.1f} s" if seconds is not None else ""))
    data = result.summary.get("data", {})
    if data.get("description"):
        print(data["description"].upper() if data.get("synthetic") else f"measured on {data['description']}")
    run = result.summary.get("run", {})
    for name in run.get("offline_backbone_used", []):  # said at the start too, unless --quiet
        print(f"{name} started from {run['initial_weights'][name]}")
    clf = result.summary.get("classifier")
    if clf:
        ci = clf.get("intervals", {})

        def interval(name: str) -> str:
            low, high = ci.get(name, (None, None))
            return f" [{low:.3f}-{high:.3f}]" if low is not None else ""

        print(
            f"classifier: balanced accuracy {clf['balanced_accuracy']:.3f}{interval('balanced_accuracy')}, macro F1 "
            f"{clf['macro']['f1']:.3f}{interval('macro_f1')} on {clf['n_samples']} test images"
        )
    seg = result.summary.get("segmenter")
    if seg:
        print(
            f"segmenter: mean Dice {seg['summary']['mean_dice']:.3f}, ISIC thresholded Jaccard "
            f"{seg['summary']['thresholded_jaccard']:.3f}"
        )
    print(f"report: {result.report}")
    return 0
