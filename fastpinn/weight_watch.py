"""Watch the loss weights while training and say, once and in words, when they go wrong.

:class:`WeightWatch` is a :class:`~fastpinn.callbacks.Callback` the :class:`~fastpinn.Trainer` installs by
default (``Trainer(watch=True)``). It reads nothing per step: at each evaluation boundary (where the loop
already synchronises) it reduces the epochs logged since the last boundary on the device -- the per-epoch
weights and losses of :class:`~fastpinn.history.TrainingLog`, the Weighter's skip counters -- and copies a
few ``[S, K]`` numbers to the host. It reports, once per term, kind and ensemble member (the members that
meet a condition at the same boundary share one report; one that meets it later gets its own):

* ``collapse``: an adaptive weight below ``collapse`` (default 1e-2) times its start value and still falling
  (issue 18's 1-D wave with bias correction failed with λ_ic at 0.2-0.6 % of its start: 1e-3 missed it);
* ``runaway``: an adaptive weight above ``runaway`` (default 1e5: the paper's 2-D Poisson problem, which DN
  solves to 6e-3, takes its boundary weight to ~7e3 -- a large weight is not by itself a failure);
* ``stall``: a term's loss fell by less than ``stall_drop`` (10 %) over ``stall_epochs`` epochs (the best epoch
  of the last window against the geometric mean of the window then; not a loss already 1e-4 below its
  first level; a run planned shorter than ``stall_epochs / stall_share`` uses ``stall_share`` of its epochs,
  at least :data:`STALL_FLOOR`, so that a 1,000-epoch run has a window at all) while its weight moved by a
  factor ``stall_factor`` (10) or more (not counting a weight coming down from a peak while still at or above
  its start), or while another adaptive weight is ``DOMINANCE`` (1e3) times its own;
* ``data_held_low``: an observation term (``data(...)``, ``Term.observed``) whose share of the weights -- its
  weight over the largest weight of the other terms, each over its start; PINN keeps it at 1 -- stayed below
  ``data_held`` (default 0.3) for a whole stall window, its loss not converged, in a scheme whose weights adapt.
  The observations are what identifies the unknowns of an inverse problem; the PDE with an unknown coefficient
  or field is met by many solutions, so its gradient is small and a gradient-ratio scheme turns the data down
  (user trial 2's reaction-rate problem: DN β = 0.99 held λ_obs at 0.11-0.26 of its start and ended 2.6x
  PINN's error with no report; with ``obs`` as the reference, λ_pde rose to 20-45 instead: 2.2x;
  bench/results/weights-silent-cases-*.md, section 5);
* ``left_behind``: the reference term's loss fell < 600x from its start while a term weighted ``DOMINANCE`` x it
  fell 30x further, no weight run away (user trial 3's elastic plate; :mod:`fastpinn.weight_progress`);
* ``skipped``: weight updates that kept the previous weight because a gradient statistic was zero or not
  finite;
* ``nonfinite``: a weight that is not finite.

What it cannot see: weights below 1e3 that still starve the PDE (MA on the user trial's Poisson-Robin, λ 30-1,200
on two one-point terms, 10x PINN's error: docs/weights.md); ``fastpinn compare``, training PINN beside, names it.

Each report is a :class:`WeightReport` (term, kind, epoch since when, value, members, message). The message
goes to the progress output (above the bar when there is one, else as a :class:`WeightWarning`), the
reports of a ``train()`` call into ``History.extra["weight_warnings"]`` and from there into a run's
``metrics.json``.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import torch

from .callbacks import Callback
from .weight_advice import (declared_parameters, left_behind_text, members_note, remedies, share_text, skip_cause,
                            weight_share)
from .weight_progress import START_EPOCHS, LeftBehind
from .validation import check_int, check_number

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["WeightWatch", "WeightReport", "WeightWarning", "KINDS", "stall_window", "weight_share"]

KINDS = ("collapse", "runaway", "stall", "data_held_low", "left_behind", "skipped", "nonfinite")
#: A loss below this fraction of its first level counts as converged, never as stalled.
CONVERGED = 1e-4
#: A weight above this is "very large" in a report: the remedy bound ``--weight-max 100`` would bind it.
LARGE_WEIGHT = 100.0
#: One adaptive weight this many times another's, whose term's loss stalls, is reported (a "dominated" stall).
DOMINANCE = 1e3
#: The shortest stall window a short run gets (epochs): a window must span a few evaluation boundaries.
STALL_FLOOR = 500
#: An observation term whose share of the weights stays below this for a stall window is reported (``data_held_low``).
DATA_HELD = 0.3


class WeightWarning(RuntimeWarning):
    """The warning category of a :class:`WeightWatch` report shown without a progress bar."""


@dataclass(frozen=True)
class WeightReport:
    """One finding: ``kind`` (one of :data:`KINDS`) of the weight of ``term`` since ``since_epoch`` (reported
    at ``epoch``); ``value``: the weight (collapse, runaway), the loss ratio (stall), the share of the weights
    (data_held_low), the factor the reference term's loss fell (left_behind) or the count (skipped); ``members``:
    the ensemble members it concerns; ``message``: what happened and what to try."""

    kind: str
    term: str
    epoch: int
    since_epoch: int
    value: float
    members: list = field(default_factory=list)
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class WeightWatch(Callback):
    """Detects collapsing, runaway, stalled and skipped loss weights at evaluation boundaries.

    Args:
        collapse: report a weight below ``collapse`` x its start value that is still falling (0 < x < 1).
        runaway: report a weight above this (> 1).
        stall_epochs, stall_drop, stall_factor: report a term whose loss fell by less than the fraction
            ``stall_drop`` over ``stall_epochs`` epochs while its weight changed by a factor ``stall_factor``
            or more.
        stall_share: a run planned shorter than ``stall_epochs / stall_share`` epochs compares windows
            ``max(STALL_FLOOR, stall_share x its epochs)`` apart instead (0: always ``stall_epochs``; a window
            as long as the run would never report).
        data_held: report an observation term (``Term.observed``) whose share of the weights (its weight over
            the largest weight of the other terms, each over its start) stayed below ``data_held`` for a whole
            stall window (0 < x < 1).
        echo: print each report as it is found (``False``: only record it).

    ``reports`` holds every report of this watcher (a trainer keeps one watcher over its ``train()`` calls,
    so a finding is reported once per run).
    """

    def __init__(self, *, collapse: float = 1e-2, runaway: float = 1e5, stall_epochs: int = 1000,
                 stall_drop: float = 0.1, stall_factor: float = 10.0, stall_share: float = 0.5,
                 data_held: float = DATA_HELD, echo: bool = True) -> None:
        self.collapse = check_number("collapse", collapse, minimum=0, maximum=1, low_open=True, high_open=True)
        self.runaway = check_number("runaway", runaway, minimum=1, low_open=True)
        self.stall_epochs = check_int("stall_epochs", stall_epochs, minimum=1)
        self.stall_drop = check_number("stall_drop", stall_drop, minimum=0, maximum=1, high_open=True)
        self.stall_factor = check_number("stall_factor", stall_factor, minimum=1, low_open=True)
        self.stall_share = check_number("stall_share", stall_share, minimum=0, maximum=1)
        self.data_held = check_number("data_held", data_held, minimum=0, maximum=1, low_open=True, high_open=True)
        #: The stall window of the running call (epochs): ``stall_epochs``, or less for a short run.
        self.stall_window = self.stall_epochs
        self._planned = 0
        self.echo = bool(echo)
        #: Show reports above a progress bar (set by :meth:`Trainer.train` from its ``progress``).
        self.progress = False
        self.reports: list[WeightReport] = []
        self._reported: dict[tuple[str, str], set[int]] = {}  # (kind, term) -> the members already named
        self._start: Optional[np.ndarray] = None  # [S, K] the weights before the first epoch watched
        self._first_level: Optional[np.ndarray] = None  # [S, K] the loss level of the first window
        self._progress = LeftBehind(DOMINANCE, self.runaway)  # the left_behind rule's state
        self._call_first = 0

    # ------------------------------------------------------------------------------------ the hooks
    def on_train_begin(self, trainer: "Trainer", epochs: int) -> None:
        w = trainer.weighter
        self._call_epoch0 = trainer.epoch  # the epoch of row 0 of this call's log
        self._row = 0  # the first log row not yet watched
        self._call_first = len(self.reports)
        self._planned = trainer.epoch + int(epochs)  # the run's length once this call ends
        self.stall_window = stall_window(self.stall_epochs, self.stall_share, self._planned)
        self._skipped = None if w.skipped is None else w.skipped.clone()
        if self._start is None and w.lam_applied is not None:
            # The start is the weights before epoch 0; a trainer resumed later started, as every scheme
            # does, from weights 1.
            start = w.lam_applied.detach().cpu().numpy().astype(np.float64)
            self._start = start if trainer.epoch == 0 else np.ones_like(start)
            self._previous = self._start.copy()  # [S, K] the weights at the last boundary
            self._below_since = np.full(self._start.shape, -1, dtype=np.int64)
            self._held_since = np.full(self._start.shape, -1, dtype=np.int64)  # data_held_low's "since when"
            self._points: list[tuple[int, np.ndarray, np.ndarray]] = [(trainer.epoch, None, self._start)]

    def on_eval(self, trainer: "Trainer", epoch: int, info: dict[str, Any]) -> Optional[bool]:
        log = trainer.running_log
        end = epoch - self._call_epoch0
        if log is None or end <= self._row or self._start is None:
            return None
        first_epoch = self._call_epoch0 + self._row
        found = self._findings(trainer, log.weights[self._row:end], log.losses[self._row:end], first_epoch, epoch)
        self._row = end
        for report in found:
            self._report(trainer, report)
        return None

    def call_reports(self) -> list[dict[str, Any]]:
        """The reports of the running (or last) ``train()`` call, as dicts (``History.extra["weight_warnings"]``)."""
        return [r.to_dict() for r in self.reports[self._call_first:]]

    def already_reported(self, reports: list[dict[str, Any]]) -> None:
        """Mark earlier reports (e.g. from the history of a run being resumed) as made: not repeated."""
        for r in reports:
            self._reported.setdefault((r["kind"], r["term"]), set()).update(int(m) for m in r["members"])

    def _new(self, kind: str, term: str, members: Any) -> np.ndarray:
        """``members`` less those already named in a report of this kind on this term."""
        said = self._reported.get((kind, term), ())
        return np.array([int(m) for m in members if int(m) not in said], dtype=np.int64)

    # ---------------------------------------------------------------------------------- the checks
    def _findings(self, trainer: "Trainer", W: torch.Tensor, L: torch.Tensor, first_epoch: int,
                  epoch: int) -> list[WeightReport]:
        """Everything wrong in the window ``W``/``L`` ``[E, S, K]`` of epochs ``first_epoch ..`` up to ``epoch``."""
        weighter = trainer.weighter
        names = list(trainer.problem.term_names)
        # [K] the weights a scheme moves (fixed weights, PINN's included, are the user's choice)
        watched = np.array(weighter.adaptive_mask, dtype=bool) & bool(getattr(weighter, "dynamic", True))
        # Aggregators (PCGrad, MGDA, ...) pick a direction each step: their weights may be 0 or large by design.
        aggregates = bool(getattr(weighter, "aggregates", False))
        # One transfer per boundary: what the window says, reduced on the device.
        start = torch.as_tensor(self._start, dtype=W.dtype, device=W.device)
        low = W < self.collapse * start
        high = W > self.runaway
        bad = ~torch.isfinite(W)
        observed = np.array([bool(getattr(t, "observed", False)) for t in getattr(trainer.problem, "terms", ())]
                            or [False] * len(names))
        up = weight_share(W / start, observed) >= self.data_held  # [E, S, K] an observation term not held low
        E = W.shape[0]
        def first_of(m: torch.Tensor) -> torch.Tensor:  # [S, K] the first row where m holds, E where never
            return torch.where(m.any(0), m.to(W.dtype).argmax(0), torch.full_like(m[0], E, dtype=torch.int64))

        # The loss of a window: its geometric mean (Adam's spikes barely move it; a stalled loss stays put).
        l_level = L.double().abs().clamp_min(1e-300).log().mean(0).exp()
        # [S, K] the last row at or above data_held x its start, -1 where none
        up_last = torch.where(up.any(0), E - 1 - up.flip(0).to(W.dtype).argmax(0),
                              torch.full_like(up[0], -1, dtype=torch.int64))
        l_start = L[:START_EPOCHS].double().abs().clamp_min(1e-300).log().mean(0).exp()  # used from the first window
        stacked = torch.stack([W[-1].double(), W.amax(0).double(), l_level, L.double().amin(0),
                               first_of(low).double(), first_of(high).double(), first_of(bad).double(),
                               up_last.double(), l_start, L[0].double()]).cpu().numpy()
        w_last, w_max, l_level, l_best, low_at, high_at, bad_at, up_last, l_start, l_first = stacked
        skipped = None
        if weighter.skipped is not None and self._skipped is not None:
            skipped = (weighter.skipped - self._skipped).cpu().numpy()
        out: list[WeightReport] = []
        scheme = trainer.scheme
        ref = names[trainer.problem.reference_term] if getattr(scheme, "uses_reference", False) else None
        for k, name in enumerate(names):
            members = self._new("skipped", name, np.nonzero(skipped[:, k])[0]) if skipped is not None else []
            if len(members):
                n = int(skipped[members, k].sum())
                fitted = bool((l_best[members, k] == 0).any())  # a loss of exactly 0 has a zero gradient
                untrained = first_epoch == 0 and bool((l_first[members, k] == 0).any())  # 0 before any step
                out.append(self._skip_report(name, first_epoch, epoch, n, list(members), fitted,
                                             float(w_max[members, k].max()), untrained))
            if not watched[k]:
                continue
            members = self._new("nonfinite", name, np.nonzero(bad_at[:, k] < E)[0])
            if len(members):
                since = first_epoch + int(bad_at[members, k].min())
                out.append(WeightReport("nonfinite", name, epoch, since, float("nan"), members.tolist(),
                                        f"λ_{name} is not finite since epoch {since}"
                                        f"{members_note(members, W.shape[1])}: "
                                        "lower the learning rate, bound the weights with --weight-max, "
                                        "or use --scheme pinn"))
            if aggregates:  # each step's combination coefficients: small or large ones are the method working
                continue
            for s in range(W.shape[1]):  # since when each member's weight has been below the threshold
                if w_last[s, k] >= self.collapse * self._start[s, k]:
                    self._below_since[s, k] = -1  # back above: a later dip starts afresh
                elif self._below_since[s, k] < 0:
                    self._below_since[s, k] = first_epoch + int(low_at[s, k])
            falling = (w_last[:, k] < self.collapse * self._start[:, k]) & (w_last[:, k] < self._previous[:, k])
            members = self._new("collapse", name, np.nonzero(falling)[0])
            if len(members):
                out.append(self._collapse_report(name, ref, epoch, members, w_last[:, k], W.shape[1], k, scheme))
            members = self._new("runaway", name, np.nonzero(high_at[:, k] < E)[0])
            if len(members):
                since = first_epoch + int(high_at[members, k].min())
                top = float(w_max[members, k].max())
                hint = (f"the gradient of '{name}' is tiny next to that of the reference term '{ref}' (terms with "
                        "few points or a high derivative order make this ratio huge)" if ref else
                        f"the scheme gives '{name}' ever more weight")
                out.append(WeightReport(
                    "runaway", name, epoch, since, top, members.tolist(),
                    f"λ_{name} ran away to {top:.1e} (above {self.runaway:g}) since epoch {since}"
                    f"{members_note(members, W.shape[1])}: {hint}; {remedies(scheme, 'max', 'smoother')}"))
        if not aggregates:
            out += self._stall_reports(names, watched, epoch, l_level, l_best, w_last, scheme)
            out += self._held_reports(names, observed, bool(watched.any()), first_epoch, epoch, up_last, l_level,
                                      w_last, scheme)
            if ref is not None and watched.any():
                out += self._behind(names, names.index(ref), epoch, l_start, l_level, w_last, w_max, watched, scheme)
        self._previous = np.where(np.isfinite(w_last), w_last, self._previous)
        if skipped is not None:
            self._skipped = weighter.skipped.clone()
        return out

    def _collapse_report(self, name: str, ref: Optional[str], epoch: int, members: np.ndarray, w: np.ndarray,
                         S: int, k: int, scheme: Any) -> WeightReport:
        value = float(w[members].min())
        s = int(members[np.argmin(w[members])])
        share = value / self._start[s, k]
        since = int(self._below_since[members, k][self._below_since[members, k] >= 0].min(initial=epoch))
        why = (f"the gradient of the reference term '{ref}' is small next to that of '{name}', often because a "
               f"trivial solution (u ≈ 0) satisfies the PDE, so '{name}' is all but ignored" if ref else
               f"the scheme has all but switched off '{name}'")
        return WeightReport(
            "collapse", name, epoch, since, value, members.tolist(),
            f"λ_{name} collapsed to {value:.1e} by epoch {epoch} ({100 * share:.2g}% of its start "
            f"{self._start[s, k]:.3g}; below {self.collapse:g}x since epoch {since}){members_note(members, S)}: {why}; "
            f"{remedies(scheme, 'smoother', 'min', 'warmup')}")

    def _skip_report(self, name: str, first_epoch: int, epoch: int, n: int, members: list, fitted: bool,
                     weight: float, untrained: bool) -> WeightReport:
        return WeightReport(
            "skipped", name, epoch, first_epoch, float(n), [int(m) for m in members],
            f"term {name!r}: {n} weight update(s) between epochs {first_epoch} and {epoch} kept the previous weight "
            f"because a gradient statistic (of this term or the reference term) was zero or not finite: "
            f"{skip_cause(name, fitted, untrained, weight, LARGE_WEIGHT)}")

    def _stall_reports(self, names: list[str], watched: np.ndarray, epoch: int, l_level: np.ndarray,
                       l_best: np.ndarray, w_last: np.ndarray, scheme: Any = None) -> list[WeightReport]:
        """A stall: even the best loss of this window is not ``stall_drop`` below the level (geometric mean)
        of the window ``stall_window`` epochs earlier, while the weight moved ``stall_factor``x since then or is held
        at ``1/stall_factor`` of its start or less (a weight that fell in the first updates, before any window to
        compare with, as bias correction makes it: issue 18's Klein-Gordon)."""
        if self._first_level is None:
            self._first_level = l_level
        self._points.append((epoch, l_level, w_last))
        then = [p for p in self._points if p[1] is not None and p[0] <= epoch - self.stall_window]
        # Keep only what a later boundary can still compare with: the newest point old enough, and younger ones.
        if then:
            self._points = [p for p in self._points if p[0] >= then[-1][0]]
        if not then:
            return []
        e0, l0, w0 = then[-1]
        out = []
        with np.errstate(divide="ignore", invalid="ignore"):
            moved = ((np.maximum(w_last / w0, w0 / w_last) >= self.stall_factor)
                     | (w_last <= self._start / self.stall_factor))
            # a weight coming down from a peak while still at or above its start gives the term no less than
            # PINN would: DN's boundary weight on the user trial's holed square fell 307 -> 25 while L_holes sat
            # at 3e-4, in the best run of the comparison (5e-3 against PINN's 0.17)
            moved &= ~((w_last < w0) & (w_last >= self._start))
            # a loss 1e4 below where it began has converged: it has nothing left to stall
            stalled = (l_best > (1.0 - self.stall_drop) * l0) & (l_best > CONVERGED * self._first_level)
        for k, name in enumerate(names):
            members = (self._new("stall", name, np.nonzero(moved[:, k] & stalled[:, k] & np.isfinite(l_best[:, k]))[0])
                       if watched[k] else [])
            if len(members):
                s = int(members[0])
                # a loss that grew under its weight is said to have risen: "stalled" would understate it
                verb = "rose" if l_best[s, k] > (1.0 + self.stall_drop) * l0[s, k] else "stalled"
                out.append(WeightReport(
                    "stall", name, epoch, e0, float(l_best[s, k] / l0[s, k]), members.tolist(),
                    f"L_{name} {verb} from epoch {e0} to {epoch} ({l0[s, k]:.2e} -> at best {l_best[s, k]:.2e}) while "
                    f"λ_{name} went from {w0[s, k]:.3g} to {w_last[s, k]:.3g} "
                    f"({share_text(w_last[s, k] / self._start[s, k])} "
                    f"its start){members_note(members, len(w_last))}{self._window_note()}: the "
                    f"weight is not helping this term; {remedies(scheme, 'min', 'max', 'smoother')}"))
        out += self._dominated_reports(names, watched, epoch, e0, l0, l_best, w_last, stalled, scheme)
        return out

    def _held_reports(self, names: list[str], observed: np.ndarray, adaptive: bool, first_epoch: int, epoch: int,
                      up_last: np.ndarray, level: np.ndarray, w_last: np.ndarray, scheme: Any) -> list[WeightReport]:
        """An observation term (``observed`` ``[K]``) whose share of the weights
        (:func:`~fastpinn.weight_advice.weight_share`) was below ``data_held`` at every epoch of the last
        ``stall_window`` epochs (``up_last`` ``[S, K]``: this window's last row at or above it, -1 where none),
        its loss (``level``: this window's) not converged (below ``CONVERGED`` x the first window's), in a
        scheme whose weights adapt (``adaptive``). The term's own weight need not move: with the observations
        as the reference term the others rise instead."""
        held = self._held_since
        # below since the epoch after the last one at or above (this window's), or since it was before
        held[:] = np.where(up_last >= 0, first_epoch + up_last + 1, np.where(held < 0, first_epoch, held))
        out = []
        if not adaptive:
            return out
        for k, name in enumerate(names):
            if not observed[k]:
                continue
            long_enough = (held[:, k] >= 0) & (epoch - held[:, k] >= self.stall_window)
            fitted = level[:, k] <= CONVERGED * self._first_level[:, k]  # nothing left to fit: harmless
            members = self._new("data_held_low", name, np.nonzero(long_enough & ~fitted)[0])
            if len(members):
                out.append(self._held_report(names, k, epoch, members, held[members, k], w_last, observed, scheme))
        return out

    def _held_report(self, names: list[str], k: int, epoch: int, members: np.ndarray, since: np.ndarray,
                     w: np.ndarray, observed: np.ndarray, scheme: Any) -> WeightReport:
        """The ``data_held_low`` report of term ``names[k]`` on ``members`` (held since ``since``; weights ``w``
        ``[S, K]`` at ``epoch``): the lowest member's share, against which term, why it matters, what to try."""
        name = names[k]
        rel = w / self._start
        share = weight_share(rel, observed)[:, k]
        s = int(members[np.argmin(share[members])])
        others = [j for j in range(len(names)) if not observed[j]] or [k]
        top = others[int(np.argmax(rel[s, others]))]
        against = (f" ({100 * share[s]:.3g}% of its start)" if top == k else
                   f" against λ_{names[top]} {w[s, top]:.3g} ({100 * share[s]:.3g}% of it, over the starts)")
        declared = declared_parameters(scheme)
        if rel[s, k] < self.data_held and "weight_min" in declared:  # the observations' own weight came down
            # measured on the trial's problem (3 seeds, 3,000 epochs): DN β = 0.99 0.21 rel. L2, with
            # --weight-min 0.3 / 0.5 / 1: 0.16 / 0.11 / 0.080, PINN 0.080; a warm-up of a third 0.13
            bound = getattr(scheme, "weight_min", None)
            tip = ("a lower bound --weight-min 1 (the observations never weighted below PINN's 1), or " if bound is None
                   else f"a higher --weight-min than {bound:g} (e.g. 1: never below PINN's weight), or ")
        elif rel[s, k] >= self.data_held and "weight_max" in declared:  # the other weights went up instead
            # measured: DN β = 0.99 with 'obs' as the reference 0.18 rel. L2 (λ_pde 20-45), with --weight-max 1 0.081
            bound = getattr(scheme, "weight_max", None)
            tip = ("an upper bound --weight-max 1 (no term weighted above the observations), or " if bound is None
                   else f"a lower --weight-max than {bound:g} (e.g. 1: no term above the observations), or ")
        else:
            tip = ""
        return WeightReport(
            "data_held_low", name, epoch, int(since.min()), float(share[s]), members.tolist(),
            f"λ_{name} held below {self.data_held:g}x the largest other weight (each over its start; PINN keeps "
            f"them equal) since epoch {int(since.min())}: λ_{name} {w[s, k]:.3g}{against} at epoch {epoch}"
            f"{members_note(members, len(self._start))}{self._window_note()}: '{name}' holds the "
            "observations, which alone identify the unknowns of an inverse problem; the PDE with an unknown "
            "coefficient or field is met by many solutions, so its gradient is small and the scheme gives the data "
            f"a small share (the fit to the observations suffers, and the unknowns with it); try {tip}--scheme pinn")

    def _dominated_reports(self, names: list[str], watched: np.ndarray, epoch: int, e0: int, l0: np.ndarray,
                           l_best: np.ndarray, w_last: np.ndarray, stalled: np.ndarray, scheme: Any) -> list[WeightReport]:
        """A stalled term under a weight that did not move much, while another adaptive weight is ``DOMINANCE``x
        or more above it: the other term takes the whole step (the user trial's inverse problem, DN β = 0.9: λ_bc
        at 2.7e4 -- below the runaway threshold -- against λ_obs at 3.4, L_obs flat at 0.54, rel. L2 4.7 against
        PINN's 0.08, and no report)."""
        out = []
        K = len(names)
        for k, name in enumerate(names):
            if not watched[k]:
                continue
            others = [j for j in range(K) if j != k and watched[j]]
            if not others:
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = w_last[:, others] / w_last[:, k:k + 1]  # [S, K-1]
            top = np.nan_to_num(ratio, nan=0.0, posinf=0.0).argmax(1)
            big = ratio[np.arange(len(w_last)), top]
            hit = stalled[:, k] & np.isfinite(l_best[:, k]) & np.isfinite(big) & (big >= DOMINANCE)
            members = self._new("stall", name, np.nonzero(hit)[0])
            if len(members):
                s = int(members[0])
                j = others[int(top[s])]
                out.append(WeightReport(
                    "stall", name, epoch, e0, float(l_best[s, k] / l0[s, k]), members.tolist(),
                    f"L_{name} stalled from epoch {e0} to {epoch} ({l0[s, k]:.2e} -> at best {l_best[s, k]:.2e}) while "
                    f"λ_{names[j]} is {big[s]:.2g}x λ_{name} ({w_last[s, j]:.3g} against {w_last[s, k]:.3g})"
                    f"{members_note(members, len(w_last))}{self._window_note()}: '{names[j]}' takes nearly the "
                    "whole step "
                    f"and '{name}' is all but ignored; {remedies(scheme, 'max', 'smoother')}"))
        return out

    def _behind(self, names: list[str], r: int, epoch: int, l_start: np.ndarray, level: np.ndarray,
                w_last: np.ndarray, w_max: np.ndarray, watched: np.ndarray, scheme: Any) -> list[WeightReport]:
        """``left_behind`` on the reference term ``names[r]``, from one stall window on (the weights settle first)."""
        found = self._progress.check(epoch, l_start, level, w_last, w_max, r, watched)
        members = self._new("left_behind", names[r], np.nonzero(found.hit)[0]) if epoch >= self.stall_window else []
        if not len(members):
            return []
        s, since = int(members[np.argmax(found.lag[members])]), int(self._progress.since[members].min())
        j = int(found.term[s])
        text = left_behind_text(names[r], names[j], epoch, since, found.ref_fell[s], found.other_fell[s],
                                w_last[s, j], w_last[s, j] / w_last[s, r], members_note(members, len(w_last)), scheme)
        return [WeightReport("left_behind", names[r], epoch, since, float(found.ref_fell[s]), members.tolist(), text)]

    def _window_note(self) -> str:
        """`` [stall window 500 epochs for this 1000-epoch run; 1000 in a longer one]``, or nothing at the default."""
        if self.stall_window >= self.stall_epochs:
            return ""
        return (f" [stall window {self.stall_window} epochs for this {self._planned}-epoch run; "
                f"{self.stall_epochs} in a longer one]")

    # ------------------------------------------------------------------------------------ reporting
    def _report(self, trainer: "Trainer", report: WeightReport) -> None:
        said = self._reported.setdefault((report.kind, report.term), set())
        if said.issuperset(report.members):
            return
        said.update(int(m) for m in report.members)
        self.reports.append(report)
        if not self.echo or trainer.rank != 0:
            return
        if self.progress:
            from tqdm.auto import tqdm

            tqdm.write(f"warning: {report.message}", file=sys.stderr)  # above the bar, on its stream
        else:
            warnings.warn(report.message, WeightWarning, stacklevel=_caller_outside_package())


def stall_window(stall_epochs: int, share: float, planned: int) -> int:
    """Epochs between the windows the stall rule compares in a run of ``planned`` epochs: ``stall_epochs``, or
    for a run shorter than ``stall_epochs / share``, ``share`` of it and at least :data:`STALL_FLOOR` (never more
    than ``stall_epochs``). With a fixed 1,000-epoch window a 1,000-epoch run could not report a stall: the user
    trial's inverse problem, DN β = 0.9 at 3.4 rel. L2 against PINN's 0.44, λ_bc 1,300x λ_obs, said nothing."""
    if share <= 0:
        return stall_epochs
    return min(stall_epochs, max(STALL_FLOOR, round(share * planned)))


def _caller_outside_package() -> int:
    """The ``stacklevel`` (counted from the frame that calls this function and then ``warnings.warn``) of the
    innermost frame outside the fastpinn package: the user's ``train()`` call. Counting the frames instead of
    fixing a number keeps it right when the call path changes (a comprehension is one more frame on Python 3.11
    and none on 3.12)."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level

