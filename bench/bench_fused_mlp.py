"""The fused jet op (``derivative_method="fused"``) against today's eager jet step, DeepXDE and the FLOP floor.

All in one process, interleaved (every round runs every configuration once, in a shuffled order; a ratio is
the median over rounds of the two times measured in the same round):

* Burgers (paper setup: 9 x 20 tanh MLP, 10,000 + 100 + 200 points, DN-PINN tau = 10, float32, full batch):
  ms per epoch (= one Adam step) of ``Trainer(derivative_method="fused")`` and ``"jet"`` (today's eager step),
  and DeepXDE 1.15 when importable (``bench_deepxde.DeepXDERunner``), each at 1 and 2 torch threads -- the
  thread count is switched before every timed block, so the 2-vs-1-thread ratio is paired too. No
  torch.compile (``--compile`` adds the compiled jet step, minutes of warm-up).
* the floor of a Burgers step at each thread count (``bench_deepxde.step_floor``: the jet formulation's
  counted matmul FLOPs at the measured matmul rate + the forward tanh count at the measured tanh rate),
  measured in the same run.
* Poisson (5 x 50, DN tau = 10): fused and jet epochs at 10,000 and 40,000 PDE points (1 thread).
* store vs recompute: forward + backward of the Burgers PDE term with the forward state stored in a tape
  (``store=True``) and recomputed tile by tile in the backward (``store=False``, the default), interleaved.

    OMP_NUM_THREADS=2 python bench/bench_fused_mlp.py [--rounds 7] [--out bench/results] [--no-deepxde]

Writes ``<out>/<device-slug>-fused-mlp-<date>.md`` (and ``--json``) atomically. On CUDA it measures instead the
Triton fused step against the eager jet step on Burgers (the GPU targets) -- bench/gpu_session.sh runs it.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

os.environ.setdefault("DDE_BACKEND", "pytorch")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

import _machine  # noqa: E402
import bench_deepxde as bd  # noqa: E402
import bench_training as bt  # noqa: E402
from fastpinn import DN, Trainer, _io  # noqa: E402
from fastpinn.derivatives import fused_mlp  # noqa: E402
from fastpinn.ops.mlp_jet import JetPlan, mlp_jet, tape_numel  # noqa: E402
from fastpinn.problems import paper  # noqa: E402

TARGET_FLOOR = 1.3  # fused Burgers DN step / floor at 1 thread
TARGET_DEEPXDE = 3.0  # DeepXDE / fused at 1 and 2 threads
TARGET_THREADS = 1.7  # 1-thread / 2-thread time of the fused step
TARGET_LINEAR = 4.2  # Poisson epoch at 40,000 / at 10,000 points
# From bench/results/cpu-amd-epyc-2c-2026-11-29.md and issue 12 (same machine type, not this run).
COMPILED_REFERENCE = "compiled jet step (issue 12, same machine type): 56.3 ms at 1 thread, 33.1 ms at 2 threads"


class TrainerRunner:
    """A Trainer; :meth:`block` trains ``n`` epochs and returns seconds per epoch."""

    def __init__(self, problem, method: str, compile: bool = False) -> None:
        self.trainer = Trainer(problem, DN(tau=10), eval_every=10**9, device="cpu", derivative_method=method,
                               compile=compile)
        self.warmup_seconds = self.trainer.warmup()

    def block(self, n: int) -> float:
        return self.trainer.train(n).train_seconds / n


class Threads:
    """Runs another runner's block at a fixed torch thread count."""

    def __init__(self, runner: Any, threads: int) -> None:
        self.runner, self.threads = runner, threads

    def block(self, n: int) -> float:
        torch.set_num_threads(self.threads)
        return self.runner.block(n)


def interleave(runners: dict[str, Any], rounds: int, block: int, log: Callable[[str], None]) -> dict[str, list[float]]:
    for r in runners.values():
        r.block(block)  # warm-up block, untimed
    rng = random.Random(0)
    out: dict[str, list[float]] = {k: [] for k in runners}
    for i in range(rounds):
        order = list(runners)
        rng.shuffle(order)
        for k in order:
            out[k].append(runners[k].block(block))
        log(f"  round {i + 1}/{rounds}: " + ", ".join(f"{k} {1e3 * out[k][-1]:.1f}" for k in runners))
    return out


def store_vs_recompute(reps: int = 9) -> dict[str, float]:
    """Forward + backward of the Burgers PDE term through the fused op with the forward state stored
    (``store=True``: a tape of every tile's layers) and recomputed in the backward (``store=False``),
    interleaved, best of ``reps``; and the forward alone (what the backward recomputes)."""
    problem = paper.burgers(0)
    net = problem.network(dtype=torch.float32)
    x = problem.terms[0].points[0].to(torch.float32)
    wanted = [(), (0,), (1,), (1, 1)]
    plan = JetPlan(wanted)
    sizes = [net.in_dim] + [net.width] * (net.depth - 1) + [net.out_dim]
    theta = net.theta

    def step(store: bool) -> None:
        fields = mlp_jet(theta.unsqueeze(0), x, net.input_scale, net.input_shift, sizes, plan.dirs, plan.pairs,
                         plan.first_out, store=store)
        torch.autograd.grad(fields.square().sum(), theta)

    def forward() -> None:
        with torch.no_grad():
            fused_mlp(net, theta, x, wanted)

    fns = {"store": lambda: step(True), "recompute": lambda: step(False), "forward": forward}
    best = {k: float("inf") for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(reps):
        for k, fn in fns.items():
            tick = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - tick)
    tape_mb = 4 * tape_numel(x.shape[0], sizes, len(plan.dirs), len(plan.pairs)) / 1e6
    return {"store_ms": 1e3 * best["store"], "recompute_ms": 1e3 * best["recompute"],
            "forward_ms": 1e3 * best["forward"], "tape_mb": tape_mb}


class CudaRunner(TrainerRunner):
    def __init__(self, problem, method: str) -> None:
        self.trainer = Trainer(problem, DN(tau=10), eval_every=10**9, device="cuda", derivative_method=method)
        self.warmup_seconds = self.trainer.warmup()

    def block(self, n: int) -> float:
        torch.cuda.synchronize()
        return self.trainer.train(n).train_seconds / n


def gpu_main(args) -> int:
    """On CUDA: Burgers DN tau=10 epochs with the Triton fused op against the eager jet step, interleaved
    (targets: >= 5x faster than unfused eager; 30,000 epochs in <= 10 s for one seed, projected from the rate)."""
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    info = _machine.describe("cuda")
    burgers = dataclasses.replace(paper.burgers(0, n_pde=bd.N_PDE, n_ic=bd.N_IC, n_bc=bd.N_BC), solution=None)
    runners = {"fused": CudaRunner(burgers, "fused"), "jet": CudaRunner(burgers, "jet")}
    samples = interleave(runners, args.rounds, 100, log)
    med = {k: 1e3 * bt.median(v) for k, v in samples.items()}
    speedup = bt.paired_ratio(samples, "jet", "fused")
    epochs_30k = 30_000 * med["fused"] / 1e3
    lines = [f"# Fused jet op on {info['device_name']}", "",
             f"`python bench/bench_fused_mlp.py` on {_dt.date.today():%Y-%m-%d}; torch {torch.__version__}, "
             f"triton {info.get('triton')}.", "",
             "| target | measured | verdict |", "|---|---|---|",
             f"| fused ≥ 5× faster than the eager jet step (Burgers DN τ=10) | {speedup:.2f}× "
             f"({med['jet']:.2f} / {med['fused']:.2f} ms) | {'meets' if speedup >= 5 else 'MISSES'} |",
             f"| 30,000 Burgers DN epochs ≤ 10 s (projected from the median epoch) | {epochs_30k:.1f} s | "
             f"{'meets' if epochs_30k <= 10 else 'MISSES'} |", ""]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out) / f"{_machine.device_slug(info)}-fused-mlp-{_dt.date.today():%Y-%m-%d}.md"
    _io.atomic_write_text(out, text)
    if args.json:
        _io.atomic_write_json(args.json, {"samples_s": samples, "machine": info})
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--block", type=int, default=10, help="epochs per timed Burgers block")
    ap.add_argument("--threads", default="1,2", help="torch thread counts to compare (comma separated)")
    ap.add_argument("--no-deepxde", action="store_true")
    ap.add_argument("--compile", action="store_true", help="add the compiled jet step (minutes of warm-up)")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    from fastpinn import malloc

    malloc.retain_freed_memory()  # as the CLI does: no per-step page faults for either engine
    if torch.cuda.is_available():
        return gpu_main(args)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    threads = [int(t) for t in args.threads.split(",")]
    info = _machine.describe("cpu")
    started = time.time()
    load_start = os.getloadavg()

    # ---- Burgers: fused vs jet vs DeepXDE at each thread count, all interleaved
    burgers = dataclasses.replace(paper.burgers(0, n_pde=bd.N_PDE, n_ic=bd.N_IC, n_bc=bd.N_BC), solution=None)
    base = {"fused": TrainerRunner(burgers, "fused"), "jet": TrainerRunner(burgers, "jet")}
    warmups = {}
    if args.compile:
        base["compiled jet"] = TrainerRunner(burgers, "jet", compile=True)
        warmups["compiled jet"] = base["compiled jet"].warmup_seconds
    dde = None if args.no_deepxde else bd.import_deepxde()
    if dde is not None:
        base["DeepXDE"] = bd.DeepXDERunner(dde)
    runners = {f"{k} @{t}t": Threads(r, t) for t in threads for k, r in base.items()}
    log(f"Burgers: {list(runners)}")
    samples = interleave(runners, args.rounds, args.block, log)
    floors = {}
    for t in threads:
        torch.set_num_threads(t)
        floors[t] = bd.step_floor()

    # ---- Poisson: epoch time at 10,000 and 40,000 points (1 thread)
    torch.set_num_threads(1)
    poisson_runners = {}
    for n in (10_000, 40_000):
        problem = dataclasses.replace(paper.poisson(0, n_pde=n), solution=None)
        for m in ("fused", "jet"):
            poisson_runners[f"{m} {n}"] = Threads(TrainerRunner(problem, m), 1)
    log(f"Poisson: {list(poisson_runners)}")
    poisson = interleave(poisson_runners, max(3, args.rounds - 2), 3, log)
    svr = store_vs_recompute()

    # ---- report
    med = {k: 1e3 * bt.median(v) for k, v in {**samples, **poisson}.items()}
    mins = {k: 1e3 * min(v) for k, v in {**samples, **poisson}.items()}
    ratio = lambda s, a, b: bt.paired_ratio(s, a, b)  # noqa: E731
    rows = []  # (target, measured, verdict)

    def verdict(ok: bool) -> str:
        return "meets" if ok else "MISSES"

    t1 = threads[0]
    r_floor = med[f"fused @{t1}t"] / floors[t1]["floor_ms"]
    rows.append((f"fused Burgers DN step ≤ {TARGET_FLOOR}× floor ({t1} thread)", f"{r_floor:.2f}× "
                 f"({med[f'fused @{t1}t']:.1f} / {floors[t1]['floor_ms']:.1f} ms)", verdict(r_floor <= TARGET_FLOOR)))
    if dde is not None:
        for t in threads:
            r = ratio(samples, f"DeepXDE @{t}t", f"fused @{t}t")
            rows.append((f"DeepXDE / fused ≥ {TARGET_DEEPXDE}× ({t} threads, no warm-up)", f"{r:.2f}×",
                         verdict(r >= TARGET_DEEPXDE)))
    else:
        rows.append((f"DeepXDE / fused ≥ {TARGET_DEEPXDE}×", "DeepXDE not importable: not measured", "—"))
    if len(threads) >= 2:
        ta, tb = threads[0], threads[1]
        r = ratio(samples, f"fused @{ta}t", f"fused @{tb}t")
        rows.append((f"fused: {tb} threads ≥ {TARGET_THREADS}× faster than {ta}", f"{r:.2f}×", verdict(r >= TARGET_THREADS)))
    r_lin = ratio(poisson, "fused 40000", "fused 10000")
    rows.append((f"Poisson fused epoch 40,000 / 10,000 points ≤ {TARGET_LINEAR}×", f"{r_lin:.2f}×", verdict(r_lin <= TARGET_LINEAR)))

    lines = [f"# Fused jet op (`derivative_method=\"fused\"`) — {info['device_name']}", "",
             f"`python bench/bench_fused_mlp.py` started {_dt.datetime.fromtimestamp(started):%Y-%m-%d %H:%M}, "
             f"took {(time.time() - started) / 60:.1f} min. Machine: {info['device_name']}, {info['memory_gib']:.0f} GiB; torch "
             f"{torch.__version__}; load average at start {', '.join(f'{x:.2f}' for x in load_start)}, at the end "
             f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}.", "",
             "> Shared machine: absolute times are inflated and noisy; the paired ratios (interleaved, shuffled, "
             "same round) are what count.", "",
             "## Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines += ["", f"## Burgers DN τ=10 step (ms/epoch; {args.rounds} rounds of {args.block} epochs)", "",
              "| configuration | median | min | jet / this (paired) | DeepXDE / this (paired) |", "|---|---:|---:|---:|---:|"]
    for k in samples:
        t = k.rsplit("@", 1)[1]
        jet = ratio(samples, f"jet @{t}", k)
        dx = f"{ratio(samples, f'DeepXDE @{t}', k):.2f}×" if dde is not None else "—"
        lines.append(f"| {k} | {med[k]:.1f} | {mins[k]:.1f} | {jet:.2f}× | {dx} |")
    lines += ["", "Floor of a Burgers step (bench_deepxde.step_floor, same run):", ""]
    for t, f in floors.items():
        lines.append(f"* {t} thread(s): {f['matmul_mflop']:.0f} MFLOP of matmuls at {f['matmul_gflops']:.1f} GFLOP/s = "
                     f"{f['matmul_ms']:.1f} ms + {f['tanh_count'] / 1e6:.2f} M tanh at {f['tanh_gelem_per_s']:.2f} G/s = "
                     f"{f['tanh_ms']:.1f} ms → **{f['floor_ms']:.1f} ms**; fused / floor = "
                     f"{med[f'fused @{t}t'] / f['floor_ms']:.2f}×")
    if not args.compile:
        lines += ["", f"Not run here: {COMPILED_REFERENCE}."]
    else:
        lines += ["", f"compiled jet warm-up: {warmups['compiled jet']:.0f} s (excluded from the times)."]
    lines += ["", "## Poisson 5×50 DN τ=10 epoch (1 thread, ms)", "", "| configuration | median | min |", "|---|---:|---:|"]
    lines += [f"| {k} points | {med[k]:.1f} | {mins[k]:.1f} |" for k in poisson]
    lines += ["", f"40,000 / 10,000 points (paired): fused {r_lin:.2f}×, jet {ratio(poisson, 'jet 40000', 'jet 10000'):.2f}×; "
              f"jet / fused at 40,000: {ratio(poisson, 'jet 40000', 'fused 40000'):.2f}×.",
              "", "## Store vs recompute (Burgers PDE term, 1 thread, forward + backward, best of 9)", "",
              f"* recompute each tile's forward in the backward (default): **{svr['recompute_ms']:.2f} ms** "
              f"(of which the forward alone: {svr['forward_ms']:.2f} ms)",
              f"* store every tile's forward state ({svr['tape_mb']:.0f} MB tape) and read it back: "
              f"**{svr['store_ms']:.2f} ms**", "",
              "Recompute is faster here: the tile's jets are recomputed from L1/L2-resident weights at the kernel's "
              "FLOP rate, while the tape streams through DRAM twice." if svr["recompute_ms"] <= svr["store_ms"] else
              "Storing measured faster here: consider `fastpinn.ops.mlp_jet.STORE = True` on this machine.", ""]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out) / f"{_machine.device_slug(info)}-fused-mlp-{_dt.date.today():%Y-%m-%d}.md"
    _io.atomic_write_text(out, text)
    log(f"wrote {out}")
    if args.json:
        _io.atomic_write_json(args.json, {"samples_s": samples, "poisson_s": poisson, "floors": floors,
                                          "store_vs_recompute": svr, "machine": info, "targets": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
