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
