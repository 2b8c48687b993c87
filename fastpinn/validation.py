"""Argument checks shared by every public entry point: one implementation, one message shape.

Each check returns the value it accepted (converted where that is lossless, e.g. an ``int`` given for a
float) and raises ``ValueError`` naming the field, the allowed values and what it got, so that a bad
input is one line a user can act on. ``bool`` is refused where a number is expected (``True`` is an
``int`` in Python, and ``epochs=True`` is a mistake, not one epoch).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional, TypeVar

__all__ = ["check_int", "check_number", "check_choice", "check_flag", "check_optional_int", "check_rate",
           "range_text"]

T = TypeVar("T")


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e16 else f"{v:g}"


def range_text(minimum: Optional[float], maximum: Optional[float], *, low_open: bool = False,
               high_open: bool = False) -> str:
    """The allowed range as messages say it: ``in [0, 1)``, ``>= 1``, ``< 5`` (``""`` without bounds)."""
    if minimum is not None and maximum is not None:
        return f"in {'(' if low_open else '['}{_num(minimum)}, {_num(maximum)}{')' if high_open else ']'}"
    if minimum is not None:
        return f"{'>' if low_open else '>='} {_num(minimum)}"
    if maximum is not None:
        return f"{'<' if high_open else '<='} {_num(maximum)}"
    return ""


def check_int(name: str, value: Any, *, minimum: Optional[int] = None, maximum: Optional[int] = None,
              hint: str = "") -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]`` (either bound optional), else ``ValueError``."""
    ok = not isinstance(value, bool) and isinstance(value, int)
    if ok and ((minimum is not None and value < minimum) or (maximum is not None and value > maximum)):
        ok = False
    if not ok:
        bounds = range_text(minimum, maximum)
        raise ValueError(f"{name} must be an integer{' ' + bounds if bounds else ''}{hint}, got {value!r}")
    return int(value)


def check_optional_int(name: str, value: Any, *, minimum: Optional[int] = None, maximum: Optional[int] = None,
                       hint: str = "") -> Optional[int]:
    """``None``, or :func:`check_int`'s result; the message says that ``None`` is allowed."""
    if value is None:
        return None
    try:
        return check_int(name, value, minimum=minimum, maximum=maximum, hint=hint)
    except ValueError:
        bounds = range_text(minimum, maximum)
        raise ValueError(f"{name} must be None or an integer{' ' + bounds if bounds else ''}{hint}, "
                         f"got {value!r}") from None


def check_number(name: str, value: Any, *, minimum: Optional[float] = None, maximum: Optional[float] = None,
                 low_open: bool = False, high_open: bool = False, finite: bool = True, hint: str = "") -> float:
    """``value`` as a ``float`` within the bounds (``low_open``/``high_open`` exclude them), else ``ValueError``.

    ``finite=False`` admits ``inf`` (e.g. the L^inf norm's ``p``); NaN is never accepted.
    """
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if ok:
        v = float(value)
        ok = not math.isnan(v) and (math.isfinite(v) or not finite)
        if ok and minimum is not None:
            ok = v > minimum if low_open else v >= minimum
        if ok and maximum is not None:
            ok = v < maximum if high_open else v <= maximum
    if not ok:
        bounds = range_text(minimum, maximum, low_open=low_open, high_open=high_open)
        kind = "a finite number" if finite else "a number"
        raise ValueError(f"{name} must be {kind}{' ' + bounds if bounds else ''}{hint}, got {value!r}")
    return float(value)


def check_choice(name: str, value: T, choices: Iterable[T], *, hint: str = "") -> T:
    """``value`` if it is one of ``choices``, else ``ValueError`` listing them."""
    options = tuple(choices)
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(str, options))}{hint}, got {value!r}")
    return value


def check_flag(name: str, value: Any) -> bool:
    """A real ``bool`` (not ``0``/``1`` or a string, which are usually a misplaced argument)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_rate(name: str, value: Any, *, optional: bool = False) -> None:
    """A learning rate: a positive finite number (or ``None`` where ``optional``)."""
    if optional and value is None:
        return
    if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive number{' or None' if optional else ''}, got {value!r}")
