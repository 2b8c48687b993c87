"""Aggregators (issue 19): per-step overhead against PINN and DN, and accuracy against DN in short runs.

Overhead: one process, the paper's three problems at their paper sizes (``--quick``: smaller), one thread,
float32, ``step_mode="eager"``. Per problem a Trainer per scheme -- PINN, DN (tau = 1: K backwards and the
statistics every step, as an aggregator), a "gram + mean" aggregator registered here (the machinery alone: the
K backwards, the fused Gram op and the combination, with the trivial solver ``mean_weights``) and every
registered aggregator whose solver this build has -- run in interleaved blocks of epochs after a warm-up
(block order reversed every round). Each block's seconds per epoch are recorded as wall time and as this
process's CPU time (one thread: the work done, without the waits for a core that other jobs on a shared machine
add). A ratio is the median over rounds of the same round's pair (method / DN, method / PINN), quartiles beside.

Accuracy (``--accuracy-epochs N``): each scheme trains ``N`` epochs from each seed of ``--seeds`` on each
problem (default sizes, evaluation at the end) and the final relative L2 error is reported per seed, with the
median and spread.

    python bench/bench_aggregators_step.py --quick                       # a few minutes
    python bench/bench_aggregators_step.py --accuracy-epochs 300 --seeds 0,1 --problems poisson
    python bench/bench_aggregators_step.py --device cuda --step-mode cuda_graph --problems burgers   # on a GPU
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("FASTPINN_THREADS", "1")
import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _machine import describe, device_slug  # noqa: E402
from _stats import fmt_quartiles  # noqa: E402

import fastpinn  # noqa: E402
from fastpinn import problems  # noqa: E402
from fastpinn.aggregation import solvers  # noqa: E402
from fastpinn.schemes import (DN, PINN, SCHEME_NAMES, AggregatorScheme, register, scheme_class,  # noqa: E402
                              unregister)

PROBLEMS = ("burgers", "poisson", "allen_cahn")
QUICK_SIZES = {"burgers": {"n_pde": 2000}, "poisson": {"n_pde": 1000, "n_bc": 200},
               "allen_cahn": {"n_pde": 2048, "batch_size": 1024}}


@dataclass(frozen=True)
class GramMean(AggregatorScheme):
    """The aggregation machinery with the trivial solver (the mean of the rows): its cost is the Gram op, the
    weights' bookkeeping and the combination, none of a method's own solve."""

    solver = "mean_weights"


def aggregators() -> list[str]:
    """The registered aggregators whose solver this build has."""
    out = []
    for name in SCHEME_NAMES:
        cls = scheme_class(name)
        if issubclass(cls, AggregatorScheme) and cls is not GramMean and hasattr(solvers, cls.solver):
            out.append(name)
    return out


def _problem(name: str, seed: int, sizes: dict, solution: bool):
    p = problems.get(name, seed, **sizes)
    return p if solution else dataclasses.replace(p, solution=None)


def overhead(name: str, sizes: dict, epochs: int, rounds: int, warm: int, methods: list[str], device: str = "cpu",
             step_mode: str = "eager") -> dict:
    schemes = {"PINN": PINN(), "DN τ=1": DN(tau=1), "gram + mean": GramMean(),
               **{n: fastpinn.schemes.scheme_from_name(n) for n in methods}}
    kw = dict(eval_every=10**9, derivative_method="jet", step_mode=step_mode, threads=1, device=device)
    cuda = torch.device(device).type == "cuda"
    trainers = {k: fastpinn.Trainer(_problem(name, 0, sizes, False), s, **kw) for k, s in schemes.items()}
    for t in trainers.values():
        t.train(warm)
    wall = {k: [] for k in trainers}
    cpu = {k: [] for k in trainers}
    keys = list(trainers)
    for r in range(rounds):
        for k in (keys if r % 2 == 0 else keys[::-1]):
            c0 = time.process_time()
            if cuda:  # the kernels of the block finished inside it, whatever train() waits for
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                trainers[k].train(epochs)
                torch.cuda.synchronize()
                wall[k].append((time.perf_counter() - t0) / epochs)
            else:
                h = trainers[k].train(epochs)
                wall[k].append(h.train_seconds / epochs)
            cpu[k].append((time.process_time() - c0) / epochs)
    return {"wall_s": wall, "cpu_s": cpu, "steps_per_epoch": trainers["PINN"].steps_per_epoch,
            "terms": len(trainers["PINN"].problem.terms)}


def ratios(samples: dict, key: str, base: str) -> list[float]:
    return [a / b for a, b in zip(samples[key], samples[base])]


def accuracy(name: str, epochs: int, seeds: list[int], methods: list[str]) -> dict:
    schemes = {"PINN": PINN(), "DN τ=10": DN(tau=10), **{n: fastpinn.schemes.scheme_from_name(n) for n in methods}}
    out = {}
    for key, scheme in schemes.items():
        errs = []
        for seed in seeds:
            t = fastpinn.Trainer(problems.get(name, seed), scheme, eval_every=epochs, threads=1)
            h = t.train(epochs)
            errs.append(float(h.final_rel_l2()[0]))
        out[key] = errs
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--quick", action="store_true", help="smaller problems, fewer rounds")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per timed block")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--accuracy-epochs", type=int, default=0, help="also train short runs for accuracy (0: no)")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--no-overhead", action="store_true", help="only the accuracy runs")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N] (the overhead runs; ratios of wall time on CUDA)")
    ap.add_argument("--step-mode", default="eager", choices=("eager", "device", "cuda_graph"),
                    help="the Trainer's step_mode of the overhead runs (cuda_graph: CUDA only)")
    ap.add_argument("--out", default=None, help="result file (default bench/results/aggregators-step-<machine>-<date>.md)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    names = [p for p in args.problems.split(",") if p]
    epochs = args.epochs or (3 if args.quick else 5)
    rounds = args.rounds or (4 if args.quick else 6)
    register("gram-mean", title="gram + mean")(GramMean)
    try:
        methods = aggregators()
        info = describe("cuda" if args.device.startswith("cuda") else "cpu")
        basis = "cpu_s" if args.device == "cpu" else "wall_s"  # a GPU's work is not this process's CPU time
        lines = [f"# Aggregators: step overhead and accuracy ({_dt.date.today()})", "",
                 f"Machine: {info['device_name']}; torch {info['torch']}; one thread; load average "
                 f"{info['load_average']}.", f"Command: `python {' '.join(sys.argv)}`", "",
                 f"Aggregators with a solver in this build: {', '.join(methods) or 'none'}.", ""]
        raw = {"machine": info, "overhead": {}, "accuracy": {}}
        for name in ([] if args.no_overhead else names):
            sizes = QUICK_SIZES[name] if args.quick else {}
            res = overhead(name, sizes, epochs, rounds, warm=2, methods=methods, device=args.device,
                           step_mode=args.step_mode)
            raw["overhead"][name] = res
            lines += [f"## {name} ({'quick sizes ' + json.dumps(sizes) if sizes else 'paper sizes'}; "
                      f"K = {res['terms']}, {res['steps_per_epoch']} steps/epoch; {rounds} rounds of {epochs} epochs; "
                      f"{args.device}, step_mode {args.step_mode})",
                      "", f"| scheme | ms/epoch (wall) | ms/epoch (CPU) | {basis[:-2]} ratio to DN τ=1 [q1, q3] | "
                      f"{basis[:-2]} ratio to PINN [q1, q3] |", "|---|---|---|---|---|"]
            for key in res["wall_s"]:
                w = statistics.median(res["wall_s"][key]) * 1e3
                c = statistics.median(res["cpu_s"][key]) * 1e3
                to_dn = fmt_quartiles(ratios(res[basis], key, "DN τ=1"))
                to_pinn = fmt_quartiles(ratios(res[basis], key, "PINN"))
                lines.append(f"| {key} | {w:.1f} | {c:.1f} | {to_dn} | {to_pinn} |")
            lines.append("")
        if args.accuracy_epochs:
            seeds = [int(s) for s in args.seeds.split(",")]
            for name in names:
                acc = accuracy(name, args.accuracy_epochs, seeds, methods)
                raw["accuracy"][name] = acc
                lines += [f"## accuracy: {name}, {args.accuracy_epochs} epochs, seeds {seeds} (paper sizes)", "",
                          "| scheme | final rel. L2 per seed | median | min-max |", "|---|---|---|---|"]
                for key, errs in acc.items():
                    lines.append(f"| {key} | {', '.join(f'{e:.3g}' for e in errs)} | {statistics.median(errs):.3g} | "
                                 f"{min(errs):.3g}-{max(errs):.3g} |")
                lines.append("")
        text = "\n".join(lines)
        print(text)
        out = Path(args.out) if args.out else HERE / "results" / f"aggregators-step-{device_slug(info)}-{_dt.date.today()}.md"
        out.write_text(text + "\n\n<details><summary>raw</summary>\n\n```json\n" + json.dumps(raw, default=str)
                       + "\n```\n</details>\n")
        print(f"wrote {out}")
    finally:
        unregister("gram-mean")


if __name__ == "__main__":
    main()
