"""1- vs 2-thread scaling of the fused jet op (``fastpinn::mlp_jet_forward`` / ``_backward``) at the calls a training
step makes, optionally against another build of ``fastpinn._C`` in the same run.

Issue 20's 2-thread target on Allen-Cahn: the step's fused calls are one 4,096-point PDE call (u, u_t, u_xx: 4
channels) and five small ones (512 initial points; 4 x 200 periodic points, u or u and u_x), on a 2-128x4-1 tanh
net. Each worker process (this build, and with ``--baseline DIR`` one importing ``fastpinn`` from DIR) times every
call at 1 and 2 threads in alternation; the workers take turns round by round, so a busy machine's load falls on
both alike. Reported: medians over rounds of the wall ms per call and of the paired 1-thread / 2-thread ratio
(the scaling, measured in the same round), and the minimum (the least-disturbed sample).

    python bench/bench_fused_threads.py [--rounds 15] [--baseline /path/to/dir/with/old/fastpinn] [--problem allen_cahn]
    python bench/bench_fused_threads.py --step ...   # whole training steps (Trainer, PINN, default method)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

PROBLEMS = {
    # (points, requests) per call; net (in, out, depth, width)
    "allen_cahn": ((2, 1, 5, 128), ((4096, ((), (0,), (1, 1))), (512, ((),)), (200, ((), (1,))), (200, ((),)))),
    "burgers": ((2, 1, 9, 20), ((10000, ((), (0,), (1,), (1, 1))), (200, ((),)), (100, ((),)))),
}


def orders(threads: list[int], r: int) -> list[int]:
    """The thread counts of round r: alternately forwards and backwards, so neither always runs first."""
    return list(threads) if r % 2 == 0 else list(threads)[::-1]


def step_worker(problem: str, threads_list: list[int]) -> None:
    """As worker, timing whole training steps: bench_deepxde_suite.py's fastpinn PINN runner (Trainer, default
    method) of the problem, one runner per thread count."""
    import torch

    import fastpinn
    from bench_deepxde_suite import CASES, Fast

    case, runners = CASES[problem](), {}
    for threads in threads_list:
        torch.set_num_threads(threads)
        runners[threads] = Fast(case, fastpinn.PINN())
        runners[threads].block(3)
    steps = max(3, int(0.5 / runners[threads_list[0]].block(3)))
    print("ready", flush=True)
    for r, _line in enumerate(sys.stdin):
        out = {"training step": [float("nan"), float("nan")]}
        for threads in orders(threads_list, r):
            torch.set_num_threads(threads)
            out["training step"][threads - 1] = 1e3 * runners[threads].block(steps)
        print(json.dumps(out), flush=True)


def worker(problem: str, threads_list: list[int]) -> None:
    """Reads one line per round from stdin, answers with one JSON line {call: [ms at 1 thread, ms at 2]}."""
    import torch

    import fastpinn
    from fastpinn.ops import _ext
    from fastpinn.ops.mlp_jet import JetPlan

    _ext.load()
    (d, n_out, depth, width), calls = PROBLEMS[problem]
    net = fastpinn.MLP(d, n_out, depth, width, seed=0)
    sizes = [d] + [width] * (depth - 1) + [n_out]
    theta = net.theta.detach().unsqueeze(0)
    gen = torch.Generator().manual_seed(0)
    ops = []
    for n, requests in calls:
        plan = JetPlan(list(requests))
        args = (sizes, plan.dirs, [p for pair in plan.pairs for p in pair], plan.first_out)
        x = torch.rand(n, d, generator=gen)
        fields, tape = torch.ops.fastpinn.mlp_jet_forward(theta, x, net.input_scale, net.input_shift, *args, False)
        grad = torch.randn(fields.shape, generator=gen)
        name = f"{n} pts, {fields.shape[1]} fields"

        def fwd(x=x, args=args) -> None:
            torch.ops.fastpinn.mlp_jet_forward(theta, x, net.input_scale, net.input_shift, *args, False)

        def bwd(x=x, args=args, grad=grad, tape=tape) -> None:
            torch.ops.fastpinn.mlp_jet_backward(grad, theta, x, net.input_scale, net.input_shift, tape, *args, False)

        reps = max(1, int(2e5 / (n * width)))  # ~a few ms per timing
        ops += [(f"forward {name}", fwd, reps), (f"backward {name}", bwd, reps)]
    print("ready", flush=True)
    for r, _line in enumerate(sys.stdin):
        out: dict[str, list[float]] = {k: [float("nan"), float("nan")] for k, _, _ in ops}
        for threads in orders(threads_list, r):
            torch.set_num_threads(threads)
            for k, fn, reps in ops:
                fn()
                tick = time.perf_counter()
                for _ in range(reps):
                    fn()
                out[k][threads - 1] = 1e3 * (time.perf_counter() - tick) / reps
        print(json.dumps(out), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--problem", choices=sorted(PROBLEMS), default="allen_cahn")
    ap.add_argument("--baseline", help="a directory holding another build's fastpinn package (imported first)")
    ap.add_argument("--threads", type=int, nargs="+", choices=(1, 2), default=[1, 2])
    ap.add_argument("--step", action="store_true", help="time whole training steps (Trainer, PINN) instead of the op")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        (step_worker if args.step else worker)(args.problem, args.threads)
        return 0
    builds = {"this build": os.environ.get("PYTHONPATH", "")}
    if args.baseline:
        builds = {"baseline": os.pathsep.join([args.baseline, builds["this build"]]), **builds}
    procs = {}
    for name, path in builds.items():
        env = dict(os.environ, PYTHONPATH=path)
        procs[name] = subprocess.Popen([sys.executable, __file__, "--worker", "--problem", args.problem]
                                       + (["--step"] if args.step else []) + ["--threads", *map(str, args.threads)], env=env,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert procs[name].stdout.readline().strip() == "ready"
    samples: dict[str, list[dict]] = {k: [] for k in procs}
    load0 = os.getloadavg()
    for r in range(args.rounds):
        for name in (list(procs) if r % 2 == 0 else list(procs)[::-1]):
            p = procs[name]
            p.stdin.write("go\n")
            p.stdin.flush()
            samples[name].append(json.loads(p.stdout.readline()))
    for p in procs.values():
        p.stdin.close()
        p.wait()
    print(f"{args.problem}{' training steps' if args.step else ''}: {args.rounds} rounds, load average at start {load0}, at end {os.getloadavg()}")
    print("| build | call | 1 thread ms (median / min) | 2 threads ms (median / min) | scaling: median of paired ratios "
          "(ratio of mins) |")
    print("|---|---|---|---|---|")
    calls = list(samples[next(iter(samples))][0])
    for name, rows in samples.items():
        totals = [[sum(row[k][t] for k in calls) for t in (0, 1)] for row in rows]
        for k, vals in [(k, [row[k] for row in rows]) for k in calls] + ([("all calls", totals)] if len(calls) > 1 else []):
            one, two = [v[0] for v in vals], [v[1] for v in vals]
            scal = statistics.median(a / b for a, b in zip(one, two))
            print(f"| {name} | {k} | {statistics.median(one):.3f} / {min(one):.3f} | {statistics.median(two):.3f} / "
                  f"{min(two):.3f} | {scal:.2f} ({min(one) / min(two):.2f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
