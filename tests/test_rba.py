"""Residual-based attention (pointwise weights) against a NumPy oracle of Anagnostopoulos et al. 2024."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from fastpinn.rba import ResidualAttention


def rba_oracle(rs: list[np.ndarray], idxs, N: int, gamma: float, eta: float, init: float):
    """lam_i <- gamma lam_i + eta |r_i| / max_k |r_k| on the step's points; loss mean (lam_i r_i)^2 with the
    weights before the update. One member, scalar residuals."""
    lam, losses = np.full(N, init), []
    for r, idx in zip(rs, idxs):
        idx = np.arange(N) if idx is None else idx
        losses.append(np.mean((lam[idx] * r) ** 2))
        lam[idx] = gamma * lam[idx] + eta * np.abs(r) / np.abs(r).max()
    return lam, losses


@pytest.mark.parametrize("S", [1, 3])
@pytest.mark.parametrize("batch", [None, 5])
def test_rba_matches_paper(S, batch):
    N, steps = 12, 6
    rng = np.random.default_rng(S)
    idxs = [None if batch is None else rng.permutation(N)[:batch] for _ in range(steps)]
    rs = [rng.standard_normal((S, N if batch is None else batch)) * (1 + t) for t in range(steps)]
    rba = ResidualAttention([N, 4], terms=(0,), gamma=0.9, eta=0.1, init=1.0)
    rba.reset(S, torch.float64)
    got_losses = []
    for r, idx in zip(rs, idxs):
        index = None if idx is None else torch.from_numpy(idx)
        got_losses.append(rba.loss(0, torch.from_numpy(r), index).numpy())
        rba.update(0, torch.from_numpy(r), index)
    for s in range(S):
        lam, losses = rba_oracle([r[s] for r in rs], idxs, N, 0.9, 0.1, 1.0)
        np.testing.assert_allclose(rba.lam[0][s].numpy(), lam, rtol=1e-13, atol=0)
        np.testing.assert_allclose([g[s] for g in got_losses], losses, rtol=1e-13, atol=0)
    assert float(rba.lam[0].max()) <= 1.0 + 0.1 / (1 - 0.9)  # bounded


def test_rba_gate_skip_gradient_and_checkpoint():
    rba = ResidualAttention([6], gamma=0.5, eta=1.0)
    rba.reset(2, torch.float64)
    r = torch.randn(2, 6, dtype=torch.float64, requires_grad=True)
    rba.loss(0, r).sum().backward()  # gradient flows to the residual, not into the weights
    torch.testing.assert_close(r.grad, 2 * r.detach() / 6)
    before = rba.lam[0].clone()
    rba.update(0, r, active=torch.tensor(False))
    assert torch.equal(rba.lam[0], before)
    bad = r.detach().clone()
    bad[1, 2] = math.nan
    rba.update(0, bad)
    assert torch.equal(rba.lam[0][1], before[1]) and not torch.equal(rba.lam[0][0], before[0])
    buf = io.BytesIO()
    torch.save(rba.state_dict(), buf)
    buf.seek(0)
    other = ResidualAttention([6], gamma=0.5, eta=1.0)
    other.load_state_dict(torch.load(buf, weights_only=True))
    rba.update(0, r.detach())
    other.update(0, r.detach())
    assert torch.equal(rba.lam[0], other.lam[0])


@pytest.mark.parametrize("kwargs, field", [
    (dict(gamma=1.0), "gamma"), (dict(eta=0.0), "eta"), (dict(init=-1.0), "init"), (dict(terms=(3,)), "terms"),
])
def test_rba_parameters_validated(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ResidualAttention([4, 4], **kwargs)
