"""Data-parallel training with torch.distributed (gloo, 2 CPU ranks, float64) equals the one-process run.

One spawned 2-rank job trains every case (process start-up dominates, so the cases share it); the
parent trains the same cases alone and compares.

Tolerance: the ranks sum two partial means (``n_0/N L_0 + n_1/N L_1``) where one process sums all
``N`` squared residuals at once, so every loss and gradient differs by a few float64 ulps (~1e-16
relative) per step. Adam divides by ``sqrt(v)`` and the weights are ratios of gradient statistics, so
such differences are carried forward but not amplified much over a hundred-odd steps of a smooth tiny
problem: ``rtol=1e-9`` leaves a margin of ~10^6 over the rounding, and still fails on any real mistake
(a wrong share, a missed reduction or an unreduced ``G`` changes results at the 1e-2..1e-5 level).
The term losses get ``rtol=1e-7``: a small loss (the boundary term at ~1e-7) is the square of a
residual that is a cancellation of O(1) network terms, so its relative error is the parameters'
absolute error divided by the residual (~1e-3.5): measured 1.8e-9 after 120 steps.
Between the ranks the results must be bit-identical: every rank computes the weights from the same
reduced bits.
"""

from __future__ import annotations

import datetime
import os
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import fastpinn
from fastpinn.problems import allen_cahn, poisson1d
from fastpinn.trainer import Trainer

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")

RTOL = 1e-9  # see the module docstring
RTOL_LOSS = 1e-7  # see the module docstring: small losses are squares of cancelling residuals


def _problem(name: str):
    if name == "poisson":  # full batch; 25 PDE points: shards of 12 and 13
        return poisson1d(0, n_pde=25, depth=2, width=6)
    # mini-batches of 10 over 37 PDE points (4 steps per epoch, the last of 7) and unequal constraint shards
    p = allen_cahn(0, n_pde=37, n_ic=7, n_bc=4, batch_size=10, depth=2, width=6)
    p.solution = None  # no reference solve in a unit test
    return p


CASES = [
    ("poisson", "DN", 120), ("poisson", "MA", 120), ("poisson", "ID", 120), ("poisson", "PINN", 120),
    ("allen_cahn", "DN", 30), ("allen_cahn", "PINN", 30),
]


def _scheme(name: str):
    return fastpinn.PINN() if name == "PINN" else getattr(fastpinn, name)(tau=3)


def _train(problem: str, scheme: str, epochs: int, distributed=None, overlap: bool = False) -> dict:
    trainer = Trainer(_problem(problem), _scheme(scheme), dtype=torch.float64, backend="torch", lr=3e-3,
                      eval_every=40, threads=None, distributed=distributed, overlap=overlap)
    h = trainer.train(epochs)
    return {"losses": h.losses, "weights": h.weights, "rel_l2": h.rel_l2, "theta": trainer.theta.detach().clone(),
            "collectives": trainer.backward.collectives, "reduced": trainer.backward.reduced_elements,
            "steps": epochs * trainer.steps_per_epoch, "world": trainer.world_size,
            "shard": trainer.shard_sizes}


RESUME_EPOCHS = 20


def _resume_trainer(distributed=None) -> Trainer:
    return Trainer(_problem("allen_cahn"), fastpinn.DN(tau=3), dtype=torch.float64, backend="torch", lr=3e-3,
                   eval_every=10, threads=None, distributed=distributed)


OVERLAP_SCHEMES = {"DN": lambda: fastpinn.DN(tau=3), "PINN": fastpinn.PINN,
                   "SoftAdapt": lambda: fastpinn.SoftAdapt(tau=2)}
OVERLAP_N, OVERLAP_STEPS = 23, 9  # 23 points: shards of 11 and 12


def _overlap_loop(scheme: str, rank: int, world: int, overlap: bool, bucket: int = 1 << 16) -> dict:
    """A custom loop on WeightedBackward: 3 terms sharing one forward, a coefficient only term 0 reads
    (so the last backward leaves its gradient alone), unequal shards. Every step's outputs are kept."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8), torch.nn.Tanh(),
                              torch.nn.Linear(8, 1)).double()
    coef = torch.nn.Parameter(torch.tensor([0.5], dtype=torch.float64))
    params = list(net.parameters()) + [coef]
    lo, hi = rank * OVERLAP_N // world, (rank + 1) * OVERLAP_N // world
    x = torch.linspace(-1, 1, OVERLAP_N, dtype=torch.float64).unsqueeze(1)[lo:hi]
    wb = fastpinn.WeightedBackward(params, OVERLAP_SCHEMES[scheme](), ["a", "b", "c"], process_group=dist.group.WORLD,
                                   overlap=overlap, bucket_elements=bucket)
    opt = torch.optim.Adam(params, lr=1e-2)
    steps = []
    for _ in range(OVERLAP_STEPS):
        u = net(x)
        losses = [((u - coef * torch.sin(3 * x)) ** 2).mean(), ((u - x ** 2) ** 2).mean(), (u ** 4).mean()]
        lam = wb(losses, shard_weights=[(hi - lo) / OVERLAP_N] * 3)
        steps.append({"lam": lam.clone(), "losses": wb.losses.clone(), "grad": [p.grad.clone() for p in params],
                      "G": None if wb.G is None else wb.G.clone()})
        opt.step()
    return {"steps": steps, "collectives": wb.collectives, "reduced": wb.reduced_elements,
            "n_params": wb.rows.n_params, "leaves": len(params)}


def _overlap_cases(rank: int, world: int) -> dict:
    res = {}
    for scheme in OVERLAP_SCHEMES:
        res[f"{scheme}/blocking"] = _overlap_loop(scheme, rank, world, overlap=False)
        res[f"{scheme}/overlap"] = _overlap_loop(scheme, rank, world, overlap=True)  # small: one piece a step
        res[f"{scheme}/overlap1"] = _overlap_loop(scheme, rank, world, overlap=True, bucket=1)  # a piece a tensor
        res[f"{scheme}/overlap17"] = _overlap_loop(scheme, rank, world, overlap=True, bucket=17)  # see the test
    res["trainer"] = _train("allen_cahn", "DN", 30, overlap=True)
    return res


def _worker(rank: int, world: int, out: str, mode: str) -> None:
    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", init_method=f"file://{out}/rendezvous", rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=20))
        if mode == "cases":
            res = {f"{p}/{s}": _train(p, s, e) for p, s, e in CASES}
            res["overlap"] = _overlap_cases(rank, world)
            # resume on another number of ranks: from a one-process checkpoint, and write one for one process
            t = _resume_trainer(distributed=None)
            t.load_checkpoint(f"{out}/alone.pt")
            t.train(RESUME_EPOCHS)
            res["resumed_from_one"] = t.theta.detach().clone()
            t = _resume_trainer(distributed=None)
            t.train(RESUME_EPOCHS)
            t.save_checkpoint(f"{out}/two.pt")  # rank 0 writes, rank 1 waits
            res["two_ckpt_exists_after_barrier"] = os.path.exists(f"{out}/two.pt")
            # a stop asked for on one rank only (e.g. its SIGTERM): every rank stops at the next boundary
            t = _resume_trainer(distributed=None)
            if rank == 1:
                t.request_stop()
            h = t.train(RESUME_EPOCHS)
            res["stopped"] = (t.epoch, bool(h.extra.get("stopped")), h.epochs)
            torch.save(res, f"{out}/rank{rank}.pt")
        elif mode.startswith("kill"):
            trainer = Trainer(_problem("poisson"), fastpinn.DN(tau=3), dtype=torch.float64, backend="torch",
                              threads=None, overlap=mode == "kill-overlap")
            trainer.train(5)
            if rank == 1:
                os._exit(3)  # dies without a word, mid-job
            trainer.train(50)
        dist.destroy_process_group()
    except BaseException as exc:  # noqa: BLE001 - reported to the parent through a file
        with open(f"{out}/error{rank}.txt", "w") as f:
            f.write(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        raise SystemExit(1)


def _spawn(tmp_path, mode: str) -> list[int]:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(r, 2, str(tmp_path), mode)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    codes = []
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
        codes.append(p.exitcode)
    return codes


@pytest.fixture(scope="module")
def two_rank_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    t = _resume_trainer()
    t.train(RESUME_EPOCHS)
    t.save_checkpoint(str(out / "alone.pt"))
    codes = _spawn(out, "cases")
    errors = [(out / f"error{r}.txt").read_text() for r in range(2) if (out / f"error{r}.txt").exists()]
    assert codes == [0, 0], errors
    res = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]
    res[0]["dir"] = out
    return res


@pytest.mark.parametrize("problem,scheme,epochs", CASES)
def test_two_ranks_equal_one_process(two_rank_results, problem, scheme, epochs):
    alone = _train(problem, scheme, epochs)
    r0, r1 = (res[f"{problem}/{scheme}"] for res in two_rank_results)
    assert r0["world"] == 2 and alone["world"] == 1
    assert r0["shard"] != r1["shard"] or problem == "poisson" and r0["shard"][0] != r1["shard"][0]
    # bit-identical across ranks: weights, losses, parameters
    for key in ("losses", "weights", "rel_l2"):
        assert np.array_equal(r0[key], r1[key]), key
    assert torch.equal(r0["theta"], r1["theta"])
    # equal to one process on the same points, to rounding
    np.testing.assert_allclose(r0["losses"], alone["losses"], rtol=RTOL_LOSS, atol=0)
    np.testing.assert_allclose(r0["weights"], alone["weights"], rtol=RTOL, atol=0)
    np.testing.assert_allclose(r0["rel_l2"], alone["rel_l2"], rtol=RTOL, atol=0)
    torch.testing.assert_close(r0["theta"], alone["theta"], rtol=RTOL, atol=1e-12)
    if scheme != "PINN":
        assert not np.allclose(r0["weights"][-1], 1.0)  # the weights did move: the comparison means something
    # one collective per step (plus the losses before a loss-based update: none here); alone: none
    assert r0["collectives"] == r0["steps"] and alone["collectives"] == 0


def test_non_update_steps_reduce_k_times_less(two_rank_results):
    """DN on poisson (K=2): update steps move S K P + S K elements, the others S P + S K."""
    r = two_rank_results[0]["poisson/DN"]
    t = Trainer(_problem("poisson"), _scheme("DN"), dtype=torch.float64, backend="torch", threads=None)
    P, K, steps = t.theta.numel(), 2, r["steps"]
    updates = len(range(0, steps, 3))
    assert r["reduced"] == updates * (K * P + K) + (steps - updates) * (P + K)


@pytest.mark.parametrize("mode", ["kill", "kill-overlap"])
def test_killed_rank_fails_the_job_with_a_clear_message(tmp_path, mode):
    codes = _spawn(tmp_path, mode)
    assert codes[1] == 3
    assert codes[0] == 1  # the survivor does not hang: it fails
    message = (tmp_path / "error0.txt").read_text()
    assert "collective" in message and "rank 0" in message, message


def test_a_stop_on_one_rank_stops_every_rank_at_the_same_boundary(two_rank_results):
    # eval_every = 10: the request of rank 1 (made before epoch 1) is agreed on at epoch 10
    assert [r["stopped"] for r in two_rank_results] == [(10, True, 10)] * 2


def _same_steps(a: dict, b: dict, with_G: bool = True) -> bool:
    """Bit-identical weights, losses and .grad at every step (and G: reduced on update steps, local else)."""
    return all(torch.equal(x["lam"], y["lam"]) and torch.equal(x["losses"], y["losses"])
               and all(torch.equal(g, h) for g, h in zip(x["grad"], y["grad"]))
               and (not with_G or x["G"] is None or torch.equal(x["G"], y["G"]))
               for x, y in zip(a["steps"], b["steps"]))


@pytest.mark.parametrize("scheme", list(OVERLAP_SCHEMES))
def test_overlapped_reduction_equals_the_blocking_one(two_rank_results, scheme):
    """overlap=True sums the same numbers: every step's weights, global losses, .grad and reduced G equal
    the blocking run's bit for bit, on both ranks, with the same elements reduced in more collectives."""
    r0, r1 = (res["overlap"] for res in two_rank_results)
    blocking = r0[f"{scheme}/blocking"]
    for variant in ("overlap", "overlap1", "overlap17"):
        assert _same_steps(r0[f"{scheme}/{variant}"], blocking), variant
        assert _same_steps(r1[f"{scheme}/{variant}"], r0[f"{scheme}/{variant}"], with_G=False), variant  # ranks
        assert r0[f"{scheme}/{variant}"]["reduced"] == blocking["reduced"]
    P, leaves, K, steps = blocking["n_params"], blocking["leaves"], 3, OVERLAP_STEPS
    assert (P, leaves) == (98, 7)  # 1-8-8-1 MLP (16 + 72 + 9) and the coefficient
    updates = len(range(0, steps, 3 if scheme == "DN" else 2))
    if scheme == "DN":  # K + 1 (G, or the combination) per step; the losses alone before a SoftAdapt update
        assert blocking["reduced"] == updates * (K * P + K) + (steps - updates) * (P + K)
    extra = updates if scheme == "SoftAdapt" else 0
    assert blocking["collectives"] == steps + extra
    assert r0[f"{scheme}/overlap"]["collectives"] == steps + extra  # a network this small: one piece per step
    # one piece per tensor (bucket_elements=1): update steps a row of G per term, the others a tensor each
    per_update = K if scheme == "DN" else leaves
    assert r0[f"{scheme}/overlap1"]["collectives"] == updates * per_update + (steps - updates) * leaves + extra
    # 17: a row of G (98 entries) per term; buckets from the row's end [80, 98), [16, 80), and the first
    # layer's 16 entries too few alone, so joined to the one before: 2 pieces
    per_update = K if scheme == "DN" else 2
    assert r0[f"{scheme}/overlap17"]["collectives"] == updates * per_update + (steps - updates) * 2 + extra


def test_overlapped_trainer_equals_the_blocking_one(two_rank_results):
    r0, r1 = two_rank_results
    got, want = r0["overlap"]["trainer"], r0["allen_cahn/DN"]
    assert torch.equal(got["theta"], want["theta"]) and torch.equal(got["theta"], r1["overlap"]["trainer"]["theta"])
    for key in ("losses", "weights"):
        assert np.array_equal(got[key], want[key]), key
    assert got["reduced"] == want["reduced"] and got["collectives"] == want["collectives"]


def test_overlap_options_are_checked():
    p = [torch.zeros(3, requires_grad=True)]
    with pytest.raises(ValueError, match="overlap must be True or False"):
        fastpinn.WeightedBackward(p, fastpinn.DN(), 2, overlap="yes")
    with pytest.raises(ValueError, match="bucket_elements must be an integer >= 1"):
        fastpinn.WeightedBackward(p, fastpinn.DN(), 2, overlap=True, bucket_elements=0)
    with pytest.raises(ValueError, match="overlap=True needs members=1, got members=2"):
        fastpinn.WeightedBackward([torch.zeros(2, 3, requires_grad=True)], fastpinn.DN(), 2, members=2, overlap=True)


def test_distributed_true_needs_a_process_group():
    with pytest.raises(ValueError, match="initialized torch.distributed process group"):
        Trainer(_problem("poisson"), fastpinn.DN(), distributed=True)
    with pytest.raises(ValueError, match="distributed must be"):
        Trainer(_problem("poisson"), fastpinn.DN(), distributed="yes")


# --------------------------------------------------------------------------------------- sweeps
TINY = dict(seeds=2, epochs=6, problem="poisson1d", problem_kwargs={"n_pde": 16}, backend="torch", eval_every=3,
            figures=False)


def test_sharded_reproduce_gives_the_unsharded_table(tmp_path, monkeypatch):
    from fastpinn import experiments

    whole = experiments.reproduce("table4", out=tmp_path / "whole", **TINY)
    keys = [r.key for r in whole.rows]
    out = tmp_path / "sharded"
    first = experiments.reproduce("table4", out=out, shard="0/2", **TINY)
    assert first.missing == keys[1::2] and not (out / "table.md").exists()  # no table before every run is there
    trained = []
    real = experiments.train_run

    def counting(cfg, d, **kw):
        trained.append(str(Path(d).relative_to(out)))
        return real(cfg, d, **kw)

    from fastpinn.run import sweeps

    monkeypatch.setattr(sweeps, "train_run", counting)
    second = experiments.reproduce("table4", out=out, shard="1/2", **TINY)
    assert trained == keys[1::2]  # its own share only; shard 0's runs are read, not retrained
    assert not second.missing and (out / "table.md").read_text() == second.markdown
    assert [r.key for r in second.rows] == keys
    # same configurations, same seeds, same process: the same numbers
    assert [r.rel_l2_mean for r in second.rows] == [r.rel_l2_mean for r in whole.rows]
    # a shard killed before one of its runs finished: the rerun trains that run only
    (out / keys[3] / "metrics.json").unlink()
    trained.clear()
    again = experiments.reproduce("table4", out=out, shard="1/2", **TINY)
    assert trained == [keys[3]] and not again.missing


@pytest.mark.parametrize("bad", ["2/2", "1", "a/b", "-1/2", "0/0"])
def test_bad_shard(bad):
    from fastpinn.experiments import sweep_shard

    with pytest.raises(ValueError, match="shard must be 'i/n'"):
        sweep_shard(bad)


def test_shard_from_torchrun_environment(monkeypatch):
    from fastpinn.experiments import sweep_shard

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert sweep_shard() == (1, 3) and sweep_shard("0/2") == (0, 2)
    monkeypatch.delenv("RANK")
    assert sweep_shard() == (0, 1)


def test_resume_on_another_number_of_ranks(two_rank_results):
    """A checkpoint does not depend on the number of ranks: 1 -> 2 and 2 -> 1 resumes equal a straight run."""
    straight = _resume_trainer()
    straight.train(2 * RESUME_EPOCHS)
    r0, r1 = two_rank_results
    assert torch.equal(r0["resumed_from_one"], r1["resumed_from_one"])
    torch.testing.assert_close(r0["resumed_from_one"], straight.theta.detach(), rtol=RTOL, atol=1e-12)
    assert r1["two_ckpt_exists_after_barrier"]  # rank 1 passed the barrier only once rank 0 had written
    alone = _resume_trainer()
    alone.load_checkpoint(str(r0["dir"] / "two.pt"))
    alone.train(RESUME_EPOCHS)
    torch.testing.assert_close(alone.theta.detach(), straight.theta.detach(), rtol=RTOL, atol=1e-12)
