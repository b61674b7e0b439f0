"""Entry point of the ``hamkit`` command (also ``python -m hamkit``)."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import warnings
from collections.abc import Iterator, Sequence

from hamkit._version import __version__
from hamkit.errors import HamkitError

#: Subcommand modules under ``hamkit.cli``, in the order ``hamkit --help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "run",
    "synth",
    "download",
    "split",
    "dedup",
    "audit",
    "train",
    "calibrate",
    "predict",
    "evaluate",
    "segment",
    "export",
    "backbones",
    "plugins",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser (cheap: imports no torch).

    Returns:
        The ``hamkit`` parser with one subparser per command.
    """
    from hamkit.cli._parser import HamkitParser

    # every subparser is built with its parent's class: no prefix matching, no option given twice
    parser = HamkitParser(
        prog="hamkit",
        description=(
            "Leakage-free deduplication, classification and segmentation of dermoscopic "
            "skin-lesion images (HAM10000 / ISIC 2018)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"hamkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"hamkit.cli.{name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(_run=module.run)
    return parser


@contextlib.contextmanager
def _one_line_warnings(command: str) -> Iterator[None]:
    """Print warnings as ``hamkit COMMAND: warning: message`` (no file, line or source code)."""
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        print(f"hamkit {command}: warning: {text}", file=file or sys.stderr)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


# Library messages advise Python arguments; on the command line the same advice is a flag.
_WEIGHTS_ADVICE = 'to use a local file pass weights="path/to/file.safetensors" (or .pt/.pth), or pass pretrained=False'
_DEVICE_ADVICE = {"use device='cpu'": "use --device cpu"}
_SEARCH_ADVICE = {
    "use search_backend='numpy'": "use --search-backend numpy",
    "use backend='numpy'": "use --search-backend numpy",
}
_DEDUP_WEIGHTS = (
    "to use a local file add --weights path/to/file.safetensors, or use the default --method verified "
    "(needs no weights)"
)
_FLAG_ADVICE: dict[str, dict[str, str]] = {
    "*": _DEVICE_ADVICE,  # every command
    "split": {
        "use folds=": "use --folds ",
        "e.g. test=": "e.g. --test ",
        "(hold_out_source=)": "(--hold-out-source)",
    },
    "train": {
        "pass on_missing='skip' to leave them out": "add --skip-missing to leave them out",
        _WEIGHTS_ADVICE: (
            "to use a local file add --weights path/to/file.safetensors (or .pt/.pth), or add --no-pretrained"
        ),
        "pass masks=PATH": "pass --masks PATH",
        "or pass labels=PATH": "or put the metadata CSV there",
    },
    "evaluate": {
        "pass on_missing='skip' to leave them out": "add --skip-missing to leave them out",
        "pass masks=PATH": "pass --masks PATH",
        "or pass labels=PATH": "or put the metadata CSV there",
    },
    "dedup": {
        _WEIGHTS_ADVICE: _DEDUP_WEIGHTS,
        **_SEARCH_ADVICE,
        "image(s) of the first set": "image(s) of IMAGES",
        "image(s) of the second set": "image(s) of --against",
        "every file of the second set": "every file of --against",
        "is also in the first, and": "is also in IMAGES, and",
        "leave out the second)": "leave out --against)",
    },
    "audit": {_WEIGHTS_ADVICE: _DEDUP_WEIGHTS, **_SEARCH_ADVICE},
    "run": {
        _WEIGHTS_ADVICE: ("set pretrained = false in the [classifier], [segmenter] or [dedup] section of --config"),
        "pass on_missing='skip' to leave them out": "point data.masks at the full masks folder",
    },
}


def in_flags(command: str, message: str) -> str:
    """Rewrite the Python-argument advice in a library message as this command's flags."""
    for python, flag in {**_FLAG_ADVICE["*"], **_FLAG_ADVICE.get(command, {})}.items():
        message = message.replace(python, flag)
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hamkit`` command.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        The process exit status: 0 on success, 1 for an input error hamkit explained,
        2 for a usage error.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    from hamkit._proc import Terminated, sigterm_as_interrupt

    try:
        with sigterm_as_interrupt(), _one_line_warnings(args.command):
            return int(args._run(args) or 0)
    except Terminated:  # `kill PID`: unwound like Ctrl-C, so worker processes were shut down
        print(f"hamkit {args.command}: terminated", file=sys.stderr)
        # asked to stop: skip the interpreter's last sweep over every object (torch's millions of
        # them take seconds on a busy machine); nothing of hamkit's waits on it
        import gc

        gc.freeze()
        return 143
    except HamkitError as err:
        print(f"hamkit {args.command}: error: {in_flags(args.command, str(err))}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `hamkit ... | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except OSError as err:  # a full disk met outside hamkit's writers (a cache folder, a library)
        from hamkit._io import disk_full

        full = disk_full(err, err.filename or "a file")
        if full is None:
            raise
        print(f"hamkit {args.command}: error: {full}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"hamkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
