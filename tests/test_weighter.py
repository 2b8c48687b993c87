"""The Weighter contract against the paper's formulas, computed independently here in NumPy float64."""

from __future__ import annotations

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


def _norm(g: np.ndarray, p: float) -> float:
    return float(np.max(np.abs(g))) if math.isinf(p) else float(np.sum(np.abs(g) ** p) ** (1.0 / p))


def _candidate(scheme, g_ref: np.ndarray, g: np.ndarray, applied: float) -> float:
    """The paper's candidate weight for one term, straight from the definitions."""
    if isinstance(scheme, fastpinn.DN):
        return _norm(g_ref, scheme.p) / _norm(g, scheme.p)
    if isinstance(scheme, fastpinn.ID):
        return float(np.std(g_ref, ddof=1) / np.std(g, ddof=1))
    if isinstance(scheme, fastpinn.MA):
        denom = np.mean(np.abs(g)) * (applied if scheme.form == "paper" else 1.0)
        return float(np.max(np.abs(g_ref)) / denom)
    raise AssertionError(scheme)


def _expected_weights(scheme, Gs: list[np.ndarray], reference: int, adaptive: list[bool]) -> list[np.ndarray]:
    """Applied weights after each update for a sequence of G[K, P] (one member)."""
    k = Gs[0].shape[0]
    bc = scheme.bias_correction
    lam = np.array([0.0 if (bc and adaptive[j]) else 1.0 for j in range(k)])
    applied = np.ones(k)
    out = []
    for n, G in enumerate(Gs, start=1):
        new_applied = applied.copy()
        for j in range(k):
            if not adaptive[j]:
                continue
            hat = _candidate(scheme, G[reference], G[j], applied[j])
            lam[j] = scheme.beta * lam[j] + (1 - scheme.beta) * hat
            new_applied[j] = lam[j] / (1 - scheme.beta ** n) if bc else lam[j]
        applied = new_applied
        out.append(applied.copy())
    return out


SCHEMES = [
    fastpinn.DN(beta=b, p=p, bias_correction=bc)
    for b in (0.9, 0.99) for p in (1.0, 2.0, 3.0, math.inf) for bc in (False, True)
] + [fastpinn.ID(beta=b, bias_correction=bc) for b in (0.9, 0.99) for bc in (False, True)] + [
    fastpinn.MA(beta=b, bias_correction=bc, form=f) for b in (0.9, 0.99) for bc in (False, True)
    for f in ("paper", "wang")
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scheme", SCHEMES, ids=repr)
def test_weighter_matches_formulas_float64(scheme, backend):
    _skip_unavailable(backend)
    rng = np.random.default_rng(0)
    K, P, S = 3, 257, 2
    # Rows of very different scale, like a PDE residual against boundary terms.
    scales = np.array([30.0, 0.5, 0.02])[None, :, None]
    Gs = [rng.standard_normal((S, K, P)) * scales * (1 + 0.3 * i) for i in range(4)]
    w = fastpinn.Weighter(scheme, n_terms=K, reference=0, backend=backend)
    got = [w.update(torch.from_numpy(G)).numpy() for G in Gs]
    for s in range(S):
        want = _expected_weights(scheme, [G[s] for G in Gs], 0, [False, True, True])
        for step, (g, e) in enumerate(zip(got, want)):
            np.testing.assert_allclose(g[s], e, rtol=1e-12, atol=0, err_msg=f"member {s} update {step}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_contract_shapes_and_2d_input(backend):
    _skip_unavailable(backend)
    w = fastpinn.Weighter(fastpinn.DN(beta=0.99, p=2.0, bias_correction=True), n_terms=3, reference=0,
                          backend=backend)
    G = torch.randn(3, 100, dtype=torch.float64)
    lam = w.update(G)
    assert lam.shape == (3,) and lam.dtype == torch.float64
    # First update with bias correction applies the candidate itself: lam / (1 - beta) = hat.
    g = G.numpy()
    np.testing.assert_allclose(lam.numpy()[1:], [_norm(g[0], 2) / _norm(g[j], 2) for j in (1, 2)], rtol=1e-12)
    assert lam[0] == 1.0
    w2 = fastpinn.Weighter(fastpinn.MA(), n_terms=2, backend=backend)
    assert w2.update(torch.randn(4, 2, 50)).shape == (4, 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_close_to_float64(backend):
    _skip_unavailable(backend)
    G = torch.randn(2, 4, 3021, dtype=torch.float64) * torch.tensor([10.0, 1.0, 0.1, 1e-3])[:, None]
    for scheme in (fastpinn.DN(p=2.0), fastpinn.DN(p=math.inf), fastpinn.ID(), fastpinn.MA()):
        lam64 = fastpinn.Weighter(scheme, 4, backend=backend).update(G)
        lam32 = fastpinn.Weighter(scheme, 4, backend=backend).update(G.float())
        assert lam32.dtype == torch.float32
        # Sums of 3021 float32 terms: relative error ~ sqrt(P) * eps32 ~ 1e-5, with margin.
        torch.testing.assert_close(lam32.double(), lam64, rtol=1e-4, atol=0)


def test_reference_and_adaptive_mask_respected():
    scheme = fastpinn.DN(beta=0.5)
    w = fastpinn.Weighter(scheme, n_terms=4, reference=2, adaptive=[True, False, False, True], backend="torch")
    G = torch.randn(4, 64, dtype=torch.float64) * torch.tensor([1.0, 5.0, 100.0, 0.1])[:, None]
    lam = w.update(G)
    assert lam[1] == 1.0 and lam[2] == 1.0
    ref = torch.linalg.vector_norm(G[2])
    expected0 = 0.5 + 0.5 * ref / torch.linalg.vector_norm(G[0])
    torch.testing.assert_close(lam[0], expected0, rtol=1e-12, atol=0)


def test_pinn_fixed_weights():
    w = fastpinn.Weighter(fastpinn.PINN(weights=[1.0, 10.0]), n_terms=2, backend="torch")
    for _ in range(3):
        lam = w.update(torch.randn(2, 10))
    assert lam.tolist() == [1.0, 10.0]
    assert not w.should_update(0)


@pytest.mark.parametrize("backend", ["torch", "cpp"])
def test_zero_and_nonfinite_statistics_keep_weight_and_are_counted(backend):
    _skip_unavailable(backend)
    w = fastpinn.Weighter(fastpinn.DN(beta=0.9), n_terms=3, backend=backend)
    G = torch.randn(3, 20, dtype=torch.float64)
    first = w.update(G).clone()
    G2 = G.clone()
    G2[1] = 0.0  # zero gradient norm: the candidate would be infinite
    G2[2, 3] = math.nan
    second = w.update(G2)
    assert second[1] == first[1] and second[2] == first[2]
    assert w.skipped_counts().tolist() == [[0, 1, 1]]
    assert int(w.n_updates[0]) == 2  # n counts updates, including ones where a term was skipped
    G3 = G.clone()
    G3[0] = math.inf  # the reference itself is not finite: every adaptive term keeps its weight
    third = w.update(G3)
    assert torch.equal(third, second)
    assert w.skipped_counts().tolist() == [[0, 2, 2]]


def test_bias_correction_counts_updates_not_calls_of_anything_else():
    beta = 0.9
    w = fastpinn.Weighter(fastpinn.DN(beta=beta, bias_correction=True), n_terms=2, backend="torch")
    G = torch.tensor([[3.0, 4.0], [1.0, 0.0]], dtype=torch.float64)  # ratio of norms = 5
    for n in range(1, 6):
        lam = w.update(G)
        # A constant candidate is reproduced exactly once bias-corrected: (1 - beta^n) * 5 / (1 - beta^n).
        torch.testing.assert_close(lam[1], torch.tensor(5.0, dtype=torch.float64), rtol=1e-13, atol=0)
        torch.testing.assert_close(w.lam[0, 1], torch.tensor((1 - beta ** n) * 5.0, dtype=torch.float64),
                                   rtol=1e-13, atol=0)


def test_should_update_every_tau():
    w = fastpinn.Weighter(fastpinn.ID(tau=10), n_terms=2)
    assert [e for e in range(35) if w.should_update(e)] == [0, 10, 20, 30]


def test_combine():
    G = torch.randn(3, 5, 7, dtype=torch.float64)
    lam = torch.rand(3, 5, dtype=torch.float64)
    want = (lam[:, :, None] * G).sum(1)
    torch.testing.assert_close(fastpinn.Weighter.combine(G, lam), want)
    torch.testing.assert_close(fastpinn.Weighter.combine(G[0], lam[0]), want[0])


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: fastpinn.DN(beta=1.0), "beta"),
        (lambda: fastpinn.DN(beta=-0.1), "beta"),
        (lambda: fastpinn.DN(p=0.5), "p"),
        (lambda: fastpinn.DN(p=float("nan")), "p"),
        (lambda: fastpinn.MA(form="other"), "form"),
        (lambda: fastpinn.ID(tau=0), "tau"),
        (lambda: fastpinn.ID(bias_correction=1), "bias_correction"),
        (lambda: fastpinn.PINN(weights=[1.0, -1.0]), "weights"),
        (lambda: fastpinn.Weighter(fastpinn.DN(), n_terms=0), "n_terms"),
        (lambda: fastpinn.Weighter(fastpinn.DN(), n_terms=2, reference=2), "reference"),
        (lambda: fastpinn.Weighter(fastpinn.DN(), n_terms=2, adaptive=[True, True]), "adaptive"),
        (lambda: fastpinn.Weighter(fastpinn.PINN(weights=[1.0]), n_terms=2), "weights"),
        (lambda: fastpinn.Weighter(fastpinn.DN(), n_terms=2, backend="cuda"), "backend"),
        (lambda: fastpinn.Weighter(fastpinn.DN(), n_terms=2).update(torch.randn(3, 4)), "G"),
        (lambda: fastpinn.Weighter(fastpinn.DN(), n_terms=2).update(torch.randn(2, 4).half()), "G"),
    ],
)
def test_bad_configuration_names_the_field(make, field):
    with pytest.raises(ValueError, match=field):
        make()


def test_state_dict_roundtrip():
    w = fastpinn.Weighter(fastpinn.DN(beta=0.9), n_terms=3, backend="torch")
    G = torch.randn(2, 3, 40, dtype=torch.float64)
    w.update(G)
    w2 = fastpinn.Weighter(fastpinn.DN(beta=0.9), n_terms=3, backend="torch")
    w2.load_state_dict(w.state_dict())
    torch.testing.assert_close(w.update(G), w2.update(G), rtol=0, atol=0)
