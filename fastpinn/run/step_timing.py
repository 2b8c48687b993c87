"""Paired step timing: the seconds per epoch of several configurations measured side by side in one process.

Runs trained one after another carry the machine's load changes between them in their wall times (a user
trial's NLS compare: DN+clamp 0.43x and DN 1.50x of PINN for the same cost per step). Here every
configuration's trainer is built on the same problem and short bursts of epochs of each are timed in
interleaved rounds (the order rotating each round); each round's ratio to the baseline's epoch pairs two
measurements a fraction of a second apart, and the median over rounds drops a round a load spike hit.
"""

from __future__ import annotations

import json
import math
import statistics
import warnings
from dataclasses import dataclass, replace
from typing import Callable, Mapping, Optional

from ..validation import check_int, check_number
from .config import RunConfig

__all__ = ["STEP_TIMING_ROUNDS", "STEP_TIMING_SECONDS", "PairedTiming", "paired_ratios", "paired_step_timing",
           "timed_config", "timing_key", "earlier_timing"]

#: Interleaved rounds, and seconds of epochs per configuration per round (calibrated from a short warm-up).
STEP_TIMING_ROUNDS = 3
STEP_TIMING_SECONDS = 0.3

#: ``burst(epochs)`` trains that many epochs and returns their seconds (``None``: it could not, e.g. diverged).
Burst = Callable[[int], Optional[float]]


@dataclass(frozen=True)
class PairedTiming:
    """One configuration's paired timing: ``epoch_seconds`` (median over rounds of its seconds per epoch) and
    ``over_baseline`` (median over rounds of its seconds per epoch over the baseline's in the same round)."""

    epoch_seconds: float
    over_baseline: float


def paired_ratios(bursts: Mapping[str, Burst], *, rounds: Optional[int] = None,
                  seconds: Optional[float] = None) -> dict[str, Optional[PairedTiming]]:
    """Time ``bursts`` (the first is the baseline) in ``rounds`` interleaved rounds (default
    :data:`STEP_TIMING_ROUNDS`) of about ``seconds`` each (default :data:`STEP_TIMING_SECONDS`), after a warm-up
    burst of one epoch and a calibration burst of two; ``None`` for one whose burst failed (every one when the
    baseline's did)."""
    rounds = check_int("rounds", STEP_TIMING_ROUNDS if rounds is None else rounds, minimum=1)
    seconds = check_number("seconds", STEP_TIMING_SECONDS if seconds is None else seconds, minimum=0.0)
    names = list(bursts)
    epochs: dict[str, int] = {}
    for name in names:  # warm-up (first-call costs), then the epochs that make a burst of about `seconds`
        first, calibration = bursts[name](1), bursts[name](2)
        if first is not None and calibration is not None:
            epochs[name] = max(1, min(100_000, math.ceil(seconds / max(calibration / 2, 1e-9))))
    per_epoch: dict[str, list[float]] = {n: [] for n in epochs}
    ratios: dict[str, list[float]] = {n: [] for n in epochs}
    for r in range(rounds):
        this_round: dict[str, float] = {}
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotating order: no fixed neighbour
            if name in epochs:
                t = bursts[name](epochs[name])
                if t is None:
                    del epochs[name]
                else:
                    this_round[name] = t / epochs[name]
        base = this_round.get(names[0])
        for name, t in this_round.items():
            per_epoch[name].append(t)
            if base:
                ratios[name].append(t / base)
    return {n: PairedTiming(statistics.median(per_epoch[n]), statistics.median(ratios[n]))
            if n in epochs and ratios.get(n) else None for n in names}


def _trainer_burst(cfg: RunConfig) -> Burst:
    """Bursts of training epochs of ``cfg``'s trainer (its seconds as ``History.train_seconds`` counts them: no
    warm-up, no evaluation); evaluations only at a burst's end; the weight watcher's reports are not repeated."""
    from ..trainer import NonFiniteError
    from .one_run import build_trainer

    _, trainer = build_trainer(replace(cfg, eval_every=10**9))

    def burst(epochs: int) -> Optional[float]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return trainer.train(epochs, progress=False).train_seconds
        except NonFiniteError:
            return None

    return burst


def paired_step_timing(cfgs: Mapping[str, RunConfig], *, rounds: Optional[int] = None,
                       seconds: Optional[float] = None) -> dict[str, Optional[PairedTiming]]:
    """:func:`paired_ratios` of fresh trainers of ``cfgs`` (the first is the baseline), all alive at once."""
    return paired_ratios({name: _trainer_burst(cfg) for name, cfg in cfgs.items()}, rounds=rounds, seconds=seconds)


def timed_config(cfg: RunConfig) -> RunConfig:
    """``cfg`` as its steps are timed: without a weight warm-up, whose epochs skip the weight updates (a burst
    of the first few hundred epochs would time only those), so the updates come every ``tau`` epochs as after it."""
    if not cfg.scheme_params.get("weight_warmup"):
        return cfg
    return replace(cfg, scheme_params={**cfg.scheme_params, "weight_warmup": 0}).validate()


def timing_key(cfgs: Mapping[str, RunConfig]) -> dict:
    """What a step timing was measured on: every configuration in full (the backend included, which the run
    identity leaves out) and the rounds and burst length, as JSON reads it back."""
    return json.loads(json.dumps({"configs": {n: c.to_dict() for n, c in cfgs.items()},
                                  "rounds": STEP_TIMING_ROUNDS, "seconds": STEP_TIMING_SECONDS}))


def earlier_timing(earlier: Optional[dict], key: dict) -> Optional[dict]:
    """The timings ``{name: [epoch_seconds, over_baseline]}`` of ``earlier`` (a comparison's ``compare.json``: its
    ``step_timing_of`` and its ``rows``, ``step_time_over_pinn`` the ratio) when they were measured on ``key``
    and are complete, else ``None``: a comparison that trains nothing reproduces its table."""
    earlier = earlier or {}
    if earlier.get("step_timing_of") != key:
        return None
    found = {r.get("scheme"): [r.get("epoch_seconds"), r.get("step_time_over_pinn")]
             for r in earlier.get("rows") or [] if isinstance(r, dict)}
    values = [found.get(n) for n in key["configs"]]
    if any(v is None or not all(isinstance(x, (int, float)) for x in v) for v in values):
        return None
    return dict(zip(key["configs"], values))
