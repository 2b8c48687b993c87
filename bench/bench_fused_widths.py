"""The fused jet method against ``jet`` and ``autograd`` by network width (issue 20: "fused at least as fast as jet at
every width from 16 to 256"), side by side in one run; ``--op`` times the fused op alone instead.

Default (methods): one process, 1 thread, float32, interleaved rounds -- every round times every (width, points,
activation, method) once in a shuffled order and a cell's figure is the median over rounds (a shared, noisy machine:
the paired ratio of two methods in the same round is what counts). One timing is the CPU time of the forward of
Burgers' fields (u, u_t, u_x, u_xx) of an MLP 2 -> 3 hidden x width -> 1, the sum of their squares and the backward
to the parameters (what a training step does per term), averaged over calls filling ~20 ms.

``--op``: best-of-7 CPU ms of the op's forward and backward alone and GFLOP/s of the hidden layers' matmuls
(forward: 2 * sum(w_k * w_{k+1}) * channels * points; backward: 3x that -- it recomputes each tile's forward, then
W^T G and the weight gradient), to compare two builds of ``fastpinn._C``.

    OMP_NUM_THREADS=1 python bench/bench_fused_widths.py [--out bench/results/fused-widths-<machine>-<date>-b.md]
    OMP_NUM_THREADS=1 python bench/bench_fused_widths.py --op [--widths 20,50,150,256] [--points 2000]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fastpinn  # noqa: E402
from fastpinn.derivatives import derivatives  # noqa: E402
from fastpinn.malloc import retain_freed_memory  # noqa: E402
from fastpinn.ops import _ext  # noqa: E402
from fastpinn.ops.mlp_jet import JET_ACTIVATIONS, JetPlan  # noqa: E402

from _machine import describe  # noqa: E402

WIDTHS = "16,32,50,64,100,128,150,200,256"
COORDS = ("t", "x")
REQUESTS = ("u", "u_t", "u_x", "u_xx")
METHODS = ("fused", "jet", "autograd")
BLOCK_SECONDS = 0.02


def op_timings(widths: list[int], n: int, depth: int) -> None:
    plan = JetPlan([(), (0,), (1,), (1, 1)])  # Burgers' u, u_t, u_x, u_xx: 4 channels
    pairs = [p for pair in plan.pairs for p in pair]
    for w in widths:
        net = fastpinn.MLP(2, 1, depth, w, seed=0)
        sizes = [2] + [w] * (depth - 1) + [1]
        theta, x = net.theta.detach().unsqueeze(0), torch.rand(n, 2)
        plan_args = (sizes, plan.dirs, pairs, plan.first_out)
        fields, tape = torch.ops.fastpinn.mlp_jet_forward(theta, x, net.input_scale, net.input_shift, *plan_args, False)
        grad = torch.randn_like(fields)

        def forward() -> None:
            torch.ops.fastpinn.mlp_jet_forward(theta, x, net.input_scale, net.input_shift, *plan_args, False)

        def backward() -> None:
            torch.ops.fastpinn.mlp_jet_backward(grad, theta, x, net.input_scale, net.input_shift, tape, *plan_args, False)

        best = []
        for fn in (forward, backward):
            fn()
            b = float("inf")
            for _ in range(7):
                tick = time.process_time()
                fn()
                b = min(b, time.process_time() - tick)
            best.append(1e3 * b)
        flops = 2 * sum(sizes[k] * sizes[k + 1] for k in range(1, depth)) * 4 * n
        print(f"width {w}, {n} points: forward {best[0]:.2f} ms ({flops / best[0] / 1e6:.0f} GFLOP/s), "
              f"backward {best[1]:.2f} ms ({3 * flops / best[1] / 1e6:.0f} GFLOP/s)", flush=True)


class Cell:
    """One (width, points, activation): its network and points, and the calls per timed block per method."""

    def __init__(self, width: int, n: int, activation: str, depth: int) -> None:
        self.key = (width, n, activation)
        self.net = fastpinn.MLP(2, 1, depth, width, seed=0, activation=activation)
        self.x = torch.rand(n, 2, generator=torch.Generator().manual_seed(n))
        self.calls = {}
        for m in METHODS:
            tick = time.process_time()
            self.step(m)
            self.step(m)
            once = (time.process_time() - tick) / 2
            self.calls[m] = max(1, min(50, int(BLOCK_SECONDS / max(once, 1e-6))))

    def step(self, method: str) -> None:
        f = derivatives(self.net, self.x, coords=COORDS, requests=REQUESTS, method=method)
        loss = sum(v.pow(2).sum() for v in f.values())
        torch.autograd.grad(loss, [self.net.theta])

    def time(self, method: str) -> float:
        tick = time.process_time()
        for _ in range(self.calls[method]):
            self.step(method)
        return (time.process_time() - tick) / self.calls[method]


def method_table(widths: list[int], points: list[int], activations: list[str], depth: int, rounds: int) -> list[str]:
    cells = [Cell(w, n, a, depth) for a in activations for n in points for w in widths]
    rng = random.Random(0)
    times = {c.key: {m: [] for m in METHODS} for c in cells}
    for r in range(rounds):
        work = [(c, m) for c in cells for m in METHODS]
        rng.shuffle(work)
        for c, m in work:
            times[c.key][m].append(c.time(m))
        print(f"round {r + 1}/{rounds} done", flush=True)
    lines = ["| activation | points | width | fused ms | jet ms | autograd ms | fused / jet | fused / autograd | "
             "fused / jet per round (min-max) |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for c in cells:
        t = times[c.key]
        med = {m: 1e3 * statistics.median(v) for m, v in t.items()}
        paired = [f / j for f, j in zip(t["fused"], t["jet"])]
        w, n, a = c.key
        lines.append(f"| {a} | {n} | {w} | {med['fused']:.2f} | {med['jet']:.2f} | {med['autograd']:.2f} | "
                     f"**{med['fused'] / med['jet']:.2f}** | {med['fused'] / med['autograd']:.2f} | "
                     f"{min(paired):.2f}-{max(paired):.2f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--op", action="store_true", help="time the fused op alone (forward, backward, GFLOP/s)")
    ap.add_argument("--widths", default=WIDTHS)
    ap.add_argument("--points", default="2000", help="comma-separated point counts (--op: the first)")
    ap.add_argument("--activations", default="tanh,sin", help=f"of {tuple(JET_ACTIVATIONS)}")
    ap.add_argument("--depth", type=int, default=4, help="weight layers (4: 3 hidden layers)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None, help="write the table there (markdown)")
    args = ap.parse_args()
    _ext.load()
    torch.set_num_threads(1)
    widths = [int(v) for v in args.widths.split(",")]
    points = [int(v) for v in args.points.split(",")]
    if args.op:
        op_timings(widths, points[0], args.depth)
        return
    retain_freed_memory()  # as the command line does: no page faults from freed activations
    info = describe("cpu")
    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout.strip()
    load_start = tuple(round(x, 2) for x in info["load_average"])
    started = _dt.datetime.now(_dt.timezone.utc)
    table = method_table(widths, points, args.activations.split(","), args.depth, args.rounds)
    load_end = tuple(round(x, 2) for x in describe("cpu")["load_average"])
    lines = [f"# fused vs jet vs autograd by width ({started:%Y-%m-%d %H:%M} UTC)", "",
             f"Machine: `{cpu}` ({info['device_name']}); load average {load_start} at start, {load_end} at the end; "
             f"torch {info['torch']}; 1 thread; float32. MLP 2 -> {args.depth - 1} hidden x width -> 1; fields u, u_t, "
             f"u_x, u_xx; median over {args.rounds} interleaved rounds of the CPU ms of one forward + backward.", "",
             *table, "",
             f"Command: `OMP_NUM_THREADS=1 python bench/bench_fused_widths.py --widths {args.widths} --points "
             f"{args.points} --activations {args.activations} --rounds {args.rounds}`", ""]
    print("\n".join(lines))
    if args.out is not None:
        from fastpinn._io import atomic_write_text

        atomic_write_text(args.out, "\n".join(lines))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
