"""DN's steps between weight updates against PINN's steps on a system with shared points (issue 20).

Beltrami flow from ``bench_deepxde_suite.py`` (4 equations on 1,000 shared points, boundary and initial terms;
the default method, one evaluation for the shared terms). A PINN trainer and a DN(beta=0.99, tau=10) trainer
take steps one by one, alternating which goes first, each step timed on its own, so load drifts on a shared
machine hit both alike. DN's steps are split into update steps (``K`` backwards: more than one backward pass
counted) and the steps between updates (one backward of ``sum_j lam_j L_j``, as PINN). Printed: medians, the
ratio of DN's steps between updates to PINN's (median, mean), the update steps' cost, DN/PINN over all steps,
and the ratio by position after an update (a transient after the ``K`` backwards would show in position 1).

    python bench/bench_dn_between_updates.py --steps 3000      # 1 thread, ~2 min on a loaded 2-core machine

``--clock cpu`` times each step by this thread's CPU time (with one thread, the step's own work): on a machine loaded
above its core count, time slicing inflates long steps (an update step) more than short ones in wall time.
``--compare-loop`` adds a third trainer, DN with the per-term loop on update steps (``batch_cotangents=False``:
each term's pass runs the fused network backward itself), stepped in the same rounds, so that the batched update
step (one batched backward of the shared evaluation, :mod:`fastpinn.ops.cotangents`) and the loop are compared
side by side under the same load: u (update step / PINN step) and DN/PINN for both.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from statistics import median

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fastpinn  # noqa: E402
from fastpinn.trainer import Trainer  # noqa: E402
from bench_deepxde_suite import beltrami_case  # noqa: E402


def arithmetic_bound(sizes: list[int], channels: int, terms: int) -> dict[str, float]:
    """Multiply-adds per point of the fused jet op on one shared evaluation (csrc/mlp_jet_kernel.h): the forward
    (layer 0 on the value channel, every other layer on all ``channels``), one backward sweep per cotangent
    (``G A^T`` and ``W^T G`` per layer), and the step totals in units of a PINN step's (forward, recompute,
    one sweep): the per-term loop (``terms`` x (recompute + sweep)), the batched backward (one recompute,
    ``terms`` sweeps) and the floor of exact per-term gradients (no recompute, ``terms`` sweeps)."""
    fwd = sizes[1] * sizes[0] + sum(sizes[k + 1] * sizes[k] * channels for k in range(1, len(sizes) - 1))
    sweep = sizes[1] * sizes[0] + 2 * sum(sizes[k + 1] * sizes[k] * channels for k in range(1, len(sizes) - 1))
    pinn = fwd + fwd + sweep
    return {"forward": fwd, "sweep": sweep, "loop": (fwd + terms * (fwd + sweep)) / pinn,
            "batched": (2 * fwd + terms * sweep) / pinn, "floor": (fwd + terms * sweep) / pinn}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: time.perf_counter; cpu: this thread's CPU time (time.thread_time; with --threads 1 "
                         "the whole step), which a loaded machine's time slicing does not inflate")
    ap.add_argument("--compare-loop", action="store_true",
                    help="also step a DN trainer with the per-term loop on update steps, side by side")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    problem, _ = beltrami_case().fastpinn()
    pinn = Trainer(problem, fastpinn.PINN(), eval_every=10**9, threads=None, watch=False)
    dn = Trainer(problem, fastpinn.DN(beta=0.99, tau=10), eval_every=10**9, threads=None, watch=False)
    loop = None
    if args.compare_loop:
        loop = Trainer(problem, fastpinn.DN(beta=0.99, tau=10), eval_every=10**9, threads=None, watch=False)
        loop.backward.batch_cotangents = False
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    pinn_s, plain, update = [], [], []  # plain: (steps since the last update, DN seconds, PINN seconds)
    loop_update, loop_all, update_pinn = [], [], []  # the loop trainer's update steps and all steps; PINN's there
    since = 0
    for i in range(args.steps):
        passes = dn.backward_passes
        order = [("pinn", pinn), ("dn", dn)] + ([("loop", loop)] if loop is not None else [])
        shift = i % len(order)  # rotate who goes first, so load drifts hit all alike
        seconds = {}
        for name, trainer in order[shift:] + order[:shift]:
            t0 = clock(); trainer.step(); seconds[name] = clock() - t0
        p, d = seconds["pinn"], seconds["dn"]
        pinn_s.append(p)
        if loop is not None:
            loop_all.append(seconds["loop"])
        if dn.backward_passes - passes > 1:
            update.append(d)
            update_pinn.append(p)
            if loop is not None:
                loop_update.append(seconds["loop"])
            since = 0
        else:
            since += 1
            plain.append((since, d, p))
    ms = lambda v: 1e3 * median(v)  # noqa: E731
    d_plain = [d for _, d, _ in plain]
    print(f"Beltrami, {args.threads} thread(s), {args.steps} steps each, {args.clock} clock, torch {torch.__version__}")
    print(f"PINN {ms(pinn_s):.2f} ms; DN between updates {ms(d_plain):.2f} ms (n={len(d_plain)}); "
          f"DN update steps {ms(update):.2f} ms (n={len(update)})")
    print(f"DN between updates / PINN: median {median(d_plain) / median(pinn_s):.3f}, "
          f"mean {sum(d_plain) / len(d_plain) / (sum(pinn_s) / len(pinn_s)):.3f}")
    print(f"DN update step / PINN: {median(update) / median(pinn_s):.2f}; DN / PINN over all steps (mean): "
          f"{(sum(d_plain) + sum(update)) / (len(d_plain) + len(update)) / (sum(pinn_s) / len(pinn_s)):.3f}")
    if dn.backward.batched_backwards:
        print(f"DN update steps: {dn.backward.batched_backwards} batched fused backwards "
              f"(one per update step and shared evaluation)")
    if loop is not None:
        n = len(loop_update)
        print(f"per-term loop (batch_cotangents=False): update step {ms(loop_update):.2f} ms (n={n}), "
              f"u = {median(loop_update) / median(pinn_s):.2f}; DN / PINN over all steps (mean): "
              f"{sum(loop_all) / sum(pinn_s):.3f}")
        print(f"batched / loop update step, paired (same rounds): median "
              f"{median([a / b for a, b in zip(update, loop_update)]):.3f}; u batched "
              f"{median(update) / median(pinn_s):.2f} vs loop {median(loop_update) / median(pinn_s):.2f}")
    bound = arithmetic_bound([4, 50, 50, 50, 50, 4], channels=8, terms=4)  # u, u_t, 3 u_ii: 1 + 4 + 3 channels
    print(f"arithmetic of the shared evaluation (4 terms, 4x50x4 tanh, 8 jet channels), multiply-adds per point: "
          f"forward {bound['forward']:.0f}, one backward sweep {bound['sweep']:.0f}; update step / PINN step on "
          f"that evaluation: per-term loop {bound['loop']:.2f}, batched {bound['batched']:.2f}, floor of exact "
          f"per-term gradients (no recompute) {bound['floor']:.2f} -> DN/PINN >= 1 + (floor - 1) / tau = "
          f"{1 + (bound['floor'] - 1) / 10:.3f} where the step is all network arithmetic")
    for k in range(1, 10):
        d = [x for n, x, _ in plain if n == k]
        p = [y for n, _, y in plain if n == k]
        if d:
            print(f"  step {k} after an update: DN / PINN (same steps) mean {sum(d) / sum(p):.3f}")


if __name__ == "__main__":
    main()
