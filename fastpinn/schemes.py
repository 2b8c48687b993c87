"""Loss-weighting schemes: the paper's four (PINN, MA, ID, DN; Deguchi & Asai 2023) and published others.

A scheme is a small validated value object; :class:`fastpinn.Weighter` turns it into weights. The scheme
interface: a gradient-statistics scheme (``reads == "stats"``) implements
``candidate(stats[S, K, N_STATS], lam_applied[S, K], reference, numel) -> (hat[S, K], valid[S, K])``, a few
tensor operations on the tiny statistics; everything else -- the EMA, per-term bias correction, the update
interval ``tau``, the adaptive-term mask, the reference term, skip counting of invalid candidates and the
state -- is shared (:class:`fastpinn.Weighter` and the scheme-free compiled op ``fastpinn::ema_update``).
Adding such a scheme is one class here plus its entry in :func:`scheme_from_name`.

For the paper's dynamic schemes the candidate weight of an adaptive term ``j`` against the reference term
``r`` (the PDE residual by default) is computed from the per-term gradients ``g = grad_theta L``:

* ``MA``: ``max|g_r| / (lam_j * mean|g_j|)`` (eq. 15, ``form="paper"``) or ``max|g_r| / mean|g_j|``
  (``form="wang"``, Wang et al.'s code), with ``lam_j`` the weight currently applied to the term;
* ``ID``: ``std(g_r) / std(g_j)`` (sample standard deviations);
* ``DN``: ``||g_r||_p / ||g_j||_p``.

and smoothed as ``lam <- beta * lam + (1 - beta) * candidate`` every ``tau`` epochs; with
``bias_correction`` the applied weight is ``lam / (1 - beta^n)`` where ``n`` counts the term's own
(valid) updates.

Other gradient-statistics schemes: :class:`LRA` (Wang, Teng & Perdikaris 2021) and :class:`GradNormW`
(Wang et al. 2023, "An expert's guide to training PINNs").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from .ops import layout as L

__all__ = ["Scheme", "PINN", "MA", "ID", "DN", "LRA", "GradNormW", "DynamicScheme", "scheme_from_name",
           "SCHEME_NAMES"]


def _check_beta(beta: float) -> float:
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 <= float(beta) < 1.0:
        raise ValueError(f"beta must be a number in [0, 1), got {beta!r}")
    return float(beta)


def _check_tau(tau: int) -> int:
    if isinstance(tau, bool) or not isinstance(tau, int) or tau < 1:
        raise ValueError(f"tau must be an integer >= 1 (update every tau epochs), got {tau!r}")
    return tau


def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 < float(alpha) <= 1.0:
        raise ValueError(f"alpha must be a number in (0, 1], got {alpha!r}")
    return float(alpha)


def _ratio(num: Tensor, den: Tensor, stats: Tensor, reference: Optional[int]) -> tuple[Tensor, Tensor]:
    """``hat = num[:, None] / den`` (``num[S]`` or ``[S, 1]``, ``den[S, K]``) and its validity: the rows read
    (term ``j`` and, if given, the reference) have no NaN/Inf entries, and ``num``, ``den`` are finite and > 0.
    A zero or non-finite statistic makes the candidate invalid: the term keeps its weight and is counted."""
    num = num.reshape(num.shape[0], 1)
    nonfinite = stats[:, :, L.NONFINITE]
    valid = (nonfinite == 0) & torch.isfinite(den) & (den > 0) & torch.isfinite(num) & (num > 0)
    if reference is not None:
        valid = valid & (nonfinite[:, reference] == 0).unsqueeze(1)
    return num / den, valid


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
    """Base of the gradient-statistics schemes: ``lam <- beta lam + (1 - beta) hat`` every ``tau`` epochs.

    Subclasses implement :meth:`candidate`. Class attributes: ``reads`` (what the step must give the
    Weighter: ``"stats"`` = per-term gradients G[S, K, P] through their fused statistics) and
    ``uses_reference`` (False: every term, the reference included, is adaptive by default).
    """

    beta: float = 0.9
    bias_correction: bool = False
    tau: int = 10

    dynamic = True
    reads = "stats"
    uses_reference = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", _check_beta(self.beta))
        _check_flag(self.bias_correction, "bias_correction")
        _check_tau(self.tau)

    @property
    def p(self) -> float:  # exponent of the NORM_P statistic the scheme reads (irrelevant for MA and ID)
        return 2.0

    def candidate(self, stats: Tensor, lam_applied: Tensor, reference: int, numel: int) -> tuple[Tensor, Tensor]:
        """Candidate weights ``hat[S, K]`` and their validity ``valid[S, K]`` (bool) from the statistics
        ``stats[S, K, N_STATS]`` of gradient rows of length ``numel``; ``lam_applied[S, K]`` are the weights
        applied now. Entries of non-target terms are ignored. Must not synchronise with the host."""
        raise NotImplementedError


@dataclass(frozen=True)
class MA(DynamicScheme):
    """Max-over-mean weights (Wang et al. 2021), eq. 15 of the paper by default."""

    form: str = "paper"

    name = "ma"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.form not in ("paper", "wang"):
            raise ValueError(f"form must be 'paper' (eq. 15: divide by the applied weight) or 'wang', got {self.form!r}")

    def candidate(self, stats: Tensor, lam_applied: Tensor, reference: int, numel: int) -> tuple[Tensor, Tensor]:
        # max|g_r| / (c_j mean|g_j|), c_j = lam_applied (eq. 15) or 1 (Wang et al.'s code)
        den = stats[:, :, L.SUM_ABS] / numel
        if self.form == "paper":
            den = den * lam_applied
        return _ratio(stats[:, reference, L.MAX_ABS], den, stats, reference)


@dataclass(frozen=True)
class ID(DynamicScheme):
    """Inverse-Dirichlet weights: ratio of sample standard deviations of the gradients."""

    name = "id"

    def candidate(self, stats: Tensor, lam_applied: Tensor, reference: int, numel: int) -> tuple[Tensor, Tensor]:
        # Bessel-corrected sample std; numel == 1 gives NaN -> invalid, the honest outcome.
        m2 = stats[:, :, L.M2]
        std = (m2 / (numel - 1)).sqrt() if numel > 1 else torch.full_like(m2, math.nan)
        return _ratio(std[:, reference], std, stats, reference)


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

    def candidate(self, stats: Tensor, lam_applied: Tensor, reference: int, numel: int) -> tuple[Tensor, Tensor]:
        norm = stats[:, :, L.NORM_P]
        return _ratio(norm[:, reference], norm, stats, reference)

    def __repr__(self) -> str:
        return f"DN(beta={self.beta}, p={self.p_norm}, bias_correction={self.bias_correction}, tau={self.tau})"


@dataclass(frozen=True)
class LRA(DynamicScheme):
    """Learning-rate annealing, Wang, Teng & Perdikaris 2021 (SIAM J. Sci. Comput. 43, A3055), Algorithm 1.

    ``hat_j = max|grad L_r| / mean|grad L_j|`` (``r`` the reference term, the PDE residual) and
    ``lam_j <- (1 - alpha) lam_j + alpha hat_j`` with ``alpha = 0.9`` in the paper, i.e. the shared EMA with
    ``beta = 1 - alpha``. The same formula as ``MA(form="wang")``, as a named scheme with the paper's
    parameter. ``tau``: update every ``tau`` epochs (the paper's code updates every 10 iterations).
    """

    alpha: float = 0.9

    name = "lra"

    def __init__(self, alpha: float = 0.9, tau: int = 10, bias_correction: bool = False) -> None:
        a = _check_alpha(alpha)
        object.__setattr__(self, "alpha", a)
        object.__setattr__(self, "beta", 1.0 - a)
        object.__setattr__(self, "bias_correction", bias_correction)
        object.__setattr__(self, "tau", tau)
        self.__post_init__()

    def candidate(self, stats: Tensor, lam_applied: Tensor, reference: int, numel: int) -> tuple[Tensor, Tensor]:
        return _ratio(stats[:, reference, L.MAX_ABS], stats[:, :, L.SUM_ABS] / numel, stats, reference)

    def __repr__(self) -> str:
        return f"LRA(alpha={self.alpha}, tau={self.tau}, bias_correction={self.bias_correction})"


@dataclass(frozen=True)
class GradNormW(DynamicScheme):
    """Gradient-norm weighting, Wang et al. 2023, "An expert's guide to training physics-informed neural
    networks" (arXiv:2308.08468), Algorithm 1 (not Chen et al.'s trainable GradNorm).

    ``hat_j = sum_k ||grad L_k||_2 / ||grad L_j||_2`` over all ``K`` terms (no reference term: every term is
    adaptive by default, the PDE residual included) and ``lam_j <- alpha lam_j + (1 - alpha) hat_j`` with
    ``alpha = 0.9``, i.e. the shared EMA with ``beta = alpha``, every ``f = tau`` steps (``f = 1000`` in
    the paper, also the default here). ``reduce="mean"`` divides the sum by ``K`` (the candidates shrink by
    the factor ``K``; one public implementation does this). A term with a zero or non-finite norm keeps its
    weight; a non-finite norm of any term makes the sum, hence every candidate, invalid.
    """

    alpha: float = 0.9
    reduce: str = "sum"

    name = "gradnorm-w"
    uses_reference = False

    def __init__(self, alpha: float = 0.9, tau: int = 1000, reduce: str = "sum",
                 bias_correction: bool = False) -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) < 1.0:
            raise ValueError(f"alpha must be a number in [0, 1), got {alpha!r}")
        if reduce not in ("sum", "mean"):
            raise ValueError(f"reduce must be 'sum' (the paper) or 'mean' (divide by K), got {reduce!r}")
        object.__setattr__(self, "alpha", float(alpha))
        object.__setattr__(self, "beta", float(alpha))
        object.__setattr__(self, "bias_correction", bias_correction)
        object.__setattr__(self, "tau", tau)
        object.__setattr__(self, "reduce", reduce)
        self.__post_init__()

    def candidate(self, stats: Tensor, lam_applied: Tensor, reference: int, numel: int) -> tuple[Tensor, Tensor]:
        norm = stats[:, :, L.NORM_P]  # p = 2
        total = norm.sum(dim=1)
        if self.reduce == "mean":
            total = total / norm.shape[1]
        hat, valid = _ratio(total, norm, stats, None)
        # The sum reads every row: one non-finite row invalidates every candidate of the member.
        return hat, valid & (stats[:, :, L.NONFINITE] == 0).all(dim=1, keepdim=True)

    def __repr__(self) -> str:
        return (f"GradNormW(alpha={self.alpha}, tau={self.tau}, reduce={self.reduce!r}, "
                f"bias_correction={self.bias_correction})")


Scheme = Union[PINN, MA, ID, DN, LRA, GradNormW]

#: Names accepted by :func:`scheme_from_name` (and the CLI's ``--scheme``).
SCHEME_NAMES = ("pinn", "ma", "id", "dn", "lra", "gradnorm-w")


def scheme_from_name(
    name: str,
    *,
    beta: float = 0.9,
    tau: int = 10,
    p: float = 2.0,
    bias_correction: bool = False,
    ma_form: str = "paper",
    alpha: Optional[float] = None,
    reduce: str = "sum",
) -> Scheme:
    """Build a scheme from its command-line name (one of :data:`SCHEME_NAMES`).

    ``beta``, ``p``, ``ma_form`` are the paper schemes' parameters; ``alpha`` is LRA's and GradNormW's
    (their papers' EMA parameter; ``None``: the paper's 0.9), ``reduce`` GradNormW's; ``tau`` all
    dynamic schemes'.
    """
    if name == "pinn":
        return PINN()
    if name == "ma":
        return MA(beta=beta, bias_correction=bias_correction, tau=tau, form=ma_form)
    if name == "id":
        return ID(beta=beta, bias_correction=bias_correction, tau=tau)
    if name == "dn":
        return DN(beta=beta, p=p, bias_correction=bias_correction, tau=tau)
    if name == "lra":
        return LRA(alpha=0.9 if alpha is None else alpha, tau=tau, bias_correction=bias_correction)
    if name == "gradnorm-w":
        return GradNormW(alpha=0.9 if alpha is None else alpha, tau=tau, reduce=reduce,
                         bias_correction=bias_correction)
    raise ValueError(f"scheme must be one of {', '.join(repr(n) for n in SCHEME_NAMES)}, got {name!r}")
