"""What the weight watcher could see of an observation term held low: per member, over saved histories.

Runs it was used on (2026-12-06, bench/results/weights-silent-cases-cpu-intel-xeon-2c-2026-12-06.md, section 5):

    fastpinn compare bench/trials/reaction_rate_inverse.py:make_problem --seeds 3 --epochs 3000 --no-step-timing \
        --schemes pinn,dn+beta=0.99,id,ma,id+beta=0.99,dn+beta=0.99+warmup,dn+beta=0.99+ref=obs,dn+weight_min=1,\
    dn+beta=0.99+weight_min=0.3,dn+beta=0.99+weight_min=0.5,dn+beta=0.99+weight_min=1,\
    dn+beta=0.99+ref=obs+weight_max=1 --out DIR/rr
    fastpinn compare burgers_inverse --schemes pinn,dn,dn+beta=0.99,id,ma,dn+beta=0.99+weight_min=1 --seeds 3 \
        --epochs 1500 --no-step-timing --out DIR/bi
    python bench/data_weight_features.py DIR/rr DIR/bi ...      # and section 4's compares of the trials

For each history (a compare's scheme folders, or one run's folder) and each term named in ``TERMS`` (default
``obs,data``: the observation terms of the inverse problems here), at the end of the run (or of the prefix
``P=...``): ``held`` the largest share of the weights (:func:`~fastpinn.weight_advice.weight_share`: the weight
over the largest weight of the terms that are not observations, each over its start) over the last stall window,
``median`` the median share over the run's second half, ``drop`` the term's best loss of the last 100 epochs over its
geometric-mean level one stall window earlier (the stall rule's quantity), ``vs PINN`` the term's loss (geometric
mean of the last 100 epochs) over PINN's (mean over PINN's members), and the rel. L2 over PINN's mean; then
the watcher replayed over the history (its prefix of ``P`` epochs, as a run planned for ``P``; ``H``: the
``data_held`` threshold, default :data:`DATA_HELD`): the epoch of a ``data_held_low`` report on the member, and
the kinds of its other reports. Read-only on its inputs.
"""

from __future__ import annotations

import glob
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from watch_replay import feed

from fastpinn.weight_watch import DATA_HELD, WeightWatch, stall_window, weight_share


def level(L: np.ndarray) -> np.ndarray:
    """Geometric mean over the first axis."""
    return np.exp(np.log(np.clip(np.abs(L), 1e-300, None)).mean(0))


def features(h, k: int, P: int, pinn_level=None, observed=None):
    W = h["weights"][:P].astype(np.float64)
    if observed is not None:  # the watcher's share: over the largest weight of the other terms (starts are 1)
        W = weight_share(W, observed)
    L = h["losses"][:P].astype(np.float64)
    w = stall_window(1000, 0.5, P)
    start = 1.0  # every scheme starts its weights at 1 (the watcher's start: the weights before epoch 0)
    held = W[P - w:, :, k].max(0) / start
    median = np.median(W[P // 2:, :, k], 0) / start
    end = level(L[P - 100:, :, k])
    then = level(L[P - w - 100:P - w, :, k]) if P - w - 100 >= 0 else np.full(end.shape, np.nan)
    drop = L[P - 100:, :, k].min(0) / then
    vs = end / pinn_level if pinn_level is not None else np.full(end.shape, np.nan)
    return held, median, drop, end, vs


def err_at(h, P: int):
    i = np.nonzero(h["eval_epochs"] == P)[0]
    return h["rel_l2"][i[0]] if len(i) else None


def held_at(reports, name: str, s: int) -> str:
    return ", ".join(str(r.epoch) for r in reports if r.kind == "data_held_low" and r.term == name and s in r.members) or "-"


def others(reports, s: int) -> str:
    return ", ".join(sorted({f"{r.kind} {r.term}" for r in reports if r.kind != "data_held_low" and s in r.members})) or "-"


def main(dirs: list[str]) -> None:
    terms = os.environ.get("TERMS", "obs,data").split(",")
    only_p = os.environ.get("P")
    print("| run | scheme | term | member | held (max share, last window) | median share (2nd half) | "
          "drop (stall quantity) | L_term vs PINN | rel. L2 | vs PINN | data_held_low at | other reports |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    h_held = float(os.environ.get("H", DATA_HELD))
    for d in dirs:
        pinn = os.path.join(d, "pinn", "history.npz")
        ph = np.load(pinn) if os.path.exists(pinn) else None
        paths = (sorted(glob.glob(os.path.join(d, "*", "history.npz"))) if os.path.isdir(os.path.join(d, "pinn"))
                 else [os.path.join(d, "history.npz")])
        for hp in paths:
            if not os.path.exists(hp):
                continue
            h = np.load(hp)
            names = [str(n) for n in h["term_names"]]
            P = int(only_p) if only_p else h["weights"].shape[0]
            if h["weights"].shape[0] < P:
                continue
            err = err_at(h, P)
            perr = err_at(ph, P).mean() if ph is not None else np.nan
            scheme = hp.split("/")[-2]
            observed = [n for n in names if n in terms]
            reports = feed(WeightWatch(data_held=h_held), h["weights"][:P].astype(np.float64),
                           h["losses"][:P].astype(np.float64), 100, names=names, observed=observed)
            for k, name in enumerate(names):
                if name not in terms and terms != ["*"]:
                    continue
                pl = level(ph["losses"][P - 100:P, :, k].astype(np.float64)).mean() if ph is not None else None
                held, median, drop, _, vs = features(h, k, P, pl, np.array([n in observed for n in names]))
                for s in range(len(held)):
                    print(f"| {os.path.basename(d.rstrip('/'))} | {scheme} | {name} | {s} | {held[s]:.3g} | "
                          f"{median[s]:.3g} | {drop[s]:.3g} | {vs[s]:.3g} | {err[s]:.3g} | {err[s] / perr:.3g} | "
                          f"{held_at(reports, name, s)} | {others(reports, s)} |")


if __name__ == "__main__":
    main(sys.argv[1:])
