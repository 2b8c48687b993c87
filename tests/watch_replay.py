"""Replay of the weight watcher over given per-epoch weights and losses, shared by the watcher's tests."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

import fastpinn
from fastpinn.weight_watch import WeightWatch


def feed(watch: WeightWatch, weights: np.ndarray, losses: np.ndarray, eval_every: int = 100, *,
         scheme: Any = None, names: Sequence[str] | None = None, observed: Sequence[str] = (),
         reference: int = 0) -> list:
    """Run ``watch``'s hooks over weights/losses ``[E, S, K]`` on a stand-in trainer (term ``reference`` the
    reference, the others adaptive; ``scheme`` default DN, ``names`` default ``("pde", "ic")[:K]``; ``observed``:
    the names of the observation terms, as ``data(...)`` marks them): its reports."""
    E, S, K = weights.shape
    log = SimpleNamespace(weights=torch.tensor(weights), losses=torch.tensor(losses))
    weighter = SimpleNamespace(adaptive_mask=tuple(k != reference for k in range(K)), lam_applied=torch.ones(S, K),
                               skipped=torch.zeros(S, K, dtype=torch.int64))
    names = list(names) if names is not None else ["pde", "ic"][:K]
    trainer = SimpleNamespace(epoch=0, weighter=weighter, running_log=log, rank=0,
                              scheme=fastpinn.DN() if scheme is None else scheme,
                              problem=SimpleNamespace(term_names=names, reference_term=reference,
                                                      terms=[SimpleNamespace(observed=n in observed) for n in names]))
    watch.echo = False
    watch.on_train_begin(trainer, E)
    for epoch in range(eval_every, E + 1, eval_every):
        watch.on_eval(trainer, epoch, {})
    return watch.reports
