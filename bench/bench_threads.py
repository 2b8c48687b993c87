"""Trainer epoch time at 1 thread, 2 threads (every core) and ``threads="auto"``, on an idle and a loaded CPU.

``threads="auto"`` (the Trainer's default, :mod:`fastpinn.threads`) measures the idle cores at ``train()``
and uses that many threads. This checks the claim of that policy: on an idle machine it is as fast as the
best fixed choice, and on a loaded one it does not collapse the way all-cores does.

Two phases, each a fresh process per problem:

* ``idle``: the machine as it is (shared with other work: the load average at the start of each phase
  and problem is recorded, so "idle" is only as idle as those numbers say);
* ``loaded``: one busy-looping process per core (``os.cpu_count()``), started by this script before the
  phase's processes and stopped (by their pids) after.

In each process three Trainers of DN-PINN (tau = 10) -- ``threads=1``, ``threads=<all cores>``,
``threads="auto"`` -- on the same problem (eager step, ``derivative_method="jet"``, float32; Burgers and
Poisson at the paper's size, Allen-Cahn with one 4,096-point mini-batch per epoch as in
``bench_training.py --size cpu``) train ``--warmup`` epochs each, then blocks of ``--epochs`` epochs in
rotating order. Per block-round: each configuration's ms/epoch and ``auto`` over the best fixed count of
that round (paired). ``FASTPINN_THREADS`` is removed from the children's environment (it would override "auto").

    OMP_NUM_THREADS=1 python bench/bench_threads.py
    OMP_NUM_THREADS=1 python bench/bench_threads.py --quick     # < 2 min
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
SIZES = {"burgers": {}, "poisson": {}, "allen_cahn": {"n_pde": 4096}}
QUICK_SIZES = {"burgers": {"n_pde": 2000}, "poisson": {"n_pde": 1000, "n_bc": 200},
               "allen_cahn": {"n_pde": 1024, "batch_size": 1024}}

CHILD = r"""
import dataclasses, json, os, sys, time
import torch
from fastpinn.malloc import retain_freed_memory
retain_freed_memory()
from fastpinn import problems
from fastpinn.schemes import DN
from fastpinn.threads import threads_for_now
from fastpinn.trainer import Trainer

name, epochs, blocks, warm, cores = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
problem = dataclasses.replace(problems.get(name, 0, **json.loads(sys.argv[6])), solution=None)
configs = {"1 thread": 1, f"{cores} threads": cores, "auto": "auto"}
trainers = {k: Trainer(problem, DN(tau=10), eval_every=10**9, derivative_method="jet", step_mode="eager", threads=v)
            for k, v in configs.items()}
cap_s = float(sys.argv[7])
probe = threads_for_now()
block_epochs = {}
for k, tr in trainers.items():
    first = tr.train(1).train_seconds
    # a collapsed configuration (tens of times slower) is measured on 1-epoch blocks, so the run stays short
    block_epochs[k] = epochs if first <= cap_s else 1
    if block_epochs[k] == epochs and warm > 1:
        tr.train(warm - 1)
keys = list(trainers)
samples = {k: [] for k in keys}
used = {k: [] for k in keys}
for b in range(blocks):
    order = keys[b % len(keys):] + keys[:b % len(keys)]
    for k in order:
        # let the OpenMP workers of the previous block stop spin-waiting: they would steal a core from this one
        time.sleep(0.5)
        h = trainers[k].train(block_epochs[k])
        samples[k].append(h.train_seconds / block_epochs[k])
        used[k].append(h.extra["threads"])
print(json.dumps({"samples_s": samples, "threads_used": used, "probe_at_start": probe, "block_epochs": block_epochs}))
"""


def busy_loops(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for _ in range(n)]


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()  # our own children, by their Popen handles
    for p in procs:
        p.wait()


def run_child(problem: str, epochs: int, blocks: int, warm: int, cores: int, sizes: dict, cap_s: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "FASTPINN_THREADS"}
    env.update(OMP_NUM_THREADS=str(cores), PYTHONPATH=str(ROOT))  # OpenMP pool big enough for every config
    out = subprocess.run([sys.executable, "-c", CHILD, problem, str(epochs), str(blocks), str(warm), str(cores),
                          json.dumps(sizes[problem]), str(cap_s)], env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"child ({problem}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def fmt(xs: list[float]) -> str:
    return fmt_quartiles(xs, 2)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", nargs="*", choices=PROBLEMS, default=list(PROBLEMS))
    ap.add_argument("--epochs", type=int, default=None, help="epochs per block (default 10; quick 3)")
    ap.add_argument("--blocks", type=int, default=None, help="blocks per configuration (default 3; quick 2)")
    ap.add_argument("--warmup", type=int, default=5, help="warm-up epochs per configuration")
    ap.add_argument("--phases", nargs="*", choices=("idle", "loaded"), default=["idle", "loaded"])
    ap.add_argument("--cap", type=float, default=2.0,
                    help="seconds: a configuration whose first epoch takes longer (a collapse) is timed on 1-epoch "
                         "blocks without further warm-up (default 2)")
    ap.add_argument("--quick", action="store_true", help="small point counts, short blocks (< 2 minutes)")
    ap.add_argument("--out", default=None, help="results markdown (default bench/results/<slug>-threads-<date>.md)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(ROOT))
    import _machine

    epochs = args.epochs or (3 if args.quick else 10)
    blocks = args.blocks or (2 if args.quick else 3)
    warm = 2 if args.quick else args.warmup
    sizes = QUICK_SIZES if args.quick else SIZES
    cores = os.cpu_count() or 1
    info = _machine.describe("cpu")
    started = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    tick = time.perf_counter()
    results: dict[str, dict] = {}
    for phase in args.phases:
        results[phase] = {}
        load = busy_loops(cores) if phase == "loaded" else []
        try:
            if load:
                time.sleep(1.0)  # let the busy loops get scheduled before anything measures
            for name in args.problems:
                load_avg = os.getloadavg()
                res = run_child(name, epochs, blocks, warm, cores, sizes, args.cap)
                res["load_average_at_start"] = load_avg
                S = res["samples_s"]
                fixed = [k for k in S if k != "auto"]
                res["auto_over_best_fixed"] = [S["auto"][i] / min(S[k][i] for k in fixed) for i in range(blocks)]
                res["all_over_one"] = [S[f"{cores} threads"][i] / S["1 thread"][i] for i in range(blocks)]
                results[phase][name] = res
                print(f"{phase} {name} (load {load_avg[0]:.2f}): " + ", ".join(
                    f"{k} {1e3 * statistics.median(v):.1f} ms" for k, v in S.items())
                    + f"; auto used {res['threads_used']['auto']}, auto/best fixed {fmt(res['auto_over_best_fixed'])}",
                    file=sys.stderr, flush=True)
        finally:
            stop(load)
    wall = time.perf_counter() - tick

    lines = ["# Trainer threads: 1 vs all cores vs `threads=\"auto\"`, idle and loaded CPU", "",
             f"Machine: {info['device_name']}, {info['memory_gib']:.0f} GiB, torch {info['torch']}; shared with other "
             f"engineers' builds and tests, so \"idle\" means the load average in the table. Started {started}, "
             f"{wall / 60:.1f} min. Loaded = {cores} busy-looping processes (one per core) started by the script.", "",
             f"`bench/bench_threads.py{' --quick' if args.quick else ''}`: DN-PINN τ = 10, eager step, "
             f"`derivative_method=\"jet\"`, float32, {'quick' if args.quick else 'Burgers/Poisson paper, Allen-Cahn 4,096'}"
             f" points; per configuration {warm} warm-up epochs, then {blocks} blocks of {epochs} epochs in rotating "
             "order in one process. ms/epoch = median over blocks; ratios paired per block-round, median "
             f"[quartiles]. A configuration whose first epoch took over {args.cap:g} s (a collapse) is timed on "
             "1-epoch blocks without further warm-up (marked *).", "",
             f"| phase | problem | load avg (1 min) | 1 thread ms | {cores} threads ms | auto ms | auto used "
             f"| auto / best fixed | {cores} threads / 1 thread |",
             "|---|---|---:|---:|---:|---:|---|---:|---:|"]
    for phase, rs in results.items():
        for name, r in rs.items():
            S = r["samples_s"]
            lines.append(f"| {phase} | {name} | {r['load_average_at_start'][0]:.2f} | "
                         + " | ".join(f"{1e3 * statistics.median(S[k]):.1f}{'*' if r['block_epochs'][k] != epochs else ''}"
                                      for k in ("1 thread", f"{cores} threads", "auto"))
                         + f" | {sorted(set(r['threads_used']['auto']))} | {fmt(r['auto_over_best_fixed'])} | "
                         f"{fmt(r['all_over_one'])} |")
    lines += ["", "<details><summary>Raw results (seconds per epoch per block)</summary>", "", "```json",
              json.dumps({"machine": info, "epochs": epochs, "blocks": blocks, "warmup": warm, "quick": args.quick,
                          "results": results}, indent=1, default=str), "```", "", "</details>", ""]
    text = "\n".join(lines)
    print(text)
    out = args.out or str(HERE / "results" / f"{_machine.device_slug(info)}-threads-{_dt.date.today().isoformat()}"
                          f"{'-quick' if args.quick else ''}.md")
    from fastpinn import _io

    _io.atomic_write_text(out, text)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
