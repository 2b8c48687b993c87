"""The loss-weighting schemes of Deguchi & Asai (2023): PINN, MA-PINN, ID-PINN and DN-PINN.

A scheme is a small validated value object; :class:`fastpinn.Weighter` turns it into weights.
For the dynamic schemes the candidate weight of an adaptive term ``j`` against the reference term
``r`` (the PDE residual by default) is computed from the per-term gradients ``g = grad_theta L``:

* ``MA``: ``max|g_r| / (lam_j * mean|g_j|)`` (eq. 15, ``form="paper"``) or ``max|g_r| / mean|g_j|``
  (``form="wang"``, Wang et al.'s code), with ``lam_j`` the weight currently applied to the term;
* ``ID``: ``std(g_r) / std(g_j)`` (sample standard deviations);
* ``DN``: ``||g_r||_p / ||g_j||_p``.

and smoothed as ``lam <- beta * lam + (1 - beta) * candidate`` every ``tau`` epochs; with
``bias_correction`` the applied weight is ``lam / (1 - beta^n)`` where ``n`` counts updates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Union

from .ops import layout

__all__ = ["Scheme", "PINN", "MA", "ID", "DN", "DynamicScheme", "scheme_from_name"]


def _check_beta(beta: float) -> float:
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 <= float(beta) < 1.0:
        raise ValueError(f"beta must be a number in [0, 1), got {beta!r}")
    return float(beta)


def _check_tau(tau: int) -> int:
    if isinstance(tau, bool) or not isinstance(tau, int) or tau < 1:
        raise ValueError(f"tau must be an integer >= 1 (update every tau epochs), got {tau!r}")
    return tau


def _check_flag(value: bool, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


@dataclass(frozen=True)
class PINN:
    """Fixed weights. ``weights``: one per loss term (``None``: all 1)."""

    weights: Optional[Sequence[float]] = None

    name = "pinn"
    dynamic = False

    def __post_init__(self) -> None:
        if self.weights is not None:
            ws = tuple(float(w) for w in self.weights)
            if not all(math.isfinite(w) and w >= 0 for w in ws):
                raise ValueError(f"weights must be finite numbers >= 0, got {list(self.weights)}")
            object.__setattr__(self, "weights", ws)


@dataclass(frozen=True)
class DynamicScheme:
    beta: float = 0.9
    bias_correction: bool = False
    tau: int = 10

    dynamic = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", _check_beta(self.beta))
        _check_flag(self.bias_correction, "bias_correction")
        _check_tau(self.tau)

    @property
    def code(self) -> int:  # scheme code of the compiled op
        raise NotImplementedError

    @property
    def p(self) -> float:  # exponent of the NORM_P statistic the scheme reads (irrelevant for MA and ID)
        return 2.0

    @property
    def ma_form(self) -> int:
        return layout.MA_FORM_PAPER


@dataclass(frozen=True)
class MA(DynamicScheme):
    """Max-over-mean weights (Wang et al. 2021), eq. 15 of the paper by default."""

    form: str = "paper"

    name = "ma"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.form not in ("paper", "wang"):
            raise ValueError(f"form must be 'paper' (eq. 15: divide by the applied weight) or 'wang', got {self.form!r}")

    @property
    def code(self) -> int:
        return layout.SCHEME_MA

    @property
    def ma_form(self) -> int:
        return layout.MA_FORM_PAPER if self.form == "paper" else layout.MA_FORM_WANG


@dataclass(frozen=True)
class ID(DynamicScheme):
    """Inverse-Dirichlet weights: ratio of sample standard deviations of the gradients."""

    name = "id"

    @property
    def code(self) -> int:
        return layout.SCHEME_ID


@dataclass(frozen=True)
class DN(DynamicScheme):
    """Dynamic norm-based weights: ratio of L^p norms of the gradients (``p >= 1`` or ``math.inf``)."""

    p_norm: float = 2.0

    name = "dn"

    def __init__(self, beta: float = 0.9, p: float = 2.0, bias_correction: bool = False, tau: int = 10) -> None:
        object.__setattr__(self, "beta", beta)
        object.__setattr__(self, "bias_correction", bias_correction)
        object.__setattr__(self, "tau", tau)
        object.__setattr__(self, "p_norm", p)
        self.__post_init__()

    def __post_init__(self) -> None:
        super().__post_init__()
        p = self.p_norm
        if isinstance(p, bool) or not isinstance(p, (int, float)) or math.isnan(p) or p < 1:
            raise ValueError(f"p must be a number >= 1 or math.inf, got {p!r}")
        object.__setattr__(self, "p_norm", float(p))

    @property
    def p(self) -> float:
        return self.p_norm

    @property
    def code(self) -> int:
        return layout.SCHEME_DN

    def __repr__(self) -> str:
        return f"DN(beta={self.beta}, p={self.p_norm}, bias_correction={self.bias_correction}, tau={self.tau})"


Scheme = Union[PINN, MA, ID, DN]


def scheme_from_name(
    name: str,
    *,
    beta: float = 0.9,
    tau: int = 10,
    p: float = 2.0,
    bias_correction: bool = False,
    ma_form: str = "paper",
) -> Scheme:
    """Build a scheme from its command-line name (``pinn``, ``ma``, ``id``, ``dn``)."""
    if name == "pinn":
        return PINN()
    if name == "ma":
        return MA(beta=beta, bias_correction=bias_correction, tau=tau, form=ma_form)
    if name == "id":
        return ID(beta=beta, bias_correction=bias_correction, tau=tau)
    if name == "dn":
        return DN(beta=beta, p=p, bias_correction=bias_correction, tau=tau)
    raise ValueError(f"scheme must be one of 'pinn', 'ma', 'id', 'dn', got {name!r}")
