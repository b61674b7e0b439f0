"""``hamkit plugins``: report the installed backbone plugins (entry points ``hamkit.backbones``).

Example::

    $ hamkit plugins            # what is installed, without importing anything
    $ hamkit plugins --load     # import each plugin; exit status 1 if one fails
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "run"]

_HEADERS = ("NAME", "PACKAGE", "VERSION", "STATUS", "ERROR")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``plugins`` subcommand.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.

    Returns:
        The subcommand's parser.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "plugins",
        help="list the installed backbone plugins",
        description=(
            "List the backbone plugins (entry point group 'hamkit.backbones'): name, package, "
            "version, status (not loaded, loaded, failed, shadowed) and error. Set "
            "HAMKIT_DISABLE_PLUGINS=1 to ignore all plugins."
        ),
    )
    parser.add_argument(
        "--load",
        action="store_true",
        help="import every plugin to check it loads; exit status 1 if any fails",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Print the table of plugins.

    Args:
        args: Parsed arguments (``load``).

    Returns:
        0, or 1 when ``--load`` found a plugin that fails to load.
    """
    import warnings

    from hamkit.backbones.plugins import DISABLE_ENV, PLUGIN_GROUP, plugins_disabled
    from hamkit.backbones.registry import list_plugins
    from hamkit.cli.backbones import format_table

    if plugins_disabled():
        print(f"plugin discovery is off ({DISABLE_ENV} is set)")
        return 0
    with warnings.catch_warnings():  # the table reports what the warnings would say
        warnings.simplefilter("ignore")
        infos = list_plugins(load=args.load)
    if not infos:
        print(f"no backbone plugins installed (entry point group {PLUGIN_GROUP!r})")
        return 0
    rows = [(p.name, p.package, p.version, p.status, p.error or "") for p in infos]
    print(format_table(_HEADERS, rows))
    return 1 if args.load and any(p.status == "failed" for p in infos) else 0
