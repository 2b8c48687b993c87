"""One backward between weight updates (issue 20, item 3): DN (tau = 10) against PINN, old path and new.

The old path is the :class:`fastpinn.WeightedBackward` of commit ``c7bc4d4`` (one backward per term on
every step), loaded from git into this process as its own module; the new one is the current tree (per-term
backwards on update steps only, one backward of ``sum_j lam_j L_j`` between them). The same trainer object
runs both: its ``backward.__class__`` is swapped (the two classes hold the same attributes), so
everything else -- network, points, optimizer, loss functions -- is shared.

Cases (float32, 1 thread, ``step_mode="eager"``, ``derivative_method="jet"``):

* ``kovasznay / Trainer``: the system of 4 terms, 3 of them on the same 2,000 points (5 x 50, 3 outputs).
  The Trainer gives every term its own forward, so K backwards walk K disjoint graphs: the gain is the
  per-backward overhead only.
* ``kovasznay / own loop``: the README's loop with one shared forward: one ``fastpinn.derivatives`` call on
  the 2,000 points feeds momentum x, momentum y and continuity; the boundary term its own forward. Here
  K backwards walk the one shared graph K times.
* ``burgers / Trainer``: the paper's Burgers (10,000 + 100 + 200 points, 9 x 20): disjoint point sets.

Every case runs its variants (PINN, DN old, DN new) in interleaved blocks of ``--steps`` steps, the order
rotating every round, after a warm-up of one block each; each block's median seconds per step (wall) and
its process CPU seconds per step are recorded, and a DN/PINN ratio is paired within a round (noise that
lasts longer than a round cancels). Quartiles over rounds are reported.

    OMP_NUM_THREADS=1 python bench/bench_one_backward.py            # writes bench/results/one-backward-<cpu>-<date>.md
    OMP_NUM_THREADS=1 python bench/bench_one_backward.py --quick    # a smoke run, nothing written
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fastpinn  # noqa: E402
from fastpinn.backward import WeightedBackward  # noqa: E402
from fastpinn.problems import kovasznay  # noqa: E402
from fastpinn.problems.paper import burgers  # noqa: E402
from fastpinn.trainer import Trainer  # noqa: E402

from _machine import describe, device_slug  # noqa: E402
from _stats import fmt_quartiles, quartiles  # noqa: E402

OLD_COMMIT = "c7bc4d4"


def old_weighted_backward(commit: str) -> type:
    """``WeightedBackward`` as it was at ``commit``, imported from git as ``fastpinn.backward_<commit>``."""
    root = HERE.parent
    source = subprocess.run(["git", "-C", str(root), "show", f"{commit}:fastpinn/backward.py"], check=True,
                            capture_output=True, text=True).stdout
    name = f"fastpinn.backward_{commit}"
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "fastpinn"
    sys.modules[name] = module
    exec(compile(source, f"<{commit}:fastpinn/backward.py>", "exec"), module.__dict__)  # noqa: S102 - our own history
    return module.WeightedBackward


# ------------------------------------------------------------------------------------------------ cases
Step = Callable[[], None]


def trainer_variants(problem_factory: Callable, old_cls: type) -> dict[str, Step]:
    out = {}
    for label, scheme, cls in (("PINN", fastpinn.PINN(), WeightedBackward), ("DN old", fastpinn.DN(tau=10), old_cls),
                               ("DN new", fastpinn.DN(tau=10), WeightedBackward)):
        t = Trainer(problem_factory(), scheme, dtype=torch.float32, derivative_method="jet", eval_every=10**9,
                    threads=None, compile=False)
        t.backward.__class__ = cls
        out[label] = t.step
    return out


def own_loop_variants(old_cls: type, n_pde: int, n_bc: int) -> dict[str, Step]:
    problem = kovasznay(0, n_pde=n_pde, n_bc=n_bc)
    pdes, bc = problem.terms[:3], problem.terms[3]
    x_pde = pdes[0].points[0].float()
    x_bc, target = bc.points[0].float(), bc.targets.float()
    requests = sorted({r for t in pdes for r in t.requests})
    out = {}
    for label, scheme, cls in (("PINN", fastpinn.PINN(), WeightedBackward), ("DN old", fastpinn.DN(tau=10), old_cls),
                               ("DN new", fastpinn.DN(tau=10), WeightedBackward)):
        net = problem.network(dtype=torch.float32)
        wb = cls(net, scheme, terms=problem.term_names, reference=0, adaptive=[False, False, False, True])
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def step(net=net, wb=wb, opt=opt) -> None:
            f = fastpinn.derivatives(net, x_pde, coords=problem.coords, requests=requests, method="jet")  # shared
            losses = [t.residual(f).pow(2).mean() for t in pdes]
            losses.append((net(x_bc) - target).pow(2).mean())
            wb(losses)
            opt.step()

        out[label] = step
    return out


def time_block(step: Step, n: int) -> tuple[float, float]:
    """Median wall seconds per step over ``n`` steps, and process CPU seconds per step."""
    walls = []
    cpu0 = time.process_time()
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        walls.append(time.perf_counter() - t0)
    cpu = (time.process_time() - cpu0) / n
    walls.sort()
    return walls[n // 2], cpu


def run_case(variants: dict[str, Step], rounds: int, steps: int) -> dict[str, dict[str, list[float]]]:
    labels = list(variants)
    for label in labels:  # warm-up: allocator, first-call paths, an update step each
        time_block(variants[label], steps)
    res = {label: {"wall": [], "cpu": []} for label in labels}
    for r in range(rounds):
        order = labels[r % len(labels):] + labels[:r % len(labels)]
        for label in order:
            wall, cpu = time_block(variants[label], steps)
            res[label]["wall"].append(wall)
            res[label]["cpu"].append(cpu)
    return res


def table(name: str, res: dict[str, dict[str, list[float]]]) -> list[str]:
    lines = [f"### {name}", "", "| variant | ms/step wall (q1 / median / q3) | ms/step CPU (median) | DN/PINN wall | DN/PINN CPU |",
             "|---|---|---|---|---|"]
    pinn = res["PINN"]
    for label, r in res.items():
        ms = [1e3 * w for w in r["wall"]]
        cpu = 1e3 * quartiles(r["cpu"])[1]
        if label == "PINN":
            lines.append(f"| {label} | {fmt_quartiles(ms, 2)} | {cpu:.2f} | 1 | 1 |")
            continue
        rw = [a / b for a, b in zip(r["wall"], pinn["wall"])]
        rc = [a / b for a, b in zip(r["cpu"], pinn["cpu"])]
        lines.append(f"| {label} | {fmt_quartiles(ms, 2)} | {cpu:.2f} | {fmt_quartiles(rw, 3)} | {fmt_quartiles(rc, 3)} |")
    return lines + [""]


NOTES = [
    "Notes:", "",
    "- Read the CPU columns: on a shared machine (load average above the 2 cores) the wall time of a one-thread "
    "process is mostly time spent waiting for a core, which varies from block to block with the other jobs; the "
    "process CPU time is the work done.",
    "- Target DN/PINN <= 1.05 on a system whose terms share points. The Trainer (a forward per term, so K "
    "backwards walk K disjoint graphs) was already near 1 and stays there. The own loop with one shared forward "
    "drops from ~2x to the bound of the update steps: they still need the K per-term gradients, i.e. K backwards "
    "through the shared graph, once every tau steps, so DN/PINN ~ 1 + (K - 1) b / tau with b the backward's share "
    "of a PINN step (K = 4, tau = 10: up to ~1.2 for small sizes where b ~ 2/3). Going below needs per-term "
    "gradients from one batched backward on update steps (issue 20 item 2).",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=20, help="steps per timed block (2 weight updates at tau = 10)")
    ap.add_argument("--old", default=OLD_COMMIT, help="the commit whose WeightedBackward is the old path")
    ap.add_argument("--quick", action="store_true", help="small sizes, 2 rounds, nothing written")
    args = ap.parse_args()
    torch.set_num_threads(1)
    old_cls = old_weighted_backward(args.old)
    info = describe("cpu")
    rounds, steps = (2, 10) if args.quick else (args.rounds, args.steps)
    n_pde, n_bc = (300, 40) if args.quick else (2000, 400)
    cases = {
        f"kovasznay (3 of 4 terms on {n_pde} shared points) / own loop, one shared forward":
            lambda: own_loop_variants(old_cls, n_pde, n_bc),
        f"kovasznay ({n_pde} + {n_bc} points) / Trainer, a forward per term":
            lambda: trainer_variants(lambda: kovasznay(0, n_pde=n_pde, n_bc=n_bc), old_cls),
        "burgers (paper: 10,000 + 100 + 200 points, 9 x 20) / Trainer":
            lambda: trainer_variants(lambda: burgers(0, **({"n_pde": 1000} if args.quick else {})), old_cls),
    }
    started = _dt.datetime.now(_dt.timezone.utc)
    lines = [f"# One backward between weight updates: DN (tau = 10) vs PINN, old path vs new ({started:%Y-%m-%d})", "",
             f"Machine: {info['device_name']}; load average at start {info['load_average']}; torch {info['torch']}; "
             f"1 thread; float32; eager; derivative method jet. Old path: WeightedBackward of {args.old} "
             f"(K backwards every step); new: this tree (K on update steps, 1 between). {rounds} rounds of "
             f"{steps}-step blocks per variant, interleaved (order rotating per round); DN/PINN paired per round; "
             "quartiles over rounds.", ""]
    for name, make in cases.items():
        print(name, flush=True)
        res = run_case(make(), rounds, steps)
        block = table(name, res)
        print("\n".join(block), flush=True)
        lines += block
    if args.quick:
        return
    out = HERE / "results" / f"one-backward-{device_slug(info)}-{started:%Y-%m-%d}.md"
    lines += NOTES + ["", "Command: `OMP_NUM_THREADS=1 python bench/bench_one_backward.py`", ""]
    from fastpinn._io import atomic_write_text

    atomic_write_text(out, "\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
