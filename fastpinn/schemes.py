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

__all__ = ["Scheme", "PINN", "MA", "ID", "DN", "LRA", "GradNormW", "NTK", "SoftAdapt", "ReLoBRaLo", "Uncertainty",
           "GradNorm", "DynamicScheme",
           "LossScheme", "scheme_from_name", "SCHEME_NAMES", "uniform_draws"]


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


@dataclass(frozen=True)
class NTK(DynamicScheme):
    """NTK weighting, Wang, Yu & Perdikaris 2022 (J. Comput. Phys. 449, 110768), Algorithm 1.

    ``hat_j = sum_k Tr(K_kk) / Tr(K_jj)`` with ``Tr(K_jj) = sum_i ||grad_theta r_j(x_i)||^2`` over the term's
    points (:func:`fastpinn.ntk.term_traces`); every term is adaptive (no reference term). ``per_point=True``
    uses the per-point mean ``Tr(K_jj) / N_j`` instead (documented option: it removes the dependence on the
    number of points per term). ``beta = 0`` (default) sets the weights to the candidates, as in the paper;
    ``beta > 0`` smooths them with the shared EMA. ``subsample``: points per term for the traces (``None``:
    all; cost in :mod:`fastpinn.ntk`). A term with a zero or non-finite trace keeps its weight; a
    non-finite trace makes every candidate of the member invalid (the sum reads all terms).
    """

    beta: float = 0.0
    per_point: bool = False
    subsample: Optional[int] = 128

    name = "ntk"
    reads = "traces"
    uses_reference = False

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_flag(self.per_point, "per_point")
        n = self.subsample
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ValueError(f"subsample must be None or an integer >= 1, got {n!r}")

    def candidate_from_traces(self, traces: Tensor) -> tuple[Tensor, Tensor]:
        """``hat[S, K]`` and ``valid[S, K]`` from ``traces[S, K]``."""
        total = traces.sum(dim=1)
        hat = total.unsqueeze(1) / traces
        valid = (torch.isfinite(traces) & (traces > 0)) & torch.isfinite(traces).all(dim=1, keepdim=True)
        return hat, valid


# ------------------------------------------------------------------------------------------ loss-based schemes

_MOD = 2147483647  # 2^31 - 1: products with the multipliers below stay far inside int64


def uniform_draws(seed: int, member: Tensor, counter: Tensor) -> Tensor:
    """Counter-based uniform numbers in (0, 1), float64: a pure function of ``(seed, member, counter)``.

    Integer tensor operations on the device (multiplicative congruential rounds mod 2^31 - 1 interleaved with
    xor-shifts), so drawing never synchronises with the host, needs no generator state in a checkpoint, is
    safe inside a captured CUDA graph, and gives the same numbers whether update calls are skipped on the host
    or gated on the device (the counter is the member's own update count). ``member``, ``counter``: int64
    tensors of one shape; the result has that shape.
    """
    x = (member * 7919 + counter * 104729 + (int(seed) % _MOD) * 15485863 + 1) % _MOD
    for mult in (48271, 69621, 16807, 48271):
        x = (x * mult) % _MOD
        x = x ^ (x >> 11)
    return (x.to(torch.float64) + 0.5) / _MOD


def _masked_softmax(z: Tensor, target: Tensor) -> Tensor:
    """``K' softmax(z)`` over the target terms (``K'`` of them), 1 elsewhere. ``z[S, K]``, ``target[K]``."""
    n = target.sum().to(z.dtype)
    e = torch.softmax(z.masked_fill(~target.unsqueeze(0), -math.inf), dim=1)
    return torch.where(target.unsqueeze(0), n * e, torch.ones_like(z))


def _losses_ok(losses: Tensor, target: Tensor) -> Tensor:
    """``[S]``: every target loss is finite and > 0 (both schemes divide by losses)."""
    bad = ~(torch.isfinite(losses) & (losses > 0)) & target.unsqueeze(0)
    return ~bad.any(dim=1)


@dataclass(frozen=True)
class LossScheme:
    """Base of the loss-based schemes (``reads == "losses"``): weights from the term losses ``L[S, K]`` alone,
    so a step needs no per-term gradients (one backward of the weighted sum, a PINN-cost step).

    Subclasses implement :meth:`init_state` and :meth:`propose`; :class:`fastpinn.Weighter` applies the
    result under the shared gate, skip counting and state handling (``update_from_losses``). Every term is
    adaptive by default (no reference term); the softmax runs over the adaptive terms.
    """

    tau: int = 1

    dynamic = True
    reads = "losses"
    uses_reference = False
    bias_correction = False

    def __post_init__(self) -> None:
        _check_tau(self.tau)

    def init_state(self, members: int, n_terms: int, dtype: torch.dtype, device) -> dict[str, Tensor]:
        """The scheme's own state tensors (``[S, K]`` / ``[S]``), part of the Weighter's state_dict."""
        return {"prev": torch.ones(members, n_terms, dtype=dtype, device=device),
                "started": torch.zeros(members, dtype=torch.bool, device=device)}

    def initial_weights(self, members: int, n_terms: int, dtype: torch.dtype, device) -> Tensor:
        """``[S, K]`` weights before the first update (1: the unweighted sum)."""
        return torch.ones(members, n_terms, dtype=dtype, device=device)

    def propose(self, losses: Tensor, lam: Tensor, state: dict[str, Tensor], target: Tensor,
                n_updates: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """``(new_lam[S, K], valid[S], new_state)`` from ``losses[S, K]`` (detached) and the current weights
        ``lam``; pure (no in-place changes), no host sync. ``n_updates[S]``: the members' update counts."""
        raise NotImplementedError


@dataclass(frozen=True)
class SoftAdapt(LossScheme):
    """SoftAdapt, Heydari, Thompson & Mehmood 2019 (arXiv:1912.12355).

    ``lam_j = K softmax_j(s_j / T)`` with ``s_j`` the rate of change of term ``j``'s loss since the
    previous update: ``rate="relative"`` (default) ``s_j = (L_j(t) - L_j(t-1)) / L_j(t-1)``, scale-free
    across terms; ``rate="difference"`` the paper's ``s_j = L_j(t) - L_j(t-1)`` (its ``beta`` is ``1/T``).
    The factor ``K`` (the number of adaptive terms) keeps the weights on the scale of the unweighted sum.
    The first update only records the losses (weights stay 1). ``tau``: update every ``tau`` epochs.
    """

    temperature: float = 0.1
    rate: str = "relative"

    name = "softadapt"

    def __post_init__(self) -> None:
        super().__post_init__()
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (math.isfinite(t) and t > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {t!r}")
        object.__setattr__(self, "temperature", float(t))
        if self.rate not in ("relative", "difference"):
            raise ValueError(f"rate must be 'relative' or 'difference', got {self.rate!r}")

    def propose(self, losses, lam, state, target, n_updates):
        prev, started = state["prev"], state["started"]
        diff = losses - prev
        s = diff / prev if self.rate == "relative" else diff
        new_lam = torch.where(started.unsqueeze(1), _masked_softmax(s / self.temperature, target), lam)
        return new_lam, _losses_ok(losses, target), {"prev": losses.to(prev.dtype),
                                                     "started": torch.ones_like(started)}


@dataclass(frozen=True)
class ReLoBRaLo(LossScheme):
    """Relative loss balancing with random lookback, Bischof & Kraus 2021 (arXiv:2110.09813), eqs. 10-12.

    ``lam_j(t) = alpha (rho lam_j(t-1) + (1 - rho) lam_j^(0->t)) + (1 - alpha) lam_j^(t-1->t)`` with
    ``lam^(a->b) = K softmax(L(b) / (T L(a)))`` (``K`` adaptive terms) and ``rho ~ Bernoulli(rho_mean)``
    drawn per member and update on the device (:func:`uniform_draws` with ``seed``, keyed by the member's
    update count: no host sync, no generator state). The first update records ``L(0)`` (weights stay 1);
    ``t - 1`` is the previous update (``tau`` epochs before). Defaults ``alpha = 0.999``,
    ``rho_mean = 0.999``, ``T = 0.1``.
    """

    alpha: float = 0.999
    rho_mean: float = 0.999
    temperature: float = 0.1
    seed: int = 0

    name = "relobralo"

    def __post_init__(self) -> None:
        super().__post_init__()
        for field_name in ("alpha", "rho_mean"):
            v = getattr(self, field_name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"{field_name} must be a number in [0, 1], got {v!r}")
            object.__setattr__(self, field_name, float(v))
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (math.isfinite(t) and t > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {t!r}")
        object.__setattr__(self, "temperature", float(t))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")

    def init_state(self, members, n_terms, dtype, device):
        state = super().init_state(members, n_terms, dtype, device)
        state["initial"] = torch.ones(members, n_terms, dtype=dtype, device=device)
        return state

    def rho(self, n_updates: Tensor) -> Tensor:
        """``[S]`` Bernoulli(rho_mean) draws (0/1 in float64) for the update after ``n_updates[S]`` updates."""
        member = torch.arange(n_updates.shape[0], device=n_updates.device)
        return (uniform_draws(self.seed, member, n_updates) < self.rho_mean).to(torch.float64)

    def propose(self, losses, lam, state, target, n_updates):
        prev, initial, started = state["prev"], state["initial"], state["started"]
        t = self.temperature
        lookback = _masked_softmax(losses / (t * prev), target)
        from_start = _masked_softmax(losses / (t * initial), target)
        rho = self.rho(n_updates).to(lam.dtype).unsqueeze(1)
        blended = self.alpha * (rho * lam + (1 - rho) * from_start) + (1 - self.alpha) * lookback
        go = started.unsqueeze(1)
        new_lam = torch.where(go & target.unsqueeze(0), blended, lam)
        new_initial = torch.where(go, initial, losses.to(initial.dtype))
        return new_lam, _losses_ok(losses, target), {"prev": losses.to(prev.dtype), "initial": new_initial,
                                                     "started": torch.ones_like(started)}


def _adam(x: Tensor, grad: Tensor, m: Tensor, v: Tensor, t: Tensor, lr: float, betas: tuple, eps: float):
    """One Adam step (Kingma & Ba 2015, Algorithm 1) on ``x[S, K]`` with per-member step counts ``t[S]``:
    returns ``(x, m, v, t)`` updated. Tensor operations only (no host sync), so it can be gated by where."""
    b1, b2 = betas
    t1 = t + 1
    m1 = b1 * m + (1 - b1) * grad
    v1 = b2 * v + (1 - b2) * grad * grad
    tf = t1.to(torch.float64).unsqueeze(1)
    corr1 = (1 - torch.pow(b1, tf)).to(x.dtype)
    corr2 = (1 - torch.pow(b2, tf)).to(x.dtype)
    return x - lr * (m1 / corr1) / ((v1 / corr2).sqrt() + eps), m1, v1, t1


def _check_adam(lr: float, betas: tuple, eps: float) -> tuple:
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    b = tuple(betas)
    if len(b) != 2 or not all(isinstance(x, (int, float)) and 0.0 <= x < 1.0 for x in b):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
    if not (isinstance(eps, (int, float)) and eps > 0):
        raise ValueError(f"eps must be a number > 0, got {eps!r}")
    return (float(b[0]), float(b[1]))


@dataclass(frozen=True)
class Uncertainty(LossScheme):
    """Uncertainty weighting, Kendall, Gal & Cipolla 2018 (CVPR), eq. 7 in its log-variance form:
    ``L = sum_j 1/2 exp(-s_j) L_j + 1/2 s_j`` with trainable ``s_j = log sigma_j^2`` (initially 0).

    The gradient with respect to the network is that of ``sum_j lam_j L_j`` with ``lam_j = exp(-s_j) / 2``
    (the ``s_j / 2`` term does not depend on it), so a step is one backward of the weighted sum, a PINN-cost
    step. ``s`` is trained jointly, by Adam (``lr``, ``betas``, ``eps``; torch.optim.Adam's update rule) on
    its exact gradient ``dL/ds_j = (1 - exp(-s_j) L_j) / 2`` -- the same as putting ``s`` into the network's
    optimizer, but inside the Weighter's state (checkpointed, gated on the device, no host sync). As in a
    joint gradient step, the weights applied at a step use ``s`` before that step's update of ``s``.
    ``tau`` must be 1 (``s`` is trained every step).
    """

    lr: float = 1e-3
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8

    name = "uncertainty"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tau != 1:
            raise ValueError(f"tau must be 1 for uncertainty weighting (s is trained every step), got {self.tau!r}")
        object.__setattr__(self, "betas", _check_adam(self.lr, self.betas, self.eps))

    def init_state(self, members, n_terms, dtype, device):
        z = torch.zeros(members, n_terms, dtype=dtype, device=device)
        return {"s": z, "m": z.clone(), "v": z.clone(),
                "t": torch.zeros(members, dtype=torch.int64, device=device)}

    def initial_weights(self, members, n_terms, dtype, device) -> Tensor:
        return torch.full((members, n_terms), 0.5, dtype=dtype, device=device)

    def propose(self, losses, lam, state, target, n_updates):
        s_, m, v, t = state["s"], state["m"], state["v"], state["t"]
        tgt = target.unsqueeze(0)
        new_lam = torch.where(tgt, 0.5 * torch.exp(-s_), lam)  # the weights of this step: s before its update
        grad = torch.where(tgt, 0.5 * (1.0 - torch.exp(-s_) * losses), torch.zeros_like(s_))
        s1, m1, v1, t1 = _adam(s_, grad, m, v, t, self.lr, self.betas, self.eps)
        return new_lam, _losses_ok(losses, target), {"s": s1, "m": m1, "v": v1, "t": t1}


@dataclass(frozen=True)
class GradNorm(LossScheme):
    """GradNorm, Chen, Badrinarayanan, Lee & Rabinovich 2018 (ICML), Algorithm 1: trainable weights ``w_j``.

    With ``G_j = ||grad_W (w_j L_j)|| = w_j ||grad_W L_j||`` on a parameter subset ``W``,
    ``Gbar = mean_j G_j``, ``r_j = Ltilde_j / mean_k Ltilde_k`` and ``Ltilde_j = L_j(t) / L_j(0)``, the weights
    minimise ``L_grad = sum_j |G_j - Gbar r_j^alpha|`` with the target ``Gbar r_j^alpha`` held constant, so
    ``dL_grad/dw_j = sign(G_j - Gbar r_j^alpha) ||grad_W L_j||``; one Adam step (``lr``, ``betas``, ``eps``)
    per training step, then ``w`` is renormalised to ``sum_j w_j = K`` (over the adaptive terms). As in the
    paper, the network's step at time ``t`` uses ``w(t)``, the weights before their own update.

    ``columns = (start, stop)``: ``W`` as a slice of the flat parameter vector ``theta``
    (:meth:`last_hidden_layer` gives the paper's choice, the weights of the last shared layer, for an
    :class:`~fastpinn.network.MLP`); ``None`` uses all parameters. The step gives the Weighter the per-term
    gradients' statistics of those columns and the term losses:
    ``w.update_from_stats(w.statistics(G), P, active, losses=losses)``. ``tau`` must be 1.
    """

    alpha: float = 1.5
    lr: float = 0.025
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    columns: Optional[tuple] = None

    name = "gradnorm"
    reads = "stats"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tau != 1:
            raise ValueError(f"tau must be 1 for GradNorm (w is trained every step), got {self.tau!r}")
        a = self.alpha
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not (math.isfinite(a) and a >= 0):
            raise ValueError(f"alpha must be a finite number >= 0, got {a!r}")
        object.__setattr__(self, "betas", _check_adam(self.lr, self.betas, self.eps))
        if self.columns is not None:
            c = tuple(self.columns)
            if (len(c) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in c)
                    or not 0 <= c[0] < c[1]):
                raise ValueError(f"columns must be None or (start, stop) with 0 <= start < stop, got {self.columns!r}")
            object.__setattr__(self, "columns", c)

    @staticmethod
    def last_hidden_layer(net) -> tuple:
        """``(start, stop)`` of the weight matrix of ``net``'s last hidden layer in ``theta``."""
        offsets = net._offsets
        w_off, b_off, _ = offsets[-2] if len(offsets) >= 2 else offsets[-1]
        return (w_off, b_off)

    def init_state(self, members, n_terms, dtype, device):
        z = torch.zeros(members, n_terms, dtype=dtype, device=device)
        return {"w": torch.ones_like(z), "initial": torch.ones_like(z), "m": z, "v": z.clone(),
                "t": torch.zeros(members, dtype=torch.int64, device=device),
                "started": torch.zeros(members, dtype=torch.bool, device=device)}

    def propose_from_stats(self, stats: Tensor, losses: Tensor, lam: Tensor, state: dict[str, Tensor],
                           target: Tensor, n_updates: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        w, initial, started = state["w"], state["initial"], state["started"]
        tgt = target.unsqueeze(0)
        k = target.sum().to(w.dtype)
        norms = stats[:, :, L.NORM_P]  # ||grad_W L_j||_2 (p = 2)
        initial = torch.where(started.unsqueeze(1), initial, losses)
        G = w * norms
        gbar = torch.where(tgt, G, torch.zeros_like(G)).sum(1, keepdim=True) / k
        ratio = losses / initial
        r = ratio / (torch.where(tgt, ratio, torch.zeros_like(ratio)).sum(1, keepdim=True) / k)
        grad = torch.where(tgt, torch.sign(G - gbar * r.pow(self.alpha)) * norms, torch.zeros_like(G))
        w1, m1, v1, t1 = _adam(w, grad, state["m"], state["v"], state["t"], self.lr, self.betas, self.eps)
        w1 = torch.where(tgt, w1, torch.ones_like(w1))
        w1 = torch.where(tgt, w1 * k / torch.where(tgt, w1, torch.zeros_like(w1)).sum(1, keepdim=True), w1)
        new_lam = torch.where(tgt, w, lam)  # this step's weights: w(t), before its update
        nonfinite = (stats[:, :, L.NONFINITE] != 0) & tgt
        ok_norms = ~((~(torch.isfinite(norms) & (norms > 0)) & tgt) | nonfinite).any(dim=1)
        valid = ok_norms & _losses_ok(losses, target) & torch.isfinite(w1).all(dim=1)
        return new_lam, valid, {"w": w1, "initial": initial, "m": m1, "v": v1, "t": t1,
                                "started": torch.ones_like(started)}


Scheme = Union[PINN, MA, ID, DN, LRA, GradNormW, NTK, SoftAdapt, ReLoBRaLo, Uncertainty, GradNorm]

#: Names accepted by :func:`scheme_from_name` (and the CLI's ``--scheme``).
SCHEME_NAMES = ("pinn", "ma", "id", "dn", "lra", "gradnorm-w", "softadapt", "relobralo", "uncertainty", "ntk",
                "gradnorm")


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
    temperature: float = 0.1,
    seed: int = 0,
) -> Scheme:
    """Build a scheme from its command-line name (one of :data:`SCHEME_NAMES`).

    ``beta``, ``p``, ``ma_form`` are the paper schemes' parameters; ``alpha`` is LRA's and GradNormW's
    (their papers' EMA parameter; ``None``: the paper's 0.9), ``reduce`` GradNormW's; ``tau`` all
    dynamic schemes'; ``temperature`` SoftAdapt's and ReLoBRaLo's, ``seed`` ReLoBRaLo's (its draws of rho).
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
    if name == "softadapt":
        return SoftAdapt(tau=tau, temperature=temperature)
    if name == "relobralo":
        return ReLoBRaLo(tau=tau, alpha=0.999 if alpha is None else alpha, temperature=temperature, seed=seed)
    if name == "uncertainty":
        return Uncertainty()
    if name == "gradnorm":
        return GradNorm(alpha=1.5 if alpha is None else alpha)
    if name == "ntk":
        return NTK(tau=tau, bias_correction=bias_correction)
    raise ValueError(f"scheme must be one of {', '.join(repr(n) for n in SCHEME_NAMES)}, got {name!r}")
