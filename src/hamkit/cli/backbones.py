"""``hamkit backbones``: list the backbones hamkit can build.

Example::

    $ hamkit backbones 'resnet*'
    $ hamkit backbones --task segmentation
    $ hamkit backbones timm:convnext_tiny      # describe one pass-through name
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

__all__ = ["add_parser", "format_table", "run"]

_TASKS = ("classification", "segmentation")  # hamkit.backbones.spec.TASKS, without importing it
_HEADERS = ("NAME", "TASKS", "FEATURE_DIM", "INPUT", "PRETRAINED", "OFFLINE", "SOURCE")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Format rows as a left-aligned plain-text table.

    Args:
        headers: Column titles.
        rows: One sequence of cell values per row (converted with ``str``).

    Returns:
        The table, one line per row after the header line, without a trailing newline.

    Examples:
        >>> print(format_table(("A", "BB"), [(1, "x"), ("long", "y")]))
        A     BB
        1     x
        long  y
    """
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``backbones`` subcommand.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.

    Returns:
        The subcommand's parser.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "backbones",
        help="list the backbones hamkit can build",
        description=(
            "List the registered backbones (built-ins and plugins): name, tasks, feature "
            "dimension, default input size, pretrained weights (OFFLINE: those installed, which "
            "need no network) and source package. Any timm "
            "model is available as timm:<model> and any segmentation-models-pytorch model as "
            "smp:<Arch>:<encoder>; give such a name as PATTERN to describe it."
        ),
    )
    parser.add_argument(
        "pattern",
        nargs="?",
        default="",
        metavar="PATTERN",
        help="shell-style wildcard pattern (e.g. 'resnet*'); without wildcards, names "
        "containing it; a timm:/smp: name describes that model",
    )
    parser.add_argument("--task", choices=_TASKS, help="only backbones serving this task")
    return parser


def _row(spec: Any) -> tuple[str, ...]:
    height, width = spec.input_size
    return (
        spec.name,
        ",".join(spec.tasks),
        str(spec.feature_dim),
        f"{height}x{width}",
        ",".join(spec.pretrained_weights) or "-",
        ",".join(spec.offline_weights) or "-",
        spec.source,
    )


def _matches(name: str, pattern: str) -> bool:
    """The registry's pattern rule: a shell wildcard, or a substring when it has no wildcard; any case."""
    from fnmatch import fnmatchcase

    if not pattern:
        return True
    name, pattern = name.lower(), pattern.lower()
    return fnmatchcase(name, pattern) if any(c in pattern for c in "*?[") else pattern in name


def run(args: argparse.Namespace) -> int:
    """Print the table of backbones.

    Args:
        args: Parsed arguments (``pattern``, ``task``).

    Returns:
        0, or 1 when no backbone matches.

    Raises:
        HamkitError: A pass-through name is unknown (printed by ``hamkit`` without traceback).
    """
    from hamkit.backbones.offline import offline_backbones
    from hamkit.backbones.registry import RESERVED_PREFIXES, get_backbone, list_backbones
    from hamkit.errors import PluginError

    pattern: str = args.pattern
    if pattern.startswith(tuple(RESERVED_PREFIXES)) and not any(c in pattern for c in "*?["):
        specs = [get_backbone(pattern)]
        specs = [s for s in specs if args.task is None or args.task in s.tasks]
    else:
        specs = []
        names = list_backbones(pattern, task=args.task)
        if pattern.startswith(tuple(RESERVED_PREFIXES)):  # browsing timm's or smp's names: no spec each
            if not names:
                print(f"no backbone matches {pattern!r}" + (f" for task {args.task}" if args.task else ""))
                return 1
            print("\n".join(names))
            print(f"\n{len(names)} name(s); `hamkit backbones NAME` describes one")
            return 0
        if args.task in (None, "classification"):  # the timm models whose weights are installed
            names += [n for n in offline_backbones() if _matches(n, pattern) and n not in names]
        for name in names:
            try:
                specs.append(get_backbone(name))
            except PluginError:  # warned about already; list the rest
                continue
    if not specs:
        task = f" for task {args.task}" if args.task else ""
        print(f"no backbone matches {pattern!r}{task}")
        return 1
    print(format_table(_HEADERS, [_row(s) for s in specs]))
    print(
        "\nAlso: any timm model as timm:<model> (classification), any segmentation-models-pytorch "
        "model as smp:<Arch>:<encoder> (segmentation)."
    )
    local = offline_backbones()
    if local:
        encoders = ", ".join("tu-" + n.removeprefix("timm:") for n in local)
        print(f"Pretrained weights installed (no network needed): {', '.join(local)}; as smp encoders: {encoders}.")
    return 0
