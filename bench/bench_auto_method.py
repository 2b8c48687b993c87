"""``derivative_method="auto"`` against every applicable method chosen by hand (issue 20, item 1).

One process, 1 thread, float32, interleaved: every round times every (case, method) once, in a shuffled order,
and a case's figure is the median over rounds (a shared, noisy machine: the paired ratio of two methods in the
same round is what counts). One timing is the CPU time (``time.process_time``) of the forward of the requested
fields, a loss summing their squares and the backward to the parameters -- what a training step does per term
-- averaged over enough calls to fill ~20 ms.

Grid: a plain tanh :class:`~fastpinn.MLP` with 2 inputs and 3 hidden layers of width 16, 20, 50, 150, 256;
requests of order 1 (u, u_t, u_x), 2 (Burgers: u, u_t, u_x, u_xx), 3 (u, u_x, u_xxx), 4 (u, u_xxxx);
100, 1,000 and 10,000 points. ``func`` is timed for orders 3-4 up to 1,000 points only (it took 2-80x the time
of ``autograd`` wherever it was measured; at 10,000 points a single call takes many seconds). The tables give
ms per method, ``auto``'s pick and ``auto`` / fastest; ``--calibration`` also prints the rows of
:data:`fastpinn.method_costs.CALIBRATION` (the cost model ``choose_method`` reads) from the medians.

    OMP_NUM_THREADS=1 python bench/bench_auto_method.py              # writes bench/results/auto-method-<cpu>-<date>.md
    OMP_NUM_THREADS=1 python bench/bench_auto_method.py --quick      # a smoke run, nothing written
    OMP_NUM_THREADS=1 python bench/bench_auto_method.py --orders 1,2 --calibration   # the rows fused competes in
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
from fastpinn.derivatives import applicable_methods, choose_method, derivatives, parse_requests  # noqa: E402
from fastpinn.malloc import retain_freed_memory  # noqa: E402

from _machine import describe, device_slug  # noqa: E402

COORDS = ("t", "x")
REQUESTS = {1: ("u", "u_t", "u_x"), 2: ("u", "u_t", "u_x", "u_xx"), 3: ("u", "u_x", "u_xxx"), 4: ("u", "u_xxxx")}
WIDTHS = (16, 20, 50, 150, 256)
POINTS = (100, 1000, 10000)
DEPTH = 4  # weight layers: 3 hidden layers
FUNC_MAX_POINTS = 1000
BLOCK_SECONDS = 0.02


class Case:
    """One (width, order, points) cell: its network, points and the methods that apply."""

    def __init__(self, width: int, order: int, n: int) -> None:
        self.width, self.order, self.n = width, order, n
        self.net = fastpinn.MLP(2, 1, DEPTH, width, seed=0)
        self.x = torch.rand(n, 2, generator=torch.Generator().manual_seed(n))
        self.requests = REQUESTS[order]
        why = applicable_methods(self.net, self.requests, COORDS)
        self.methods = [m for m, reason in why.items() if reason is None
                        and not (m == "func" and (order <= 2 or n > FUNC_MAX_POINTS))]
        self.auto = choose_method(self.net, self.x, parse_requests(self.requests, COORDS))
        self.calls = {m: 1 for m in self.methods}

    def step(self, method: str) -> None:
        f = derivatives(self.net, self.x, coords=COORDS, requests=self.requests, method=method)
        loss = sum(v.pow(2).sum() for v in f.values())
        torch.autograd.grad(loss, [self.net.theta])

    def calibrate(self) -> None:
        """A warm-up call per method and the number of calls that fills a timed block."""
        for m in self.methods:
            tick = time.process_time()
            self.step(m)
            self.step(m)
            once = (time.process_time() - tick) / 2
            self.calls[m] = max(1, min(50, int(BLOCK_SECONDS / max(once, 1e-6))))

    def time(self, method: str) -> float:
        tick = time.process_time()
        for _ in range(self.calls[method]):
            self.step(method)
        return (time.process_time() - tick) / self.calls[method]


def run(cases: list[Case], rounds: int, seed: int = 0) -> dict[tuple[int, int, int], dict[str, list[float]]]:
    rng = random.Random(seed)
    times = {(c.width, c.order, c.n): {m: [] for m in c.methods} for c in cases}
    for r in range(rounds):
        work = [(c, m) for c in cases for m in c.methods]
        rng.shuffle(work)
        for c, m in work:
            times[(c.width, c.order, c.n)][m].append(c.time(m))
        print(f"round {r + 1}/{rounds} done", flush=True)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="widths 20 and 150, 100 and 1,000 points, 2 rounds")
    ap.add_argument("--calibration", action="store_true", help="print the medians as CALIBRATION rows")
    ap.add_argument("--orders", default="1,2,3,4", help="derivative orders to time (e.g. 1,2 to recalibrate the "
                    "rows a change of the fused kernel moves; nothing is written unless all four run)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    retain_freed_memory()  # as the command line does: no page faults from freed activations
    info = describe("cpu")
    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout.strip()
    started = _dt.datetime.now(_dt.timezone.utc)
    widths, points = ((20, 150), (100, 1000)) if args.quick else (WIDTHS, POINTS)
    rounds = 2 if args.quick else args.rounds
    orders = [int(v) for v in args.orders.split(",")]
    cases = [Case(w, o, n) for o in REQUESTS if o in orders for w in widths for n in points]
    for c in cases:
        c.calibrate()
    times = run(cases, rounds)
    med = {key: {m: 1e3 * statistics.median(v) for m, v in per.items()} for key, per in times.items()}

    lines = [f"# derivative_method=\"auto\" against each method by hand ({started:%Y-%m-%d})", "",
             f"Machine: `{cpu}` ({info['device_name']}); load average at start {tuple(round(x, 2) for x in info['load_average'])}; "
             f"torch {info['torch']}; 1 thread; float32. MLP 2 -> {DEPTH - 1} hidden x width -> 1, tanh. "
             f"Median over {rounds} interleaved rounds of the CPU ms of one forward + backward of the fields.", "",
             "| order | width | points | ms per method (fastest first) | auto picks | auto / fastest | "
             "worst / auto |", "|---|---|---|---|---|---|---|"]
    worst_ratio = 0.0
    for c in cases:
        m = med[(c.width, c.order, c.n)]
        ranked = sorted(m.items(), key=lambda kv: kv[1])
        ratio = m[c.auto] / ranked[0][1]
        worst_ratio = max(worst_ratio, ratio)
        lines.append(f"| {c.order} | {c.width} | {c.n} | " + ", ".join(f"{k} {v:.2f}" for k, v in ranked)
                     + f" | {c.auto} | {ratio:.2f} | {ranked[-1][1] / m[c.auto]:.2f} |")
    lines += ["", f"Largest auto / fastest over the grid: **{worst_ratio:.2f}**.", ""]
    fused_jet = [(c, med[(c.width, c.order, c.n)]) for c in cases if c.order <= 2]
    lines += ["fused / jet (orders 1-2): " + ", ".join(
        f"w{c.width} n{c.n} o{c.order}: {m['fused'] / m['jet']:.2f}" for c, m in fused_jet if "fused" in m), ""]
    print("\n".join(lines))
    if args.calibration:
        print("CALIBRATION rows:")
        for c in cases:
            m = med[(c.width, c.order, c.n)]
            print(f"    ({c.order}, {c.width}, {c.n}): {{" + ", ".join(f'"{k}": {v:.3g}' for k, v in sorted(m.items()))
                  + "},")
    if args.quick or set(orders) != set(REQUESTS):
        return
    from fastpinn._io import atomic_write_text

    out = HERE / "results" / f"auto-method-{device_slug(info)}-{started:%Y-%m-%d}.md"
    atomic_write_text(out, "\n".join(lines + ["Command: `OMP_NUM_THREADS=1 python bench/bench_auto_method.py`", ""]))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
