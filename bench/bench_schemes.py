"""Overhead of every weighting scheme over PINN, measured side by side in one run.

Two tables, both against PINN's epoch time measured in the same run:

1. **Epoch time** of the schemes the Trainer runs today (PINN, DN, ID, MA, LRA, gradnorm-w at tau = 10):
   fastpinn ``Trainer`` epochs, interleaved in shuffled rounds (``bench_training.interleave``), reported as
   the median over rounds of the paired ratio to PINN.
2. **Update cost** of every scheme's weight update alone (median of repeated calls on the problem's real
   shapes): the statistics + EMA for the gradient schemes (on the per-term gradients of one step),
   ``update_from_losses`` for the loss-based ones, ``ntk.term_traces`` (default subsample 128) +
   ``update_from_traces`` for NTK, statistics of the last hidden layer + the trainable update for GradNorm.
   ``est. ratio`` = ``1 + cost / (tau * t_PINN)`` is what the update adds to a PINN-cost epoch. It is an
   *estimate* for the schemes the Trainer cannot run yet (loss-based, NTK, GradNorm: they need the
   weighted backward); for the gradient schemes the measured ratio of table 1 is the real number (it also
   contains the per-term backwards, which table 2 leaves out).

    OMP_NUM_THREADS=1 python bench/bench_schemes.py --problem poisson --rounds 5
    OMP_NUM_THREADS=1 python bench/bench_schemes.py --quick          # a smoke run

Writes ``bench/results/schemes-<problem>-<machine>-<date>.md`` (atomically) and prints it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _machine  # noqa: E402
import bench_training as bt  # noqa: E402

import fastpinn  # noqa: E402
from fastpinn import ntk  # noqa: E402
from fastpinn._io import atomic_write_text  # noqa: E402

TRAINER_SCHEMES = {
    "pinn": fastpinn.PINN(),
    "dn": fastpinn.DN(tau=10),
    "id": fastpinn.ID(tau=10),
    "ma": fastpinn.MA(tau=10),
    "lra": fastpinn.LRA(tau=10),
    "gradnorm-w": fastpinn.GradNormW(tau=10),
    # run by the weighted backward since it learned every scheme kind: one backward per step for these
    "softadapt": fastpinn.SoftAdapt(tau=10),
    "relobralo": fastpinn.ReLoBRaLo(tau=10),
    "uncertainty": fastpinn.Uncertainty(),  # trains s_j every step (tau = 1 by definition)
    "ntk": fastpinn.NTK(tau=10),
    "gradnorm": fastpinn.GradNorm(),
}


def update_costs(problem, repeats: int) -> dict[str, tuple[float, int]]:
    """Median seconds of one weight update per scheme, and the scheme's tau."""
    tr = fastpinn.Trainer(problem, fastpinn.DN(tau=1), eval_every=10**9, device=bt.DEVICE)
    losses = torch.stack(tr.term_losses(), dim=-1).detach()  # [S, K]
    G = tr.term_gradients(tr.term_losses()).clone()  # the real per-term gradients G[S, K, P] of one step
    K, P = G.shape[1], G.shape[2]
    out: dict[str, tuple[float, int]] = {}

    def timed(fn) -> float:
        fn()
        xs = []
        for _ in range(repeats):
            bt.sync()
            t = time.perf_counter()
            fn()
            bt.sync()
            xs.append(time.perf_counter() - t)
        return statistics.median(xs)

    for name, scheme in (("dn", fastpinn.DN()), ("id", fastpinn.ID()), ("ma", fastpinn.MA()),
                         ("lra", fastpinn.LRA()), ("gradnorm-w", fastpinn.GradNormW(tau=10))):
        w = fastpinn.Weighter(scheme, K)
        out[name] = (timed(lambda w=w: w.update_from_stats(w.statistics(G), P)), 10)
    for name, scheme in (("softadapt", fastpinn.SoftAdapt()), ("relobralo", fastpinn.ReLoBRaLo()),
                         ("uncertainty", fastpinn.Uncertainty())):
        w = fastpinn.Weighter(scheme, K)
        out[name] = (timed(lambda w=w: w.update_from_losses(losses)), scheme.tau)
    w = fastpinn.Weighter(fastpinn.NTK(tau=10), K)
    gen = torch.Generator(device=bt.DEVICE).manual_seed(0)
    out["ntk"] = (timed(lambda: w.update_from_traces(ntk.term_traces(
        tr.problem.terms, tr.net, tr.problem.coords, subsample=w.scheme.subsample, generator=gen))), 10)
    gn = fastpinn.GradNorm(columns=fastpinn.GradNorm.last_hidden_layer(tr.net))
    w = fastpinn.Weighter(gn, K)
    out["gradnorm"] = (timed(lambda: w.update_from_stats(w.statistics(G), P, losses=losses)), 1)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", default="poisson", choices=bt.PROBLEMS)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=30, help="calls per update-cost median")
    ap.add_argument("--quick", action="store_true", help="smoke-test sizes and rounds")
    ap.add_argument("--out", default=None, help="result file (default bench/results/schemes-<problem>-<machine>-<date>.md)")
    args = ap.parse_args(argv)
    size = "quick" if args.quick else "cpu"
    rounds = 2 if args.quick else args.rounds
    info = _machine.describe(bt.DEVICE)
    started = time.time()
    problem = bt.build_problem(args.problem, size)

    runners = {name: bt.FastRunner(problem, scheme) for name, scheme in TRAINER_SCHEMES.items()}
    samples = bt.interleave(runners, rounds, bt.BLOCK, log=lambda s: print(s, flush=True))
    t_pinn = bt.median(samples["pinn"])
    costs = update_costs(problem, 5 if args.quick else args.repeats)

    lines = [f"# Scheme overhead over PINN: {args.problem} ({size} size), {bt.DEVICE}", "",
             f"Machine: {info.get('cpu_model', '?')} ({info.get('cpu_cores_usable', '?')} usable cores, "
             f"load {info.get('load_average')}); device {info.get('device_name', bt.DEVICE)}; torch "
             f"{torch.__version__}; threads {torch.get_num_threads()}; {rounds} interleaved rounds of "
             f"{bt.BLOCK} epochs; measured {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='minutes')}.",
             "", "## 1. Epoch time through the Trainer (measured)", "",
             "| scheme | ms / epoch (median) | ratio to PINN (paired median) |", "|---|---:|---:|"]
    for name in TRAINER_SCHEMES:
        ratio = 1.0 if name == "pinn" else bt.paired_ratio(samples, name, "pinn")
        lines.append(f"| {name} | {1e3 * bt.median(samples[name]):.2f} | {ratio:.3f} |")
    lines += ["", "## 2. Cost of one weight update (measured) and what it adds to a PINN epoch (estimate)", "",
              f"PINN epoch: {1e3 * t_pinn:.2f} ms.", "",
              "| scheme | update (ms, median) | tau | est. ratio 1 + cost / (tau t_PINN) |", "|---|---:|---:|---:|"]
    for name, (cost, tau) in costs.items():
        lines.append(f"| {name} | {1e3 * cost:.3f} | {tau} | {1 + cost / (tau * t_pinn):.3f} |")
    lines += ["", f"Wall time {time.time() - started:.0f} s. Command: `python bench/bench_schemes.py "
              f"{' '.join(argv if argv is not None else sys.argv[1:])}`", ""]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out) if args.out else (Path(__file__).resolve().parent / "results" /
                                           f"schemes-{args.problem}-{_machine.device_slug(info)}-{_dt.date.today().isoformat()}"
                                           f"{'-quick' if args.quick else ''}.md")
    atomic_write_text(out, text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
