"""Epoch time of the weighting schemes, and fastpinn against a plain PyTorch training loop.

Compared side by side on the paper's three problems and networks (Burgers 2-[20]x8-1, Poisson 2-[50]x4-1,
Allen-Cahn 2-[128]x4-1; tanh, Glorot normal, Adam lr 1e-3, float32):

* fastpinn ``Trainer`` with ``PINN()``, ``DN(tau=1)``, ``DN(tau=10)``, ``MA(tau=10)``, ``ID(tau=10)``
  (beta = 0.9, no bias correction: the timing does not depend on them);
* fastpinn with ``compile=True`` (``PINN`` and ``DN(tau=10)``), its one-off warm-up reported apart;
* a *plain PyTorch loop* (:class:`PlainLoop`), written the way typical research code does PINN / DN-PINN:
  an ``nn.Sequential`` of ``Linear``/``Tanh`` (same initial weights as fastpinn's network, same points),
  derivatives by nested ``torch.autograd.grad(create_graph=True)`` (the first derivatives from one gradient
  call, then one more call per second derivative), the weighted total loss with one
  ``backward()`` per step, and -- at a DN update epoch -- one ``torch.autograd.grad(L_j, params,
  retain_graph=True)`` per term over the per-layer parameter list, ``torch.linalg.vector_norm`` of the
  concatenated gradients, ``.item()``, and lambda kept in Python floats.

Point counts (``SIZES``): ``"paper"`` is the paper's protocol; ``"cpu"`` keeps Burgers and Poisson at the
paper's size and gives Allen-Cahn 4,096 PDE points, i.e. exactly one of the paper's 4,096-point
mini-batches per epoch (an epoch of the paper is 5 such steps; per-step cost is the same, but a tau = 10
update then falls on 1 step in 10 instead of 1 in 50, so the overhead measured is an upper bound);
``"quick"`` is a smoke-test size.

    OMP_NUM_THREADS=1 pytest bench/bench_training.py --benchmark-group-by=group --benchmark-columns=median,rounds

runs each configuration on its own (one pytest-benchmark group per problem; one timed call = a block
of 10 epochs). ``bench/run_all.py`` interleaves them (:func:`compare`), which is what its ratios come
from; :func:`profile_step` splits an update step into forward / per-term backwards (vs one backward on
the same graph) / statistics / EMA / combine / Adam.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import time
from typing import Any, Callable, Optional, Sequence

import pytest
import torch
from torch import Tensor, nn

from fastpinn.malloc import retain_freed_memory
from fastpinn.problem import Problem
from fastpinn import problems
from fastpinn.schemes import DN, ID, MA, PINN, Scheme
from fastpinn.trainer import Trainer
from fastpinn.weighter import Weighter

# Freed activation memory is reused, not page-faulted in again each step: what the fastpinn CLI does too.
ALLOCATOR_TUNED = retain_freed_memory()

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# On a GPU fastpinn runs the captured step (launch overhead dominates these small networks); on a CPU the
# eager step, plus one row of the device-decided step to show what statistics-every-step cost there.
STEP_MODE = "cuda_graph" if DEVICE == "cuda" else "eager"
PROBLEMS = ("burgers", "poisson", "allen_cahn")
SIZES: dict[str, dict[str, dict[str, int]]] = {
    "paper": {"burgers": {}, "poisson": {}, "allen_cahn": {}},
    "cpu": {"burgers": {}, "poisson": {}, "allen_cahn": {"n_pde": 4096}},
    "quick": {"burgers": {"n_pde": 2000}, "poisson": {"n_pde": 1000, "n_bc": 200},
              "allen_cahn": {"n_pde": 1024, "batch_size": 1024}},
}
SCHEMES: dict[str, Scheme] = {
    "PINN": PINN(),
    "DN τ=1": DN(tau=1),
    "DN τ=10": DN(tau=10),
    "MA τ=10": MA(tau=10),
    "ID τ=10": ID(tau=10),
}
BLOCK = 10  # epochs per timed block: a multiple of every tau, so each block holds the same number of updates


def build_problem(name: str, size: str = "cpu") -> Problem:
    """A paper problem at the given size, without its reference solution (no evaluation while timing)."""
    return dataclasses.replace(problems.get(name, 0, **SIZES[size][name]), solution=None)


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------- fastpinn runner
class FastRunner:
    """fastpinn's Trainer; :meth:`block` trains ``n`` epochs and returns seconds per epoch
    (``History.train_seconds``: the epochs alone, no evaluation)."""

    def __init__(self, problem: Problem, scheme: Scheme, compile: bool = False, step_mode: str = STEP_MODE) -> None:
        self.trainer = Trainer(problem, scheme, eval_every=10**9, device=DEVICE, compile=compile,
                               step_mode=step_mode)
        self.warmup_seconds = self.trainer.warmup()

    def block(self, n: int = BLOCK) -> float:
        return self.trainer.train(n).train_seconds / n


# ---------------------------------------------------------------------------------- plain loop
def _d(y: Tensor, x: Tensor, col: int) -> Tensor:
    """d y / d x[:, col] by reverse mode, keeping the graph (the classic PINN idiom)."""
    (g,) = torch.autograd.grad(y, x, grad_outputs=torch.ones_like(y), create_graph=True)
    return g[:, col:col + 1]


class PlainLoop:
    """A DN-PINN / PINN training loop as typical research code writes it (see the module docstring).

    ``scheme``: ``"pinn"`` or ``"dn"``; ``tau``: epochs between DN updates. Same network (initial weights
    copied from fastpinn's ``problem.network()``), same points and targets as the fastpinn problem.
    """

    NU = 0.01 / math.pi
    OMEGA = 4 * math.pi

    def __init__(self, problem: Problem, scheme: str = "pinn", tau: int = 10, beta: float = 0.9,
                 p: float = 2.0, lr: float = 1e-3, seed: int = 0) -> None:
        if problem.name not in PROBLEMS:
            raise ValueError(f"PlainLoop knows {PROBLEMS}, got {problem.name!r}")
        self.name, self.scheme, self.tau, self.beta, self.p = problem.name, scheme, tau, beta, p
        ref = problem.network(dtype=torch.float32, device=DEVICE)
        layers: list[nn.Module] = []
        pairs = ref.layers()
        for i, (w, b) in enumerate(pairs):
            lin = nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                lin.weight.copy_(w)
                lin.bias.copy_(b)
            layers.append(lin)
            if i < len(pairs) - 1:
                layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers).to(DEVICE)
        self.scale = ref.input_scale.detach().clone()
        self.shift = ref.input_shift.detach().clone()
        self.params = list(self.net.parameters())
        self.opt = torch.optim.Adam(self.params, lr=lr)
        terms = problem.to(DEVICE, torch.float32).terms
        self.points = [t.points for t in terms]
        self.targets = [t.targets for t in terms]
        self.batch_size = [t.batch_size if t.n_batches > 1 else None for t in terms]
        self.n_steps = max(t.n_batches for t in terms)
        self.reference = int(problem.reference_term)
        adaptive = problem.adaptive or tuple(k != self.reference for k in range(len(terms)))
        self.adaptive = [k for k, a in enumerate(adaptive) if a]
        self.lam = [1.0] * len(terms)
        self.epoch = 0
        self.gen = torch.Generator().manual_seed(seed)

    def u(self, x: Tensor) -> Tensor:
        return self.net(x * self.scale + self.shift)

    # -- the three problems' losses, written out by hand
    def losses(self, idx: Optional[Tensor]) -> list[Tensor]:
        (x_pde,) = self.points[0]
        x = (x_pde if idx is None else x_pde[idx]).detach().clone().requires_grad_(True)
        u = self.u(x)
        if self.name == "burgers":
            (du,) = torch.autograd.grad(u, x, grad_outputs=torch.ones_like(u), create_graph=True)
            u_t, u_x = du[:, 0:1], du[:, 1:2]
            r = u_t + u * u_x - self.NU * _d(u_x, x, 1)
            return [r.pow(2).mean(),
                    (self.u(self.points[1][0]) - self.targets[1]).pow(2).mean(),
                    (self.u(self.points[2][0]) - self.targets[2]).pow(2).mean()]
        if self.name == "poisson":
            w = self.OMEGA
            q = -2.0 * w * w * torch.cos(w * x[:, 0:1]) * torch.sin(w * x[:, 1:2])
            (du,) = torch.autograd.grad(u, x, grad_outputs=torch.ones_like(u), create_graph=True)
            u_xx = _d(du[:, 0:1], x, 0)
            u_yy = _d(du[:, 1:2], x, 1)
            return [(u_xx + u_yy - q.detach()).pow(2).mean(),
                    (self.u(self.points[1][0]) - self.targets[1]).pow(2).mean()]
        # allen_cahn
        (du,) = torch.autograd.grad(u, x, grad_outputs=torch.ones_like(u), create_graph=True)
        u_xx = _d(du[:, 1:2], x, 1)
        r = du[:, 0:1] - 1e-4 * u_xx + 5.0 * u.pow(3) - 5.0 * u
        lo, hi = self.points[2]
        lo_g, hi_g = lo.detach().clone().requires_grad_(True), hi.detach().clone().requires_grad_(True)
        return [r.pow(2).mean(),
                (self.u(self.points[1][0]) - self.targets[1]).pow(2).mean(),
                (self.u(lo) - self.u(hi)).pow(2).mean(),
                (_d(self.u(lo_g), lo_g, 1) - _d(self.u(hi_g), hi_g, 1)).pow(2).mean()]

    def dn_update(self, losses: Sequence[Tensor]) -> None:
        """lambda_j <- beta lambda_j + (1 - beta) ||grad L_ref|| / ||grad L_j||, in Python floats."""
        norms = {}
        for j in [self.reference] + self.adaptive:
            grads = torch.autograd.grad(losses[j], self.params, retain_graph=True, allow_unused=True)
            flat = torch.cat([(torch.zeros_like(q) if g is None else g).reshape(-1) for g, q in zip(grads, self.params)])
            norms[j] = torch.linalg.vector_norm(flat, self.p).item()
        for j in self.adaptive:
            self.lam[j] = self.beta * self.lam[j] + (1.0 - self.beta) * norms[self.reference] / norms[j]

    def train_epoch(self) -> None:
        pde_batch = self.batch_size[0]
        perm = None if pde_batch is None else torch.randperm(self.points[0][0].shape[0], generator=self.gen).to(DEVICE)
        for b in range(self.n_steps):
            idx = None if perm is None else perm[b * pde_batch:(b + 1) * pde_batch]
            losses = self.losses(idx)
            if self.scheme == "dn" and b == 0 and self.epoch % self.tau == 0:
                self.dn_update(losses)
            total = sum(lam * loss for lam, loss in zip(self.lam, losses))
            self.opt.zero_grad(set_to_none=True)
            total.backward()
            self.opt.step()
        self.epoch += 1

    def block(self, n: int = BLOCK) -> float:
        sync()
        tick = time.perf_counter()
        for _ in range(n):
            self.train_epoch()
        sync()
        return (time.perf_counter() - tick) / n


# --------------------------------------------------------------------------------- comparison
def make_runners(problem: Problem, *, plain: bool = True, compiled: bool = False,
                 schemes: Sequence[str] = tuple(SCHEMES)) -> tuple[dict[str, Any], dict[str, float]]:
    """Runner per configuration name, and the warm-up seconds of the compiled ones."""
    runners: dict[str, Any] = {}
    warmups: dict[str, float] = {}
    for name in schemes:
        runners[f"fastpinn {name}"] = FastRunner(problem, SCHEMES[name])
    if DEVICE == "cpu" and "DN τ=10" in schemes:
        runners["fastpinn DN τ=10 device step"] = FastRunner(problem, SCHEMES["DN τ=10"], step_mode="device")
    if plain:
        runners["plain PINN"] = PlainLoop(problem, "pinn")
        runners["plain DN τ=1"] = PlainLoop(problem, "dn", tau=1)
        runners["plain DN τ=10"] = PlainLoop(problem, "dn", tau=10)
    if compiled:
        for name in ("PINN", "DN τ=10"):
            r = FastRunner(problem, SCHEMES[name], compile=True)
            runners[f"fastpinn compiled {name}"] = r
            warmups[f"fastpinn compiled {name}"] = r.warmup_seconds
    return runners, warmups


def interleave(runners: dict[str, Any], rounds: int, block: int = BLOCK, seed: int = 0,
               log: Optional[Callable[[str], None]] = None) -> dict[str, list[float]]:
    """Seconds per epoch of every runner in each of ``rounds`` rounds; each round runs every runner once
    (one ``block`` of epochs) in a shuffled order, after one untimed warm-up block each."""
    for r in runners.values():
        r.block(block)
    rng = random.Random(seed)
    out: dict[str, list[float]] = {k: [] for k in runners}
    for i in range(rounds):
        order = list(runners)
        rng.shuffle(order)
        for k in order:
            out[k].append(runners[k].block(block))
        if log is not None:
            log(f"  round {i + 1}/{rounds}: " + ", ".join(f"{k} {1e3 * out[k][-1]:.1f}" for k in runners))
    return out


def median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def paired_ratio(samples: dict[str, list[float]], num: str, den: str) -> float:
    """Median over rounds of ``num / den`` measured in the same round (adjacent in time)."""
    return median([a / b for a, b in zip(samples[num], samples[den])])


# ------------------------------------------------------------------------------------ profiling
def profile_step(problem: Problem, scheme: Scheme, steps: int = 24, warm: int = 3) -> dict[str, float]:
    """Median ms per phase of a full-batch *update* step of a dynamic scheme, mirroring ``Trainer.step``
    (``update_weights=True``), with the PINN-style single backward timed on the same forward graph.

    Each iteration: the term losses (``forward``); then, on that one graph and in alternating order, the
    dynamic step's one backward per term into ``G`` (``backward_k``) and a single backward of
    ``sum_j lam_j L_j`` (``backward_1``, what a PINN step does), both with ``retain_graph=True``;
    then ``stats`` (grad_stats), ``ema`` (ema_update), ``combine`` (sum_j lam_j G_j) and ``adam``.
    ``backward_extra`` is the median over iterations of ``backward_k - backward_1`` (paired, so load
    drift cancels). CPU timings are synchronous; on CUDA each phase is synchronised."""
    if not scheme.dynamic:
        raise ValueError("profile_step profiles a dynamic scheme's update step")
    tr = Trainer(problem, scheme, eval_every=10**9, device=DEVICE)
    w, theta = tr.weighter, tr.theta
    G = tr.backward.G  # [S, K, P], the per-term gradient buffer the Trainer's step fills
    names = ("forward", "backward_k", "backward_1", "stats", "ema", "combine", "adam")
    phases: dict[str, list[float]] = {k: [] for k in names}
    extra: list[float] = []

    def tick() -> float:
        sync()
        return time.perf_counter()

    def k_backwards(losses: Sequence[Tensor]) -> float:  # Trainer.term_gradients, keeping the graph
        t = tick()
        for k, loss in enumerate(losses):
            (g,) = torch.autograd.grad(loss.sum(), theta, allow_unused=True, materialize_grads=True,
                                       retain_graph=True)
            G[:, k].copy_(g.reshape(G.shape[0], -1))
        return tick() - t

    def one_backward(losses: Sequence[Tensor]) -> float:  # the PINN path of Trainer.step
        t = tick()
        total = (torch.stack(list(losses), dim=-1) * w.lam_applied).sum()
        torch.autograd.grad(total, theta, allow_unused=True, materialize_grads=True, retain_graph=True)
        return tick() - t

    for i in range(warm + steps):
        t0 = tick()
        losses = tr.term_losses(None)
        t1 = tick()
        if i % 2:
            tk = k_backwards(losses)
            t1b = one_backward(losses)
        else:
            t1b = one_backward(losses)
            tk = k_backwards(losses)
        del losses
        t2 = tick()
        stats = w.statistics(G)
        t3 = tick()
        w.update_from_stats(stats, G.shape[-1])
        t4 = tick()
        grad = Weighter.combine(G, w.lam_applied)
        t5 = tick()
        theta.grad = grad.reshape(theta.shape)
        tr.optimizer.step()
        t6 = tick()
        if i >= warm:
            for k, v in zip(names, (t1 - t0, tk, t1b, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
                phases[k].append(v)
            extra.append(tk - t1b)
    out = {k: 1e3 * median(v) for k, v in phases.items()}
    out["backward_extra"] = 1e3 * median(extra)
    out["backward_extra_q25"] = 1e3 * sorted(extra)[len(extra) // 4]
    out["backward_extra_q75"] = 1e3 * sorted(extra)[(3 * len(extra)) // 4]
    return out


# ----------------------------------------------------------------------------------------- CLI
def compare(problem_name: str, size: str = "cpu", rounds: int = 7, block: int = BLOCK, plain: bool = True,
            compiled: bool = False, profile: bool = True, log: Optional[Callable[[str], None]] = None) -> dict:
    """Everything ``run_all.py`` reports for one problem: interleaved ms/epoch, ratios, warm-ups, profile."""
    problem = build_problem(problem_name, size)
    runners, warmups = make_runners(problem, plain=plain, compiled=compiled)
    n_params = problem.network().n_params
    samples = interleave(runners, rounds, block, log=log)
    result: dict[str, Any] = {
        "problem": problem_name, "size": size, "sizes": SIZES[size][problem_name], "n_params": n_params,
        "points": {t.name: t.n_points for t in problem.terms},
        "batch_size": {t.name: t.batch_size for t in problem.terms if t.n_batches > 1},
        "steps_per_epoch": max(t.n_batches for t in problem.terms),
        "rounds": rounds, "block": block, "warmup_s": warmups, "samples_s": samples,
        "median_ms": {k: 1e3 * median(v) for k, v in samples.items()},
        "min_ms": {k: 1e3 * min(v) for k, v in samples.items()},
        "ratio_paired": {}, "ratio_min": {},
    }
    for k in samples:
        base = "plain PINN" if k.startswith("plain") else (
            "fastpinn compiled PINN" if k.startswith("fastpinn compiled") else "fastpinn PINN")
        result["ratio_paired"][k] = paired_ratio(samples, k, base)
        result["ratio_min"][k] = min(samples[k]) / min(samples[base])
    if plain:  # plain loop time over fastpinn time, same scheme
        result["plain_over_fastpinn"] = {
            s: paired_ratio(samples, f"plain {s}", f"fastpinn {s}") for s in ("PINN", "DN τ=1", "DN τ=10")}
        if compiled:
            result["plain_over_fastpinn_compiled"] = {
                s: paired_ratio(samples, f"plain {s}", f"fastpinn compiled {s}") for s in ("PINN", "DN τ=10")}
    if profile:
        if log:
            log("  profiling an update step per phase (DN τ=1)")
        result["profile_ms"] = {"DN τ=1": profile_step(problem, SCHEMES["DN τ=1"])}
    return result


def main(argv: Optional[list[str]] = None) -> int:
    import argparse
    import json
    import sys

    ap = argparse.ArgumentParser(description="Interleaved epoch timings of fastpinn's schemes and a plain loop")
    ap.add_argument("--problem", choices=PROBLEMS, default="burgers")
    ap.add_argument("--size", choices=tuple(SIZES), default="cpu" if DEVICE == "cpu" else "paper")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--block", type=int, default=BLOCK)
    ap.add_argument("--no-plain", action="store_true", help="skip the plain PyTorch loop")
    ap.add_argument("--compile", action="store_true", help="add compile=True rows (minutes of warm-up)")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads on CPU (default 1)")
    ap.add_argument("--json", default=None, help="write the result as JSON here")
    args = ap.parse_args(argv)
    if DEVICE == "cpu":
        torch.set_num_threads(args.threads)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    result = compare(args.problem, args.size, args.rounds, args.block, plain=not args.no_plain,
                     compiled=args.compile, profile=not args.no_profile, log=log)
    for k, v in result["median_ms"].items():
        print(f"{k:28s} {v:9.2f} ms/epoch (median)  x{result['ratio_paired'][k]:.3f} over its PINN")
    if args.json:
        from fastpinn import _io

        _io.atomic_write_json(args.json, result)
    else:
        print(json.dumps(result.get("profile_ms", {}), indent=1))
    return 0


# ------------------------------------------------------------------------------------- pytest
try:  # the helpers above are also imported by bench/run_all.py, which does not need pytest-benchmark
    import pytest_benchmark  # noqa: F401
except ImportError:
    pytestmark = pytest.mark.skip(reason="pytest-benchmark is not installed (pip install pytest-benchmark)")

BENCH_SIZE = os.environ.get("FASTPINN_BENCH_SIZE", "cpu" if DEVICE == "cpu" else "paper")
_CONFIGS = [f"fastpinn {s}" for s in SCHEMES] + ["plain PINN", "plain DN τ=1", "plain DN τ=10"]


def _runner(problem: Problem, config: str):
    if config.startswith("plain"):
        scheme = "pinn" if config == "plain PINN" else "dn"
        return PlainLoop(problem, scheme, tau=1 if "τ=1" in config and "τ=10" not in config else 10)
    return FastRunner(problem, SCHEMES[config.removeprefix("fastpinn ")])


def ascii_id(name: str) -> str:
    """A test id without spaces or τ (pytest ids, file names)."""
    return name.replace("τ", "tau").replace(" ", "-")


@pytest.mark.parametrize("config", _CONFIGS, ids=ascii_id)
@pytest.mark.parametrize("problem_name", PROBLEMS)
def test_epoch_block(benchmark, problem_name: str, config: str) -> None:
    """One timed call = a block of 10 epochs (ms/epoch = time / 10)."""
    benchmark.group = f"training-{problem_name}-{BENCH_SIZE}-{DEVICE} (10-epoch block)"
    runner = _runner(build_problem(problem_name, BENCH_SIZE), config)
    runner.block()  # warm-up
    benchmark.pedantic(runner.block, rounds=3, iterations=1)


@pytest.mark.skipif(os.environ.get("FASTPINN_BENCH_COMPILE", "0") != "1",
                    reason="compiled rows need minutes of warm-up; set FASTPINN_BENCH_COMPILE=1")
@pytest.mark.parametrize("scheme", ["PINN", "DN τ=10"], ids=ascii_id)
@pytest.mark.parametrize("problem_name", PROBLEMS)
def test_epoch_block_compiled(benchmark, problem_name: str, scheme: str) -> None:
    benchmark.group = f"training-{problem_name}-{BENCH_SIZE}-{DEVICE} (10-epoch block)"
    runner = FastRunner(build_problem(problem_name, BENCH_SIZE), SCHEMES[scheme], compile=True)
    benchmark.extra_info["warmup_seconds"] = runner.warmup_seconds
    runner.block()
    benchmark.pedantic(runner.block, rounds=3, iterations=1)


@pytest.mark.parametrize("problem_name", PROBLEMS)
def test_plain_loop_matches_fastpinn(problem_name: str) -> None:
    """Not timed: the plain loop's initial term losses equal fastpinn's (same network, points, residuals),
    so the two sides of the comparison do the same work."""
    problem = build_problem(problem_name, "quick")
    tr = Trainer(problem, PINN(), eval_every=10**9, device=DEVICE)
    plain = PlainLoop(problem, "pinn")
    fast = torch.stack(tr.term_losses(None)).reshape(-1)
    ref = torch.stack(plain.losses(None)).detach().reshape(-1)
    torch.testing.assert_close(fast, ref, rtol=2e-4, atol=1e-6)


if __name__ == "__main__":
    raise SystemExit(main())
