"""Aggregators as schemes: registration and options, the direction each step, ensembles, M-ConFIG's one
backward per step and momenta, sync-free steps on the device gate, checkpoints, the Trainer and the CLI.

The solvers are pure functions of :mod:`fastpinn.aggregation.solvers`; where this test needs one that the module
does not (yet) provide, it installs its own NumPy/torch transcription of the paper's formula (ConFIG) and says so.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

import fastpinn
from fastpinn import cli
from fastpinn.aggregation import combine_rows, solvers, term_gram
from fastpinn.backward import WeightedBackward
from fastpinn.problems import poisson1d
from fastpinn.schemes import (SCHEME_NAMES, AggregatorScheme, MConFIG, PCGrad, add_scheme_options,
                              scheme_from_name, scheme_params_from_args)

METHODS = {"pcgrad": "PCGrad", "mgda": "MGDA", "cagrad": "CAGrad", "imtl-g": "IMTL-G", "aligned-mtl": "Aligned-MTL",
           "nash-mtl": "Nash-MTL", "upgrad": "UPGrad", "config": "ConFIG", "m-config": "M-ConFIG", "dcgd": "DCGD"}


def config_oracle(gram: torch.Tensor) -> torch.Tensor:
    """ConFIG (Liu, Chu & Thuerey 2025, eq. 2-3) in weight space: ``u_k = g_k / |g_k|``; ``d = U^+ 1`` (the least
    squares direction with ``u_k . d = 1``), ``d = sum_k a_k u_k`` with ``(U Uᵀ) a = 1``; the update is
    ``(sum_k g_k . d / |d|) d / |d|``."""
    n = torch.diagonal(gram, dim1=1, dim2=2).sqrt()
    unit = gram / (n.unsqueeze(2) * n.unsqueeze(1))
    a = (torch.linalg.pinv(unit) @ torch.ones_like(n).unsqueeze(2)).squeeze(2)
    d2 = (a.unsqueeze(1) @ unit @ a.unsqueeze(2)).squeeze(2)  # |d|^2, [S, 1]
    proj = (n * (unit @ a.unsqueeze(2)).squeeze(2)).sum(1, keepdim=True)  # sum_k g_k . d
    return proj / d2 * a / n


@pytest.fixture
def with_config(monkeypatch):
    """ConFIG's solver: the module's, or the oracle above where the module has none."""
    if not hasattr(solvers, "config_weights"):
        monkeypatch.setattr(solvers, "config_weights", config_oracle, raising=False)


def pcgrad_numpy(g: np.ndarray, order) -> np.ndarray:
    """PCGrad, Yu et al. 2020, Algorithm 1, on G[K, P]: each g_i projected off the g_j it conflicts with, in
    ``order``, then summed."""
    out = np.zeros(g.shape[1])
    for i in range(len(g)):
        gi = g[i].copy()
        for j in order:
            if j != i and gi @ g[j] < 0:
                gi -= (gi @ g[j]) / (g[j] @ g[j]) * g[j]
        out += gi
    return out


# -------------------------------------------------------------------------------------------- declaration
def test_every_method_is_registered_with_its_title_and_options():
    for name, title in METHODS.items():
        assert name in SCHEME_NAMES and scheme_from_name(name).title == title
        assert issubclass(type(scheme_from_name(name)), AggregatorScheme)
    parser = argparse.ArgumentParser()
    add_scheme_options(parser)
    args = parser.parse_args(["--cagrad-c", "0.3", "--iters", "7"])
    cagrad = scheme_from_name("cagrad", **scheme_params_from_args(["cagrad"], args))
    assert cagrad.identity() == {"scheme": "cagrad", "cagrad_c": 0.3, "iters": 7, "tau": 1}
    assert cagrad.describe() == "CAGrad (c=0.3, iters=7)"
    assert scheme_from_name("dcgd").describe() == "DCGD (variant=center)"
    with pytest.raises(ValueError, match="--iters is not an option of scheme 'pcgrad'"):
        scheme_params_from_args(["pcgrad"], parser.parse_args(["--iters", "3"]))
    with pytest.raises(ValueError, match="dcgd_variant"):
        scheme_from_name("dcgd", dcgd_variant="median")
    with pytest.raises(ValueError, match="momentum_beta"):
        MConFIG(beta=1.0)


# ------------------------------------------------------------------------------------------ the direction
def _conflicting(S: int, K: int, P: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    G = torch.randn(S, K, P, generator=gen, dtype=torch.float64)
    G[:, -1] = -0.7 * G[:, 0] + 0.3 * G[:, -1]  # a conflict in every member
    return G


@pytest.mark.parametrize("K", [2, 3, 5])
def test_pcgrad_direction_is_the_papers_algorithm_in_every_member(K):
    S = 3
    G = _conflicting(S, K, 40, seed=K)
    scheme = PCGrad(seed=7)
    n_updates = torch.tensor([0, 5, 9])
    w = scheme.aggregate(term_gram(G), n_updates)
    order = scheme.order(S, K, n_updates)
    assert sorted(order[1].tolist()) == list(range(K))
    d = combine_rows(G, w)
    for s in range(S):
        np.testing.assert_allclose(d[s].numpy(), pcgrad_numpy(G[s].numpy(), order[s].tolist()), rtol=1e-12, atol=1e-12)
    # the order is a function of (seed, member, count): drawn again, the same; another seed, another sequence
    assert torch.equal(order, scheme.order(S, K, n_updates))
    orders = [PCGrad(seed=1).order(S, 5, torch.full((S,), c)) for c in range(20)]
    assert len({tuple(o[0].tolist()) for o in orders}) > 1


def _toy(members: int = 1, seed: int = 0):
    """A parameter block theta[S, 6] and three conflicting per-member losses."""
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(members, 6, generator=gen, dtype=torch.float64).requires_grad_(True)
    A = torch.randn(3, 6, 6, generator=gen, dtype=torch.float64)

    def losses():
        return [((theta @ A[k]) ** 2).mean(dim=1) + (theta[:, k] - (-1.0) ** k) ** 2 for k in range(3)]

    return theta, losses


def test_weighted_backward_sets_grad_to_the_direction_every_call():
    theta, losses = _toy()
    wb = WeightedBackward([theta], PCGrad(), ["a", "b", "c"], steps_per_epoch=3)  # updates every call anyway
    opt = torch.optim.SGD([theta], lr=1e-2)
    for step in range(4):
        lam = wb(losses())
        G = wb.G.clone()
        want = pcgrad_numpy(G[0].numpy(), PCGrad().order(1, 3, torch.tensor([step]))[0].tolist())
        np.testing.assert_allclose(theta.grad[0].numpy(), want, rtol=1e-12, atol=1e-14)
        assert torch.allclose(theta.grad, combine_rows(G, lam.unsqueeze(0)), rtol=1e-14, atol=0)
        opt.step()
    assert int(wb.weighter.n_updates[0]) == 4 and wb.backward_passes == 12


def test_ensemble_members_are_solved_each_on_its_own():
    S = 3
    theta, losses = _toy(members=S, seed=1)
    wb = WeightedBackward([theta], PCGrad(seed=2), 3, members=S)
    lam = wb(losses())
    order = PCGrad(seed=2).order(S, 3, torch.zeros(S, dtype=torch.int64))
    for s in range(S):
        np.testing.assert_allclose(theta.grad[s].numpy(), pcgrad_numpy(wb.G[s].numpy(), order[s].tolist()),
                                   rtol=1e-12, atol=1e-14)
    assert lam.shape == (S, 3)


def test_weighter_update_reads_the_gram_of_G():
    G = _conflicting(2, 3, 30, seed=4)
    w = fastpinn.Weighter(PCGrad(), n_terms=3)
    lam = w.update(G)
    assert torch.equal(lam, PCGrad().aggregate(term_gram(G), torch.zeros(2, dtype=torch.int64)))
    with pytest.raises(ValueError, match="Gram"):
        fastpinn.Weighter(fastpinn.DN(), 3).update_from_gram(term_gram(G))
    with pytest.raises(ValueError, match="aggregator"):
        w.update_from_stats(w.statistics(G), G.shape[-1])


# -------------------------------------------------------------------------------------------------- M-ConFIG
def test_m_config_runs_one_backward_per_call_and_the_device_gate_agrees(with_config):
    results = {}
    for gate in ("host", "device"):
        theta, losses = _toy(seed=3)
        wb = WeightedBackward([theta], MConFIG(), 3, gate=gate)
        opt = torch.optim.Adam([theta], lr=1e-2)
        grads = []
        for _ in range(7):
            wb(losses())
            grads.append(theta.grad.clone())
            opt.step()
        results[gate] = (grads, wb.backward_passes, wb.weighter.scheme_state["count"].clone())
    host, device = results["host"], results["device"]
    assert host[1] == 7 and device[1] == 3 * 7  # one backward per call (the device gate: K, one row used)
    assert host[2].tolist() == [[3, 2, 2]] and torch.equal(host[2], device[2])  # terms 0, 1, 2, 0, 1, 2, 0
    for a, b in zip(host[0], device[0]):
        assert torch.equal(a, b)


def test_m_config_momenta_of_constant_gradients_are_the_gradients(with_config):
    """Linear losses have constant gradients c_k: each bias-corrected momentum is c_k whatever its count, so
    every step's direction is ConFIG of the c_k seen so far: c_0 alone, then {c_0, c_1}, then all three."""
    gen = torch.Generator().manual_seed(5)
    c = torch.randn(3, 8, generator=gen, dtype=torch.float64)
    c[2] = -0.5 * c[0] + 0.2 * c[2]
    theta = torch.zeros(1, 8, dtype=torch.float64, requires_grad=True)
    wb = WeightedBackward([theta], MConFIG(beta=0.8), 3)
    for step in range(5):
        seen = c[:min(step + 1, 3)].unsqueeze(0)
        want = combine_rows(seen, config_oracle(term_gram(seen)))
        wb([(theta * c[k]).sum(dim=1) for k in range(3)])
        np.testing.assert_allclose(theta.grad.numpy(), want.numpy(), rtol=1e-10, atol=1e-13)
        for k in range(seen.shape[1]):  # equal positive cosine to every gradient seen (ConFIG's property)
            cos = float(theta.grad[0] @ c[k] / theta.grad[0].norm() / c[k].norm())
            assert cos > 0


# --------------------------------------------------------------------------------------------- sync-free
_HOST_READS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "numpy", "cpu")


@pytest.mark.parametrize("name", ["pcgrad", "m-config"])
def test_device_gate_step_reads_nothing_on_the_host(name, with_config, monkeypatch):
    theta, losses = _toy(members=2, seed=6)
    wb = WeightedBackward([theta], scheme_from_name(name), 3, members=2, gate="device")
    opt = torch.optim.SGD([theta], lr=1e-2)
    wb(losses())  # the first call allocates nothing new later, but keep it outside for clarity
    opt.step()

    def refuse(self, *a, **k):
        raise AssertionError("a host read of a tensor in the step")

    for attr in _HOST_READS:
        monkeypatch.setattr(torch.Tensor, attr, refuse)
    for _ in range(3):
        wb(losses())
        opt.step()
    monkeypatch.undo()
    assert torch.isfinite(theta).all() and int(wb.weighter.n_updates[0]) == 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch.cuda.set_sync_debug_mode needs a CUDA device")
@pytest.mark.parametrize("name", ["pcgrad", "m-config"])
def test_device_gate_step_has_no_device_to_host_copy_on_cuda(name, with_config):
    theta, losses = _toy(members=2, seed=6)
    theta = theta.detach().cuda().requires_grad_(True)
    A = [torch.randn(6, 6, dtype=torch.float64, device="cuda") for _ in range(3)]
    wb = WeightedBackward([theta], scheme_from_name(name), 3, members=2, gate="device")
    step = lambda: wb([((theta @ a) ** 2).mean(dim=1) for a in A])  # noqa: E731
    step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            step()
    finally:
        torch.cuda.set_sync_debug_mode("default")


# ---------------------------------------------------------------------------------- Trainer, checkpoint, CLI
def _trainer(name: str) -> fastpinn.Trainer:
    return fastpinn.Trainer(poisson1d(0, n_pde=16, depth=2, width=4), scheme_from_name(name), dtype=torch.float64,
                            backend="torch", eval_every=2)


@pytest.mark.parametrize("name", list(METHODS))
def test_the_trainer_trains_every_method(name, with_config):
    solver = scheme_from_name(name).solver
    if not hasattr(solvers, solver):
        pytest.skip(f"solvers.{solver} is not in this build (the placeholder solvers.py)")
    t = _trainer(name)
    h = t.train(4)
    assert np.isfinite(h.losses).all() and h.losses[-1].sum() < h.losses[0].sum() * 10
    assert int(t.weighter.n_updates[0]) == 4


@pytest.mark.parametrize("name", ["pcgrad", "m-config"])
def test_resume_from_a_checkpoint_equals_the_straight_run(name, with_config, tmp_path):
    straight = _trainer(name)
    straight.train(6)
    t = _trainer(name)
    t.train(3)
    t.save_checkpoint(str(tmp_path / "c.pt"))
    resumed = _trainer(name)
    resumed.load_checkpoint(str(tmp_path / "c.pt"))
    resumed.train(3)
    assert torch.equal(resumed.theta, straight.theta)
    assert torch.equal(resumed.weighter.lam_applied, straight.weighter.lam_applied)


def test_the_cli_trains_pcgrad_and_its_seed_is_part_of_the_run_identity(tmp_path, capsys):
    out = tmp_path / "pc"
    argv = ["train", "poisson1d", "--scheme", "pcgrad", "--pcgrad-seed", "3", "--epochs", "4", "--n-pde", "16",
            "--eval-every", "2", "--threads", "1", "--no-progress", "--no-figures", "--backend", "torch",
            "--out", str(out)]
    assert cli.main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["identity"]["pcgrad_seed"] == 3
    assert "PCGrad (seed=3)" in capsys.readouterr().err


def test_compare_trains_an_aggregator_beside_pinn_as_an_ensemble_of_seeds(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "poisson1d", "--schemes", "pinn,pcgrad", "--seeds", "2", "--epochs", "4", "--n-pde", "16",
            "--eval-every", "2", "--threads", "1", "--no-progress", "--no-figures", "--backend", "torch",
            "--out", str(out)]
    assert cli.main(argv) == 0
    table = (out / "compare.md").read_text()
    assert "PCGrad" in table and "PINN" in table


def test_the_weight_watch_does_not_call_an_aggregators_zero_weight_a_collapse(recwarn):
    """MGDA's minimum-norm point often puts weight 0 on a term (here the PDE's: 1e-9 by epoch 400), which the
    collapse rule of the EMA schemes reported with advice (--beta) that does not apply to an aggregator."""
    from fastpinn.weight_watch import WeightWatch

    t = fastpinn.Trainer(poisson1d(0, n_pde=64, depth=3, width=16), scheme_from_name("mgda"), eval_every=20,
                         watch=WeightWatch(stall_epochs=100))
    h = t.train(400)
    assert float(h.weights[-1].min()) < 1e-3 * float(h.weights[0].max())  # a weight near 0: the old report
    assert not [w for w in recwarn.list if "λ_" in str(w.message)]
    assert not h.extra.get("weight_warnings")
