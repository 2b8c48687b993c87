"""The Trainer's epoch time before and after its step moved onto ``fastpinn.WeightedBackward``.

Issue 8 asks that "the existing benchmarks show no slowdown of the Trainer". This compares the current
tree ("new") against a checkout of the commit before the refactor ("old", default ``10b68d5``) on the
paper's three problems at their paper sizes (Burgers 10,000 + 100 + 200 points, Poisson, Allen-Cahn with
its 4,096-point mini-batches), PINN and DN-PINN (tau = 10), one thread, ``step_mode="eager"``,
``derivative_method="jet"``, float32, fused Adam (the Trainer's default).

Each sample is a fresh process (so import-time state, allocator and caches of one side cannot help the
other); rounds alternate old and new processes (old, new / new, old / ...), and a ratio new/old is the
median over rounds of the two processes of the same round (quartiles beside it): machine noise that lasts
longer than one round cancels. Beside the wall time each block's process CPU time is recorded (one thread,
so it is the work done without the waits for a core that other jobs on a shared machine add), and the same
ratios are reported from it. Inside a process the schemes run in interleaved blocks of epochs after a
warm-up, and the process reports each scheme's median seconds per epoch.

The "user loop" row runs in the new processes only: a loop as a user writes it from the README --
``fastpinn.MLP`` from ``problem.network()``, ``WeightedBackward(net, DN(tau=10), terms, ...)``,
``torch.optim.Adam(net.parameters(), fused=True)``, per step the term losses ``term.loss(net, coords,
index, method="jet")`` on the Trainer's mini-batches, ``wb(losses)``, ``opt.step()`` -- interleaved with
the Trainer's DN blocks in the same process; its ratio loop/Trainer is paired per block.

The old tree needs its own compiled extension (the C++ op signatures changed): build it once with

    git worktree add /tmp/old 10b68d5
    (cd /tmp/old && ../path/to/.venv/bin/python setup.py build_ext --inplace)

and the script runs the old processes with ``PYTHONPATH=/tmp/old``; each process reports
``fastpinn.__file__``, and the script refuses to go on if a side imported the wrong tree.

    OMP_NUM_THREADS=1 python bench/bench_weighted_backward.py --old /tmp/old
    OMP_NUM_THREADS=1 python bench/bench_weighted_backward.py --old /tmp/old --quick   # < 2 min
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from _stats import fmt_quartiles, quartiles  # noqa: E402 (bench/ is the script's directory)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROBLEMS = ("burgers", "poisson", "allen_cahn")

CHILD = r"""
import dataclasses, inspect, json, statistics, sys, time
import torch
torch.set_num_threads(1)
from fastpinn.malloc import retain_freed_memory
retain_freed_memory()
import fastpinn
from fastpinn import problems
from fastpinn.schemes import DN, PINN
from fastpinn.trainer import Trainer

name, epochs, blocks, warm, with_loop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
sizes = json.loads(sys.argv[6])
problem = dataclasses.replace(problems.get(name, 0, **sizes), solution=None)
kwargs = dict(eval_every=10**9, derivative_method="jet", step_mode="eager")
if "threads" in inspect.signature(Trainer.__init__).parameters:
    kwargs["threads"] = 1   # the new tree's policy; the old tree has no such argument (it keeps torch's setting)

runners = {}
trainers = {"PINN": Trainer(problem, PINN(), **kwargs), "DN tau=10": Trainer(problem, DN(tau=10), **kwargs)}
for key, tr in trainers.items():
    runners[key] = (lambda tr: lambda n: tr.train(n).train_seconds / n)(tr)


def timed(run, n):
    # wall seconds per epoch as the run reports it, and this process's CPU seconds per epoch around it: on a
    # shared machine the CPU time leaves out the waits for a core that other jobs' load adds to the wall time
    cpu = time.process_time()
    wall = run(n)
    return wall, (time.process_time() - cpu) / n

if with_loop:
    from fastpinn import WeightedBackward
    prob = problem.to("cpu", torch.float32)
    net = prob.network(dtype=torch.float32)
    terms = prob.terms
    steps = max(t.n_batches for t in terms)
    wb = WeightedBackward(net, DN(tau=10), prob.term_names, reference=prob.reference_term, adaptive=prob.adaptive,
                          steps_per_epoch=steps, shared_graph=False)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    gen = torch.Generator().manual_seed(0)

    def loop(n):
        tick = time.perf_counter()
        for _ in range(n):
            perms = [None if t.n_batches == 1 else torch.randperm(t.n_points, generator=gen) for t in terms]
            for b in range(steps):
                idx = [None if p is None else p[(b % t.n_batches) * t.batch_size:(b % t.n_batches + 1) * t.batch_size]
                       for t, p in zip(terms, perms)]
                losses = [t.loss(net, prob.coords, i, method="jet") for t, i in zip(terms, idx)]
                wb(losses)
                opt.step()
        return (time.perf_counter() - tick) / n

    runners["user loop DN tau=10"] = loop

for run in runners.values():
    run(warm)
samples = {k: [] for k in runners}
cpu_samples = {k: [] for k in runners}
keys = list(runners)
for b in range(blocks):
    order = keys if b % 2 == 0 else keys[::-1]
    for k in order:
        wall, cpu = timed(runners[k], epochs)
        samples[k].append(wall)
        cpu_samples[k].append(cpu)
print(json.dumps({"file": fastpinn.__file__, "samples_s": samples, "cpu_samples_s": cpu_samples,
                  "median_s": {k: statistics.median(v) for k, v in samples.items()},
                  "cpu_median_s": {k: statistics.median(v) for k, v in cpu_samples.items()}}))
"""

SIZES = {"burgers": {}, "poisson": {}, "allen_cahn": {}}  # the paper's sizes
QUICK_SIZES = {"burgers": {"n_pde": 2000}, "poisson": {"n_pde": 1000, "n_bc": 200},
               "allen_cahn": {"n_pde": 2048, "batch_size": 1024}}


def sample(tree: Path, problem: str, epochs: int, blocks: int, warm: int, with_loop: bool, sizes: dict) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(tree), FASTPINN_THREADS="1")
    out = subprocess.run([sys.executable, "-c", CHILD, problem, str(epochs), str(blocks), str(warm),
                          "1" if with_loop else "0", json.dumps(sizes[problem])],
                         env=env, capture_output=True, text=True, timeout=1800, cwd="/")
    if out.returncode != 0:
        raise RuntimeError(f"child ({tree}, {problem}) failed:\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if not Path(res["file"]).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"a process meant to run {tree} imported fastpinn from {res['file']}")
    return res


def fmt(xs: list[float]) -> str:
    return fmt_quartiles(xs, 3)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", default="/tmp/old", help="checkout of the commit before the refactor, extension built")
    ap.add_argument("--old-commit", default="10b68d5", help="what --old is (for the report)")
    ap.add_argument("--rounds", type=int, default=None, help="old/new process pairs per problem (default 5; quick 2)")
    ap.add_argument("--problems", nargs="*", choices=PROBLEMS, default=list(PROBLEMS))
    ap.add_argument("--quick", action="store_true", help="small point counts, 2 rounds (< 2 minutes)")
    ap.add_argument("--out", default=None, help="results markdown (default bench/results/<slug>-weighted-backward-<date>.md)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(ROOT))
    import torch

    torch.set_num_threads(1)
    import _machine

    old, new = Path(args.old), ROOT
    rounds = args.rounds or (2 if args.quick else 5)
    sizes = QUICK_SIZES if args.quick else SIZES
    # epochs per block, blocks per scheme, warm-up epochs: Allen-Cahn's paper epoch is 5 mini-batch steps
    plan = {"burgers": (10, 3, 5), "poisson": (10, 3, 5), "allen_cahn": (3, 3, 2)}
    if args.quick:
        plan = {k: (3, 2, 2) for k in plan}
    info = _machine.describe("cpu")
    started = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    tick = time.perf_counter()
    results: dict[str, dict] = {}
    for name in args.problems:
        epochs, blocks, warm = plan[name]
        runs: dict[str, list[dict]] = {"old": [], "new": []}
        loads = []
        for r in range(rounds):
            loads.append(os.getloadavg()[0])
            for side in (("old", "new") if r % 2 == 0 else ("new", "old")):
                tree = old if side == "old" else new
                runs[side].append(sample(tree, name, epochs, blocks, warm, side == "new", sizes))
            o, n = runs["old"][-1]["median_s"], runs["new"][-1]["median_s"]
            oc, nc = runs["old"][-1]["cpu_median_s"], runs["new"][-1]["cpu_median_s"]
            print(f"{name} round {r + 1}/{rounds}: " + ", ".join(
                f"{k} old {1e3 * o[k]:.1f} new {1e3 * n[k]:.1f} ms (CPU {1e3 * oc[k]:.1f} / {1e3 * nc[k]:.1f})"
                for k in o) + f", user loop {1e3 * n['user loop DN tau=10']:.1f} ms", file=sys.stderr, flush=True)
        ratios = {k: [n["median_s"][k] / o["median_s"][k] for o, n in zip(runs["old"], runs["new"])]
                  for k in ("PINN", "DN tau=10")}
        cpu_ratios = {k: [n["cpu_median_s"][k] / o["cpu_median_s"][k] for o, n in zip(runs["old"], runs["new"])]
                      for k in ("PINN", "DN tau=10")}
        loop_ratio = [a / b for n in runs["new"] for a, b in zip(n["samples_s"]["user loop DN tau=10"],
                                                                   n["samples_s"]["DN tau=10"])]
        cpu_loop_ratio = [a / b for n in runs["new"] for a, b in zip(n["cpu_samples_s"]["user loop DN tau=10"],
                                                                       n["cpu_samples_s"]["DN tau=10"])]
        results[name] = {"epochs_per_block": epochs, "blocks": blocks, "warmup_epochs": warm, "sizes": sizes[name],
                         "load_at_round_start": loads, "runs": runs, "ratio_new_over_old": ratios,
                         "ratio_loop_over_trainer": loop_ratio, "cpu_ratio_new_over_old": cpu_ratios,
                         "cpu_ratio_loop_over_trainer": cpu_loop_ratio,
                         "old_file": runs["old"][0]["file"], "new_file": runs["new"][0]["file"]}
    wall = time.perf_counter() - tick

    lines = [f"# Trainer epoch time: WeightedBackward step (new) vs the step before it ({args.old_commit})", "",
             f"Machine: {info['device_name']}, {info['memory_gib']:.0f} GiB, torch {info['torch']}, python "
             f"{info['python']}; shared with other engineers' builds and tests. Started {started}, "
             f"{wall / 60:.1f} min; load average at the start {', '.join(f'{v:.2f}' for v in info['load_average'])}, "
             f"at the end {', '.join(f'{v:.2f}' for v in os.getloadavg())}.", "",
             f"`bench/bench_weighted_backward.py{' --quick' if args.quick else ''}`: one thread, eager step, "
             "`derivative_method=\"jet\"`, float32, "
             f"{'quick' if args.quick else 'paper'} point counts, {rounds} rounds per problem of one old and one new "
             "fresh process (order alternating); a ratio is the median over rounds of new/old of the processes' "
             "median ms/epoch, with its quartiles. `user loop / Trainer` is paired per block inside the new "
             "processes (all blocks of all rounds).", "",
             f"Old tree: `{results[args.problems[0]]['old_file']}`; new: `{results[args.problems[0]]['new_file']}`.", "",
             "| problem | old PINN ms | new PINN ms | PINN new/old | old DN ms | new DN ms | DN τ=10 new/old "
             "| user loop ms | user loop / Trainer (DN) | load at rounds |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, r in results.items():
        med = lambda side, k: 1e3 * statistics.median(x["median_s"][k] for x in r["runs"][side])  # noqa: E731
        lines.append(f"| {name} | {med('old', 'PINN'):.1f} | {med('new', 'PINN'):.1f} | "
                     f"{fmt(r['ratio_new_over_old']['PINN'])} | {med('old', 'DN tau=10'):.1f} | "
                     f"{med('new', 'DN tau=10'):.1f} | {fmt(r['ratio_new_over_old']['DN tau=10'])} | "
                     f"{med('new', 'user loop DN tau=10'):.1f} | {fmt(r['ratio_loop_over_trainer'])} | "
                     f"{', '.join(f'{v:.1f}' for v in r['load_at_round_start'])} |")
    lines += ["", "The same ratios from the processes' CPU time (`time.process_time()` around each block; one thread, "
              "so this is the work done, without the waits for a core that the other jobs on this shared machine "
              "add to the wall time):", "",
              "| problem | old PINN CPU ms | new PINN CPU ms | PINN new/old | old DN CPU ms | new DN CPU ms "
              "| DN τ=10 new/old | user loop / Trainer (DN) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        med = lambda side, k: 1e3 * statistics.median(x["cpu_median_s"][k] for x in r["runs"][side])  # noqa: E731
        lines.append(f"| {name} | {med('old', 'PINN'):.1f} | {med('new', 'PINN'):.1f} | "
                     f"{fmt(r['cpu_ratio_new_over_old']['PINN'])} | {med('old', 'DN tau=10'):.1f} | "
                     f"{med('new', 'DN tau=10'):.1f} | {fmt(r['cpu_ratio_new_over_old']['DN tau=10'])} | "
                     f"{fmt(r['cpu_ratio_loop_over_trainer'])} |")
    lines += ["", "<details><summary>Raw results (seconds per epoch)</summary>", "", "```json",
              json.dumps({"machine": info, "rounds": rounds, "quick": args.quick, "results": results}, indent=1,
                         default=str), "```", "", "</details>", ""]
    text = "\n".join(lines)
    print(text)
    out = args.out or str(HERE / "results" / f"{_machine.device_slug(info)}-weighted-backward-"
                          f"{_dt.date.today().isoformat()}{'-quick' if args.quick else ''}.md")
    from fastpinn import _io

    _io.atomic_write_text(out, text)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
