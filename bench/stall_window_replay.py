"""Replay the weight watcher's stall rule, fixed window against the scaled one, over saved histories.

Runs it was used on (2026-12-06, bench/results/weights-silent-cases-cpu-intel-xeon-2c-2026-12-06.md, "Short runs"):

    fastpinn compare bench/trials/NAME.py:make_problem --seeds 2 --epochs 2000 --no-step-timing --out DIR/cmp-NAME
    fastpinn train poisson --scheme dn --seeds 2 --epochs 2000 --out DIR/poisson-dn     (burgers the same)
    python bench/stall_window_replay.py DIR/cmp-* DIR/poisson-dn DIR/burgers-dn

Each history's prefix of P epochs (1000, 2000; ``PS=600,800`` for others) is replayed as a run planned for P
epochs with ``stall_share`` 0 (the fixed 1,000-epoch window) and 0.5. A member is "bad" when its rel. L2 at
epoch P is 3x or more PINN's mean of the same compare (no PINN beside it: none is bad). Read-only on its inputs.
"""

from __future__ import annotations

import glob
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from watch_replay import feed

from fastpinn.weight_watch import WeightWatch


def replay(h, P: int, share: float) -> list:
    names = [str(n) for n in h["term_names"]]  # term 0 the reference, as feed assumes (the PDE in every problem here)
    return feed(WeightWatch(stall_share=share), h["weights"][:P].astype(np.float64),
                h["losses"][:P].astype(np.float64), 100, names=names)


def err_at(h, P: int):
    i = np.nonzero(h["eval_epochs"] == P)[0]
    return h["rel_l2"][i[0]] if len(i) else None


def main(dirs: list[str]) -> None:
    shares = [float(s) for s in os.environ.get("SHARES", "0,0.5").split(",")]
    prefixes = [int(x) for x in os.environ.get("PS", "1000,2000").split(",")]
    tot: dict = {}
    for d in dirs:
        if not os.path.isdir(d):
            continue
        pinn = os.path.join(d, "pinn", "history.npz")
        ph = np.load(pinn) if os.path.exists(pinn) else None
        paths = sorted(glob.glob(os.path.join(d, "*", "history.npz"))) if ph is not None else [os.path.join(d, "history.npz")]
        for hp in paths:
            scheme = hp.split("/")[-2]
            if scheme == "pinn" or not os.path.exists(hp):
                continue
            h = np.load(hp)
            S = h["weights"].shape[1]
            for P in prefixes:
                err = err_at(h, P)
                if err is None:
                    continue
                bad = set(np.nonzero(err >= 3 * err_at(ph, P).mean())[0].tolist()) if ph is not None else set()
                print(f"{os.path.basename(d)} {scheme} P={P} rel. L2 {np.array2string(err, precision=3)} bad {sorted(bad)}")
                for sh in shares:
                    reps = replay(h, P, sh)
                    flagged = {m for r in reps for m in r.members}
                    stalled = {m for r in reps if r.kind == "stall" for m in r.members}
                    for key in ((P, sh), (os.path.basename(d), P, sh)):
                        t = tot.setdefault(key, [0, 0, 0, 0, 0])
                        t[0] += len(bad); t[1] += len(bad & flagged); t[2] += S - len(bad)
                        t[3] += len(flagged - bad); t[4] += len(stalled - bad)
                    print(f"    share {sh:.2f}: {[(r.kind, r.term, r.epoch, r.members) for r in reps]}")
    print("key: bad members, bad reported (any kind), healthy members, healthy reported (any), healthy with a stall")
    for k, v in sorted(tot.items(), key=str):
        print(k, v)


if __name__ == "__main__":
    main(sys.argv[1:])
