"""Built-in problems: the paper's Burgers, Poisson and Allen-Cahn, a small 1D Poisson, an inverse
Burgers problem (the viscosity trained from data) and a PDE system (Kovasznay flow).

:data:`BUILTIN` is the one registry of the built-in problems (name -> factory): :func:`get`, the run
configuration (``fastpinn.run.config``) and the command line read it.
"""

from __future__ import annotations

import inspect
from typing import Callable

from ..problem import Problem
from .inverse import burgers_inverse
from .kovasznay import kovasznay
from .paper import PROBLEMS, allen_cahn, burgers, poisson
from .poisson1d import poisson1d

__all__ = ["burgers", "poisson", "allen_cahn", "poisson1d", "burgers_inverse", "kovasznay", "get", "PROBLEMS",
           "BUILTIN", "NAMES"]

#: Every built-in problem by name, the paper's three first (``PROBLEMS``: those three only).
BUILTIN: dict[str, Callable[..., Problem]] = {**PROBLEMS, "poisson1d": poisson1d, "burgers_inverse": burgers_inverse,
                                              "kovasznay": kovasznay}
#: The built-in problems' names, in :data:`BUILTIN`'s order.
NAMES: tuple[str, ...] = tuple(BUILTIN)


def get(name: str, seed=0, **kwargs) -> Problem:
    """Build a built-in problem by name (one of :data:`NAMES`); ``seed``: an int, or a list of seeds for an
    ensemble; ``kwargs``: the problem's own options (sizes, epochs, ...)."""
    if name not in BUILTIN:
        raise ValueError(f"problem must be one of {sorted(BUILTIN)}, got {name!r}")
    allowed = [p for p in inspect.signature(BUILTIN[name]).parameters if p != "seed"]
    for key in kwargs:
        if key not in allowed:
            raise ValueError(f"problem {name!r} has no option {key!r}; allowed: {allowed}")
    return BUILTIN[name](seed, **kwargs)
