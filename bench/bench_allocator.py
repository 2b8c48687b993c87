"""Epoch time and page faults with glibc's default allocator settings vs ``fastpinn.malloc.retain_freed_memory``.

The setting is process-wide, so each sample is a fresh process: rounds alternate (in shuffled order)
a process with the defaults (``FASTPINN_MALLOC_TUNING=0``) and one with freed memory retained, each
training ``--epochs`` epochs of DN-PINN (tau = 10) on a paper problem after a warm-up, one thread.
Reported per side: median ms/epoch, minor page faults per epoch and system seconds per epoch; the ratio
is paired per round.

    python bench/bench_allocator.py --problem burgers --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent

CHILD = r"""
import dataclasses, json, resource, sys, time
import torch
from fastpinn.malloc import retain_freed_memory
applied = retain_freed_memory()
torch.set_num_threads(1)
from fastpinn import problems
from fastpinn.schemes import DN
from fastpinn.trainer import Trainer
problem = dataclasses.replace(problems.get(sys.argv[1], 0, **json.loads(sys.argv[3])), solution=None)
trainer = Trainer(problem, DN(tau=10), eval_every=10**9)
trainer.train(5)
epochs = int(sys.argv[2])
r0 = resource.getrusage(resource.RUSAGE_SELF)
h = trainer.train(epochs)
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"applied": applied, "ms": 1e3 * h.train_seconds / epochs,
                  "faults": (r1.ru_minflt - r0.ru_minflt) / epochs, "sys_ms": 1e3 * (r1.ru_stime - r0.ru_stime) / epochs}))
"""

SIZES = {"burgers": {}, "poisson": {}, "allen_cahn": {"n_pde": 4096}}


def sample(problem: str, epochs: int, tuned: bool, threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), FASTPINN_MALLOC_TUNING="1" if tuned else "0")
    out = subprocess.run([sys.executable, "-c", CHILD, problem, str(epochs), json.dumps(SIZES[problem])],
                         env=env, capture_output=True, text=True, check=True, timeout=1800)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problem", choices=tuple(SIZES), default="burgers")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    rng = random.Random(0)
    samples: dict[str, list[dict]] = {"default": [], "retained": []}
    for i in range(args.rounds):
        order = ["default", "retained"]
        rng.shuffle(order)
        for side in order:
            samples[side].append(sample(args.problem, args.epochs, side == "retained", args.threads))
        print(f"round {i + 1}/{args.rounds}: " + ", ".join(
            f"{k} {v[-1]['ms']:.1f} ms ({v[-1]['faults']:.0f} faults)" for k, v in samples.items()), file=sys.stderr)
    ratio = statistics.median(a["ms"] / b["ms"] for a, b in zip(samples["default"], samples["retained"]))
    result = {"problem": args.problem, "rounds": args.rounds, "epochs": args.epochs, "samples": samples,
              "ratio_default_over_retained": ratio,
              "summary": {k: {m: statistics.median(s[m] for s in v) for m in ("ms", "faults", "sys_ms")}
                          for k, v in samples.items()}}
    for k, v in result["summary"].items():
        print(f"{k:9s} {v['ms']:8.1f} ms/epoch  {v['faults']:9.0f} minor faults/epoch  {v['sys_ms']:6.1f} ms system/epoch")
    print(f"default / retained: {ratio:.2f}x (paired median)")
    if args.json:
        sys.path.insert(0, str(HERE.parent))
        from fastpinn import _io

        _io.atomic_write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
