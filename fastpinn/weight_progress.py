"""The reference term left behind: what each term's loss has fallen since its start, compared across terms.

A gradient-ratio scheme (DN, ID, MA, LRA) keeps the reference term's weight at 1 and moves the others. On user
trial 3's elastic plate, DN and ID β = 0.9 lift the displacement conditions' weights to 2e4-5e4: those terms fall
4-6 orders of magnitude from where they began while L_pde, the reference, falls 2-2.5 and then 15-20 % per 1,000
epochs -- no weight runs away (1e5), no loss stalls (10 %), and the run ends 2.3-4x PINN's error in silence. On the
runs that train, the reference keeps up: the paper's 2-D Poisson holds λ_bc at 1e4-4e4 while L_pde falls 3.5-3.9
orders by epoch 1,000, as far as the boundary term. The progress of a term is scale-free (its loss over its own
first level), so it compares terms of any units. Measured on every comparison on record
(``bench/left_behind_features.py``; bench/results/weights-silent-cases-*.md, section 6): the rule below names
every plate member of DN and ID β = 0.9, and of the 200 members that end within 1.5x PINN's error one: ID β = 0.9
on the plate at 1,500 epochs (1.44x; 2.2x by 3,000).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["START_EPOCHS", "REF_FELL", "LAG", "Progress", "progress_gap", "LeftBehind"]

#: The first level of a term's loss: the geometric mean of its first this many epochs.
START_EPOCHS = 100
#: The reference term counts as left behind while its loss has fallen less than this factor from its first level
#: (the plate's bad members: 81-222x when named; the closest healthy runs, once a term was 30x further: 1,350x).
REF_FELL = 600.0
#: ... and a term under a weight :data:`~fastpinn.weight_watch.DOMINANCE` times the reference's fell at least this
#: factor further (the plate's bad members: 49-346x; no healthy member got there with its reference below 600x).
LAG = 30.0


@dataclass(frozen=True)
class Progress:
    """Per member ``[S]``: ``hit`` where the reference term is left behind; ``term`` the index of the term that
    outran it most (among those weighted ``dominance`` x the reference or more; -1 where none); ``ref_fell`` the
    factor the reference's loss fell from its first level; ``other_fell`` that of ``term``; ``lag``
    ``other_fell / ref_fell``."""

    hit: np.ndarray
    term: np.ndarray
    ref_fell: np.ndarray
    other_fell: np.ndarray
    lag: np.ndarray


def progress_gap(first: np.ndarray, level: np.ndarray, weights: np.ndarray, ref: int, watched: np.ndarray, *,
                 dominance: float, ref_fell: float = REF_FELL, lag: float = LAG) -> Progress:
    """Whether the reference term ``ref`` is left behind, per member.

    Args:
        first: ``[S, K]`` each term's first loss level (geometric mean of its first :data:`START_EPOCHS` epochs).
        level: ``[S, K]`` each term's loss level now (geometric mean of the last window).
        weights: ``[S, K]`` the weights now.
        ref: the reference term's index (its weight fixed).
        watched: ``[K]`` the terms whose weights the scheme moves.
        dominance: a term counts when its weight is at least this times the reference's.
        ref_fell, lag: the reference's loss fell less than ``ref_fell`` x from its first level, and a counted
            term's fell at least ``lag`` x further.
    """
    S = level.shape[0]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        fell = first / level  # [S, K] > 1: the loss fell
        counted = watched[None, :] & (weights >= dominance * weights[:, ref:ref + 1]) & np.isfinite(fell)
    counted[:, ref] = False
    ahead = np.where(counted, fell, -np.inf)
    term = np.where(counted.any(1), ahead.argmax(1), -1)
    other = np.where(term >= 0, ahead[np.arange(S), np.maximum(term, 0)], np.nan)
    mine = fell[:, ref]
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = other / mine
    hit = (term >= 0) & np.isfinite(mine) & (mine < ref_fell) & (gap >= lag)
    return Progress(hit, term, mine, other, gap)


class LeftBehind:
    """The state of the rule over a run: each member's first loss levels, since when its reference term has been
    left behind, and whether a weight of it ever ran away (that member has its ``runaway`` report: the rule covers
    the weights below the runaway threshold, where nothing else speaks). :meth:`check` at each boundary."""

    def __init__(self, dominance: float, runaway: float) -> None:
        self.dominance = float(dominance)
        self.runaway = float(runaway)
        self.first: np.ndarray | None = None  # [S, K]
        self.since: np.ndarray | None = None  # [S] the epoch the reference fell behind, -1 where it is not
        self.ran_away: np.ndarray | None = None  # [S]

    def check(self, epoch: int, first: np.ndarray, level: np.ndarray, w_last: np.ndarray, w_max: np.ndarray,
              ref: int, watched: np.ndarray) -> Progress:
        """Update with the window ending at ``epoch`` (``first``: ``[S, K]`` the level of this window's first
        :data:`START_EPOCHS` epochs, kept from the first call; ``level``, ``w_last``, ``w_max``: ``[S, K]`` this
        window's loss level, last and largest weights); the members left behind now, less those that ran away."""
        if self.first is None:
            self.first = first
            self.since = np.full(first.shape[0], -1, dtype=np.int64)
            self.ran_away = np.zeros(first.shape[0], dtype=bool)
        self.ran_away |= (w_max[:, watched] > self.runaway).any(1)
        found = progress_gap(self.first, level, w_last, ref, watched, dominance=self.dominance)
        hit = found.hit & ~self.ran_away
        self.since = np.where(hit, np.where(self.since < 0, epoch, self.since), -1)
        return Progress(hit, found.term, found.ref_fell, found.other_fell, found.lag)
