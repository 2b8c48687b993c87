"""Aggregators with data parallelism (gloo, 2 CPU ranks): ``G`` is reduced before the Gram matrix, so every rank
solves the same problem from the same bits -- the directions are bit-identical across ranks -- and equal the
one-process direction on all points to rounding (the ranks sum two partial means where one process sums all
points at once: a few ulps per step, carried over a few steps; rtol 1e-10 leaves a wide margin and still fails on
an unreduced G, whose directions differ at the 1e-1 level)."""

from __future__ import annotations

import datetime
import traceback

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import fastpinn
from fastpinn.aggregation import solvers
from fastpinn.schemes import scheme_from_name

# slow: two spawned ranks cost ~30-40 s of process start-up on the shared 2-core machine
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                 reason="torch.distributed with gloo is not available")]

N, STEPS = 23, 5  # 23 points: shards of 11 and 12
NAMES = ("pcgrad", "m-config")


def _config(gram):
    """ConFIG in weight space where the solvers module has none (see tests/test_aggregators.py)."""
    n = torch.diagonal(gram, dim1=1, dim2=2).sqrt()
    unit = gram / (n.unsqueeze(2) * n.unsqueeze(1))
    a = (torch.linalg.pinv(unit) @ torch.ones_like(n).unsqueeze(2)).squeeze(2)
    d2 = (a.unsqueeze(1) @ unit @ a.unsqueeze(2)).squeeze(2)
    return (n * (unit @ a.unsqueeze(2)).squeeze(2)).sum(1, keepdim=True) / d2 * a / n


def _loop(name: str, rank: int, world: int) -> list[torch.Tensor]:
    if not hasattr(solvers, "config_weights"):
        solvers.config_weights = _config
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    lo, hi = rank * N // world, (rank + 1) * N // world
    x = torch.linspace(-1, 1, N, dtype=torch.float64).unsqueeze(1)[lo:hi]
    group = dist.group.WORLD if world > 1 else None
    wb = fastpinn.WeightedBackward(net, scheme_from_name(name), ["a", "b", "c"], process_group=group)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    grads = []
    for _ in range(STEPS):
        u = net(x)
        losses = [((u - torch.sin(3 * x)) ** 2).mean(), ((u + x ** 2) ** 2).mean(), (u ** 4).mean()]
        wb(losses, shard_weights=[(hi - lo) / N] * 3) if group is not None else wb(losses)
        grads.append(torch.cat([p.grad.reshape(-1) for p in net.parameters()]).clone())
        opt.step()
    return grads


def _worker(rank: int, world: int, out: str) -> None:
    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", init_method=f"file://{out}/rendezvous", rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=20))
        torch.save({name: _loop(name, rank, world) for name in NAMES}, f"{out}/rank{rank}.pt")
        dist.destroy_process_group()
    except BaseException as exc:  # noqa: BLE001 - reported to the parent through a file
        with open(f"{out}/error{rank}.txt", "w") as f:
            f.write(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        raise SystemExit(1)


def test_two_ranks_take_bit_identical_directions_equal_to_one_process(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(r, 2, str(tmp_path))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        if p.is_alive():
            p.kill()
            p.join()
    errors = [(tmp_path / f"error{r}.txt").read_text() for r in range(2) if (tmp_path / f"error{r}.txt").exists()]
    assert [p.exitcode for p in procs] == [0, 0], errors
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    for name in NAMES:
        alone = _loop(name, 0, 1)
        for a, b, c in zip(r0[name], r1[name], alone):
            assert torch.equal(a, b), name  # every rank: the same bits
            torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-13)
