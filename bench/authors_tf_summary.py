"""Side by side: Table 2's PINN row trained by the authors' TensorFlow code and by fastpinn, and the paper.

Reads the per-seed JSON files of ``bench/authors_tf_poisson_pinn.py`` and a fastpinn ensemble's
``history.npz`` (``fastpinn reproduce table2``'s ``pinn`` run), and prints a markdown table of the mean rel. L2
± s.e. at the epochs both evaluated, with the difference in combined standard errors, then the same at the
authors' saves (their reported protocol) beside the paper's number::

    python bench/authors_tf_summary.py --authors runs/authors-pinn --ours runs/table2/pinn/history.npz
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import sys
from dataclasses import dataclass
from typing import Sequence

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fastpinn.paper_numbers import AUTHORS_SAVE_EVERY, lookup  # noqa: E402
from fastpinn.run.records import best_at_saves, mean_sem  # noqa: E402


@dataclass(frozen=True)
class Curve:
    """Rel. L2 of an ensemble: ``rel_l2[M, S]`` at ``epochs[M]`` (S seeds)."""

    epochs: np.ndarray
    rel_l2: np.ndarray
    seeds: Sequence[int] = ()

    def at(self, epoch: int) -> np.ndarray:
        """The ``[S]`` errors at ``epoch`` (which must have been evaluated)."""
        return self.rel_l2[int(np.flatnonzero(self.epochs == epoch)[0])]

    def best_at_saves(self, last: int, every: int = AUTHORS_SAVE_EVERY) -> np.ndarray:
        """Per seed, the lowest error at the evaluated positive multiples of ``every`` up to ``last``: ``[S]``."""
        upto = self.epochs <= last
        return np.asarray(best_at_saves(self.epochs[upto], self.rel_l2[upto], every)["saves_rel_l2_per_seed"])


def authors_curve(folder: str, epochs: int, seeds: Sequence[int] | None = None) -> Curve:
    """The seeds in ``folder/seed*.json`` that reached ``epochs`` (only ``seeds`` if given, in that order), on the
    epochs they all evaluated."""
    records = {}
    for path in sorted(glob.glob(os.path.join(folder, "seed*.json"))):
        with open(path) as handle:
            record = json.load(handle)
        if record["evaluated_epochs"] and record["evaluated_epochs"][-1] >= epochs:
            records[int(record["seed"])] = record
    chosen = [records[s] for s in (sorted(records) if seeds is None else seeds) if s in records]
    if not chosen:
        raise SystemExit(f"{folder!r}: no seed*.json reached epoch {epochs}")
    common = sorted(set.intersection(*(set(r["evaluated_epochs"]) for r in chosen)))
    columns = [[dict(zip(r["evaluated_epochs"], r["rel_l2"]))[e] for e in common] for r in chosen]
    return Curve(np.asarray(common), np.asarray(columns, dtype=np.float64).T, [int(r["seed"]) for r in chosen])


def ours_curve(history_path: str) -> Curve:
    with np.load(history_path, allow_pickle=False) as history:
        return Curve(np.asarray(history["eval_epochs"]), np.asarray(history["rel_l2"], dtype=np.float64))


def difference_in_se(a: Sequence[float], b: Sequence[float]) -> float:
    """(mean a − mean b) over the combined standard error hypot(s.e. a, s.e. b)."""
    (ma, sa), (mb, sb) = mean_sem(a), mean_sem(b)
    return (ma - mb) / math.hypot(sa, sb)


def _cell(values: Sequence[float]) -> str:
    m, s = mean_sem(values)
    return f"{m:.3e} ± {s:.1e}"


def table(authors: Curve, ours: Curve, epochs: Sequence[int]) -> str:
    lines = [f"| epoch | authors' code ({authors.rel_l2.shape[1]} seeds) | fastpinn ({ours.rel_l2.shape[1]} seeds) "
             "| (authors − fastpinn) / combined s.e. |", "|---:|---|---|---:|"]
    for e in epochs:
        a, o = authors.at(e), ours.at(e)
        lines.append(f"| {e:,} | {_cell(a)} | {_cell(o)} | {difference_in_se(a, o):+.1f} |")
    return "\n".join(lines)


def paired_table(base: Curve, variant: Curve, ours: Curve, epochs: Sequence[int]) -> str:
    """The authors' code and a variant of it on the same seeds (same points, same start): per epoch both means and
    the mean ± s.e. over seeds of log10(variant / base), beside fastpinn's mean."""
    lines = [f"| epoch | authors' code | variant | log10(variant / authors') per seed, mean ± s.e. | fastpinn |",
             "|---:|---|---|---|---|"]
    for e in epochs:
        b, v = base.at(e), variant.at(e)
        m, s = mean_sem(np.log10(v / b))
        lines.append(f"| {e:,} | {_cell(b)} | {_cell(v)} | {m:+.3f} ± {s:.3f} ({10 ** m:.2f}x) | {_cell(ours.at(e))} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--authors", required=True, help="folder of seed*.json from authors_tf_poisson_pinn.py")
    parser.add_argument("--ours", required=True, help="fastpinn's table2 pinn history.npz")
    parser.add_argument("--epochs", type=int, default=30000)
    parser.add_argument("--every", type=int, default=5000, help="table rows every this many epochs")
    parser.add_argument("--variant", help="a folder of runs of a variant of the authors' code (e.g. --exact-tanh): "
                                          "compared with --authors seed by seed up to --epochs")
    args = parser.parse_args()
    if args.variant:
        variant = authors_curve(args.variant, args.epochs)
        base, ours = authors_curve(args.authors, args.epochs, variant.seeds), ours_curve(args.ours)
        variant = authors_curve(args.variant, args.epochs, base.seeds)
        shared = sorted(set(base.epochs.tolist()) & set(variant.epochs.tolist()) & set(ours.epochs.tolist()))
        print(f"seeds {list(base.seeds)}")
        print(paired_table(base, variant, ours, [e for e in shared if e % args.every == 0 and e <= args.epochs]))
        return
    authors, ours = authors_curve(args.authors, args.epochs), ours_curve(args.ours)
    shared = sorted(set(authors.epochs.tolist()) & set(ours.epochs.tolist()))
    rows = [e for e in shared if e % args.every == 0 and e <= args.epochs]
    print(table(authors, ours, rows))
    paper = lookup("table2", "pinn")
    a_saves = authors.best_at_saves(args.epochs)
    o_saves = ours.best_at_saves(args.epochs)  # every 100 epochs: the multiples of 500 are on both grids
    m, s = mean_sem(a_saves)
    print()
    print(f"At the authors' saves (best of the multiples of {AUTHORS_SAVE_EVERY} up to {args.epochs:,}):")
    print(f"- authors' code: {_cell(a_saves)}; against the paper's {paper.rel_l2_mean:.3e} ± "
          f"{paper.rel_l2_sem:.1e}: {(m - paper.rel_l2_mean) / math.hypot(s, paper.rel_l2_sem):+.1f} combined s.e.")
    mo, so = mean_sem(o_saves)
    print(f"- fastpinn (multiples of {2 * AUTHORS_SAVE_EVERY}): {_cell(o_saves)}; against the paper's: "
          f"{(mo - paper.rel_l2_mean) / math.hypot(so, paper.rel_l2_sem):+.1f}; against the authors' code: "
          f"{difference_in_se(o_saves, a_saves):+.1f}")


if __name__ == "__main__":
    main()
