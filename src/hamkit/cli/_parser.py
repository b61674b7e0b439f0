"""The argument parser every ``hamkit`` command is built with: no guessed flags, no flag given twice.

argparse's defaults let two kinds of mistakes through silently, both against the house rule
"never a flag silently ignored":

* prefix matching: ``hamkit train --split X`` would reach ``--split-csv``;
* a repeated option: ``--against A --against B`` would keep ``B`` and drop ``A``.

:class:`HamkitParser` turns prefix matching off (``allow_abbrev=False``) and stores every plain
option through :class:`StoreOnce`, which refuses a second, different value. Every option given is
recorded (:func:`given_flags`), so that a command can refuse a flag its mode cannot use even when
it was given with its default value. Subparsers are built
with the class of their parent, so setting it on the top-level parser covers every command.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["HamkitParser", "StoreOnce", "given_flags"]

_FLAGS = "given_flags"


def _remember(namespace: Any, action: argparse.Action) -> None:
    """Add the option's first spelling to ``namespace.given_flags`` (the flags typed, in order)."""
    if action.option_strings and action.option_strings[0] not in getattr(namespace, _FLAGS, ()):
        setattr(namespace, _FLAGS, (*getattr(namespace, _FLAGS, ()), action.option_strings[0]))


def given_flags(args: argparse.Namespace) -> tuple[str, ...]:
    """The options typed on the command line (first spellings, e.g. ``--workers``), given with any
    value, the default included: what a mode that cannot use a flag refuses.

    Examples:
        >>> parser = HamkitParser(prog="demo")
        >>> _ = parser.add_argument("--workers", type=int, default=0)
        >>> _ = parser.add_argument("--quiet", action="store_true")
        >>> given_flags(parser.parse_args(["--workers", "0"])), given_flags(parser.parse_args([]))
        (('--workers',), ())
    """
    return tuple(getattr(args, _FLAGS, ()))


class StoreOnce(argparse._StoreAction):
    """``action="store"`` that refuses an option given twice with different values.

    The same value twice (a wrapper script adding ``--device cpu`` to a command that has it) is
    harmless and accepted.

    Examples:
        >>> parser = HamkitParser(prog="demo")
        >>> _ = parser.add_argument("--against")
        >>> parser.parse_args(["--against", "a", "--against", "a"]).against
        'a'
    """

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option_string=None) -> None:
        """Store ``values``; fail if the option was given before with another value."""
        repeated = bool(self.option_strings) and self.option_strings[0] in given_flags(namespace)
        if repeated and getattr(namespace, self.dest, None) != values:
            flag = "/".join(self.option_strings)
            raise argparse.ArgumentError(
                self,
                f"given twice ({getattr(namespace, self.dest)!r} and {values!r}); {flag} takes one value: give it once",
            )
        _remember(namespace, self)
        super().__call__(parser, namespace, values, option_string)


def _remembering(base: type[argparse.Action]) -> type[argparse.Action]:
    """``base``, recording in ``namespace.given_flags`` that its option was given."""

    def __call__(self: argparse.Action, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        _remember(namespace, self)
        base.__call__(self, parser, namespace, values, option_string)

    return type(f"Remembering{base.__name__}", (base,), {"__call__": __call__})


_REMEMBERING = {
    name: _remembering(base)
    for name, base in (
        ("store_const", argparse._StoreConstAction),
        ("store_true", argparse._StoreTrueAction),
        ("store_false", argparse._StoreFalseAction),
        ("append", argparse._AppendAction),
        ("append_const", argparse._AppendConstAction),
        ("count", argparse._CountAction),
        ("extend", argparse._ExtendAction),
    )
}


class HamkitParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` without prefix matching whose plain options refuse a
    second, different value (:class:`StoreOnce`).

    Examples:
        >>> parser = HamkitParser(prog="demo")
        >>> _ = parser.add_argument("--split-csv")
        >>> parser.parse_known_args(["--split", "x.csv"])[1]
        ['--split', 'x.csv']
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)
        self.register("action", None, StoreOnce)
        self.register("action", "store", StoreOnce)
        for name, action in _REMEMBERING.items():
            self.register("action", name, action)
