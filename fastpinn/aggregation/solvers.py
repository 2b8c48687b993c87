"""Gradient-conflict methods as pure, batched functions of the Gram matrix of the per-term gradients.

Every function takes ``gram`` [S, K, K] -- ``G G^T`` for the K per-term gradients (rows of ``G`` [S, K, P]) of
each of S ensemble members, symmetric positive semi-definite, any float dtype, any device -- and returns
``w`` [S, K] float64 on the same device such that the method's update direction is ``d_s = sum_k w[s, k] g_{s,k}``.
Directions are as the papers define them for a *descent* step on ``theta`` (``theta -= lr * d``).

No host syncs: no ``.item()``, no data-dependent Python control flow, no CPU solver, no LAPACK call that checks
its status on the host (see :mod:`.small_linalg`). Small convex problems are solved exactly by enumerating
their 2^K active sets in one batched ``solve_ex`` (MGDA, CAGrad, UPGrad; K <= 10 keeps that below ~1e4
small systems per member), or with a fixed number of damped Newton steps (Nash-MTL) or Jacobi sweeps
(IMTL-G, Aligned-MTL, ConFIG). Where a problem is degenerate (zero rows, duplicate rows, rank-deficient Gram)
each function says what it returns; none returns NaN or inf for a finite PSD input.

Tolerances are argued per function; the tests (tests/test_aggregation_solvers.py) check them against NumPy
transcriptions of the papers (tests/aggregation_reference.py), optimality certificates, TorchJD and conflictfree.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..validation import check_choice, check_int, check_number, check_optional_int
from .small_linalg import EPS64, as_gram, pinv_apply, robust_quadratic, solve, subset_masks, symmetric_eig

__all__ = ["mean_weights", "pcgrad_weights", "mgda_weights", "cagrad_weights", "imtl_g_weights",
           "aligned_mtl_weights", "nash_mtl_weights", "upgrad_weights", "config_weights", "dcgd_weights",
           "METHODS"]

MAX_ENUMERATED_TERMS = 12  # 2^12 active sets per member; beyond that the enumeration is the wrong tool


def _check_enumerable(k: int, method: str) -> None:
    if k > MAX_ENUMERATED_TERMS:
        raise ValueError(f"{method}: the number of terms K must be <= {MAX_ENUMERATED_TERMS} for the exact "
                         f"active-set solver, got {k}")


def _zero_safe_inverse(x: Tensor) -> Tensor:
    """``1/x`` where ``x > 0``, else 0 (a zero gradient has no direction)."""
    pos = x > 0
    return torch.where(pos, 1.0 / torch.where(pos, x, torch.ones_like(x)), torch.zeros_like(x))


def _safe_divide(num: Tensor, den: Tensor) -> Tensor:
    """``num/den`` where ``den != 0``, else 0."""
    nz = den != 0
    return torch.where(nz, num / torch.where(nz, den, torch.ones_like(den)), torch.zeros_like(num))


def mean_weights(gram: Tensor, reduction: str = "mean") -> Tensor:
    """Plain gradient descent on the mean (``w = 1/K``) or the sum (``w = 1``) of the terms. [S, K]."""
    check_choice("reduction", reduction, ("mean", "sum"))
    a = as_gram(gram)
    k = a.shape[-1]
    return torch.full(a.shape[:-1], 1.0 / k if reduction == "mean" else 1.0, dtype=a.dtype, device=a.device)


def pcgrad_weights(gram: Tensor, order: Tensor) -> Tensor:
    """PCGrad (Yu et al., NeurIPS 2020, Algorithm 1): ``d = sum_i g_i^PC``.

    For each term i, ``g_i^PC`` starts at ``g_i`` and, for each other term j in a random order, if
    ``g_i^PC . g_j < 0`` is replaced by ``g_i^PC - (g_i^PC . g_j / |g_j|^2) g_j``. Every step is linear in the
    rows of G, so ``g_i^PC = sum_k C[i, k] g_k`` and only the coefficients C are tracked (``g_i^PC . g_j =
    (C A)[i, j]``). ``order``: LongTensor [S, K] (one permutation per member, used for every i, the i itself
    skipped) or [S, K, K] (``order[s, i]`` the permutation for term i, as the paper and TorchJD draw one per
    i). The caller draws the permutations from its seeded generator. The sum (not the mean) of the projected
    gradients, as in the paper and TorchJD. A zero ``g_j`` projects nothing. Exact up to rounding (K^2
    multiply-adds per step), no tolerance beyond float64 rounding.
    """
    a = as_gram(gram)
    s, k = a.shape[:2]
    if not isinstance(order, Tensor) or order.shape not in ((s, k), (s, k, k)):
        shape = tuple(order.shape) if isinstance(order, Tensor) else type(order).__name__
        raise ValueError(f"order must be a LongTensor of shape [S, K] or [S, K, K] = {[s, k]} or {[s, k, k]}, "
                         f"got {shape}")
    order = order.to(a.device, torch.long)
    if order.dim() == 2:
        order = order.unsqueeze(1).expand(s, k, k)
    coef = torch.eye(k, dtype=a.dtype, device=a.device).expand(s, k, k).clone()  # coef[s, i] = C[i, :]
    diag = torch.diagonal(a, dim1=-2, dim2=-1)
    inv_sq = _zero_safe_inverse(diag)  # 1/|g_j|^2, 0 for a zero row
    rows = torch.arange(k, device=a.device).expand(s, k)
    for t in range(k):
        j = order[:, :, t]  # [S, K(i)]: the term projected against at step t, for each i
        a_j = torch.gather(a, 1, j.unsqueeze(-1).expand(s, k, k))  # a_j[s, i] = A[j(s, i), :]
        inner = (coef * a_j).sum(-1)  # g_i^PC . g_j
        conflict = (inner < 0) & (j != rows)
        step = torch.where(conflict, inner * torch.gather(inv_sq, 1, j), torch.zeros_like(inner))
        coef = coef.scatter_add(2, j.unsqueeze(-1), -step.unsqueeze(-1))
    return coef.sum(1)


def mgda_weights(gram: Tensor, iters: Optional[int] = None) -> Tensor:
    """MGDA (Desideri 2012; Sener & Koltun, NeurIPS 2018): the min-norm point of the convex hull of the rows.

    ``w = argmin_{w in simplex} w^T A w``, solved exactly: for every non-empty support F the stationary point
    on its affine hull comes from the bordered system ``[[A_FF, 1], [1^T, 0]] [w_F; -l] = [0; 1]`` (non-singular
    whenever the rows in F are affinely independent, which some optimal support always is -- Caratheodory),
    each candidate is projected onto the simplex (clamp, renormalise) and the best feasible one is kept. The
    paper solves the same problem with Frank-Wolfe (Algorithm 2; TorchJD: 100 iterations, stop when the step
    < 1e-3); the exact solution is what Frank-Wolfe converges to. Accuracy: the chosen candidate is feasible
    and its objective exceeds the optimum by at most the solve's rounding (~cond(bordered) * eps relative), and
    for the min-norm point ``|d - d*|^2 <= |d|^2 - |d*|^2``. All-zero gradients: ``w = 1/K`` (d = 0 anyway).
    ``iters`` is accepted for the scheme interface's uniformity and checked, but the exact solver needs none.
    """
    check_optional_int("iters", iters, minimum=1)
    a = as_gram(gram)
    s, k = a.shape[:2]
    _check_enumerable(k, "mgda")
    masks = subset_masks(k, a.device)[1:]  # [M, K], non-empty supports
    m = masks.shape[0]
    fmask = masks.to(a.dtype)
    both = (masks.unsqueeze(-1) & masks.unsqueeze(-2)).unsqueeze(0)  # [1, M, K, K]
    eye = torch.eye(k, dtype=a.dtype, device=a.device)
    top = torch.where(both, a.unsqueeze(1), eye)  # [S, M, K, K]
    border = torch.zeros(s, m, k + 1, k + 1, dtype=a.dtype, device=a.device)
    border[..., :k, :k] = top
    border[..., :k, k] = fmask
    border[..., k, :k] = fmask
    rhs = torch.zeros(s, m, k + 1, dtype=a.dtype, device=a.device)
    rhs[..., k] = 1.0
    x = solve(border, rhs.unsqueeze(-1)).squeeze(-1)[..., :k]
    w = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0) * fmask
    total = w.sum(-1, keepdim=True)
    w = torch.where(total > 0, w / torch.where(total > 0, total, torch.ones_like(total)), fmask / fmask.sum(-1, keepdim=True))
    value = robust_quadratic(a.unsqueeze(1), w)  # [S, M]
    best = value.argmin(-1)
    return torch.gather(w, 1, best.view(s, 1, 1).expand(s, 1, k)).squeeze(1)


def cagrad_weights(gram: Tensor, c: float = 0.5, iters: Optional[int] = None) -> Tensor:
    """CAGrad (Liu et al., NeurIPS 2021, Algorithm 1): ``d = g0 + sqrt(phi)/|g_w| g_w``, ``g0`` the mean gradient.

    ``w = argmin_{w in simplex} g_w . g0 + sqrt(phi) |g_w|`` with ``phi = c^2 |g0|^2`` (Eq. 6), solved
    exactly by enumerating supports: on the affine hull of support F, stationarity ``A_FF w = t (mu 1 - b_F)``
    (``b = A 1/K``, ``t = |g_w|/sqrt(phi)``) with ``1^T w = 1`` and ``w^T A w = phi t^2`` has the closed form of
    one bordered solve with two right-hand sides and one quadratic equation in ``1/t`` (positive root);
    candidates are projected onto the simplex, the best objective wins. ``c`` in [0, 1) as in the paper (c = 0
    is GD on the mean). Returned weights ``1/K + sqrt(phi)/|g_w| w``: the paper's direction, without the
    official code's final rescaling by ``1/(1 + c^2)`` (TorchJD does not rescale either); TorchJD solves the
    same dual with cvxpy/Clarabel. Where ``|g_w|`` vanishes (Pareto-stationary: the hull contains 0) the
    correction is dropped (``d = g0``). Accuracy: as for :func:`mgda_weights` (exact support, one solve).
    ``iters``: as for :func:`mgda_weights`, accepted and unused.
    """
    check_optional_int("iters", iters, minimum=1)
    c = check_number("c", c, minimum=0.0)
    a = as_gram(gram)
    s, k = a.shape[:2]
    _check_enumerable(k, "cagrad")
    b = a.mean(-1)  # A 1/K = G g0
    phi = c * c * b.mean(-1)  # c^2 |g0|^2
    masks = subset_masks(k, a.device)[1:]
    m = masks.shape[0]
    fmask = masks.to(a.dtype)
    both = (masks.unsqueeze(-1) & masks.unsqueeze(-2)).unsqueeze(0)
    eye = torch.eye(k, dtype=a.dtype, device=a.device)
    border = torch.zeros(s, m, k + 1, k + 1, dtype=a.dtype, device=a.device)
    border[..., :k, :k] = torch.where(both, a.unsqueeze(1), eye)
    border[..., :k, k] = -fmask
    border[..., k, :k] = fmask
    # [y; mu] = X0 + sigma X1 with A y - mu 1 = -b, 1^T y = sigma (y = w / t, sigma = 1 / t)
    rhs = torch.zeros(s, m, k + 1, 2, dtype=a.dtype, device=a.device)
    rhs[..., :k, 0] = -b.unsqueeze(1) * fmask
    rhs[..., k, 1] = 1.0
    x = solve(border, rhs)[..., :k, :]
    y0, y1 = x[..., 0], x[..., 1]
    a1 = a.unsqueeze(1)
    qa = (y1 * (a1 @ y1.unsqueeze(-1)).squeeze(-1)).sum(-1)
    qb = (y0 * (a1 @ y1.unsqueeze(-1)).squeeze(-1)).sum(-1)
    qc = (y0 * (a1 @ y0.unsqueeze(-1)).squeeze(-1)).sum(-1) - phi.unsqueeze(1)
    root = torch.sqrt(qb * qb - qa * qc)  # NaN where no stationary point: that candidate is dropped below
    sigma = torch.where(qb > 0, -qc / (qb + root), (root - qb) / qa)  # the positive root, cancellation-free
    w = (y0 + sigma.unsqueeze(-1) * y1) / sigma.unsqueeze(-1)
    w = torch.nan_to_num(w, nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0) * fmask
    total = w.sum(-1, keepdim=True)
    w = torch.where(total > 0, w / torch.where(total > 0, total, torch.ones_like(total)), fmask / fmask.sum(-1, keepdim=True))
    norm_sq = robust_quadratic(a1, w)
    value = (w * b.unsqueeze(1)).sum(-1) + phi.sqrt().unsqueeze(1) * norm_sq.sqrt()
    value = value + 2 * k * EPS64 * (w * b.unsqueeze(1)).abs().sum(-1)
    best = value.argmin(-1)
    w = torch.gather(w, 1, best.view(s, 1, 1).expand(s, 1, k)).squeeze(1)
    gw_sq = (w * (a @ w.unsqueeze(-1)).squeeze(-1)).sum(-1).clamp_min(0)
    scale = a.diagonal(dim1=-2, dim2=-1).sum(-1)
    vanish = gw_sq <= (1e3 * EPS64) * scale
    coef = torch.where(vanish, torch.zeros_like(gw_sq), phi.sqrt() / torch.where(vanish, torch.ones_like(gw_sq), gw_sq).sqrt())
    return 1.0 / k + coef.unsqueeze(-1) * w


def upgrad_weights(gram: Tensor, pref: Optional[Tensor] = None, reg: float = 0.0) -> Tensor:
    """UPGrad (Quinton & Rey, "Jacobian descent for multi-objective optimization", 2024, Eq. 4 and Prop. 1).

    ``d = sum_i pi_J(pref_i g_i)``, ``pi_J`` the projection onto the dual cone ``{x : G x >= 0}``; by the
    paper's Proposition 1, ``pi_J(G^T u) = G^T v`` with ``v = argmin_{v >= u} v^T A v``. Each of these K QPs
    is solved exactly by enumerating which constraints are free: for free set C, ``A_CC v_C = -A_CF u_F``,
    ``v_F = u_F``; candidates clipped to ``v >= u``; the best upper bound of the objective (:func:
    `small_linalg.robust_quadratic`) is kept, so a candidate from a singular ``A_CC`` cannot win by rounding.
    Some optimal v always has linearly independent free rows, so the winning system is non-singular.
    ``w = sum_i v^(i)``. ``pref`` [K] or [S, K]: default ``1/K`` (TorchJD's default preference, the mean).
    ``reg``: TorchJD adds ``reg_eps = 1e-4`` times the identity to the trace-normalised Gram before its
    quadprog solve (its ``QuadprogProjector``, to make quadprog's matrix definite); ``reg=1e-4`` reproduces that,
    the default 0 is the paper. Accuracy: exact support, one LU solve; direction error bounded as for MGDA.
    """
    reg = check_number("reg", reg, minimum=0.0)
    a = as_gram(gram)
    s, k = a.shape[:2]
    _check_enumerable(k, "upgrad")
    if reg > 0:
        trace = a.diagonal(dim1=-2, dim2=-1).sum(-1)
        a = a + (reg * trace).view(s, 1, 1) * torch.eye(k, dtype=a.dtype, device=a.device)
    if pref is None:
        pref = torch.full((s, k), 1.0 / k, dtype=a.dtype, device=a.device)
    else:
        pref = pref.to(a.device, a.dtype).expand(s, k)
    u = torch.diag_embed(pref)  # [S, K, K(i)]: column i is u^(i) = pref_i e_i
    free = subset_masks(k, a.device)  # [M, K]: True = constraint not active
    m = free.shape[0]
    both = (free.unsqueeze(-1) & free.unsqueeze(-2)).unsqueeze(0)
    eye = torch.eye(k, dtype=a.dtype, device=a.device)
    mat = torch.where(both, a.unsqueeze(1), eye)  # [S, M, K, K]
    fixed_u = u.unsqueeze(1) * (~free).to(a.dtype).view(1, m, k, 1)  # u on the active rows, 0 elsewhere
    rhs = torch.where(free.view(1, m, k, 1), -(a.unsqueeze(1) @ fixed_u), u.unsqueeze(1))
    v = solve(mat, rhs)  # [S, M, K, K(i)]
    v = torch.maximum(torch.nan_to_num(v, nan=float("inf")), u.unsqueeze(1)).transpose(-1, -2)  # [S, M, K(i), K]
    value = robust_quadratic(a.view(s, 1, 1, k, k), v)  # [S, M, K(i)]
    best = value.argmin(1)  # [S, K(i)]
    v = torch.gather(v, 1, best.view(s, 1, k, 1).expand(s, 1, k, k)).squeeze(1)  # [S, K(i), K]
    return v.sum(1)


def imtl_g_weights(gram: Tensor) -> Tensor:
    """IMTL-G (Liu et al., ICLR 2021): the combination ``sum w = 1`` whose projections on all unit gradients agree.

    ``g . u_i`` equal for all i means ``A w = c |g_i|``, so ``w = A^+ n / (1^T A^+ n)`` with ``n_i = |g_i|``.
    For full-rank G this is the paper's closed form (Eq. 11 with ``D U^T``); with linearly dependent rows we
    follow TorchJD's generalisation (Quinton & Rey 2024) through the pseudo-inverse (cut-off ``K eps``
    relative, as ``torch.linalg.pinv``). Where ``1^T A^+ n`` vanishes the weights are 0. Accuracy: Jacobi
    eigendecomposition to ~1e-15 relative, so the error is that of the pseudo-inverse, ``~cond(A) eps``.
    """
    a = as_gram(gram)
    norms = a.diagonal(dim1=-2, dim2=-1).clamp_min(0).sqrt()
    v = pinv_apply(a, norms)
    total = v.sum(-1, keepdim=True)
    small = total.abs() <= 1e-12 * v.abs().sum(-1, keepdim=True)
    return torch.where(small, torch.zeros_like(v), v / torch.where(small, torch.ones_like(total), total))


def aligned_mtl_weights(gram: Tensor, pref: Optional[Tensor] = None, scale: str = "min") -> Tensor:
    """Aligned-MTL (Senushkin et al., CVPR 2023, Algorithm 1): align the principal components of G.

    ``A = V L V^T`` on its numerical range (eigenvalues above ``K eps max L``, as TorchJD), ``B = sqrt(sigma)
    V L^-1/2 V^T`` and ``w = B pref`` (``pref`` default ``1/K``). ``scale`` picks sigma: ``"min"`` the smallest
    retained eigenvalue (the paper's ``sigma_min^2``), ``"median"`` the (lower) median, ``"rmse"`` the mean --
    what the authors' code used, per TorchJD's notes. A zero Gram gives ``w = pref`` (B = I, as TorchJD).
    Accuracy: Jacobi eigenpairs (~1e-15 relative); ``B`` amplifies by ``sqrt(max L / min L)``.
    """
    check_choice("scale", scale, ("min", "median", "rmse"))
    a = as_gram(gram)
    s, k = a.shape[:2]
    if pref is None:
        pref = torch.full((s, k), 1.0 / k, dtype=a.dtype, device=a.device)
    else:
        pref = pref.to(a.device, a.dtype).expand(s, k)
    vals, vecs = symmetric_eig(a)
    vals, idx = vals.sort(-1, descending=True)
    vecs = torch.gather(vecs, 2, idx.unsqueeze(1).expand(s, k, k))
    keep = vals > k * EPS64 * vals[..., :1]
    rank = keep.sum(-1)
    kept = torch.where(keep, vals, torch.zeros_like(vals))
    if scale == "min":
        sigma = torch.gather(vals, 1, (rank - 1).clamp_min(0).unsqueeze(-1)).squeeze(-1)
    elif scale == "median":  # torch.median's lower median of the retained (descending) eigenvalues
        sigma = torch.gather(vals, 1, (rank - 1 - (rank - 1) // 2).clamp_min(0).unsqueeze(-1)).squeeze(-1)
    else:
        sigma = kept.sum(-1) / rank.clamp_min(1)
    inv_sqrt = torch.where(keep, torch.where(keep, vals, torch.ones_like(vals)).rsqrt(), torch.zeros_like(vals))
    coords = (vecs.mT @ pref.unsqueeze(-1)).squeeze(-1)
    w = sigma.clamp_min(0).sqrt().unsqueeze(-1) * (vecs @ (inv_sqrt * coords).unsqueeze(-1)).squeeze(-1)
    return torch.where((rank == 0).unsqueeze(-1), pref, w)


def nash_mtl_weights(gram: Tensor, iters: int = 50, max_norm: float = 0.0, reg: float = 1e-12) -> Tensor:
    """Nash-MTL (Navon et al., ICML 2022, Eq. 3 / Algorithm 1): ``alpha > 0`` with ``alpha_i (A alpha)_i = 1``.

    That is the minimiser of the strictly convex, self-concordant ``phi(a) = a^T A a / 2 - sum log a_i``
    (gradient ``A a - 1/a``), found with ``iters`` damped Newton steps (Nesterov's step ``1/(1 + lambda)``
    while the Newton decrement ``lambda >= 1/4``, full steps after; every iterate stays positive). With
    ``alpha = beta / |g_i|`` the equation becomes ``beta_i (C beta)_i = 1`` on the cosine matrix C, so the
    iteration (started at ``beta = 1``, the answer for orthogonal gradients) never sees the gradients'
    magnitudes. ``reg`` times the identity is added to C, so that two exactly opposed rows (where the
    bargaining problem has no solution and the weights diverge) give large finite weights whose combination
    vanishes; a zero gradient gets weight 0.
    The authors' code instead runs up to 20 convex-concave steps with cvxpy/ECOS, warm-started from
    the previous training step (TorchJD copies it; it stops at ``|A a - 1/a| < 1e-3``), and recomputes only
    every ``update_weights_every`` steps -- a caller's schedule, not part of this function. ``max_norm > 0``
    scales w down so that ``|d| <= max_norm`` (the code's clipping; 0 = off, the paper). Accuracy: the tests
    check ``|a * (A a) - 1| < 1e-8`` after the default 50 steps for cosine matrices with condition up to 1e8
    (any gradient magnitudes: the iteration runs on the cosine matrix ``C``, ``alpha = beta / |g_i|``).
    Beyond that ``reg`` (relative to the unit diagonal of ``C``) dominates the error, by ``reg * beta_i^2``.
    """
    iters = check_int("iters", iters, minimum=1)
    max_norm = check_number("max_norm", max_norm, minimum=0.0)
    reg = check_number("reg", reg, minimum=0.0)
    a = as_gram(gram)
    s, k = a.shape[:2]
    # alpha = beta / |g_i| turns alpha_i (A alpha)_i = 1 into beta_i (C beta)_i = 1 with C the cosine matrix:
    # the gradients' magnitudes (which differ by orders in a PINN) leave the iteration
    inv_norm = _zero_safe_inverse(a.diagonal(dim1=-2, dim2=-1).clamp_min(0).sqrt())
    zero_row = inv_norm == 0
    eye = torch.eye(k, dtype=a.dtype, device=a.device)
    cosine = inv_norm.unsqueeze(-1) * a * inv_norm.unsqueeze(-2) + torch.diag_embed(zero_row.to(a.dtype))
    cosine = cosine + reg * eye
    beta = torch.ones(s, k, dtype=a.dtype, device=a.device)
    for _ in range(iters):
        grad = (cosine @ beta.unsqueeze(-1)).squeeze(-1) - 1.0 / beta
        hess = cosine + torch.diag_embed(beta.pow(-2))
        step = solve(hess, grad.unsqueeze(-1)).squeeze(-1)
        decrement = (grad * step).sum(-1, keepdim=True).clamp_min(0).sqrt()
        damping = torch.where(decrement < 0.25, torch.ones_like(decrement), 1.0 / (1.0 + decrement))
        beta = (beta - damping * step).clamp_min(torch.finfo(torch.float64).tiny)
    w = beta * inv_norm  # a zero gradient gets weight 0
    if max_norm > 0:
        norm = (w * (a @ w.unsqueeze(-1)).squeeze(-1)).sum(-1, keepdim=True).clamp_min(0).sqrt()
        w = torch.where(norm > max_norm, w * max_norm / torch.where(norm > 0, norm, torch.ones_like(norm)), w)
    return w


def config_weights(gram: Tensor, pref: Optional[Tensor] = None) -> Tensor:
    """ConFIG (Liu, Chu & Thuerey, ICLR 2025, Eq. 2): the direction at equal angles to all gradients.

    ``U`` the unit rows (zero rows stay zero), ``b = U^+ pref`` (``pref`` default ones: the least-squares
    solution of ``U b = 1``), ``d = (sum_i g_i . b_hat) b_hat``. With ``D = diag(|g_i|)`` and the cosine
    matrix ``C = D^+ A D^+``, ``b = G^T D^+ C^+ pref``, so ``w = c (1^T A c) / (c^T A c)``, ``c = D^+ C^+ pref``.
    The reference code (conflictfree) uses ``torch.linalg.lstsq`` on U, the minimum-norm solution for
    full-rank U and the pseudo-inverse one (``rcond = K eps``) in general, as here. M-ConFIG (momentum,
    one backward per step) is stateful and lives with the scheme, not here. Accuracy: as :func:`pinv_apply`.
    """
    a = as_gram(gram)
    s, k = a.shape[:2]
    if pref is None:
        pref = torch.ones((s, k), dtype=a.dtype, device=a.device)
    else:
        pref = pref.to(a.device, a.dtype).expand(s, k)
    inv_norm = _zero_safe_inverse(a.diagonal(dim1=-2, dim2=-1).clamp_min(0).sqrt())
    cosine = inv_norm.unsqueeze(-1) * a * inv_norm.unsqueeze(-2)
    coef = inv_norm * pinv_apply(cosine, pref)
    ac = (a @ coef.unsqueeze(-1)).squeeze(-1)
    return coef * _safe_divide(ac.sum(-1), (coef * ac).sum(-1)).unsqueeze(-1)


def dcgd_weights(gram: Tensor, variant: str = "center") -> Tensor:
    """Dual cone gradient descent (Hwang & Lim, NeurIPS 2024) with ``g_r = g_0`` (PDE residual) and ``g_b = sum_{k>=1} g_k``.

    Everything reads ``|g_r|^2 = A_00``, ``|g_b|^2 = sum_{i,j>=1} A_ij`` and ``g_r . g_b = sum_{j>=1} A_0j``.
    With ``g = g_r + g_b`` and ``x_perp_y = x - (x . y / |y|^2) y``:

    * ``"projection"``: ``g_r_perp_b`` if ``g . g_b < 0``, else ``g_b_perp_r`` if ``g . g_r < 0``, else ``g``
      (the projection of g onto the dual cone's boundary it violates);
    * ``"average"``: ``(g_r_perp_b + g_b_perp_r)/2`` if g leaves the dual cone, else ``g``;
    * ``"center"``: the projection of ``g`` on the cone's bisector ``g_c = g_r/|g_r| + g_b/|g_b|``.

    As in the authors' code (which the paper's Algorithms 1-3 match); their code adds 1e-8 to the norms, here
    a zero ``g_r`` or ``g_b`` contributes no direction instead, and exactly opposed ``g_r, g_b`` (``g_c = 0``)
    give ``d = 0`` for ``"center"``. Closed form: exact up to rounding. Needs K >= 2.
    """
    check_choice("variant", variant, ("center", "projection", "average"))
    a = as_gram(gram)
    s, k = a.shape[:2]
    if k < 2:
        raise ValueError(f"dcgd needs K >= 2 terms (the PDE residual and at least one other), got {k}")
    rr = a[:, 0, 0]
    rb = a[:, 0, 1:].sum(-1)
    bb = a[:, 1:, 1:].sum((-1, -2))
    if variant == "center":
        ir = _zero_safe_inverse(rr.clamp_min(0).sqrt())
        ib = _zero_safe_inverse(bb.clamp_min(0).sqrt())
        center_sq = ir * ir * rr + 2 * ir * ib * rb + ib * ib * bb  # |g_c|^2
        center_dot_g = ir * (rr + rb) + ib * (rb + bb)  # g_c . (g_r + g_b)
        ratio = _safe_divide(center_dot_g, center_sq)
        ratio = torch.where(center_sq > 1e-12 * (ir * ir * rr + ib * ib * bb), ratio, torch.zeros_like(ratio))
        alpha, beta = ratio * ir, ratio * ib
    else:
        ir2, ib2 = _zero_safe_inverse(rr), _zero_safe_inverse(bb)
        g_dot_b, g_dot_r = rb + bb, rr + rb
        one = torch.ones_like(rr)
        r_perp_b = (one, -rb * ib2)  # (coefficient of g_r, coefficient of g_b)
        b_perp_r = (-rb * ir2, one)
        if variant == "projection":
            alpha = torch.where(g_dot_b < 0, r_perp_b[0], torch.where(g_dot_r < 0, b_perp_r[0], one))
            beta = torch.where(g_dot_b < 0, r_perp_b[1], torch.where(g_dot_r < 0, b_perp_r[1], one))
        else:
            out = (g_dot_b < 0) | (g_dot_r < 0)
            alpha = torch.where(out, 0.5 * (r_perp_b[0] + b_perp_r[0]), one)
            beta = torch.where(out, 0.5 * (r_perp_b[1] + b_perp_r[1]), one)
    return torch.cat([alpha.unsqueeze(-1), beta.unsqueeze(-1).expand(s, k - 1)], dim=-1)


METHODS = {
    "mean": mean_weights, "pcgrad": pcgrad_weights, "mgda": mgda_weights, "cagrad": cagrad_weights,
    "imtl-g": imtl_g_weights, "aligned-mtl": aligned_mtl_weights, "nash-mtl": nash_mtl_weights,
    "upgrad": upgrad_weights, "config": config_weights, "dcgd": dcgd_weights,
}
