"""How a scheme's loss terms ended against PINN's in ``fastpinn compare``: which term it left behind.

``compare`` trains PINN beside every scheme on the same problem and seeds, so a scheme that ends far worse than
PINN (:func:`fastpinn.run.compare_summary.worse_than_pinn`) can be told which term's loss it left high. User
trial 3's elastic plate: DN β = 0.9 ended 3.3x PINN's error with L_pde 57–81x PINN's while the boundary weights
rose to 1e4–1e5 (bench/results/user-trial-3-*.md). :func:`final_terms` reads what a row's runs ended with (their
``history.npz``), :func:`left_behind` words it; either gives ``None`` where the data is missing.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from . import directory

__all__ = ["LEFT_BEHIND", "FinalTerms", "final_terms", "left_behind"]

#: A term whose final loss is at least this many times PINN's on every seed is called the one the scheme left
#: behind -- the same factor as :data:`~fastpinn.run.compare_summary.WORSE_THAN_PINN` on the error.
LEFT_BEHIND = 2.0


@dataclass(frozen=True)
class FinalTerms:
    """What one row's runs ended with. ``names``: ``[K]`` loss terms; ``losses``: ``[S, K]`` each member's
    unweighted loss of the last epoch; ``weights``: ``[S, K]`` the weights of the last epoch; ``start_weights``:
    ``[S, K]`` those of the first. ``S``: the members in seed order (an ensemble, or one run per seed)."""

    names: tuple[str, ...]
    losses: np.ndarray
    weights: np.ndarray
    start_weights: np.ndarray


def final_terms(run_dirs: Sequence[Path]) -> Optional[FinalTerms]:
    """The final term losses and weights of ``run_dirs`` (one ensemble run, or one run per seed: their members
    in order) from their ``history.npz``; ``None`` when a history is missing, unreadable, empty, or the runs'
    terms differ."""
    from ..history import History

    parts = []
    for d in run_dirs:
        try:
            h = History.load(str(Path(d) / directory.HISTORY))
        except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile):  # missing, cut short, not a history
            return None
        if h.epochs == 0 or np.ndim(h.losses) != 3 or np.shape(h.weights) != np.shape(h.losses):
            return None
        parts.append(h)
    if not parts or any(h.term_names != parts[0].term_names for h in parts):
        return None
    return FinalTerms(tuple(parts[0].term_names),
                      *(np.concatenate([np.asarray(getattr(h, a)[e], dtype=np.float64) for h in parts])
                        for a, e in (("losses", -1), ("weights", -1), ("weights", 0))))


def left_behind(scheme: FinalTerms, pinn: FinalTerms) -> Optional[str]:
    """E.g. ``L_pde ended 57–81x PINN's, the term it left behind (λ_pde stayed at 1 while λ_top_ux rose to
    3.0e4–1.1e5)``: the term whose final loss is the highest multiple of PINN's on every seed (per seed where both
    have the same members, else their means over members), with its weight and the largest other. The smallest
    multiple over seeds decides, so that a term PINN fits to ~1e-9 in one seed (the cavity's one-point pressure
    pin: 3e-4x and 6e4x PINN's in two seeds) is not named for one seed's noise. ``None`` when no term of the
    scheme has a finite, positive PINN loss to compare with."""
    shared = [k for k, n in enumerate(scheme.names) if n in pinn.names]
    if not shared:
        return None
    mine = scheme.losses[:, shared]
    theirs = pinn.losses[:, [pinn.names.index(scheme.names[k]) for k in shared]]
    if mine.shape[0] != theirs.shape[0]:  # not the same members: compare the means over them
        mine, theirs = mine.mean(axis=0, keepdims=True), theirs.mean(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = mine / theirs
    ok = np.isfinite(ratio) & (theirs > 0)
    lowest = [float(np.min(ratio[ok[:, j], j])) if ok[:, j].any() else -math.inf for j in range(len(shared))]
    j = int(np.argmax(lowest))
    if lowest[j] == -math.inf:
        return None
    k, name = shared[j], scheme.names[shared[j]]
    factor = _range(ratio[ok[:, j], j]) + "x PINN's"
    if lowest[j] < LEFT_BEHIND:
        if float(_short(lowest[j])) >= LEFT_BEHIND:  # 1.995 would print as 2: say the digits that put it below
            factor = f"{lowest[j]:.3g}x PINN's on its lowest seed"
        return f"no term's final loss is {LEFT_BEHIND:g}x PINN's on every seed (the highest: L_{name}, {factor})"
    return f"L_{name} ended {factor}, the term it left behind{_weights(scheme, k)}"


def _weights(terms: FinalTerms, k: int) -> str:
    """`` (λ_k ... while λ_other ...)``: term ``k``'s weight and the largest other (median over members), how
    each moved from its start; empty when no weight moved (PINN, an aggregator) or none is finite."""
    w, w0 = terms.weights, terms.start_weights
    finite = np.isfinite(w) & np.isfinite(w0)
    if not finite.any() or np.allclose(w[finite], w0[finite], rtol=1e-6, atol=0):
        return ""
    said = [_moved(terms, k)]
    others = [(float(np.median(w[finite[:, i], i])), i) for i in range(w.shape[1])
              if i != k and finite[:, i].any()]
    if others:
        said.append(_moved(terms, max(others)[1]))
    return f" ({' while '.join(s for s in said if s)})" if any(said) else ""


def _moved(terms: FinalTerms, k: int) -> str:
    """``λ_name rose to 3.0e4–1.1e5`` (or fell to, stayed at, ended at: over every member with finite weights)."""
    w, w0 = terms.weights[:, k], terms.start_weights[:, k]
    ok = np.isfinite(w) & np.isfinite(w0)
    if not ok.any():
        return ""
    w, w0 = w[ok], w0[ok]
    how = ("stayed at" if np.allclose(w, w0, rtol=1e-6, atol=0) else "rose to" if (w > w0).all() else
           "fell to" if (w < w0).all() else "ended at")
    return f"λ_{terms.names[k]} {how} {_range(w)}"


def _range(values: np.ndarray) -> str:
    """``57–81`` (min–max, two significant digits), or one number when they print alike."""
    lo, hi = _short(float(np.min(values))), _short(float(np.max(values)))
    return lo if lo == hi else f"{lo}–{hi}"


def _short(v: float) -> str:
    """Two significant digits: ``57``, ``0.14``, ``120``, ``1.1e5``, ``3.0e-4``."""
    if v == 0 or 0.01 <= abs(v) < 1000:
        text = f"{v:.2g}"
        return f"{float(text):.0f}" if "e" in text else text  # 1.2e+02 -> 120
    mantissa, exponent = f"{v:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"
