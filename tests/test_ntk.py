"""NTK trace weighting: the traces against their definition (a loop of single-point gradients), and the
weights against a NumPy float64 oracle of Wang, Yu & Perdikaris 2022, Algorithm 1."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

import fastpinn
from fastpinn import ntk


def _terms(K: int, S, seed: int = 0):
    """K = 2..4 terms on [0, 1] x [0, 1]: a PDE, a Dirichlet edge, a Neumann edge, a second PDE-like term."""
    g = torch.Generator().manual_seed(seed)
    lead = () if S is None else (S,)

    def pts(n):
        return torch.rand(*lead, n, 2, generator=g, dtype=torch.float64)

    terms = [fastpinn.pde("pde", pts(9), lambda f: f["u_xx"] + f["u_yy"] - f["u"], ("u", "u_xx", "u_yy"))]
    edge = pts(5)
    edge[..., 0] = 0.0
    terms.append(fastpinn.dirichlet("left", edge, 0.3))
    if K >= 3:
        terms.append(fastpinn.neumann("right", pts(4), "x", 1.0))
    if K >= 4:
        terms.append(fastpinn.pde("adv", pts(7), lambda f: f["u_x"] + 2.0 * f["u"] * f["u_y"], ("u", "u_x", "u_y")))
    net = fastpinn.MLP(2, 1, 2, 5, 0.0, 1.0, ensemble=S, seed=list(range(S)) if S else seed, dtype=torch.float64)
    return terms, net


def trace_by_definition(term, net, theta: torch.Tensor) -> np.ndarray:
    """sum_i ||grad_theta r(x_i)||^2, one autograd gradient per point and member (the definition)."""
    th = theta.detach().requires_grad_(True)
    r = ntk.term_residuals(term, net, ("x", "y"), theta=th, method="autograd")
    members = th.shape[0] if th.dim() == 2 else 1
    flat = r.reshape(members, -1)
    out = np.zeros(members)
    for s in range(members):
        for k in range(flat.shape[1]):
            (g,) = torch.autograd.grad(flat[s, k], th, retain_graph=True)
            out[s] += float((g.reshape(members, -1)[s].numpy() ** 2).sum())
    return out


@pytest.mark.parametrize("K", [2, 3, 4])
@pytest.mark.parametrize("S", [None, 2], ids=["KP", "SKP"])
@pytest.mark.parametrize("method", ["jet", "autograd"])
def test_traces_are_sums_of_per_point_squared_gradient_norms(K, S, method):
    terms, net = _terms(K, S)
    got = ntk.term_traces(terms, net, ("x", "y"), method=method).numpy()
    want = np.stack([trace_by_definition(t, net, net.theta) for t in terms], axis=1)
    # float64; the batched backward and the loop sum the same products in different orders: 1e-10 is ample.
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=0)
    # ...and not the squared norm of the summed gradient, which some libraries compute instead.
    r = ntk.term_residuals(terms[0], net, ("x", "y"), theta=net.theta)
    (g_sum,) = torch.autograd.grad(r.sum(), net.theta)
    assert not np.allclose(got[:, 0], (g_sum.reshape(got.shape[0], -1) ** 2).sum(1).numpy(), rtol=1e-3)


def test_subsample_is_unbiased_and_per_point_divides_by_n():
    terms, net = _terms(2, None)
    full = ntk.term_traces(terms, net, ("x", "y"))
    per_point = ntk.term_traces(terms, net, ("x", "y"), per_point=True)
    torch.testing.assert_close(per_point, full / torch.tensor([9.0, 5.0], dtype=torch.float64))
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([ntk.term_traces(terms, net, ("x", "y"), subsample=3, generator=g) for _ in range(400)])
    # The mean of 400 unbiased estimates: within 5 standard errors of the full trace.
    se = draws.std(0) / math.sqrt(400)
    assert torch.all((draws.mean(0) - full).abs() < 5 * se + 1e-12)
    assert torch.all(draws.std(0) > 0)  # it did subsample


def ntk_oracle(traces: list[np.ndarray], beta: float) -> list[np.ndarray]:
    """Algorithm 1: lam_j = sum_k Tr(K_kk) / Tr(K_jj) (beta = 0), optionally smoothed lam <- beta lam
    + (1 - beta) lam_hat."""
    lam, out = np.ones(traces[0].shape[0]), []
    for tr in traces:
        lam = beta * lam + (1 - beta) * tr.sum() / tr
        out.append(lam.copy())
    return out


@pytest.mark.parametrize("K", [2, 3, 4])
@pytest.mark.parametrize("S", [None, 2], ids=["KP", "SKP"])
@pytest.mark.parametrize("beta, per_point", [(0.0, False), (0.5, False), (0.0, True)])
@pytest.mark.parametrize("backend", ["torch", "cpp"])
def test_ntk_weights_match_paper(K, S, beta, per_point, backend):
    terms, net = _terms(K, S, seed=K)
    scheme = fastpinn.NTK(beta=beta, per_point=per_point, subsample=None)
    w = fastpinn.Weighter(scheme, n_terms=K, backend=backend)
    assert w.reads == "traces" and not w.needs_term_gradients and all(w.adaptive_mask)
    got, per_step = [], []
    for step in range(3):  # the network changes between updates
        with torch.no_grad():
            net.theta.add_(0.05 * torch.sin(torch.arange(net.theta.numel(), dtype=torch.float64)).view_as(net.theta))
        tr = np.stack([trace_by_definition(t, net, net.theta) for t in terms], axis=1)
        if per_point:
            tr = tr / np.array([t.n_points for t in terms])
        per_step.append(tr)
        traces = ntk.term_traces(terms, net, ("x", "y"), per_point=per_point)
        w.update_from_traces(traces if S else traces[0])
        got.append(w.weights().clone().numpy())
    for s in range(S or 1):
        want = ntk_oracle([tr[s] for tr in per_step], beta)
        for step, (g, e) in enumerate(zip(got, want)):
            np.testing.assert_allclose(g[s], e, rtol=1e-10, atol=0, err_msg=f"{s}/{step}")


def test_ntk_skips_zero_and_nonfinite_traces_and_checkpoints():
    w = fastpinn.Weighter(fastpinn.NTK(beta=0.5), n_terms=3, backend="cpp")
    w.update_from_traces(torch.tensor([[1.0, 2.0, 4.0]], dtype=torch.float64))
    first = w.weights().clone()
    w.update_from_traces(torch.tensor([[1.0, 0.0, 4.0]], dtype=torch.float64))
    assert w.skipped_counts().tolist() == [[0, 1, 0]] and w.weights()[0, 1] == first[0, 1]
    w.update_from_traces(torch.tensor([[1.0, math.nan, 4.0]], dtype=torch.float64))
    assert w.skipped_counts().tolist() == [[1, 2, 1]]
    buf = io.BytesIO()
    torch.save(w.state_dict(), buf)
    buf.seek(0)
    w2 = fastpinn.Weighter(fastpinn.NTK(beta=0.5), n_terms=3, backend="cpp")
    w2.load_state_dict(torch.load(buf, weights_only=True))
    nxt = torch.tensor([[3.0, 1.0, 2.0]], dtype=torch.float64)
    w.update_from_traces(nxt)
    w2.update_from_traces(nxt)
    assert torch.equal(w.weights(), w2.weights())
    before = [t.clone() for t in w.state_tensors()]
    w.update_from_traces(nxt * 2, active=torch.tensor(False))
    assert all(torch.equal(a, b) for a, b in zip(w.state_tensors(), before))


def test_ntk_parameters_validated():
    for make, field in [(lambda: fastpinn.NTK(subsample=0), "subsample"), (lambda: fastpinn.NTK(beta=1.0), "beta"),
                        (lambda: fastpinn.NTK(per_point=1), "per_point"), (lambda: fastpinn.NTK(tau=0), "tau")]:
        with pytest.raises(ValueError, match=field):
            make()
    with pytest.raises(ValueError, match="subsample"):
        ntk.term_traces([], None, ("x",), theta=torch.zeros(3), subsample=-1)
    with pytest.raises(ValueError, match="traces"):
        fastpinn.Weighter(fastpinn.NTK(), 2).update_from_traces(torch.ones(3))
    with pytest.raises(ValueError, match="not NTK traces"):
        fastpinn.Weighter(fastpinn.DN(), 2).update_from_traces(torch.ones(2))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_ntk_on_cuda_matches_cpu():
    terms, net = _terms(3, 2)
    cpu = ntk.term_traces(terms, net, ("x", "y"))
    net_gpu = net.to("cuda")
    terms_gpu = [t.to("cuda") for t in terms]
    gpu = ntk.term_traces(terms_gpu, net_gpu, ("x", "y"))
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-10, atol=0)  # float64; reductions in another order
    g = torch.Generator(device="cuda").manual_seed(0)
    sub = ntk.term_traces(terms_gpu, net_gpu, ("x", "y"), subsample=3, generator=g)
    assert sub.device.type == "cuda" and bool(torch.isfinite(sub).all())
    w = fastpinn.Weighter(fastpinn.NTK(beta=0.5), n_terms=3, backend="auto")
    w.update_from_traces(gpu, active=torch.tensor(True, device="cuda"))
    want = fastpinn.Weighter(fastpinn.NTK(beta=0.5), n_terms=3, backend="torch")
    want.update_from_traces(cpu)
    torch.testing.assert_close(w.weights().cpu(), want.weights(), rtol=1e-10, atol=0)
