"""The weight watcher names a reference term left behind (left_behind): user trial 3's silent case, DN β = 0.9 on
the elastic plate, 2.3-4x PINN's error with boundary weights of 2e4-3e4 (below the runaway threshold) and L_pde
still falling 15-20 % per 1,000 epochs (no stall) -- 6 of 7 members had no report
(bench/results/weights-silent-cases-*.md, section 6)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from watch_replay import feed

from fastpinn import cli
from fastpinn.weight_progress import LAG, REF_FELL, progress_gap
from fastpinn.weight_watch import DOMINANCE, KINDS, WeightWatch

PLATE = ("pde", "sides_uy", "bottom", "top_ux")

# `fastpinn compare bench/trials/elasticity_plate.py:make_problem --schemes pinn,dn --seeds 2 --epochs 3000`, DN's
# member 1 (rel. L2 0.510 against PINN's 0.146 ± 0.017, no report): per 100-epoch window, the geometric mean of each
# loss and the weight at the window's end, from the run's history.npz (3 significant digits; the traction terms,
# weighted 60-1,200, left out).
L_PDE = [798, 244, 52.0, 23.7, 15.2, 11.4, 9.47, 8.44, 7.76, 7.21, 6.73, 6.32, 5.93, 5.66, 5.41, 5.19, 4.97, 4.8, 4.63,
         4.48, 4.35, 4.21, 4.08, 4.01, 3.94, 3.87, 3.81, 3.72, 3.64, 3.55]
L_SIDES = [0.012, 0.0026, 0.000547, 0.000138, 9.95e-05, 8.85e-05, 8.39e-05, 4.78e-05, 4.39e-05, 3.52e-05, 2.38e-05,
           2.33e-05, 2.04e-05, 2.26e-05, 1.51e-05, 1.76e-05, 1e-05, 8.32e-06, 1.66e-05, 7.13e-06, 9.68e-06, 1.02e-05,
           5.71e-06, 4.54e-06, 8.59e-06, 3.71e-06, 4.56e-06, 3.29e-06, 5.35e-06, 5.15e-06]
W_SIDES = [1200, 3580, 5370, 6680, 6770, 6680, 8740, 11400, 11700, 13500, 13000, 13500, 11700, 15300, 18100, 15300,
           17400, 19500, 12600, 16500, 17600, 19200, 21600, 21700, 17600, 24300, 29200, 25500, 15700, 19600]
L_BOTTOM = [0.0816, 0.0201, 0.00273, 0.000388, 5.96e-05, 2.87e-05, 3.88e-05, 1.81e-05, 1.33e-05, 1.36e-05, 7.22e-06,
            7.61e-06, 5.65e-06, 7.1e-06, 5.19e-06, 6.98e-06, 3.76e-06, 2.74e-06, 7.42e-06, 2.66e-06, 4.73e-06, 4.2e-06,
            2.21e-06, 1.82e-06, 4.88e-06, 1.65e-06, 2.5e-06, 1.56e-06, 2.53e-06, 2.43e-06]
W_BOTTOM = [243, 792, 1750, 2990, 5660, 9530, 8760, 14300, 13200, 13200, 17400, 15400, 16100, 20900, 23100, 18600,
            21400, 22100, 14400, 20200, 17700, 17500, 36300, 27600, 19700, 28800, 26400, 28600, 19500, 26200]
L_TOP = [0.0728, 0.0347, 0.00251, 0.000282, 8.24e-05, 4.57e-05, 3.79e-05, 2.47e-05, 2.27e-05, 1.33e-05, 1.55e-05,
         1.28e-05, 2.87e-05, 1.34e-05, 5.82e-06, 9.35e-06, 5.14e-06, 4.49e-06, 1.24e-05, 5.19e-06, 6.24e-06, 1.25e-05,
         4.1e-06, 1.82e-06, 4.31e-06, 2.11e-06, 2.75e-06, 2.44e-06, 6.2e-06, 6.77e-06]
W_TOP = [224, 586, 1780, 2740, 3880, 5140, 5630, 7280, 7650, 10200, 10500, 11400, 13500, 13100, 18600, 14900, 17200,
         16800, 13800, 18400, 14600, 19000, 17800, 29000, 20400, 24700, 30900, 25000, 18400, 29900]

# The paper's 2-D Poisson (Table 2 at its protocol, /work/runs/table2/dn-b0.9), DN β = 0.9, seed 1: rel. L2 9.6e-4
# against PINN's 0.17 at 30,000 epochs; λ_bc at 1.8e3-2.1e4 in the first 3,000 epochs, but L_pde falls as far as L_bc.
T2_PDE = [20100, 12100, 777, 149, 62.4, 26.7, 15.9, 11.3, 8.46, 7.08, 4.87, 4.65, 3.53, 4.36, 2.75, 2.49, 2.27, 3.17,
          1.95, 2.89, 1.76, 1.62, 1.53, 2.48, 1.39, 1.81, 1.47, 1.73, 1.4, 1.12]
T2_BC = [0.503, 0.357, 0.149, 0.0546, 0.0183, 0.00453, 0.00115, 0.000359, 0.000151, 9.3e-05, 3.55e-05, 4.83e-05,
         2.13e-05, 5.99e-05, 1.64e-05, 1.47e-05, 1.32e-05, 5.52e-05, 1.01e-05, 2.92e-05, 1.16e-05, 7.7e-06, 7.14e-06,
         2.72e-05, 6.32e-06, 1.33e-05, 9.84e-06, 1.11e-05, 1.34e-05, 5.03e-06]
T2_W = [1830, 2770, 3210, 3280, 3690, 4410, 7420, 12500, 16400, 17700, 19500, 20100, 20100, 16500, 16600, 16700, 16400,
        19200, 18700, 21300, 18300, 18500, 18600, 19800, 19300, 19700, 19500, 20700, 15700, 15800]

# The plate again, DN β = 0.9 with a warm-up of 500 epochs (`dn+warmup`, 1,500 epochs, member 1): rel. L2 0.118
# against PINN's 0.308 -- the healthy run closest to the rule (L_pde fell 1,350x by the time a displacement term
# was 30x further).
WU_PDE = [717, 155, 19.7, 4.64, 2.28, 1.66, 1.48, 1.33, 1.13, 0.859, 0.702, 0.59, 0.532, 0.498, 0.477]
WU_SIDES = [0.201, 0.442, 0.476, 0.298, 0.212, 0.119, 0.0448, 0.00886, 0.00022, 5.54e-05, 1.78e-05, 1.89e-05,
            9.33e-06, 1.87e-05, 3.9e-06]
WU_W_SIDES = [1, 1, 1, 1, 1, 8.55, 21.1, 93.0, 635, 1810, 2230, 2550, 4270, 3540, 9010]
WU_BOTTOM = [0.541, 1.57, 2.52, 1.36, 0.675, 0.285, 0.0697, 0.00663, 0.000262, 5.22e-05, 1.89e-05, 2.23e-05,
             8.66e-06, 1.64e-05, 4.47e-06]
WU_W_BOTTOM = [1, 1, 1, 1, 1, 3.07, 7.46, 64.6, 707, 1320, 2090, 2000, 3230, 2950, 5650]


def windows(losses: list, weights: list) -> tuple[np.ndarray, np.ndarray]:
    """``[100 x windows, 1, K]`` weights and losses, each window's values held for its 100 epochs (term 0 the
    reference, weight 1)."""
    n = len(losses[0])
    w = np.stack([np.ones(n)] + [np.asarray(x, dtype=np.float64) for x in weights], -1)
    ls = np.stack([np.asarray(x, dtype=np.float64) for x in losses], -1)
    return np.repeat(w, 100, 0)[:, None, :], np.repeat(ls, 100, 0)[:, None, :]


def plate(n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    w, losses = windows([L_PDE, L_SIDES, L_BOTTOM, L_TOP], [W_SIDES, W_BOTTOM, W_TOP])
    return w[:100 * n], losses[:100 * n]


def test_the_plates_silent_dn_member_is_reported_naming_the_pde():
    w, losses = plate()
    reports = feed(WeightWatch(), w, losses, names=PLATE)
    # behind from epoch 800 on; said after a stall window (1,000 epochs in a 3,000-epoch run): by epoch 1,000 L_pde
    # fell 111x from its first window while L_bottom (λ 1.3e4) fell 6,000x, 54x further
    assert [(r.kind, r.term, r.epoch, r.since_epoch, r.members) for r in reports] == [
        ("left_behind", "pde", 1000, 800, [0])]
    assert reports[0].value == pytest.approx(798 / 7.21, rel=1e-6)  # the factor L_pde fell
    message = reports[0].message
    assert message.startswith("L_pde left behind since epoch 800: by epoch 1000 it fell 111x from its start (first "
                              "100 epochs) while L_bottom, under λ_bottom = 1.3e+04 (1.3e+04x λ_pde), fell 6e+03x "
                              "(54.2x further)")
    assert "--beta 0.99" in message and "--weight-max" in message and "--weight-warmup" in message
    assert "--scheme pinn" in message
    # said once, not at every later boundary
    watch = WeightWatch()
    feed(watch, w, losses, names=PLATE)
    assert len(watch.reports) == 1


def test_the_same_case_in_a_short_run_is_reported_after_half_of_it():
    # a 1,000-epoch run compares from epoch 500 on (half of it, the short run's stall window): at 500 the gap is
    # 26x (L_bottom fell 1,370x, L_pde 52x), at 600 it is 30x or more
    w, losses = plate(10)
    assert [(r.kind, r.epoch, r.since_epoch) for r in feed(WeightWatch(), w, losses, names=PLATE)] == [
        ("left_behind", 600, 600)]
    assert feed(WeightWatch(), w[:500], losses[:500], names=PLATE) == []


def test_the_papers_poisson_with_weights_as_large_is_not_reported():
    w, losses = windows([T2_PDE, T2_BC], [T2_W])
    assert feed(WeightWatch(), w, losses, names=("pde", "bc")) == []


def test_the_plates_healthy_warm_up_run_is_not_reported():
    w, losses = windows([WU_PDE, WU_SIDES, WU_BOTTOM], [WU_W_SIDES, WU_W_BOTTOM])
    assert feed(WeightWatch(), w, losses, names=PLATE[:3]) == []


def test_a_member_whose_weight_ran_away_gets_the_runaway_report_instead():
    w, losses = plate()
    w = np.concatenate([w, w * np.array([1, 10, 10, 10])], axis=1)  # member 1: weights above 1e5 by epoch 800
    w[:, 1, 1:] = np.minimum(w[:, 1, 1:], 9e4)
    w[700:, 1, 1] = 2e5
    losses = np.concatenate([losses, losses], axis=1)
    reports = feed(WeightWatch(), w, losses, names=PLATE)
    assert [(r.kind, r.term, r.epoch, r.members) for r in reports] == [
        ("runaway", "sides_uy", 800, [1]), ("left_behind", "pde", 1000, [0])]


def test_terms_under_moderate_weights_do_not_count():
    # the same losses under weights below DOMINANCE x the reference's (MA on Poisson-Robin stays at 30-1,200):
    # nothing, whatever the gap in progress
    w, losses = plate()
    w = np.minimum(w, 0.9 * DOMINANCE)
    assert feed(WeightWatch(), w, losses, names=PLATE) == []


def test_progress_gap_thresholds():
    first = np.array([[100.0, 1.0, 1.0]])
    watched = np.array([False, True, True])
    weights = np.array([[1.0, 2e3, 10.0]])
    # the reference fell 100x, term 1 (weighted 2e3) 1e4x: 100x further -> behind; term 2 is not weighted enough
    p = progress_gap(first, np.array([[1.0, 1e-4, 1e-9]]), weights, 0, watched, dominance=DOMINANCE)
    assert p.hit.tolist() == [True] and p.term.tolist() == [1]
    assert p.ref_fell[0] == pytest.approx(100) and p.other_fell[0] == pytest.approx(1e4) and p.lag[0] == pytest.approx(100)
    # the reference fell REF_FELL x or more: it kept up, whatever the others did
    p = progress_gap(first, np.array([[100 / REF_FELL, 1e-9, 1.0]]), weights, 0, watched, dominance=DOMINANCE)
    assert not p.hit[0]
    # the other term only LAG / 2 x further: not behind
    p = progress_gap(first, np.array([[1.0, 1 / (100 * LAG / 2), 1.0]]), weights, 0, watched, dominance=DOMINANCE)
    assert not p.hit[0] and p.lag[0] == pytest.approx(LAG / 2)
    # no term weighted DOMINANCE x the reference: nothing to compare with
    p = progress_gap(first, np.array([[1.0, 1e-9, 1e-9]]), np.array([[1.0, 10.0, 10.0]]), 0, watched,
                     dominance=DOMINANCE)
    assert not p.hit[0] and p.term[0] == -1
    assert "left_behind" in KINDS


def test_a_plate_run_reports_it_in_metrics_json(tmp_path):
    # the real thing, short: `fastpinn train ... elasticity_plate.py:make_problem --scheme dn --beta 0.9` (1 seed,
    # 1,000 epochs: rel. L2 0.56, PINN 0.38, the default β = 0.99 0.12 with no report) says it at epoch 1,000;
    # before, nothing
    out = tmp_path / "plate"
    rc = cli.main(["train", "bench/trials/elasticity_plate.py:make_problem", "--scheme", "dn", "--beta", "0.9",
                   "--seeds", "1", "--epochs", "1000", "--no-progress", "--no-figures", "--out", str(out)])
    assert rc == 0
    warnings = json.loads((out / "metrics.json").read_text())["weight_warnings"]
    assert [(r["kind"], r["term"], r["epoch"]) for r in warnings] == [("left_behind", "pde", 1000)]
    assert "--beta 0.99" in warnings[0]["message"]
