"""The scheme interface and the schemes beyond the paper's four, each against a NumPy float64 oracle written
from its paper's equations (independent of fastpinn's statistics and EMA op)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

import fastpinn
from fastpinn.ops import _ext

BACKENDS = ["torch", "cpp", "triton"]


def _skip_unavailable(backend: str) -> None:
    if backend == "cpp" and not _ext.available():
        pytest.fail("the C++ extension is not built: pip install --no-build-isolation -e .")
    if backend == "triton":
        pytest.importorskip("triton")


def _gradients(S: int, K: int, P: int, steps: int, seed: int) -> list[np.ndarray]:
    """G[S, K, P] per step; rows of very different scale (a PDE residual against boundary terms)."""
    rng = np.random.default_rng(seed)
    scales = np.logspace(1.5, -2, K)[None, :, None]
    return [rng.standard_normal((S, K, P)) * scales * (1 + 0.3 * i) for i in range(steps)]


# ---------------------------------------------------------------------------------------------- oracles


def lra_oracle(Gs: list[np.ndarray], alpha: float, reference: int = 0) -> list[np.ndarray]:
    """Wang, Teng & Perdikaris 2021, Algorithm 1: lam_hat_j = max|grad L_r| / mean|grad L_j|,
    lam_j <- (1 - alpha) lam_j + alpha lam_hat_j; lam_r = 1. One member, G[K, P] per step."""
    K = Gs[0].shape[0]
    lam = np.ones(K)
    out = []
    for G in Gs:
        for j in range(K):
            if j == reference:
                continue
            hat = np.max(np.abs(G[reference])) / np.mean(np.abs(G[j]))
            lam[j] = (1 - alpha) * lam[j] + alpha * hat
        out.append(lam.copy())
    return out


def gradnorm_w_oracle(Gs: list[np.ndarray], alpha: float, reduce: str) -> list[np.ndarray]:
    """Wang et al. 2023 (expert's guide), Algorithm 1: lam_hat_j = sum_k ||grad L_k|| / ||grad L_j||,
    lam_j <- alpha lam_j + (1 - alpha) lam_hat_j for every term; reduce="mean" divides the sum by K."""
    K = Gs[0].shape[0]
    lam = np.ones(K)
    out = []
    for G in Gs:
        norms = [math.sqrt(float(np.sum(G[k] ** 2))) for k in range(K)]
        total = sum(norms) / (K if reduce == "mean" else 1)
        lam = alpha * lam + (1 - alpha) * np.array([total / n for n in norms])
        out.append(lam.copy())
    return out


def _run(w: fastpinn.Weighter, Gs: list[np.ndarray], squeeze: bool) -> list[np.ndarray]:
    return [w.update(torch.from_numpy(G[0] if squeeze else G)).numpy() for G in Gs]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("K", [2, 3, 4])
@pytest.mark.parametrize("S", [None, 3], ids=["KP", "SKP"])
@pytest.mark.parametrize("alpha", [0.9, 0.5])
def test_lra_matches_paper(backend, K, S, alpha):
    _skip_unavailable(backend)
    Gs = _gradients(S or 1, K, 301, steps=5, seed=K)
    got = _run(fastpinn.Weighter(fastpinn.LRA(alpha=alpha), n_terms=K, backend=backend), Gs, S is None)
    for s in range(S or 1):
        want = lra_oracle([G[s] for G in Gs], alpha)
        for step, (g, e) in enumerate(zip(got, want)):
            # float64 throughout; the only differences are summation order (P = 301 terms): 1e-12 is ample.
            np.testing.assert_allclose(g if S is None else g[s], e, rtol=1e-12, atol=0, err_msg=f"{s}/{step}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("K", [2, 3, 4])
@pytest.mark.parametrize("S", [None, 3], ids=["KP", "SKP"])
@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_gradnorm_w_matches_paper(backend, K, S, reduce):
    _skip_unavailable(backend)
    Gs = _gradients(S or 1, K, 257, steps=5, seed=10 + K)
    w = fastpinn.Weighter(fastpinn.GradNormW(alpha=0.9, reduce=reduce), n_terms=K, backend=backend)
    assert w.adaptive_mask == (True,) * K  # no reference term: the residual is weighted too
    got = _run(w, Gs, S is None)
    for s in range(S or 1):
        want = gradnorm_w_oracle([G[s] for G in Gs], 0.9, reduce)
        for step, (g, e) in enumerate(zip(got, want)):
            np.testing.assert_allclose(g if S is None else g[s], e, rtol=1e-12, atol=0, err_msg=f"{s}/{step}")


def test_lra_is_ma_wang_with_beta_one_minus_alpha():
    G = torch.from_numpy(_gradients(2, 3, 100, 1, 0)[0])
    a = fastpinn.Weighter(fastpinn.LRA(alpha=0.25), 3, backend="torch").update(G)
    b = fastpinn.Weighter(fastpinn.MA(beta=0.75, form="wang"), 3, backend="torch").update(G)
    torch.testing.assert_close(a, b, rtol=1e-15, atol=0)


def test_gradnorm_w_nonfinite_row_invalidates_the_sum():
    G = torch.randn(3, 50, dtype=torch.float64)
    w = fastpinn.Weighter(fastpinn.GradNormW(), 3, backend="torch")
    first = w.update(G).clone()
    G2 = G.clone()
    G2[2, 7] = math.inf
    assert torch.equal(w.update(G2), first)  # every term keeps its weight: the sum is not finite
    assert w.skipped_counts().tolist() == [[1, 1, 1]]
    G3 = G.clone()
    G3[1] = 0.0  # a zero norm: only that term is skipped, the others use the (finite) sum
    third = w.update(G3)
    assert third[1] == first[1] and third[0] != first[0]
    assert w.skipped_counts().tolist() == [[1, 2, 1]]


# ---------------------------------------------------------------------------- shared EMA machinery


@pytest.mark.parametrize("backend", ["torch", "cpp"])
def test_bias_correction_counts_per_term(backend):
    """A term skipped at the first update (zero gradient) is corrected by its own count at its first valid
    update. Counting per member gave (1 - beta) hat / (1 - beta^2) = hat / (1 + beta): 0.5025 hat at 0.99."""
    _skip_unavailable(backend)
    beta = 0.99
    w = fastpinn.Weighter(fastpinn.DN(beta=beta, bias_correction=True), n_terms=3, backend=backend)
    G = torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    w.update(G)
    assert w.skipped_counts().tolist() == [[0, 1, 0]]
    G[1] = torch.tensor([0.0, 2.0], dtype=torch.float64)  # ||g_r|| / ||g_1|| = 5 / 2
    lam = w.update(G)
    torch.testing.assert_close(lam[1], torch.tensor(2.5, dtype=torch.float64), rtol=1e-13, atol=0)
    assert abs(float(lam[1]) - 2.5 / (1 + beta)) > 1.0  # the old, per-member count: 1.256
    assert w.term_updates[:, 1:].tolist() == [[1, 2]]
    assert w.n_updates.tolist() == [2]


def _through_file(state: dict) -> dict:
    """A checkpoint's round trip: torch.save to bytes and back."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


STAT_SCHEMES = [
    fastpinn.DN(beta=0.9, p=3.0, bias_correction=True), fastpinn.ID(beta=0.99, bias_correction=True),
    fastpinn.MA(beta=0.9), fastpinn.MA(beta=0.9, form="wang", bias_correction=True), fastpinn.LRA(alpha=0.9),
    fastpinn.GradNormW(alpha=0.9, bias_correction=True), fastpinn.GradNormW(reduce="mean"),
]


@pytest.mark.parametrize("backend", ["torch", "cpp"])
@pytest.mark.parametrize("scheme", STAT_SCHEMES, ids=repr)
def test_gate_off_leaves_state_bitwise(scheme, backend):
    _skip_unavailable(backend)
    w = fastpinn.Weighter(scheme, n_terms=3, backend=backend)
    G = torch.from_numpy(_gradients(2, 3, 64, 2, 1)[0])
    w.update(G)
    before = [t.clone() for t in w.state_tensors()]
    w.update_from_stats(w.statistics(G * 3), G.shape[-1], active=torch.tensor(False))
    for a, b in zip(w.state_tensors(), before):
        assert torch.equal(a, b)
    w.update_from_stats(w.statistics(G * 3), G.shape[-1], active=torch.tensor(True))
    assert int(w.n_updates[0]) == 2 and not torch.equal(w.lam, before[0])


@pytest.mark.parametrize("backend", ["torch", "cpp"])
@pytest.mark.parametrize("scheme", STAT_SCHEMES, ids=repr)
def test_checkpoint_split_continues_bit_identically(scheme, backend):
    """Eight updates in one go == four, state_dict -> a fresh Weighter, four more (with a skip in between)."""
    _skip_unavailable(backend)
    Gs = [torch.from_numpy(G) for G in _gradients(2, 4, 50, 8, 2)]
    Gs[3][1, 2] = 0.0  # a skipped term before the split
    one = fastpinn.Weighter(scheme, n_terms=4, backend=backend)
    want = [one.update(G) for G in Gs]
    first = fastpinn.Weighter(scheme, n_terms=4, backend=backend)
    for G in Gs[:4]:
        first.update(G)
    second = fastpinn.Weighter(scheme, n_terms=4, backend=backend)
    second.load_state_dict(_through_file(first.state_dict()))
    for G, w_ in zip(Gs[4:], want[4:]):
        assert torch.equal(second.update(G), w_)
    for a, b in zip(one.state_tensors(), second.state_tensors()):
        assert torch.equal(a, b)


def test_interface_flags():
    for scheme in STAT_SCHEMES:
        w = fastpinn.Weighter(scheme, n_terms=2)
        assert w.reads == "stats" and w.needs_term_gradients and w.dynamic
    w = fastpinn.Weighter(fastpinn.PINN(), n_terms=2)
    assert w.reads == "fixed" and not w.needs_term_gradients


@pytest.mark.parametrize("name", fastpinn.SCHEME_NAMES)
def test_every_name_builds(name):
    scheme = fastpinn.scheme_from_name(name)
    assert scheme.name == name


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: fastpinn.LRA(alpha=0.0), "alpha"),
        (lambda: fastpinn.LRA(alpha=1.5), "alpha"),
        (lambda: fastpinn.LRA(tau=0), "tau"),
        (lambda: fastpinn.GradNormW(alpha=1.0), "alpha"),
        (lambda: fastpinn.GradNormW(reduce="max"), "reduce"),
        (lambda: fastpinn.GradNormW(tau=1.5), "tau"),
        (lambda: fastpinn.scheme_from_name("softmax"), "scheme"),
    ],
)
def test_bad_parameters_name_the_field(make, field):
    with pytest.raises(ValueError, match=field):
        make()


# ------------------------------------------------------------------------------------- loss-based schemes


def _losses(S: int, K: int, steps: int, seed: int) -> list[np.ndarray]:
    """Positive, decreasing-ish term losses of different scales, L[S, K] per step."""
    rng = np.random.default_rng(seed)
    base = np.logspace(0, -3, K)[None, :] * (1 + rng.random((S, K)))
    return [base * np.exp(-0.1 * t + 0.2 * rng.standard_normal((S, K))) for t in range(steps)]


def _ksoftmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return len(z) * e / e.sum()


def softadapt_oracle(Ls: list[np.ndarray], T: float, rate: str) -> list[np.ndarray]:
    """Heydari et al. 2019 with the rate s_j = (L_j(t) - L_j(t-1)) [/ L_j(t-1)]: lam = K softmax(s / T)."""
    lam, prev, out = np.ones(Ls[0].shape[0]), None, []
    for L in Ls:
        if prev is not None:
            s = (L - prev) / prev if rate == "relative" else L - prev
            lam = _ksoftmax(s / T)
        prev = L
        out.append(lam.copy())
    return out


def relobralo_oracle(Ls: list[np.ndarray], alpha: float, T: float, rhos: list[float]) -> list[np.ndarray]:
    """Bischof & Kraus 2021, eqs. 10-12: lam(t) = alpha (rho lam(t-1) + (1 - rho) lam^(0->t))
    + (1 - alpha) lam^(t-1->t), lam^(a->b) = K softmax(L(b) / (T L(a)))."""
    lam, L0, prev, out = np.ones(Ls[0].shape[0]), None, None, []
    for t, L in enumerate(Ls):
        if prev is None:
            L0 = L
        else:
            rho = rhos[t]
            lam = alpha * (rho * lam + (1 - rho) * _ksoftmax(L / (T * L0))) + (1 - alpha) * _ksoftmax(L / (T * prev))
        prev = L
        out.append(lam.copy())
    return out


def _rhos(scheme: fastpinn.ReLoBRaLo, member: int, steps: int) -> list[float]:
    """The scheme's Bernoulli draws for one member, indexed by its update count (the RNG is not the formula
    under test; its distribution is tested in test_uniform_draws_are_uniform_and_independent)."""
    draws = fastpinn.schemes.uniform_draws(scheme.seed, torch.full((steps,), member), torch.arange(steps))
    return (draws < scheme.rho_mean).double().tolist()


@pytest.mark.parametrize("K", [2, 3, 4])
@pytest.mark.parametrize("S", [None, 3], ids=["K", "SK"])
@pytest.mark.parametrize("rate, T", [("relative", 0.1), ("difference", 1.0), ("relative", 2.0)])
def test_softadapt_matches_paper(K, S, rate, T):
    Ls = _losses(S or 1, K, 6, K)
    w = fastpinn.Weighter(fastpinn.SoftAdapt(temperature=T, rate=rate), n_terms=K)
    assert not w.needs_term_gradients and w.reads == "losses"
    got = [w.update_from_losses(torch.from_numpy(L[0] if S is None else L)).clone().numpy() for L in Ls]
    for s in range(S or 1):
        want = softadapt_oracle([L[s] for L in Ls], T, rate)
        for step, (g, e) in enumerate(zip(got, want)):
            # a softmax of float64 numbers of order 1-10: a few ulps per operation; 1e-12 is ample.
            np.testing.assert_allclose(g if S is None else g[s], e, rtol=1e-12, atol=0, err_msg=f"{s}/{step}")


@pytest.mark.parametrize("K", [2, 3, 4])
@pytest.mark.parametrize("S", [None, 3], ids=["K", "SK"])
@pytest.mark.parametrize("rho_mean", [0.0, 0.5, 1.0])
def test_relobralo_matches_paper(K, S, rho_mean):
    Ls = _losses(S or 1, K, 7, 20 + K)
    scheme = fastpinn.ReLoBRaLo(alpha=0.9, rho_mean=rho_mean, temperature=0.5, seed=3)
    w = fastpinn.Weighter(scheme, n_terms=K)
    got = [w.update_from_losses(torch.from_numpy(L[0] if S is None else L)).clone().numpy() for L in Ls]
    for s in range(S or 1):
        rhos = _rhos(scheme, s, len(Ls))
        if rho_mean in (0.0, 1.0):
            assert set(rhos) == {rho_mean}
        want = relobralo_oracle([L[s] for L in Ls], 0.9, 0.5, rhos)
        for step, (g, e) in enumerate(zip(got, want)):
            np.testing.assert_allclose(g if S is None else g[s], e, rtol=1e-12, atol=0, err_msg=f"{s}/{step}")


def test_uniform_draws_are_uniform_and_independent():
    n = 20000
    u = fastpinn.schemes.uniform_draws(7, torch.zeros(n, dtype=torch.int64), torch.arange(n))
    assert float(u.min()) > 0 and float(u.max()) < 1
    # mean 1/2 with standard error sqrt(1/12 / n) = 0.002: 5 standard errors
    assert abs(float(u.mean()) - 0.5) < 0.01
    # lag-1 correlation: standard error 1/sqrt(n) = 0.007, 5 standard errors
    assert abs(float(torch.corrcoef(torch.stack([u[:-1], u[1:]]))[0, 1])) < 0.035
    # Bernoulli(0.999): 20 expected zeros among n, sd ~4.5
    zeros = int((u >= 0.999).sum())
    assert 3 <= zeros <= 45
    other = fastpinn.schemes.uniform_draws(7, torch.ones(n, dtype=torch.int64), torch.arange(n))
    assert abs(float(torch.corrcoef(torch.stack([u, other]))[0, 1])) < 0.035  # members draw independently
    again = fastpinn.schemes.uniform_draws(7, torch.zeros(n, dtype=torch.int64), torch.arange(n))
    assert torch.equal(u, again)  # a pure function of (seed, member, counter)


LOSS_SCHEMES = [fastpinn.SoftAdapt(), fastpinn.SoftAdapt(rate="difference", temperature=1.0), fastpinn.Uncertainty(lr=0.1),
                fastpinn.ReLoBRaLo(alpha=0.9, rho_mean=0.5, seed=1)]


@pytest.mark.parametrize("scheme", LOSS_SCHEMES, ids=repr)
def test_loss_scheme_skips_bad_members_and_respects_mask(scheme):
    Ls = [torch.from_numpy(L) for L in _losses(2, 3, 4, 5)]
    w = fastpinn.Weighter(scheme, n_terms=3, adaptive=[True, False, True])
    for L in Ls[:3]:
        lam = w.update_from_losses(L).clone()
    assert torch.all(lam[:, 1] == 1.0) and not torch.allclose(lam[:, [0, 2]], torch.ones(2, 2, dtype=lam.dtype))
    bad = Ls[3].clone()
    bad[1, 2] = math.nan  # member 1 is skipped as a whole (the softmax couples its terms)
    state_before = [t.clone() for t in w.state_tensors()]
    new = w.update_from_losses(bad)
    assert torch.equal(new[1], lam[1]) and not torch.equal(new[0], lam[0])
    assert w.skipped_counts().tolist() == [[0, 0, 0], [1, 0, 1]]
    for key, value in w.scheme_state.items():
        assert torch.equal(value[1], state_before[4 + list(w.scheme_state).index(key)][1]), key
    bad[1, 2] = 0.0  # a zero loss is as invalid (both schemes divide by losses)
    w.update_from_losses(bad)
    assert w.skipped_counts()[1].tolist() == [2, 0, 2]


@pytest.mark.parametrize("scheme", LOSS_SCHEMES, ids=repr)
def test_loss_scheme_gate_and_checkpoint_split(scheme):
    Ls = [torch.from_numpy(L) for L in _losses(2, 3, 8, 6)]
    one = fastpinn.Weighter(scheme, n_terms=3)
    want = [one.update_from_losses(L).clone() for L in Ls]
    first = fastpinn.Weighter(scheme, n_terms=3)
    for L in Ls[:4]:
        first.update_from_losses(L)
    before = [t.clone() for t in first.state_tensors()]
    first.update_from_losses(Ls[4] * 5, active=torch.tensor(False))  # gated off: nothing changes
    for a, b in zip(first.state_tensors(), before):
        assert torch.equal(a, b)
    second = fastpinn.Weighter(scheme, n_terms=3)
    second.load_state_dict(_through_file(first.state_dict()))
    for L, w_ in zip(Ls[4:], want[4:]):
        assert torch.equal(second.update_from_losses(L), w_)
    for a, b in zip(one.state_tensors(), second.state_tensors()):
        assert torch.equal(a, b)


def test_loss_and_stats_entry_points_are_not_mixed():
    with pytest.raises(ValueError, match="update_from_losses"):
        fastpinn.Weighter(fastpinn.SoftAdapt(), 2).update(torch.randn(2, 5))
    with pytest.raises(ValueError, match="not term losses"):
        fastpinn.Weighter(fastpinn.DN(), 2).update_from_losses(torch.rand(2))
    with pytest.raises(ValueError, match="losses must"):
        fastpinn.Weighter(fastpinn.SoftAdapt(), 2).update_from_losses(torch.rand(3))


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: fastpinn.SoftAdapt(temperature=0.0), "temperature"),
        (lambda: fastpinn.SoftAdapt(rate="log"), "rate"),
        (lambda: fastpinn.SoftAdapt(tau=0), "tau"),
        (lambda: fastpinn.ReLoBRaLo(alpha=1.1), "alpha"),
        (lambda: fastpinn.ReLoBRaLo(rho_mean=-0.1), "rho_mean"),
        (lambda: fastpinn.ReLoBRaLo(temperature=math.inf), "temperature"),
        (lambda: fastpinn.ReLoBRaLo(seed=-1), "seed"),
    ],
)
def test_loss_scheme_parameters_name_the_field(make, field):
    with pytest.raises(ValueError, match=field):
        make()


def uncertainty_oracle(Ls: list[np.ndarray], lr: float, b1=0.9, b2=0.999, eps=1e-8) -> list[np.ndarray]:
    """Kendall et al. 2018: L = sum_j 1/2 exp(-s_j) L_j + 1/2 s_j, s trained by Adam (Kingma & Ba 2015,
    Algorithm 1) on dL/ds_j = (1 - exp(-s_j) L_j) / 2; the weights of step t are exp(-s_j) / 2 with s
    before step t's update."""
    K = Ls[0].shape[0]
    s, m, v, out = np.zeros(K), np.zeros(K), np.zeros(K), []
    for t, L in enumerate(Ls, start=1):
        out.append(0.5 * np.exp(-s))
        g = 0.5 * (1 - np.exp(-s) * L)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        s = s - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return out


@pytest.mark.parametrize("K", [2, 3, 4])
@pytest.mark.parametrize("S", [None, 3], ids=["K", "SK"])
def test_uncertainty_matches_paper(K, S):
    Ls = _losses(S or 1, K, 8, 30 + K)
    w = fastpinn.Weighter(fastpinn.Uncertainty(lr=0.05), n_terms=K)
    got = [w.update_from_losses(torch.from_numpy(L[0] if S is None else L)).clone().numpy() for L in Ls]
    for s in range(S or 1):
        want = uncertainty_oracle([L[s] for L in Ls], 0.05)
        for step, (g, e) in enumerate(zip(got, want)):
            np.testing.assert_allclose(g if S is None else g[s], e, rtol=1e-12, atol=0, err_msg=f"{s}/{step}")


def test_uncertainty_equals_autograd_and_torch_adam_on_kendalls_loss():
    """The same training of s by autograd on the paper's loss and torch.optim.Adam."""
    Ls = [torch.from_numpy(L) for L in _losses(2, 3, 10, 9)]
    s = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([s], lr=0.01)
    w = fastpinn.Weighter(fastpinn.Uncertainty(lr=0.01), n_terms=3)
    for L in Ls:
        lam = w.update_from_losses(L)
        torch.testing.assert_close(lam, 0.5 * torch.exp(-s.detach()), rtol=1e-12, atol=0)
        opt.zero_grad()
        (0.5 * torch.exp(-s) * L + 0.5 * s).sum().backward()
        opt.step()
    # torch's Adam divides by sqrt(v) / sqrt(1 - b2^t) instead of sqrt(v / (1 - b2^t)): rounding only.
    torch.testing.assert_close(w.scheme_state["s"], s.detach(), rtol=1e-12, atol=1e-15)


def test_uncertainty_parameters_validated():
    for make, field in [(lambda: fastpinn.Uncertainty(lr=0), "lr"), (lambda: fastpinn.Uncertainty(tau=2), "tau"),
                        (lambda: fastpinn.Uncertainty(betas=(0.9, 1.0)), "betas"),
                        (lambda: fastpinn.Uncertainty(eps=0), "eps")]:
        with pytest.raises(ValueError, match=field):
            make()


# ------------------------------------------------------------------------------------------------- GradNorm


def gradnorm_oracle(Gs, Ls, cols, alpha, lr, b1=0.9, b2=0.999, eps=1e-8):
    """Chen et al. 2018, Algorithm 1, one member: G_j = w_j ||grad_W L_j||, Gbar = mean_j G_j,
    r_j = Ltilde_j / mean Ltilde, L_grad = sum_j |G_j - Gbar r_j^alpha| (target constant), Adam on w,
    renormalise sum w = K. Returns the weights applied at each step (w(t), before that step's update)."""
    K = Gs[0].shape[0]
    w, m, v, L0, out = np.ones(K), np.zeros(K), np.zeros(K), None, []
    for t, (G, L) in enumerate(zip(Gs, Ls), start=1):
        out.append(w.copy())
        L0 = L if L0 is None else L0
        n = np.array([np.linalg.norm(G[j, cols[0]:cols[1]]) for j in range(K)])
        Gw = w * n
        ratio = L / L0
        r = ratio / ratio.mean()
        g = np.sign(Gw - Gw.mean() * r ** alpha) * n
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        w = w * K / w.sum()
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("K", [2, 3, 4])
@pytest.mark.parametrize("S", [None, 3], ids=["KP", "SKP"])
def test_gradnorm_matches_paper(backend, K, S):
    _skip_unavailable(backend)
    steps, P, cols = 6, 120, (30, 90)
    Gs = _gradients(S or 1, K, P, steps, 40 + K)
    Ls = _losses(S or 1, K, steps, 50 + K)
    w = fastpinn.Weighter(fastpinn.GradNorm(alpha=1.5, lr=0.05, columns=cols), n_terms=K, backend=backend)
    assert w.needs_term_gradients and all(w.adaptive_mask)
    got = []
    for G, L in zip(Gs, Ls):
        g, l_ = (G[0], L[0]) if S is None else (G, L)
        got.append(w.update(torch.from_numpy(g), losses=torch.from_numpy(l_)).numpy())
    for s in range(S or 1):
        want = gradnorm_oracle([G[s] for G in Gs], [L[s] for L in Ls], cols, 1.5, 0.05)
        for step, (g, e) in enumerate(zip(got, want)):
            # float64; norms of 60 entries summed in another order, then Adam: 1e-10.
            np.testing.assert_allclose(g if S is None else g[s], e, rtol=1e-10, atol=0, err_msg=f"{s}/{step}")
    assert np.isclose(got[-1].sum(-1), K).all()


def test_gradnorm_equals_autograd_on_the_gradnorm_loss():
    """w trained by autograd on L_grad = sum |w_j n_j - mean(w n) r^alpha| (target detached) and Adam."""
    K, cols = 3, (0, 40)
    Gs = [torch.from_numpy(G[0]) for G in _gradients(1, K, 50, 6, 3)]
    Ls = [torch.from_numpy(L[0]) for L in _losses(1, K, 6, 4)]
    wt = torch.ones(K, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([wt], lr=0.05)
    w = fastpinn.Weighter(fastpinn.GradNorm(alpha=0.5, lr=0.05, columns=cols), n_terms=K, backend="torch")
    for G, L in zip(Gs, Ls):
        lam = w.update(G, losses=L)
        torch.testing.assert_close(lam, wt.detach(), rtol=1e-12, atol=1e-14)
        n = G[:, cols[0]:cols[1]].norm(dim=1)
        Gw = wt * n
        r = (L / Ls[0]) / (L / Ls[0]).mean()
        loss = (Gw - (Gw.mean() * r ** 0.5).detach()).abs().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            wt.mul_(K / wt.sum())


def test_gradnorm_needs_losses_and_checks_columns():
    w = fastpinn.Weighter(fastpinn.GradNorm(columns=(0, 10)), n_terms=2, backend="torch")
    with pytest.raises(ValueError, match="losses"):
        w.update(torch.randn(2, 20))
    with pytest.raises(ValueError, match="columns"):
        w.update(torch.randn(2, 5), losses=torch.rand(2))
    net = fastpinn.MLP(1, 1, 3, 4)
    start, stop = fastpinn.GradNorm.last_hidden_layer(net)
    assert stop - start == 4 * 4  # the 4 x 4 weight matrix of the last hidden layer
    for make, field in [(lambda: fastpinn.GradNorm(tau=2), "tau"), (lambda: fastpinn.GradNorm(alpha=-1), "alpha"),
                        (lambda: fastpinn.GradNorm(lr=0), "lr"), (lambda: fastpinn.GradNorm(columns=(5, 2)), "columns")]:
        with pytest.raises(ValueError, match=field):
            make()


def test_gradnorm_checkpoint_split_and_gate():
    Gs = [torch.from_numpy(G) for G in _gradients(2, 3, 40, 8, 8)]
    Ls = [torch.from_numpy(L) for L in _losses(2, 3, 8, 9)]
    scheme = fastpinn.GradNorm(lr=0.1)
    one = fastpinn.Weighter(scheme, n_terms=3, backend="cpp")
    want = [one.update(G, losses=L) for G, L in zip(Gs, Ls)]
    first = fastpinn.Weighter(scheme, n_terms=3, backend="cpp")
    for G, L in zip(Gs[:4], Ls[:4]):
        first.update(G, losses=L)
    before = [t.clone() for t in first.state_tensors()]
    first.update_from_stats(first.statistics(Gs[4]), 40, active=torch.tensor(False), losses=Ls[4])
    assert all(torch.equal(a, b) for a, b in zip(first.state_tensors(), before))
    second = fastpinn.Weighter(scheme, n_terms=3, backend="cpp")
    second.load_state_dict(_through_file(first.state_dict()))
    for G, L, w_ in zip(Gs[4:], Ls[4:], want[4:]):
        assert torch.equal(second.update(G, losses=L), w_)


# --------------------------------------------------------------------------------------------------- CUDA


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("scheme", STAT_SCHEMES + LOSS_SCHEMES + [fastpinn.GradNorm(lr=0.1)], ids=repr)
def test_every_scheme_on_cuda_matches_cpu(scheme):
    """The same updates on the GPU (compiled ops / device tensors, gated) and on the CPU, float64."""
    if not _ext.build_info()["cuda"]:
        pytest.skip("fastpinn._C was built without CUDA kernels")
    Gs = [torch.from_numpy(G) for G in _gradients(2, 3, 300, 5, 11)]
    Ls = [torch.from_numpy(L) for L in _losses(2, 3, 5, 12)]
    out = {}
    for device in ("cpu", "cuda"):
        w = fastpinn.Weighter(scheme, n_terms=3, backend="auto")
        for i, (G, L) in enumerate(zip(Gs, Ls)):
            G, L = G.to(device), L.to(device)
            active = torch.tensor(i != 2, device=device)
            if w.reads == "losses":
                w.update_from_losses(L, active=active)
            else:
                w.update_from_stats(w.statistics(G), G.shape[-1], active=active,
                                    **({"losses": L} if scheme.name == "gradnorm" else {}))
        out[device] = [t.cpu() for t in w.state_tensors()]
    for a, b in zip(out["cpu"], out["cuda"]):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-14)  # float64; reductions in another order
