"""The ``left_behind`` rule measured on saved comparisons: per member, how far the reference term fell and how far
the heavily weighted terms outran it, against the member's error over PINN's.

Used on 2026-12-07 (bench/results/weights-silent-cases-cpu-intel-xeon-2c-2026-12-06.md, section 6) with every
``fastpinn compare`` output on record (and the Table 1 / Table 2 runs, each a folder with a ``pinn`` row beside
the others):

    python bench/left_behind_features.py DIR ... [--all]

For each folder ``DIR`` with ``DIR/pinn/history.npz`` and each other row ``DIR/*/history.npz`` of the same length
(rows of fewer than 500 epochs are left out), each member is classed by its final rel. L2 over PINN's: over the
PINN mean *and* over PINN's member of the same seed (an ensemble's seeds are the same in every row), ``bad``
when both are ≥ 2, ``healthy`` when both are < 1.5, ``grey`` between; ``untrained`` where PINN's mean is ≥ 0.5;
``n/a`` where the rule does not apply (PINN, a scheme whose reference weight moves, an aggregator). Per member,
over the 100-epoch windows from one stall window on, with no adaptive weight above the runaway threshold so far
(``weight_progress.progress_gap``, as the watcher computes it): ``lag`` the largest factor by which a term
weighted ≥ 1e3x the reference fell further than the reference while the reference fell < ``REF_FELL``x;
``ref fell`` the least the reference had fallen at a window where such a term was ``LAG``x further; and the
watcher itself replayed (``tests/watch_replay.feed``): the epoch of its ``left_behind`` report and its other
kinds. Prints a table (every member the rule names, every bad member, ``--all``: every member in scope) and the
counts per class. Read-only on its inputs.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from collections import Counter

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from watch_replay import feed

from fastpinn.weight_progress import LAG, REF_FELL, START_EPOCHS, progress_gap
from fastpinn.weight_watch import DOMINANCE, WeightWatch, stall_window

AGGREGATORS = ("pcgrad", "mgda", "cagrad", "imtl", "nash", "aligned", "upgrad", "config", "dcgd", "graddrop")


def level(L: np.ndarray) -> np.ndarray:
    """Geometric mean over the first axis."""
    return np.exp(np.log(np.clip(np.abs(L), 1e-300, None)).mean(0))


def signals(W: np.ndarray, L: np.ndarray, ref: int, adaptive: np.ndarray, runaway: float = 1e5):
    """``lag`` and ``ref fell`` (module docstring) of each member of ``W``, ``L`` ``[E, S, K]``."""
    E, S, _ = L.shape
    first = level(L[:START_EPOCHS])
    lag = np.full(S, -np.inf)
    least = np.full(S, np.inf)
    ran = np.zeros(S, dtype=bool)
    for b in range(100, E + 1, 100):
        ran |= (W[b - 100:b][:, :, adaptive] > runaway).any((0, 2))
        if b < stall_window(1000, 0.5, E):
            continue
        p = progress_gap(first, level(L[b - 100:b]), W[b - 1], ref, adaptive, dominance=DOMINANCE)
        ok = (p.term >= 0) & ~ran
        lag = np.where(ok & (p.ref_fell < REF_FELL), np.maximum(lag, p.lag), lag)
        least = np.where(ok & (p.lag >= LAG), np.minimum(least, p.ref_fell), least)
    return lag, least


def rows_of(d: str, seen: set):
    ph = np.load(os.path.join(d, "pinn", "history.npz"))
    E = ph["losses"].shape[0]
    pinn = ph["rel_l2"][-1]
    for hp in sorted(glob.glob(os.path.join(d, "*", "history.npz"))):
        row = os.path.dirname(hp)
        h = np.load(hp)
        W, L = h["weights"].astype(np.float64), h["losses"].astype(np.float64)
        if W.shape[0] != E or E < 500:
            continue
        try:
            with open(os.path.join(row, "config.json")) as f:
                cfg = json.load(f)["config"]
        except (OSError, KeyError, ValueError):
            cfg = {}
        names = [str(n) for n in h["term_names"]]
        ref = cfg.get("reference_term") or 0
        ref = names.index(ref) if isinstance(ref, str) else int(ref)
        moves = ~np.all(W == W[:1], axis=(0, 1))  # [K]
        scheme = str(cfg.get("scheme", os.path.basename(row)))
        in_scope = moves.any() and not moves[ref] and not any(a in scheme.lower() for a in AGGREGATORS)
        rel = h["rel_l2"][-1]
        reports = []
        if in_scope:
            lag, least = signals(W, L, ref, moves)
            reports = feed(WeightWatch(), W, L, 100, names=names, reference=ref,
                           observed=[n for n in names if n in ("obs", "data")])
        for s in range(W.shape[1]):
            key = (L[:, s].tobytes(), W[:, s].tobytes())
            if key in seen:  # the same run copied into another comparison: counted once
                continue
            seen.add(key)
            mean_x = rel[s] / pinn.mean()
            seed_x = rel[s] / pinn[s] if len(pinn) == W.shape[1] else mean_x
            if not in_scope:
                cls = "n/a"
            elif pinn.mean() >= 0.5:
                cls = "untrained"
            elif min(mean_x, seed_x) >= 2:
                cls = "bad"
            elif max(mean_x, seed_x) < 1.5:
                cls = "healthy"
            else:
                cls = "grey"
            mine = [r for r in reports if s in r.members]
            yield dict(dir=d, row=os.path.basename(row), s=s, cls=cls, rel=rel[s], mean_x=mean_x, seed_x=seed_x,
                       wmax=float(np.max(W[:, s][:, moves]) if moves.any() else 1.0),
                       lag=float(lag[s]) if in_scope else np.nan, least=float(least[s]) if in_scope else np.nan,
                       at=next((r.epoch for r in mine if r.kind == "left_behind"), None),
                       other=sorted({r.kind for r in mine if r.kind != "left_behind"}))


def main(argv: list[str]) -> None:
    show_all = "--all" in argv
    seen: set = set()
    rows = [r for d in argv if d != "--all" for r in rows_of(d.rstrip("/"), seen)]
    print("| comparison | row | member | class | rel. L2 | / PINN mean | / PINN same seed | largest λ | lag | ref fell "
          "| left_behind at | other reports |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["cls"] == "n/a" or not (show_all or r["at"] or r["cls"] == "bad"):
            continue
        print(f"| {r['dir']} | {r['row']} | {r['s']} | {r['cls']} | {r['rel']:.3g} | {r['mean_x']:.2f} | "
              f"{r['seed_x']:.2f} | {r['wmax']:.2g} | {r['lag']:.3g} | {r['least']:.3g} | {r['at'] or '-'} | "
              f"{', '.join(r['other']) or '-'} |")
    total = Counter(r["cls"] for r in rows)
    named = Counter(r["cls"] for r in rows if r["at"])
    print("\nmembers named by left_behind / in the class:",
          ", ".join(f"{c} {named[c]} / {total[c]}" for c in ("bad", "grey", "healthy", "untrained", "n/a")))
    silent = [r for r in rows if r["cls"] == "bad" and not r["other"]]
    print("bad members with no other report:", len(silent), "of which named now:", sum(bool(r["at"]) for r in silent))
    def name(r):
        return f"{os.path.basename(r['dir'])}/{r['row']}/{r['s']} ({r['mean_x']:.2f}x)"
    for c in ("bad", "healthy", "grey", "untrained"):
        sel = [r for r in rows if r["cls"] == c]
        lag = sorted(sel, key=lambda r: -r["lag"])[:4]
        least = sorted(sel, key=lambda r: r["least"])[:4]
        print(f"{c}: largest lag (ref fell < {REF_FELL:g}x): " + ", ".join(f"{r['lag']:.3g} {name(r)}" for r in lag))
        print(f"{c}: least ref fell (lag >= {LAG:g}x): " + ", ".join(f"{r['least']:.3g} {name(r)}" for r in least))


if __name__ == "__main__":
    main(sys.argv[1:])
