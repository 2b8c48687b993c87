"""MA-PINN 10x worse than PINN on Poisson-Robin with no weight report: the measurements behind
``bench/results/weights-silent-cases-cpu-intel-xeon-2c-2026-12-06.md``.

Each configuration trains 3 seeds as one ensemble (``RunConfig`` as ``fastpinn compare`` builds it) and
records, every ``--eval-every`` epochs, each term's unweighted gradient norm ``||grad L_k||`` (one backward per
term, outside the step) beside the History's per-epoch weights and losses. Then, over windows of 100 epochs, the
candidate watcher criteria: the weighted loss share ``lam_j L_j / L_ref`` and the fitted-term ratio
``L_j / L_ref`` with ``lam_j >= 10`` (counted windows per seed), so that a rule can be judged against healthy
runs. ``--histories`` adds finished runs' ``history.npz`` (e.g. /work/runs/table2/*/history.npz) to the
window counts.

    python bench/weights_silent_cases.py pinn ma ma+weight_max=10 dn+beta=0.99 --epochs 2000
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from fastpinn.callbacks import Callback
from fastpinn.run.compare import parse_entry
from fastpinn.run.config import RunConfig
from fastpinn.run.one_run import build_trainer
from fastpinn.run.records import mean_sem

PROBLEM = "bench/trials/poisson_robin.py:make_problem"


class GradientNorms(Callback):
    """``rows``: ``(epoch, [S, K] ||grad L_k||)`` at every evaluation."""

    def __init__(self) -> None:
        self.rows: list = []

    def on_eval(self, trainer, epoch, info):
        G = trainer.term_gradients(trainer.term_losses())  # [S, K, P]
        self.rows.append((epoch, G.double().norm(dim=-1).cpu().numpy()))
        return None


def train(problem: str, entry: str, epochs: int, seeds: int, eval_every: int) -> dict:
    e = parse_entry(entry)
    params = dict(e.params)
    if e.warmup:
        params["weight_warmup"] = max(1, epochs // 3)
    cfg = RunConfig(problem=problem, scheme=e.scheme, scheme_params=params, seeds=tuple(range(seeds)),
                    ensemble=True, epochs=epochs, eval_every=eval_every, reference_term=e.reference_term)
    _, trainer = build_trainer(cfg)
    norms = GradientNorms()
    tick = time.perf_counter()
    h = trainer.train(epochs, callbacks=[norms])
    G = np.stack([g for _, g in norms.rows])  # [M, S, K]
    idx = np.minimum(h.eval_epochs, h.weights.shape[0]) - 1
    weighted = h.weights[idx][:, :, 1:] * G[:, :, 1:] / G[:, :, :1]  # lam_j ||grad L_j|| / ||grad L_ref||
    late = slice(len(idx) // 2, None)
    mean, sem = mean_sem(h.final_rel_l2())
    return {"entry": entry, "rel_l2": h.final_rel_l2().tolist(), "mean": mean, "sem": sem,
            "seconds": time.perf_counter() - tick, "weights": h.weights, "losses": h.losses,
            "lam_median": np.median(h.weights[epochs // 10:, :, 1:], 0).T.tolist(),
            "lam_max": h.weights[:, :, 1:].max(0).T.tolist(),
            "grad_ref_late": np.median(G[late, :, 0], 0).tolist(),
            "weighted_grad_ratio_late": np.median(weighted[late], 0).T.tolist(),
            "reports": [r["message"] for r in h.extra.get("weight_warnings", [])]}


def window_counts(W: np.ndarray, L: np.ndarray, end: int, width: int = 100) -> dict:
    """Per seed, the windows (of ``width`` epochs up to ``end``) where some adaptive term ``j`` has ``lam_j >= 10``
    throughout and its share ``lam_j L_j / L_ref`` (geometric means) below 1e-3 / 1e-4, or ``L_j / L_ref`` below
    1e-6 (the candidate rules)."""
    counts = {"share<1e-3": 0, "share<1e-4": 0, "fitted<1e-6": 0}
    for e in range(0, min(end, W.shape[0]), width):
        # float64 before the clip (1e-300 is 0 in float32): a loss of exactly 0, a fitted point, counts as 1e-300
        level = np.exp(np.log(np.clip(np.abs(L[e:e + width].astype(np.float64)), 1e-300, None)).mean(0))  # [S, K]
        big = W[e:e + width, :, 1:].min(0) >= 10
        ratio = level[:, 1:] / level[:, :1]
        share = W[min(e + width, W.shape[0]) - 1, :, 1:] * ratio
        counts["share<1e-3"] = counts["share<1e-3"] + (big & (share < 1e-3)).any(1)
        counts["share<1e-4"] = counts["share<1e-4"] + (big & (share < 1e-4)).any(1)
        counts["fitted<1e-6"] = counts["fitted<1e-6"] + (big & (ratio < 1e-6)).any(1)
    return {k: np.asarray(v).tolist() for k, v in counts.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("entries", nargs="+", help="compare entries: pinn, ma, ma+weight_max=10, dn+beta=0.99, ...")
    ap.add_argument("--problem", default=PROBLEM)
    ap.add_argument("--epochs", type=int, default=2000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--histories", nargs="*", default=[], help="finished runs' history.npz to count windows on")
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args()
    out = []
    for entry in args.entries:
        r = train(args.problem, entry, args.epochs, args.seeds, args.eval_every)
        r["windows"] = window_counts(r.pop("weights"), r.pop("losses"), args.epochs)
        out.append(r)
        print(f"{entry:24s} rel. L2 {r['mean']:.2e} ± {r['sem']:.1e} {np.round(r['rel_l2'], 4).tolist()} "
              f"({r['seconds']:.0f} s); λ median {np.round(r['lam_median'], 0).tolist()}; ||∇L_ref|| late "
              f"{np.round(r['grad_ref_late'], 3).tolist()}; λ||∇L_j||/||∇L_ref|| late "
              f"{np.round(r['weighted_grad_ratio_late'], 2).tolist()}; windows {r['windows']}; "
              f"{len(r['reports'])} report(s)", flush=True)
    for path in args.histories:
        z = np.load(path, allow_pickle=True)
        counts = window_counts(z["weights"], z["losses"], z["weights"].shape[0])
        out.append({"history": path, "windows": counts})
        print(f"{path}: windows {counts}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
