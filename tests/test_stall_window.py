"""The stall window scales with a short run: a 1,000-epoch run can report a stall; runs of 2,000 epochs or more
report exactly what they did with the fixed 1,000-epoch window."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from watch_replay import feed

from fastpinn.weight_watch import STALL_FLOOR, WeightWatch, stall_window

NAMES = ("pde", "left", "right")


def robin_id_like(E: int) -> tuple[np.ndarray, np.ndarray]:
    """``[E, 1, 3]`` weights and losses shaped like ID (β = 0.9) on user trial 2's Poisson-Robin problem, 1,000
    epochs (33x PINN's error, no report): λ_left at 1e4-6e4 from epoch 300, λ_right near 1, L_right rising
    3e-3 -> 1e-2 while L_pde falls slowly."""
    w = np.ones((E, 1, 3))
    w[:, 0, 1] = np.minimum(np.logspace(1, 4.5, E) * 30, 3e4)
    w[:, 0, 2] = np.linspace(4.0, 0.8, E)
    losses = np.ones((E, 1, 3))
    losses[:, 0, 0] = np.geomspace(3.0, 0.13, E)
    losses[:, 0, 1] = np.geomspace(1e-4, 1e-12, E)  # fitted ever better under its huge weight
    losses[:, 0, 2] = np.geomspace(3e-3, 1e-2, E)
    return w, losses


def stalls(reports: list) -> list:
    """``reports`` less ``left_behind``: L_pde falls 23x here while L_left falls 1e8x under λ_left ≥ 1e3, so the
    reference term is also left behind (tests/test_weight_progress.py), a rule this file is not about."""
    return [r for r in reports if r.kind != "left_behind"]


def test_a_dominated_term_in_a_1000_epoch_run_is_reported_with_its_window():
    w, losses = robin_id_like(1000)
    # the fixed window: no second window
    assert stalls(feed(WeightWatch(stall_share=0), w, losses, names=NAMES)) == []
    reports = stalls(feed(WeightWatch(), w, losses, names=NAMES))
    assert [(r.kind, r.term, r.epoch, r.since_epoch) for r in reports] == [("stall", "right", 600, 100)]
    assert "λ_left is" in reports[0].message
    assert "[stall window 500 epochs for this 1000-epoch run; 1000 in a longer one]" in reports[0].message


def test_runs_of_2000_epochs_or_more_report_as_with_the_fixed_window():
    for E in (2000, 3000):
        w, losses = robin_id_like(E)
        scaled = stalls(feed(WeightWatch(), w, losses, names=NAMES))
        fixed = stalls(feed(WeightWatch(stall_share=0), w, losses, names=NAMES))
        assert [r.to_dict() for r in scaled] == [r.to_dict() for r in fixed]
        assert scaled and scaled[0].epoch == 1100 and "stall window" not in scaled[0].message


@pytest.mark.parametrize("planned, window", [(300, STALL_FLOOR), (1000, 500), (1500, 750), (2000, 1000),
                                             (30000, 1000)])
def test_the_window_is_half_a_short_run_at_least_the_floor(planned, window):
    assert stall_window(1000, 0.5, planned) == window
    assert stall_window(1000, 0.0, planned) == 1000  # share 0: always the fixed window
    assert stall_window(100, 0.5, planned) == 100  # never longer than stall_epochs


def test_a_resumed_call_counts_the_epochs_already_trained():
    weighter = SimpleNamespace(lam_applied=torch.ones(1, 2), skipped=None)
    watch = WeightWatch()
    watch.on_train_begin(SimpleNamespace(epoch=1500, weighter=weighter), 500)  # 2,000 epochs in all
    assert watch.stall_window == 1000


def test_stall_share_is_checked():
    with pytest.raises(ValueError, match="stall_share"):
        WeightWatch(stall_share=1.5)
