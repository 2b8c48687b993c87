"""The gradient-conflict solvers (fastpinn.aggregation.solvers) against three kinds of oracle.

1. NumPy transcriptions of the papers (tests/aggregation_reference.py), working on G in parameter space.
2. Optimality certificates where the method is an optimisation problem (MGDA, UPGrad, CAGrad, Nash-MTL):
   these hold whatever an oracle's own stopping rule was.
3. TorchJD and conflictfree, where they implement the method (test-only dependencies; skipped with a reason
   when not importable). TorchJD's UPGrad, CAGrad and Nash-MTL also need quadprog/qpsolvers, cvxpy/clarabel
   and cvxpy/ecos.

Matrices: K = 2..8 rows, P = 50, float32 or float64 G (the Gram always formed in float64, as the fused kernel
does), three families: "random" (Gaussian rows with magnitudes spread over 1e-2..1e2, as PINN terms are),
"conflict" (pairs of nearly opposed rows), "ill" (nearly collinear rows: cosine matrix with condition ~1e6 and
magnitudes over four decades: Gram condition ~1e14). Directions are compared relative to the largest row norm
``s``: an error of ``tol * s`` is a perturbation of the update as large as ``tol`` times the largest gradient.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import aggregation_reference as ref
from fastpinn.aggregation import (METHODS, aligned_mtl_weights, cagrad_weights, config_weights, dcgd_weights,
                                  imtl_g_weights, mean_weights, mgda_weights, nash_mtl_weights, pcgrad_weights,
                                  upgrad_weights)
from fastpinn.aggregation.small_linalg import pinv_apply, symmetric_eig

try:
    import torchjd.aggregation as tjd
except ImportError:  # pragma: no cover - depends on the test environment
    tjd = None
try:
    from conflictfree.grad_operator import ConFIG_update
    from conflictfree.weight_model import WeightModel

    class _Ones(WeightModel):
        def get_weights(self, gradients, losses=None, device=None):
            return torch.ones(gradients.shape[0], dtype=gradients.dtype, device=gradients.device)
except ImportError:  # pragma: no cover
    ConFIG_update = None


def _has(*modules: str) -> bool:
    import importlib.util
    return all(importlib.util.find_spec(m) is not None for m in modules)


needs_torchjd = pytest.mark.skipif(tjd is None, reason="torchjd not installed (test-only dependency, scripts/test.sh)")
needs_conflictfree = pytest.mark.skipif(ConFIG_update is None,
                                        reason="conflictfree not installed (test-only dependency, scripts/test.sh)")

@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """K x K matrices: a thread pool only adds wake-ups (milliseconds per bmm on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


KS = (2, 3, 5, 8)
KINDS = ("random", "conflict", "ill")
DTYPES = (torch.float32, torch.float64)


def jacobian(kind: str, k: int, dtype: torch.dtype, seed: int = 0, p: int = 50) -> torch.Tensor:
    """One test matrix G [K, P] of the given family, in ``dtype``."""
    gen = torch.Generator().manual_seed(1000 * k + 17 * KINDS.index(kind) + seed)
    noise = torch.randn(k, p, generator=gen, dtype=torch.float64)
    if kind == "random":
        rows = noise
        mags = 10.0 ** torch.linspace(-2, 2, k, dtype=torch.float64)
    elif kind == "conflict":
        rows = noise.clone()
        rows[1::2] = -rows[0:k - 1:2] + 0.3 * noise[1::2] if k > 1 else rows[1::2]
        mags = 10.0 ** torch.linspace(-1, 1, k, dtype=torch.float64)
    else:
        rows = noise[:1] + 1e-3 * noise
        mags = 10.0 ** torch.linspace(-2, 2, k, dtype=torch.float64)[torch.randperm(k, generator=gen)]
    rows = rows / rows.norm(dim=1, keepdim=True) * mags.unsqueeze(1)
    return rows.to(dtype)


def gram_of(g: torch.Tensor) -> torch.Tensor:
    g64 = g.to(torch.float64)
    return (g64 @ g64.T).unsqueeze(0)


def direction(weights: torch.Tensor, g: torch.Tensor) -> np.ndarray:
    return (weights[0] @ g.to(torch.float64)).numpy()


def assert_close_direction(d: np.ndarray, d_ref: np.ndarray, g: torch.Tensor, tol: float) -> None:
    scale = g.to(torch.float64).norm(dim=1).max().item()
    err = np.linalg.norm(d - d_ref) / scale
    assert err <= tol, f"direction error {err:.2e} x max|g_i| > {tol:.0e}"


def cases(kinds=KINDS, ks=KS, dtypes=DTYPES):
    return [pytest.param(kind, k, dt, id=f"{kind}-K{k}-{str(dt)[6:]}") for kind in kinds for k in ks for dt in dtypes]


# The external oracles get G in float64 either way (what float32 changes is G itself, which the NumPy tests
# cover in both dtypes), so they run on float64 G only, to keep the file fast.
EXTERNAL = cases(dtypes=(torch.float64,))


# ---------------------------------------------------------------------------------------------------------------
# 1. against the NumPy transcriptions of the papers


@pytest.mark.parametrize("kind,k,dtype", cases())
def test_closed_forms_match_numpy_reference(kind, k, dtype):
    """mean, PCGrad, DCGD, ConFIG and Aligned-MTL are closed forms: agreement to rounding, amplified by the
    conditioning that the method itself has (ConFIG's pseudo-inverse of the cosine matrix, Aligned-MTL's
    ``sqrt(L_max / L_min)``), hence 1e-9 on "random"/"conflict" and 1e-5 on "ill" (cosine condition ~1e6)."""
    g = jacobian(kind, k, dtype)
    gn = g.to(torch.float64).numpy()
    a = gram_of(g)
    tight = 1e-9 if kind != "ill" else 1e-5
    assert_close_direction(direction(mean_weights(a), g), ref.mean_ref(gn), g, 1e-12)
    orders = torch.stack([torch.randperm(k, generator=torch.Generator().manual_seed(i)) for i in range(k)])
    assert_close_direction(direction(pcgrad_weights(a, orders.unsqueeze(0)), g), ref.pcgrad_ref(gn, orders.numpy()),
                           g, 1e-10)
    for variant in ("center", "projection", "average"):
        assert_close_direction(direction(dcgd_weights(a, variant), g), ref.dcgd_ref(gn, variant), g, 1e-10)
    assert_close_direction(direction(config_weights(a), g), ref.config_ref(gn), g, tight)
    for scale in ("min", "median", "rmse"):
        assert_close_direction(direction(aligned_mtl_weights(a, scale=scale), g), ref.aligned_mtl_ref(gn, scale),
                               g, tight)


@pytest.mark.parametrize("kind,k,dtype", cases(kinds=("random", "conflict")))
def test_imtl_g_matches_paper_closed_form(kind, k, dtype):
    """For linearly independent rows the pseudo-inverse form is the paper's Eq. 11-12 (which inverts ``D U^T``)."""
    g = jacobian(kind, k, dtype)
    gn = g.to(torch.float64).numpy()
    d = direction(imtl_g_weights(gram_of(g)), g)
    assert_close_direction(d, ref.imtl_g_paper_ref(gn), g, 1e-8)
    assert_close_direction(d, ref.imtl_g_general_ref(gn), g, 1e-8)


@pytest.mark.parametrize("kind,k,dtype", cases())
def test_upgrad_matches_primal_projection(kind, k, dtype):
    """The NNLS projection in parameter space (Lawson-Hanson, exact active set) and the enumerated dual QP
    agree to rounding times the conditioning of the free rows."""
    g = jacobian(kind, k, dtype)
    tol = 1e-9 if kind != "ill" else 1e-6
    assert_close_direction(direction(upgrad_weights(gram_of(g)), g), ref.upgrad_ref(g.to(torch.float64).numpy()),
                           g, tol)


@pytest.mark.parametrize("kind,k,dtype", cases())
def test_mgda_is_the_min_norm_point(kind, k, dtype):
    """KKT certificate of ``min_{w in simplex} |G^T w|^2``: ``(A w)_i >= w^T A w`` for all i, equality on the
    support; and Frank-Wolfe (the paper's Algorithm 2, 3000 steps) never finds a shorter vector."""
    g = jacobian(kind, k, dtype)
    a = gram_of(g)
    w = mgda_weights(a)[0]
    assert torch.all(w >= 0) and abs(w.sum().item() - 1) < 1e-12
    aw = a[0] @ w
    value = w @ aw
    scale = a[0].diagonal().max()
    assert torch.all(aw >= value - 1e-9 * scale)
    assert torch.all(torch.where(w > 1e-9, (aw - value).abs() <= 1e-9 * scale, True))
    gn = g.to(torch.float64).numpy()
    fw = ref.mgda_frank_wolfe_ref(gn)
    assert value.item() <= fw @ fw + 1e-12 * scale.item()
    if k == 2:
        assert_close_direction(direction(w.unsqueeze(0), g), ref.mgda_two_ref(gn), g, 1e-10)


@pytest.mark.parametrize("kind,k,dtype", cases())
def test_cagrad_attains_the_dual_bound(kind, k, dtype):
    """Strong duality certificate: ``min_i g_i . d = F(w)`` and ``|d - g0| = c |g0|`` mean d solves the primal
    ``max_d min_i g_i . d`` on the ball; SLSQP (the authors' solver) never does better."""
    g = jacobian(kind, k, dtype)
    g64 = g.to(torch.float64)
    c = 0.5
    w = cagrad_weights(gram_of(g), c=c)
    d = w[0] @ g64
    g0 = g64.mean(0)
    assert abs((d - g0).norm().item() - c * g0.norm().item()) <= 1e-10 * g0.norm().item()
    primal = (g64 @ d).min().item()
    d_ref = torch.from_numpy(ref.cagrad_ref(g64.numpy(), c))
    scale = g64.norm(dim=1).max().item() * g0.norm().item()
    assert primal >= (g64 @ d_ref).min().item() - 1e-9 * scale
    # the dual value at the simplex weights recovered from w
    lam = (w[0] - 1.0 / k)
    lam = lam / lam.sum() if lam.sum() > 0 else lam
    gw = lam @ g64
    dual = (gw @ g0 + c * g0.norm() * gw.norm()).item()
    assert abs(primal - dual) <= 1e-9 * scale


@pytest.mark.parametrize("kind,k,dtype", cases())
def test_nash_mtl_solves_the_bargaining_equation(kind, k, dtype):
    """``alpha_i (A alpha)_i = 1`` to 1e-8 (default 50 damped Newton steps, argued in the docstring), and the
    same direction as an independent solver (scipy's exact-Hessian trust region in log alpha, which reaches
    ``|alpha * (A alpha) - 1| ~ 1e-8`` on these matrices: hence 1e-6)."""
    g = jacobian(kind, k, dtype)
    a = gram_of(g)
    alpha = nash_mtl_weights(a)[0]
    assert torch.all(alpha > 0)
    assert (alpha * (a[0] @ alpha) - 1).abs().max().item() < 1e-8
    tol = 1e-6 if kind != "ill" else 1e-5
    d_ref = ref.nash_mtl_ref(g.to(torch.float64).numpy())
    assert_close_direction(direction(alpha.unsqueeze(0), g), d_ref, g, tol)


# ---------------------------------------------------------------------------------------------------------------
# 2. against TorchJD and conflictfree


@needs_torchjd
@pytest.mark.parametrize("kind,k,dtype", EXTERNAL)
def test_matches_torchjd_closed_forms(kind, k, dtype):
    """TorchJD's Mean, IMTLG (pinv), AlignedMTL (eigh; its three scale modes), ConFIG (pinv), PCGrad (fixed
    permutations: TorchJD draws one per task with torch.randperm, replaced here by the same fixed order)."""
    g = jacobian(kind, k, dtype)
    g64 = g.to(torch.float64)
    a = gram_of(g)
    tight = 1e-9 if kind != "ill" else 1e-5
    assert_close_direction(direction(mean_weights(a), g), tjd.Mean()(g64).numpy(), g, 1e-12)
    assert_close_direction(direction(imtl_g_weights(a), g), tjd.IMTLG()(g64).numpy(), g, tight)
    for scale in ("min", "median", "rmse"):
        # On "ill" (Gram eigenvalues down to 1e-15 x the largest) Aligned-MTL with sigma = median or mean
        # multiplies the eigenvectors of the smallest eigenvalues by sqrt(sigma / lambda) ~ 1e7; TorchJD's LAPACK
        # eigh of the Gram resolves them less well than Jacobi (ours agrees with the SVD of G in
        # test_closed_forms_match_numpy_reference, measured 2e-10; TorchJD is off from it by up to 3.1e-3): 1e-2.
        tol = tight if kind != "ill" or scale == "min" else 1e-2
        assert_close_direction(direction(aligned_mtl_weights(a, scale=scale), g),
                               tjd.AlignedMTL(scale_mode=scale)(g64).numpy(), g, tol)
    assert_close_direction(direction(config_weights(a), g), tjd.ConFIG()(g64).numpy(), g, tight)


@needs_torchjd
@pytest.mark.parametrize("k", KS)
def test_pcgrad_matches_torchjd(k, monkeypatch):
    g = jacobian("conflict", k, torch.float64)
    order = torch.randperm(k, generator=torch.Generator().manual_seed(k))
    monkeypatch.setattr(torch, "randperm", lambda n, *args, **kwargs: order.clone())
    expected = tjd.PCGrad()(g).numpy()
    monkeypatch.undo()
    assert_close_direction(direction(pcgrad_weights(gram_of(g), order.unsqueeze(0)), g), expected, g, 1e-12)


@pytest.mark.skipif(tjd is None or not _has("qpsolvers", "quadprog"),
                    reason="torchjd with quadprog/qpsolvers not installed (test-only, scripts/test.sh)")
@pytest.mark.parametrize("kind,k,dtype", EXTERNAL)
def test_upgrad_matches_torchjd(kind, k, dtype):
    """TorchJD solves each QP with quadprog on the trace-normalised Gram plus 1e-4 I; ``reg=1e-4`` is that
    problem, so agreement is to both solvers' rounding (quadprog: dual active set, exact)."""
    g = jacobian(kind, k, dtype)
    tol = 1e-9 if kind != "ill" else 1e-6
    assert_close_direction(direction(upgrad_weights(gram_of(g), reg=1e-4), g),
                           tjd.UPGrad()(g.to(torch.float64)).numpy(), g, tol)


@needs_torchjd
@pytest.mark.parametrize("kind,k", [(kind, k) for kind in KINDS for k in KS])
def test_mgda_no_worse_than_torchjd(kind, k):
    """TorchJD runs Frank-Wolfe (stop when the step < epsilon), which converges slowly; the exact min-norm point
    d* is never longer, and since it is the min-norm point of a convex set, any point d of the set satisfies
    ``|d - d*|^2 <= |d|^2 - |d*|^2`` -- checked for TorchJD's d (up to rounding of the Gram, 1e-12)."""
    g = jacobian(kind, k, torch.float64)
    a = gram_of(g)[0]
    ours = mgda_weights(a.unsqueeze(0))[0]
    theirs = tjd.MGDAWeighting(epsilon=1e-6, max_iters=300)(a)
    v_ours, v_theirs = ours @ a @ ours, theirs @ a @ theirs
    scale = a.diagonal().max()
    assert v_ours <= v_theirs + 1e-14 * scale
    gap = (ours - theirs) @ a @ (ours - theirs)
    assert gap <= v_theirs - v_ours + 1e-12 * scale


@pytest.mark.skipif(tjd is None or not _has("cvxpy", "clarabel"),
                    reason="torchjd with cvxpy/clarabel not installed (test-only, scripts/test.sh)")
@pytest.mark.parametrize("kind,k", [(kind, k) for kind in ("random", "conflict") for k in KS])
def test_cagrad_matches_torchjd(kind, k):
    """TorchJD solves the same dual with cvxpy/Clarabel (interior point). Its default ``norm_eps=1e-4`` returns
    zero weights when ``|g_w| < 1e-4`` on the trace-normalised scale, which fires on rows of spread magnitudes
    (1e-2..1e2) that are not degenerate; with ``norm_eps=0`` it is the plain dual. Ours is at least as good in
    the primal objective, and the directions agree to Clarabel's accuracy (measured <= 4e-6; 1e-4 x max|g|)."""
    g = jacobian(kind, k, torch.float64)
    d = torch.from_numpy(direction(cagrad_weights(gram_of(g), c=0.5), g))
    theirs = tjd.CAGrad(c=0.5, norm_eps=0.0)(g)
    scale = g.norm(dim=1).max().item() * g.mean(0).norm().item()
    assert (g @ d).min().item() >= (g @ theirs).min().item() - 1e-9 * scale
    assert_close_direction(d.numpy(), theirs.numpy(), g, 1e-4)


@pytest.mark.skipif(tjd is None or not _has("cvxpy", "ecos"),
                    reason="torchjd with cvxpy/ecos not installed (test-only, scripts/test.sh)")
@pytest.mark.parametrize("k", (2, 3, 5))
def test_nash_mtl_matches_torchjd(k):
    """TorchJD copies the authors' convex-concave procedure (ECOS). On rows of spread magnitudes it does not
    converge (|alpha * (A alpha) - 1| of 60..7000 on the "random" family, where ours reaches 1e-12), so the
    comparison uses unit rows, where it reaches ~1e-8: directions agree to 1e-6 x max|g| (max_norm off)."""
    import warnings
    g = jacobian("random", k, torch.float64)
    g = g / g.norm(dim=1, keepdim=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = tjd.NashMTL(n_tasks=k, max_norm=0.0, optim_niter=100)(g).numpy()
    assert_close_direction(direction(nash_mtl_weights(gram_of(g)), g), theirs, g, 1e-6)


@needs_conflictfree
@pytest.mark.parametrize("kind,k,dtype", EXTERNAL)
def test_config_matches_conflictfree(kind, k, dtype):
    """conflictfree.ConFIG_update (the authors' package: lstsq on the unit rows, projection length)."""
    g = jacobian(kind, k, dtype)
    g64 = g.to(torch.float64)
    tol = 1e-9 if kind != "ill" else 1e-5
    ones = _Ones()  # conflictfree's EqualWeight returns float32 weights, which its lstsq refuses with float64 rows
    assert_close_direction(direction(config_weights(gram_of(g)), g), ConFIG_update(g64, weight_model=ones).numpy(),
                           g, tol)


# ---------------------------------------------------------------------------------------------------------------
# 3. batching, degenerate input, no host syncs, argument checks


def _all_methods(a: torch.Tensor) -> dict[str, torch.Tensor]:
    k = a.shape[-1]
    order = torch.arange(k).expand(a.shape[0], k)
    out = {name: fn(a) for name, fn in METHODS.items() if name != "pcgrad"}
    out["pcgrad"] = pcgrad_weights(a, order)
    return out


def test_members_are_solved_independently():
    """S members in one call give each member's own answer (no cross-talk through the batched solves)."""
    gs = [jacobian(kind, 5, torch.float64) for kind in KINDS]
    batched = _all_methods(torch.cat([gram_of(g) for g in gs]))
    for s, g in enumerate(gs):
        single = _all_methods(gram_of(g))
        for name in METHODS:
            torch.testing.assert_close(batched[name][s], single[name][0], rtol=1e-10, atol=1e-12, msg=name)


DEGENERATE = {
    "zero-row": lambda g: torch.stack([g[0], torch.zeros_like(g[0]), g[1]]),
    "duplicate-rows": lambda g: torch.stack([g[0], g[0], g[1]]),
    "opposed-rows": lambda g: torch.stack([g[0], -g[0], g[1]]),
    "all-zero": lambda g: torch.zeros(3, g.shape[1], dtype=g.dtype),
    "rank-2-of-5": lambda g: torch.randn(5, 2, generator=torch.Generator().manual_seed(3), dtype=g.dtype) @ g[:2],
    "zero-inside-hull": lambda g: torch.stack([g[0], g[1], -(g[0] + g[1])]),
}


@pytest.mark.parametrize("case", DEGENERATE)
def test_degenerate_gram_gives_finite_weights(case):
    g = DEGENERATE[case](jacobian("random", 4, torch.float64))
    a = gram_of(g)
    results = _all_methods(a)
    for name, w in results.items():
        assert torch.isfinite(w).all(), name
    scale = g.norm(dim=1).max().item()
    # the min-norm point and UPGrad's projections leave no term increasing
    assert (g @ direction(results["mgda"], g) >= -1e-9 * scale ** 2).all()
    assert (g.numpy() @ direction(results["upgrad"], g) >= -1e-9 * scale ** 2).all()
    if case in ("opposed-rows", "zero-inside-hull", "all-zero", "zero-row"):
        assert np.linalg.norm(direction(results["mgda"], g)) <= 1e-9 * max(scale, 1.0)


@pytest.mark.parametrize("case", ["duplicate-rows", "rank-2-of-5", "zero-row"])
def test_degenerate_gram_matches_numpy_reference(case):
    """Rank-deficient G: the pseudo-inverse methods follow numpy.linalg.pinv, UPGrad the NNLS projection."""
    g = DEGENERATE[case](jacobian("random", 4, torch.float64))
    gn = g.numpy()
    a = gram_of(g)
    assert_close_direction(direction(imtl_g_weights(a), g), ref.imtl_g_general_ref(gn), g, 1e-9)
    assert_close_direction(direction(config_weights(a), g), ref.config_ref(gn), g, 1e-9)
    assert_close_direction(direction(aligned_mtl_weights(a), g), ref.aligned_mtl_ref(gn), g, 1e-9)
    assert_close_direction(direction(upgrad_weights(a), g), ref.upgrad_ref(gn), g, 1e-9)


class _OpLog(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(str(func.overloadpacket.__name__))
        return func(*args, **(kwargs or {}))


def test_no_host_sync_ops():
    """No op that reads a tensor value on the host (``.item()``/``bool()`` dispatch ``_local_scalar_dense``), no
    LAPACK status check (``_linalg_check_errors``), no eigh/svd/pinv/lstsq, for any method (CPU stand-in for the
    CUDA sync check: the same ops run on the device)."""
    a = torch.cat([gram_of(jacobian(kind, 4, torch.float64)) for kind in KINDS])
    with _OpLog() as log:
        _all_methods(a)
        for variant in ("projection", "average"):
            dcgd_weights(a, variant)
        nash_mtl_weights(a, max_norm=1.0)
        upgrad_weights(a, reg=1e-4)
    banned = {"_local_scalar_dense", "is_nonzero", "_linalg_check_errors", "linalg_eigh", "_linalg_eigh",
              "linalg_svd", "_linalg_svd", "linalg_pinv", "linalg_lstsq", "item", "nonzero"}
    assert not (log.ops & banned), sorted(log.ops & banned)


def test_jacobi_eigendecomposition_accuracy():
    gen = torch.Generator().manual_seed(0)
    for k in (2, 3, 7, 10):
        q, _ = torch.linalg.qr(torch.randn(4, k, k, generator=gen, dtype=torch.float64))
        vals = 10.0 ** torch.linspace(0, -12, k, dtype=torch.float64)
        a = q @ torch.diag_embed(vals.expand(4, k)) @ q.mT
        lam, vec = symmetric_eig(a)
        torch.testing.assert_close(vec @ torch.diag_embed(lam) @ vec.mT, a, rtol=0, atol=1e-13)
        torch.testing.assert_close(vec.mT @ vec, torch.eye(k, dtype=torch.float64).expand(4, k, k), rtol=0, atol=1e-13)
    low = torch.randn(3, 6, 2, generator=gen, dtype=torch.float64)
    a = low @ low.mT
    b = torch.randn(3, 6, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(pinv_apply(a, b), (torch.linalg.pinv(a) @ b.unsqueeze(-1)).squeeze(-1),
                               rtol=1e-9, atol=1e-12)


def test_pcgrad_order_per_member_or_per_term():
    """An order [S, K] is used for every term, [S, K, K] gives each term its own (the paper's per-task draw)."""
    g = jacobian("conflict", 4, torch.float64)
    a = gram_of(g)
    order = torch.tensor([[3, 1, 0, 2]])
    torch.testing.assert_close(pcgrad_weights(a, order), pcgrad_weights(a, order.unsqueeze(1).expand(1, 4, 4)))
    per_term = torch.tensor([[[1, 2, 3, 0], [0, 3, 2, 1], [3, 1, 0, 2], [2, 0, 1, 3]]])
    expected = ref.pcgrad_ref(g.numpy(), per_term[0].numpy())
    assert_close_direction(direction(pcgrad_weights(a, per_term), g), expected, g, 1e-12)


def test_nash_mtl_max_norm_clips_the_direction():
    g = jacobian("random", 3, torch.float64) * 100
    a = gram_of(g)
    free = nash_mtl_weights(a)
    clipped = nash_mtl_weights(a, max_norm=0.5)
    assert np.linalg.norm(direction(free, g)) > 0.5
    assert abs(np.linalg.norm(direction(clipped, g)) - 0.5) < 1e-10
    torch.testing.assert_close(clipped / clipped.norm(), free / free.norm())


def test_float32_gram_is_promoted():
    g = jacobian("random", 3, torch.float32)
    a32 = g @ g.T
    w = mgda_weights(a32.unsqueeze(0))
    assert w.dtype == torch.float64
    torch.testing.assert_close(w, mgda_weights(gram_of(g)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("call,message", [
    (lambda: mgda_weights(torch.eye(3)), "gram must be a tensor of shape"),
    (lambda: pcgrad_weights(torch.eye(3)[None], torch.arange(2)[None]), "order must be"),
    (lambda: dcgd_weights(torch.eye(3)[None], variant="bisect"), "variant must be one of"),
    (lambda: dcgd_weights(torch.eye(1)[None]), "dcgd needs K >= 2"),
    (lambda: aligned_mtl_weights(torch.eye(3)[None], scale="max"), "scale must be one of"),
    (lambda: cagrad_weights(torch.eye(3)[None], c=-1.0), "c must be"),
    (lambda: nash_mtl_weights(torch.eye(3)[None], iters=0), "iters must be"),
    (lambda: upgrad_weights(torch.eye(13)[None]), "K must be <= 12"),
    (lambda: mean_weights(torch.eye(3)[None], reduction="median"), "reduction must be one of"),
])
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_hyperparameters_at_their_limits():
    """CAGrad with c = 0 is GD on the mean; ``reduction="sum"`` is K times the mean; UPGrad's preference vector
    scales the projected rows (pref = e_0: the projection of g_0 alone onto the dual cone)."""
    g = jacobian("conflict", 4, torch.float64)
    a = gram_of(g)
    torch.testing.assert_close(cagrad_weights(a, c=0.0), mean_weights(a))
    torch.testing.assert_close(mean_weights(a, reduction="sum"), 4 * mean_weights(a))
    pref = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    expected = ref.dual_cone_projection_ref(g.numpy(), g[0].numpy())
    assert_close_direction(direction(upgrad_weights(a, pref=pref), g), expected, g, 1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_ten_terms_match_numpy_reference(kind):
    """K = 10 (the issue's upper end: 1024 active sets, Jacobi at 10 sweeps) against the same oracles."""
    g = jacobian(kind, 10, torch.float64, p=60)
    gn = g.numpy()
    a = gram_of(g)
    tol = 1e-9 if kind != "ill" else 1e-5
    assert_close_direction(direction(upgrad_weights(a), g), ref.upgrad_ref(gn), g, max(tol, 1e-6))
    assert_close_direction(direction(config_weights(a), g), ref.config_ref(gn), g, tol)
    assert_close_direction(direction(aligned_mtl_weights(a), g), ref.aligned_mtl_ref(gn), g, tol)
    assert_close_direction(direction(imtl_g_weights(a), g), ref.imtl_g_general_ref(gn), g, max(tol, 1e-8))
    assert_close_direction(direction(nash_mtl_weights(a), g), ref.nash_mtl_ref(gn), g, max(tol, 1e-6))
    w = mgda_weights(a)[0]
    aw = a[0] @ w
    assert torch.all(aw >= w @ aw - 1e-9 * a[0].diagonal().max())
