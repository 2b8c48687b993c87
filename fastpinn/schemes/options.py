"""Command-line options generated from the declared scheme parameters.

:func:`add_scheme_options` adds one ``--key`` option per parameter key of the registered schemes (a key
several schemes share is one option; its default is ``None``, which means each scheme's own default, and its
help says which schemes read it). :func:`scheme_params_from_args` collects the options given and refuses, in
one line, an option that none of the chosen schemes reads.
"""

from __future__ import annotations

import argparse
import math
from typing import Any, Callable, Iterable, Sequence

from .base import INT_PARAM_MAX, Param
from .registry import parameters_by_key, scheme_class

__all__ = ["add_scheme_options", "scheme_params_from_args", "option_name"]


def option_name(key: str) -> str:
    """``ma_form`` -> ``--ma-form``."""
    return "--" + key.replace("_", "-")


def _number(text: str) -> float:
    t = text.strip().lower().lstrip("+")
    if t in ("inf", "infinity", "∞"):
        return math.inf
    try:
        return float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None


def _integer(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if abs(value) > INT_PARAM_MAX:  # refused here, so the message names the option
        raise argparse.ArgumentTypeError(f"must be at most {INT_PARAM_MAX} in magnitude, got {text}")
    return value


def _value_parser(spec: Param) -> Callable[[str], Any]:
    one = _integer if spec.kind in ("int", "ints") else _number

    def parse(text: str) -> Any:
        if spec.optional and text.strip().lower() == "none":
            return None
        if spec.kind in ("floats", "ints"):
            return tuple(one(part) for part in text.split(","))
        return one(text)

    return parse


def _default_text(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(_default_text(v) for v in value)
    if isinstance(value, float):
        return "inf" if value == math.inf else f"{value:g}"
    return "none" if value is None else str(value)


def _help(users: Sequence[tuple[str, Param]]) -> str:
    helps = list(dict.fromkeys(p.help for _, p in users))
    if len(helps) == 1:
        by_default: dict[str, list[str]] = {}
        for name, p in users:
            text = _default_text(p.default)
            if p.cli_default is not None:
                text = f"{_default_text(p.cli_default)} (train; {text} in Python and compare)"
            by_default.setdefault(text, []).append(name)
        read_by = "; ".join(f"{d} for {', '.join(names)}" for d, names in by_default.items())
        text = f"{helps[0]} (default: {read_by})"
    else:
        text = "; ".join(f"{name}: {p.help} (default {_default_text(p.default)})" for name, p in users)
    return text.replace("%", "%%")


def add_scheme_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--key`` for every declared parameter key of the registered schemes (default ``None``: the chosen
    scheme's own default). A flag gets ``--key`` / ``--no-key``; a tuple is given as ``a,b``; ``none`` sets an
    optional parameter to ``None``."""
    group = parser.add_argument_group("scheme parameters (each read by the schemes its help names)")
    for key, users in parameters_by_key().items():
        spec = users[0][1]
        kw: dict[str, Any] = {"dest": key, "default": None, "help": _help(users)}
        if spec.kind == "bool":
            kw["action"] = argparse.BooleanOptionalAction
        elif spec.kind == "str":
            kw["choices"] = tuple(dict.fromkeys(c for _, p in users for c in (p.choices or ())))
        else:
            kw["type"] = _value_parser(spec)
            kw["metavar"] = {"floats": "X,Y", "ints": "I,J", "int": "N"}.get(spec.kind, "X")
        group.add_argument(option_name(key), **kw)


def scheme_params_from_args(schemes: Iterable[str], args: argparse.Namespace, *,
                            cli_defaults: bool = False) -> dict[str, Any]:
    """``{key: value}`` of the scheme options given in ``args`` (those not ``None``). ``ValueError`` (one line)
    for an option none of ``schemes`` reads, naming the options they do read. ``cli_defaults`` (one scheme, as
    ``fastpinn train``): a parameter not given takes its declared ``cli_default`` where it has one."""
    names = list(schemes)
    if cli_defaults:
        if len(names) != 1:
            raise ValueError("cli_defaults needs exactly one scheme")
        fallback = {key: p.cli_default for key, p in scheme_class(names[0]).declared().items()
                    if p.cli_default is not None and getattr(args, key, None) is None}
        return {**fallback, **scheme_params_from_args(names, args)}
    # every option the schemes accept, remedies (--weight-max, ...) included: what is refused and what is listed
    reads = list(dict.fromkeys(key for name in names for key in scheme_class(name).declared()))
    given = {key: getattr(args, key) for key in parameters_by_key() if getattr(args, key, None) is not None}
    for key in given:
        if key not in reads:
            theirs = ", ".join(option_name(k) for k in reads) or "none"
            which = f"scheme {names[0]!r}" if len(names) == 1 else f"schemes {', '.join(names)}"
            raise ValueError(f"{option_name(key)} is not an option of {which} (its options: {theirs})")
    return given
