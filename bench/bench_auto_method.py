"""What ``derivative_method="auto"`` picks against the fastest applicable method (issue 20, item 1).

For each case every applicable derivative method is timed with :func:`fastpinn.derivatives.fastest_method`
(forward of the requested fields, a loss summing their squares, backward to the parameters; one warm-up,
best of ``--repeats``; the methods' gradients are checked to agree), and the table shows
:func:`fastpinn.derivatives.choose_method`'s pick and its time over the fastest. Cases: a user's
``nn.Sequential`` (the README's 1-32-32-1 model, u and u_xx), an MLP with a 4th-order request (an Euler
beam: 1-20-20-20-1, u_xxx and u_xxxx), the paper's Burgers network (2-20x8-1, u, u_t, u_x, u_xx) and a
wide MLP (2-150-150-150-1, Helmholtz's u_xx and u_yy), each at a few point counts. Then the Trainer on an
Euler-beam problem (10 + 2 + 2 points): ms per step with ``auto`` against ``func`` (the old ``auto``),
interleaved.

    OMP_NUM_THREADS=1 python bench/bench_auto_method.py            # writes bench/results/auto-method-<cpu>-<date>.md
    OMP_NUM_THREADS=1 python bench/bench_auto_method.py --quick    # a smoke run, nothing written
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
import time
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fastpinn  # noqa: E402
from fastpinn.derivatives import applicable_methods, choose_method, derivatives, fastest_method, parse_requests  # noqa: E402
from fastpinn.problem import Problem, dirichlet, pde  # noqa: E402
from fastpinn.trainer import Trainer  # noqa: E402

from _machine import describe, device_slug  # noqa: E402
from _stats import fmt_quartiles  # noqa: E402


def readme_module() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))


CASES = [  # name, network factory, coords, requests, point counts
    ("user nn.Sequential 1-32-32-1", readme_module, ("x",), ("u", "u_xx"), (16, 256, 2048)),
    ("MLP 1-20x3-1, 4th order", lambda: fastpinn.MLP(1, 1, 3, 20, seed=0), ("x",), ("u_xxx", "u_xxxx"),
     (10, 256, 2048)),
    ("MLP 2-20x8-1 (Burgers)", lambda: fastpinn.MLP(2, 1, 8, 20, seed=0), ("t", "x"), ("u", "u_t", "u_x", "u_xx"),
     (256, 4096)),
    ("MLP 2-150x3-1 (Helmholtz)", lambda: fastpinn.MLP(2, 1, 3, 150, seed=0), ("x", "y"), ("u", "u_xx", "u_yy"),
     (256, 2048)),
]


def time_methods(make, coords, requests, n: int, repeats: int) -> tuple[dict[str, float], str]:
    net = make()
    x = torch.rand(n, len(coords), generator=torch.Generator().manual_seed(n))
    params = [net.theta] if isinstance(net, fastpinn.MLP) else list(net.parameters())
    candidates = [m for m, why in applicable_methods(net, requests, coords).items() if why is None]

    def loss(method: str) -> torch.Tensor:
        f = derivatives(net, x, coords=coords, requests=requests, method=method)
        return sum(v.pow(2).sum() for _, v in f.items())

    choice = fastest_method(loss, params, candidates, repeats=repeats)
    return choice.seconds, choose_method(net, x, parse_requests(requests, coords))


def euler_beam() -> Problem:
    """u'''' = 1 on [0, 1], u = u'' = 0 at both ends (simply supported), 10 interior points."""
    x = torch.linspace(0.05, 0.95, 10, dtype=torch.float64).unsqueeze(1)
    ends = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    return Problem(name="euler_beam", coords=("x",), lower=(0.0,), upper=(1.0,),
                   terms=[pde("pde", x, lambda f: f["u_xxxx"][..., 0] - 1.0, ("u_xxxx",)),
                          dirichlet("u_ends", ends),
                          pde("m_ends", ends, lambda f: f["u_xx"][..., 0], ("u_xx",))],
                   depth=3, width=20)


def trainer_steps(rounds: int, steps: int) -> dict[str, list[float]]:
    trainers = {m: Trainer(euler_beam(), fastpinn.PINN(), derivative_method=m, threads=None, eval_every=10**9,
                           compile=False) for m in ("auto", "func")}
    res: dict[str, list[float]] = {m: [] for m in trainers}
    for t in trainers.values():
        for _ in range(3):
            t.step()
    for r in range(rounds):
        for m in (list(trainers) if r % 2 == 0 else list(trainers)[::-1]):
            tick = time.process_time()
            for _ in range(steps):
                trainers[m].step()
            res[m].append((time.process_time() - tick) / steps)
    res["methods"] = [str(trainers["auto"].derivative_methods)]
    return res


NOTES = [
    "Notes:", "",
    "- Where `jet` does not apply (a user's module, orders above 2) `auto` now picks `autograd`; the old `auto` "
    "picked `func`, 6-110x slower in every row above (2-80x in an earlier run under another load) (the Euler-beam Trainer step: ~11x).",
    "- Missed: on an MLP `auto` keeps `jet`, while the fused jet op was 3-4x faster at width 20 (Burgers rows) and "
    "slower at width 150 with 256 points. A rule by width would switch the default numerics of most runs, and a "
    "timed choice would make a run's method depend on the machine's load: ranks could pick differently, and a "
    "resumed run in a new process could continue with another method than the one it was checkpointed with "
    "(no longer bit for bit). Once the fused op is at least as fast as `jet` at every width (issue 20 item 1's "
    "kernel work), `choose_method` can return `fused` wherever it applies, deterministically.",
    "- Times are wall best-of-N on a shared 2-core machine: small differences (e.g. jet vs autograd at 4,096 "
    "points) are within its noise; the ratios the choice rests on are 3x and more.",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    info = describe("cpu")
    started = _dt.datetime.now(_dt.timezone.utc)
    lines = [f"# derivative_method=\"auto\" against the fastest applicable method ({started:%Y-%m-%d})", "",
             f"Machine: {info['device_name']}; load average at start {info['load_average']}; torch {info['torch']}; "
             "1 thread; float32. Seconds: best of "
             f"{args.repeats} forward + backward passes (wall, after a warm-up) per method.", "",
             "| case | points | ms per method | auto picks | auto / fastest |", "|---|---|---|---|---|"]
    for name, make, coords, requests, counts in CASES:
        for n in counts[:1] if args.quick else counts:
            seconds, pick = time_methods(make, coords, requests, n, 2 if args.quick else args.repeats)
            ms = ", ".join(f"{m} {1e3 * s:.2f}" for m, s in sorted(seconds.items(), key=lambda kv: kv[1]))
            ratio = seconds[pick] / min(seconds.values())
            lines.append(f"| {name} | {n} | {ms} | {pick} | {ratio:.2f} |")
            print(lines[-1], flush=True)
    res = trainer_steps(2 if args.quick else 5, 5 if args.quick else 20)
    lines += ["", "Trainer, Euler beam (1-20x3-1, 10 + 2 + 2 points, PINN), CPU ms per step, 1 thread, "
              "interleaved blocks (median [quartiles] over blocks):", "",
              f"- `auto` ({res['methods'][0]}): {fmt_quartiles([1e3 * s for s in res['auto']], 2)}",
              f"- `func` (the old `auto` for the 4th-order term): {fmt_quartiles([1e3 * s for s in res['func']], 2)}",
              ""]
    print("\n".join(lines[-5:]))
    if args.quick:
        return
    from fastpinn._io import atomic_write_text

    out = HERE / "results" / f"auto-method-{device_slug(info)}-{started:%Y-%m-%d}.md"
    atomic_write_text(out, "\n".join(lines + NOTES + ["", "Command: `OMP_NUM_THREADS=1 python bench/bench_auto_method.py`", ""]))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
