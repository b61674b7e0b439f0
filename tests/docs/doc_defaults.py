"""Parsers behind ``test_documented_defaults.py``: stated defaults in docstrings, help texts
and Markdown, and the code's defaults they are compared with."""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import math
import pkgutil
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import hamkit
from hamkit.cli.dedup import METHOD_FLAGS

SECTION = re.compile(r"^(?P<indent> *)(?:Args|Arguments|Parameters|Keyword Args|Attributes):\s*$")
ENTRY = re.compile(r"^(?P<name>\*{0,2}\w+)(?:\s*\([^)]*\))?:\s?(?P<text>.*)$")
# "(default 256)", "(default: ``"val"``)", "Default ``"dice"``", "defaults to ``x``"
AFTER = re.compile(
    r"(?:\(default:?|(?<![\w`])[Dd]efaults? to|(?<![\w`(])Default:?)\s+(?:``(?P<quoted>[^`]+)``|(?P<plain>[^;,)]+))"
)
# "``"sampler"`` (the default", "``"error"`` (default)"; not "``x`` (default 1)", which names x's default
BEFORE = re.compile(r"``(?P<value>[^`]+)``\s+\((?:the )?default\s*(?=[);:,])")
BARE = re.compile(r"[A-Za-z_][\w.+-]*")
MISSING = object()


def parse_value(text: str) -> Any:
    """The Python value of a documented default, a bare word as a string, or ``MISSING``."""
    text = text.strip()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text if BARE.fullmatch(text) else MISSING


def same(documented: Any, actual: Any) -> bool:
    """Whether a documented default equals the code's (``True`` and ``1`` differ, tuples equal lists)."""
    if isinstance(actual, Enum):
        return documented in (actual, actual.value, actual.name)
    if isinstance(documented, bool) or isinstance(actual, bool):
        return type(documented) is type(actual) and documented == actual
    if isinstance(documented, (int, float)) and isinstance(actual, (int, float)):
        return math.isclose(documented, actual, rel_tol=1e-12, abs_tol=0.0)
    if isinstance(documented, (tuple, list)) and isinstance(actual, (tuple, list)):
        return len(documented) == len(actual) and all(map(same, documented, actual))
    return documented == actual


def comparable(documented: Any, actual: Any) -> bool:
    """Whether the two can be compared: a bare word only with a string, nothing with ``None``."""
    if documented is MISSING or actual is None and documented is not None:
        return False
    return not (isinstance(documented, str) and not isinstance(actual, (str, Enum)) and BARE.fullmatch(documented))


# --------------------------------------------------------------------------- the package's callables


@dataclass(frozen=True)
class Documented:
    where: str
    obj: Any  # the object whose signature holds the parameters


def hamkit_modules() -> Iterator[Any]:
    """hamkit and every module under it, imported."""
    yield hamkit
    for info in sorted(pkgutil.walk_packages(hamkit.__path__, "hamkit."), key=lambda m: m.name):
        if not info.name.endswith("__main__"):
            yield importlib.import_module(info.name)


def public_callables() -> list[tuple[Documented, str]]:
    """``(the callable, its docstring)`` for every public function, class and method, once each."""
    found: dict[int, tuple[Documented, str]] = {}
    for module in hamkit_modules():
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj):
                found.setdefault(id(obj), (Documented(f"{module.__name__}.{name}", obj), inspect.getdoc(obj) or ""))
            elif inspect.isclass(obj):
                where = f"{module.__name__}.{obj.__qualname__}"
                found.setdefault(id(obj), (Documented(where, obj), inspect.getdoc(obj) or ""))
                for attr, member in vars(obj).items():
                    function = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
                    if inspect.isfunction(function) and (not attr.startswith("_") or attr == "__init__"):
                        doc = function.__doc__ and inspect.cleandoc(function.__doc__)
                        if doc:
                            found.setdefault(id(function), (Documented(f"{where}.{attr}", getattr(obj, attr)), doc))
    return list(found.values())


def args_entries(doc: str) -> Iterator[tuple[str, str]]:
    """``(parameter, description)`` of each entry of the docstring's Args / Attributes sections."""
    lines = doc.splitlines()
    for number, line in enumerate(lines):
        section = SECTION.match(line)
        if not section:
            continue
        indent = len(section["indent"])
        name, text = None, []
        for entry_line in lines[number + 1 :]:
            depth = len(entry_line) - len(entry_line.lstrip())
            if entry_line.strip() and depth <= indent:
                break
            entry = ENTRY.match(entry_line.strip()) if depth == indent + 4 else None
            if entry:
                if name:
                    yield name, " ".join(text)
                name, text = entry["name"].lstrip("*"), [entry["text"]]
            elif name:
                text.append(entry_line.strip())
        if name:
            yield name, " ".join(text)


def stated_defaults(name: str, text: str) -> Iterator[tuple[tuple[str, ...], str]]:
    """``(parameters, stated value)`` for each default the Args entry of ``name`` states.

    The value is the default of one of ``parameters``: the entry's own, or, in "``x`` (default
    1)", perhaps ``x``'s ("Which split of ``split_csv`` (default ``"val"``)" is ``split``'s).
    """
    for match in BEFORE.finditer(text):
        yield (name,), match["value"]
    for match in AFTER.finditer(text):
        if match["quoted"] is not None:
            rest = text[match.end() :].lstrip()
            if rest[:1] not in ("", ")", ";", ":", ",", ".") or rest.startswith(", ``"):
                continue  # "(default ``"0"``, ``"1"``...)": a pattern, not one value
            value = match["quoted"]
        else:
            value = match["plain"]
        subject = re.search(r"``(\w+)``\s*$", text[: match.start()])
        yield (name, subject[1]) if subject and subject[1] != name else (name,), value


def signature_defaults(obj: Any) -> dict[str, Any] | None:
    """Parameter name -> default (``inspect.Parameter.empty`` when required), or ``None`` without a signature."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    return {name: parameter.default for name, parameter in signature.parameters.items()}


def docstring_mismatches(callables: list[tuple[Documented, str]]) -> tuple[list[str], int]:
    """The docstrings' stated defaults that differ from the signatures, and how many were compared."""
    wrong, compared = [], 0
    for documented, doc in callables:
        parameters = signature_defaults(documented.obj)
        if parameters is None:
            continue
        for entry, text in args_entries(doc):
            for names, stated in stated_defaults(entry, text):
                if not all(name in parameters for name in names):
                    continue  # an attribute, or the default of a key of **kwargs ("``out_channels`` (default 1)")
                value, actual = parse_value(stated), [parameters[name] for name in names]
                if value is MISSING:
                    continue
                if actual[0] is inspect.Parameter.empty and len(names) == 1:
                    wrong.append(f"{documented.where}: {entry} is required, but its docstring states default {stated}")
                    continue
                checked = [a for a in actual if a is not inspect.Parameter.empty and comparable(value, a)]
                compared += bool(checked)
                if checked and not any(same(value, a) for a in checked):
                    wrong.append(f"{documented.where}: {entry} documented default {stated}, signature {actual[0]!r}")
    return wrong, compared


# --------------------------------------------------------------------------- the per-method defaults


def method_defaults() -> dict[str, Any]:
    """The duplicate methods' default thresholds: ``DEFAULT_THRESHOLDS`` of a ``hamkit.dedup`` module."""
    tables = {
        id(table): table
        for module in hamkit_modules()
        if module.__name__.startswith("hamkit.dedup")
        and isinstance(table := getattr(module, "DEFAULT_THRESHOLDS", None), dict)
    }
    assert len(tables) == 1, "expected one DEFAULT_THRESHOLDS mapping in hamkit.dedup"
    return dict(next(iter(tables.values())))


def method_setting(method: str, dest: str, thresholds: dict[str, Any]) -> Any:
    """The default of the dedup option ``dest`` for ``method``: its threshold, or the method's
    own setting that the option sets (:data:`hamkit.cli.dedup.METHOD_FLAGS`)."""
    if dest == "threshold":
        return thresholds[method]
    from hamkit.dedup.methods import get_method

    return get_method(method).get_params()[METHOD_FLAGS[dest]]


def rst_method_tables(doc: str) -> Iterator[tuple[str, str]]:
    """``(method, default)`` rows of simple RST tables headed ``method ... default``."""
    lines = doc.splitlines()
    for number, line in enumerate(lines[:-1]):
        header = line.split()
        if header[:1] == ["method"] and header[-1:] == ["default"] and re.fullmatch(r"[= ]+", lines[number - 1]):
            for row in lines[number + 2 :]:
                if row.startswith("=") and not row.strip("= "):
                    break
                first = re.match(r'``"(\w+)"``', row)
                if first:
                    yield first[1], row.split()[-1]


# --------------------------------------------------------------------------- the command line


def subcommands(parser: argparse.ArgumentParser, prefix: str = "hamkit") -> Iterator[tuple[str, Any]]:
    """``(command line, parser)`` of the parser and, recursively, its subcommands."""
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from subcommands(sub, f"{prefix} {name}")


def cli_mismatches(root: argparse.ArgumentParser, methods: dict[str, Any]) -> tuple[list[str], int]:
    """The help texts' stated defaults that differ from argparse's (or ``methods``'), and how many were compared."""
    wrong, compared = [], 0
    for command, parser in subcommands(root):
        for action in parser._actions:
            help_text = " ".join((action.help or "").split())
            if not help_text or "%(default)" in help_text or action.default is argparse.SUPPRESS:
                continue
            option = f"{command} {'/'.join(action.option_strings) or action.dest}"
            per_method = re.findall(r"(?:^|; )(\w+): [^;]*?\(default:? ([^;,)\s]+)\)", help_text)
            if action.default is None and per_method and all(name in methods for name, _ in per_method):
                for name, stated in per_method:
                    compared += 1
                    expected = method_setting(name, action.dest, methods)
                    if not same(parse_value(stated), expected):
                        wrong.append(f"{option}: help says {name} defaults to {stated}, the code {expected!r}")
                continue
            if action.default is None and action.dest in METHOD_FLAGS:
                continue  # a method's own setting, passed only when given: the method owns its default
            for match in re.finditer(r"(?:^|\()default:?\s+([^;)]+?)\s*(?:[;)]|$)", help_text):
                values = [parse_value(word.strip(",")) for word in match[1].split()]
                if len(values) > 1 and not all(isinstance(v, (int, float)) for v in values):
                    continue  # words, not the values of a multi-value option ("(default: 0.75 0.125 0.125)")
                value = values[0] if len(values) == 1 else values
                if not comparable(value, action.default):
                    continue
                compared += 1
                if not same(value, action.default) and str(action.default) != match[1]:
                    wrong.append(f"{option}: help says default {match[1]}, argparse default {action.default!r}")
            for match in re.finditer(r"(?:^|[,;:(] ?)(\w[\w-]*)[^,;:(]*?\((?:the )?default\b", help_text):
                if action.choices and match[1] in action.choices:
                    compared += 1
                    if match[1] != action.default:
                        wrong.append(f"{option}: help marks {match[1]} as the default, argparse {action.default!r}")
    return wrong, compared


# --------------------------------------------------------------------------- the guides

# "`loss="bce+dice"` (default)", "`device="auto"` (the default)", "`augment=True` by default",
# "`pretrained=True`, the default of the estimators"
NAMED_THEN_DEFAULT = re.compile(r"`(\w+)=([^`]+)`\s*(?:\((?:the )?default\b|by default\b|, the default\b)")
# "By default (`group_mode="connected"`)"
DEFAULT_THEN_NAMED = re.compile(r"\b[Bb]y default \(`(\w+)=([^`]+)`\)")
# "(`class_balance=`). `"sampler"` (the default)": a value for the `name=` last named before it
VALUE_AFTER_NAME = re.compile(r"`(\w+)=`(?P<between>(?:(?!`\w+=).)*?)`(?P<value>[^`]+)`\s+\((?:the )?default\b")
# "`search_backend="faiss-ivf"` ... The default `"auto"`"
THE_DEFAULT_VALUE = re.compile(r"`(\w+)=[^`]*`(?:(?!`\w+=).)*?\b[Tt]he default `(?P<value>[^`]+)`")

# "(with their default `--method cnn`)", "`--keep first` (the default)"
OPTION_AFTER_DEFAULT = re.compile(r"\b[Dd]efaults?:? `(--[\w-]+)[ =]([^`\s]+)`")
OPTION_BEFORE_DEFAULT = re.compile(r"`(--[\w-]+)[ =]([^`\s]+)`\s*(?:\((?:the )?default\b|by default\b)")


def paragraphs(text: str) -> Iterator[str]:
    """The prose of a Markdown page, one paragraph or list item at a time (code blocks left out)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    for block in re.split(r"\n\s*\n|\n(?=\s*(?:[*-]|\d+\.) )", text):
        yield " ".join(block.split())


def parameter_owners(objects: list[Any]) -> dict[str, list[tuple[str, Any]]]:
    """Parameter name -> ``(owner, default)`` for the callables among ``objects`` and their methods."""
    owners: dict[str, list[tuple[str, Any]]] = {}
    for obj in objects:
        members = (
            [obj] + [getattr(obj, n) for n in vars(obj) if not n.startswith("_")] if inspect.isclass(obj) else [obj]
        )
        for member in members:
            parameters = signature_defaults(member) if callable(member) else None
            for name, default in (parameters or {}).items():
                if default is not inspect.Parameter.empty:
                    owners.setdefault(name, []).append((getattr(member, "__qualname__", repr(member)), default))
    return owners


def markdown_claims(text: str) -> Iterator[tuple[str, str]]:
    """``(parameter, stated value)`` of each sentence of ``text`` that states a parameter's default."""
    for paragraph in paragraphs(text):
        for pattern in (NAMED_THEN_DEFAULT, DEFAULT_THEN_NAMED):
            for match in pattern.finditer(paragraph):
                yield match[1], match[2]
        for match in VALUE_AFTER_NAME.finditer(paragraph):
            if "=" not in match["value"]:
                yield match[1], match["value"]
        for match in THE_DEFAULT_VALUE.finditer(paragraph):  # "the default `verified` method" is no value
            value = parse_value(match["value"])
            if value is not MISSING and not (isinstance(value, str) and BARE.fullmatch(match["value"])):
                yield match[1], match["value"]


def markdown_method_tables(text: str) -> Iterator[tuple[str, str]]:
    """``(method, default)`` of Markdown tables whose first column is ``method`` and that have ``default``."""
    for table in re.findall(r"(?:^\|.*\|\n)+", text, flags=re.MULTILINE):
        rows = [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in table.splitlines()]
        if len(rows) > 2 and rows[0][0] == "method" and "default" in rows[0]:
            column = rows[0].index("default")
            for row in rows[2:]:
                yield re.sub(r"`(\w+)`.*", r"\1", row[0]), row[column]


def option_defaults(root: argparse.ArgumentParser) -> dict[str, list[tuple[str, Any]]]:
    """Option string -> ``(command, argparse default)`` over every subcommand."""
    options: dict[str, list[tuple[str, Any]]] = {}
    for command, parser in subcommands(root):
        for action in parser._actions:
            for flag in action.option_strings:
                options.setdefault(flag, []).append((command, action.default))
    return options


def markdown_mismatches(
    text: str,
    owners_of: dict[str, list[tuple[str, Any]]],
    methods: dict[str, Any],
    options: dict[str, list[tuple[str, Any]]] | None = None,
) -> list[str]:
    """The defaults a Markdown text states that differ from the code's (``options``: of the command line)."""
    wrong = []
    for paragraph in paragraphs(text) if options is not None else ():
        for pattern in (OPTION_AFTER_DEFAULT, OPTION_BEFORE_DEFAULT):
            for flag, stated in pattern.findall(paragraph):
                found = options.get(flag, [])  # type: ignore[union-attr]
                if not any(str(default) == stated or same(parse_value(stated), default) for _, default in found):
                    wrong.append(
                        f"`{flag} {stated}` is stated as a default; the command line: {found or 'no such option'}"
                    )
    for method, stated in markdown_method_tables(text):
        if method in methods:
            value = None if stated in ("", "none", "--") else parse_value(stated.strip("`"))
            if not same(value, methods[method]):
                wrong.append(f"the table says {method} defaults to {stated!r}, the code {methods[method]!r}")
    for name, stated in markdown_claims(text):
        owners, value = owners_of.get(name), parse_value(stated)
        if not owners:
            wrong.append(f"`{name}={stated}` is stated as a default, but no hamkit callable has a parameter {name}")
        elif value is not MISSING and not any(same(value, default) for _, default in owners):
            wrong.append(f"`{name}={stated}` is stated as a default; the code: {sorted(set(owners), key=str)}")
    return wrong
