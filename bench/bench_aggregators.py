"""fastpinn's gradient-conflict solvers against TorchJD's aggregation of the same G, in one run.

For each method that TorchJD implements, K terms and P parameters, a float32 G [K, P] (the training dtype) is
aggregated into a direction [P] by

* fastpinn: the Gram matrix ``G G^T`` in float64 from the fused kernel ``fastpinn.ops.grad_gram``, the
  method's ``<name>_weights`` (fastpinn.aggregation.solvers) and ``w @ G``;
* fastpinn's "solve" alone: the weights from the given Gram;
* TorchJD: its aggregator called on G (it forms the Gram itself, solves -- quadprog, cvxpy, or torch on the
  CPU -- and combines the rows).

Rounds interleave the two sides and the configurations (shuffled per round); each sample is a batch of calls
timed together (at least ~20 ms); a ratio fastpinn/TorchJD is the median over rounds of the two times of the
same round, with quartiles. One thread (``torch.set_num_threads(1)``): K x K problems gain nothing from a
pool and a shared machine makes pools erratic. TorchJD's Nash-MTL is stateful (warm start): one instance per
configuration, reused, as in training. Settings follow TorchJD's defaults except where they change the
problem: MGDA Frank-Wolfe (epsilon 1e-3, 100 steps -- its default, an approximate answer), UPGrad (reg 1e-4
on both sides, TorchJD's default), CAGrad ``c = 0.5``, Nash-MTL ``max_norm = 0``.

    python bench/bench_aggregators.py                 # K = 2, 4, 8; P = 1e3, 1e4, 1e5; writes bench/results/
    python bench/bench_aggregators.py --quick         # 2 rounds, K = 2, 8, P = 1e3, 1e5
"""

from __future__ import annotations

import argparse
import datetime as _dt
import random
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import torch

from _machine import describe, device_slug  # noqa: E402 (bench/ is the script's directory)
from _stats import fmt_quartiles, quartiles  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from fastpinn import aggregation as agg  # noqa: E402
from fastpinn._io import atomic_write_text  # noqa: E402


def solve_only(method: str, k: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The weights from a given Gram [1, K, K] (what the scheme calls once the fused kernel has the Gram)."""
    hyper = {"cagrad": {"c": 0.5}, "upgrad": {"reg": 1e-4}}.get(method, {})
    solver = agg.METHODS[method]
    order = torch.arange(k).unsqueeze(0)
    return (lambda gram: solver(gram, order)) if method == "pcgrad" else (lambda gram: solver(gram, **hyper))


def ours(method: str, k: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """What a training step does: the Gram in float64 by the fused kernel (``fastpinn.ops.grad_gram``, one pass
    over G), the weights, ``w @ G``."""
    from fastpinn.ops import grad_gram

    solve = solve_only(method, k)

    def run(g: torch.Tensor) -> torch.Tensor:
        gram = grad_gram(g)
        return solve(gram.reshape(1, k, k))[0].to(g.dtype) @ g

    return run


def theirs(method: str, k: int) -> Callable[[torch.Tensor], torch.Tensor]:
    import torchjd.aggregation as tjd
    make = {"mean": tjd.Mean, "pcgrad": tjd.PCGrad, "mgda": tjd.MGDA, "cagrad": lambda: tjd.CAGrad(c=0.5),
            "imtl-g": tjd.IMTLG, "aligned-mtl": tjd.AlignedMTL, "upgrad": tjd.UPGrad, "config": tjd.ConFIG,
            "nash-mtl": lambda: tjd.NashMTL(n_tasks=k, max_norm=0.0)}
    return make[method]()


def timed(fn: Callable[[torch.Tensor], torch.Tensor], g: torch.Tensor, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn(g)
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")  # cvxpy's DPP notice for Nash-MTL
    ks = (2, 8) if args.quick else (2, 4, 8)
    ps = (10 ** 3, 10 ** 5) if args.quick else (10 ** 3, 10 ** 4, 10 ** 5)
    rounds = args.rounds or (2 if args.quick else 5)
    methods = ("mean", "pcgrad", "mgda", "cagrad", "imtl-g", "aligned-mtl", "nash-mtl", "upgrad", "config")
    gen = torch.Generator().manual_seed(0)
    configs = []
    for method in methods:
        for k in ks:
            for p in ps:
                g = torch.randn(k, p, generator=gen) * (10.0 ** torch.linspace(-1, 1, k)).unsqueeze(1)
                g64 = g.to(torch.float64)
                gram = (g64 @ g64.T).unsqueeze(0)
                solve = solve_only(method, k)
                sides = {"fastpinn": ours(method, k), "torchjd": theirs(method, k),
                         "solve": lambda _g, solve=solve, gram=gram: solve(gram)}
                calls = {}
                for name, fn in sides.items():  # warm up and size the batch to ~20 ms
                    once = timed(fn, g, 1)
                    calls[name] = max(1, min(200, int(0.02 / max(once, 1e-6))))
                configs.append(((method, k, p), g, sides, calls))
    samples: dict[tuple, dict[str, list[float]]] = {c[0]: {name: [] for name in c[2]} for c in configs}
    for _ in range(rounds):
        random.shuffle(configs)
        for key, g, sides, calls in configs:
            order = list(sides)
            random.shuffle(order)
            for name in order:
                samples[key][name].append(timed(sides[name], g, calls[name]))
    info = describe("cpu")
    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout.strip()
    lines = [f"# fastpinn aggregation solvers vs TorchJD, {_dt.date.today().isoformat()}", "",
             f"`{cpu}`; {info['cpu_cores_usable']} usable cores, load average {info['load_average']}; torch "
             f"{torch.__version__}; one thread; float32 G, Gram in float64 by the fused kernel on the fastpinn side. "
             f"Rounds: {rounds}. Command: `python bench/bench_aggregators.py{' --quick' if args.quick else ''}`.",
             "", "Times per call in ms (median over rounds); ratio = fastpinn / TorchJD, median [quartiles] of "
             "the per-round ratios (< 1: fastpinn faster). \"solve ms\": fastpinn's weights alone from a given Gram "
             "(the part that stays once the fused kernel delivers the Gram).", "",
             "| method | K | P | fastpinn ms | solve ms | TorchJD ms | ratio |", "|---|---|---|---|---|---|---|"]
    for method in methods:
        for k in ks:
            for p in ps:
                s = samples[(method, k, p)]
                ratios = [a / b for a, b in zip(s["fastpinn"], s["torchjd"])]
                lines.append(f"| {method} | {k} | {p:.0e} | {quartiles(s['fastpinn'])[1] * 1e3:.3f} | "
                             f"{quartiles(s['solve'])[1] * 1e3:.3f} | {quartiles(s['torchjd'])[1] * 1e3:.3f} | "
                             f"{fmt_quartiles(ratios, 2)} |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"aggregators-{device_slug(info)}-{_dt.date.today().isoformat()}{'-quick' if args.quick else ''}.md"
    atomic_write_text(args.out / name, text)
    print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
