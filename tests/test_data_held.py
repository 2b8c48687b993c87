"""The weight watcher names an observation term whose weight a scheme holds far below its start (data_held_low):
user trial 2's silent case, DN (β = 0.99) 2.6x worse than PINN on the reaction-rate inverse problem with no
report (bench/results/weights-silent-cases-*.md, section 5)."""

from __future__ import annotations

import numpy as np
import pytest
from watch_replay import feed

from fastpinn.weight_watch import DATA_HELD, KINDS, WeightWatch

NAMES = ("pde", "bc", "obs")

# `fastpinn compare bench/trials/reaction_rate_inverse.py:make_problem --schemes pinn,dn+beta=0.99 --seeds 3
# --epochs 3000`, DN's member 1 (rel. L2 0.355 against PINN's 0.080 ± 0.017): per 100-epoch window, the largest
# weight and the geometric mean of each loss, from the run's history.npz (3 significant digits).
W_BC = [0.994, 0.949, 0.895, 0.83, 0.786, 0.721, 0.66, 0.607, 0.559, 0.512, 0.468, 0.429, 0.394, 0.364, 0.337,
        0.315, 0.294, 0.276, 0.26, 0.245, 0.232, 0.219, 0.208, 0.197, 0.188, 0.178, 0.17, 0.162, 0.154, 0.147]
W_OBS = [0.994, 0.931, 0.897, 0.829, 0.772, 0.706, 0.647, 0.595, 0.548, 0.503, 0.46, 0.421, 0.386, 0.356, 0.328,
         0.304, 0.282, 0.262, 0.244, 0.227, 0.212, 0.198, 0.185, 0.173, 0.161, 0.151, 0.141, 0.132, 0.123, 0.115]
L_PDE = [0.485, 0.22, 0.0558, 0.0155, 0.0185, 0.0234, 0.0214, 0.0131, 0.00511, 0.00184, 0.0011, 0.000852,
         0.000662, 0.000525, 0.000434, 0.000371, 0.000324, 0.000287, 0.000257, 0.00023, 0.000207, 0.000186,
         0.000168, 0.000151, 0.000137, 0.000124, 0.000113, 0.000104, 9.65e-05, 9.02e-05]
L_BC = [0.0711, 0.166, 0.0823, 0.0383, 0.0452, 0.0434, 0.0356, 0.0258, 0.0158, 0.00848, 0.00449, 0.00263, 0.00178,
        0.00134, 0.00108, 0.000914, 0.000793, 0.000698, 0.000619, 0.000552, 0.000493, 0.000441, 0.000395,
        0.000354, 0.000318, 0.000286, 0.000257, 0.000232, 0.000209, 0.000189]
L_OBS = [0.692, 0.457, 0.436, 0.359, 0.252, 0.18, 0.132, 0.0953, 0.064, 0.0423, 0.0323, 0.0284, 0.0265, 0.0249,
         0.0236, 0.0223, 0.0211, 0.02, 0.019, 0.0179, 0.017, 0.0161, 0.0153, 0.0145, 0.0137, 0.013, 0.0124, 0.0118,
         0.0112, 0.0106]


def reproduction(windows: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """``[100 windows, 1, 3]`` weights and losses, each window's values held for its 100 epochs."""
    w = np.stack([np.ones(30), W_BC, W_OBS], -1)[:windows]
    losses = np.stack([L_PDE, L_BC, L_OBS], -1)[:windows]
    return np.repeat(w, 100, 0)[:, None, :], np.repeat(losses, 100, 0)[:, None, :]


def test_the_trials_dn_run_on_the_inverse_problem_is_reported_naming_the_observations():
    w, losses = reproduction()
    reports = feed(WeightWatch(), w, losses, names=NAMES, observed=("obs",))
    # λ_obs is below 0.3 from epoch 1600 (0.282 in that window, 0.304 before): a whole 1,000-epoch window later
    assert [(r.kind, r.term, r.epoch, r.since_epoch) for r in reports] == [("data_held_low", "obs", 2600, 1600)]
    message = reports[0].message
    assert message.startswith("λ_obs held below 0.3x the largest other weight (each over its start; PINN keeps them "
                              "equal) since epoch 1600: λ_obs 0.151 against λ_pde 1 (15.1% of it, over the starts) at "
                              "epoch 2600")
    assert "identify the unknowns" in message and "--weight-min 1" in message and "--scheme pinn" in message
    assert reports[0].value == pytest.approx(0.151)  # the share at epoch 2,600
    # the same run told nothing before: the other rules stay silent on it
    assert feed(WeightWatch(), w, losses, names=NAMES) == []


def test_reported_once_and_only_for_observation_terms():
    w, losses = reproduction()
    watch = WeightWatch()
    feed(watch, w, losses, names=NAMES, observed=("obs",))
    assert len(watch.reports) == 1  # not again at the boundaries after 2,600
    # λ_bc is held as low but is not an observation term: left to the other rules (a boundary weight below its
    # start is no sign by itself, section 5); marked as one, it is reported too
    assert sorted(r.term for r in feed(WeightWatch(), w, losses, names=NAMES, observed=("obs", "bc"))) == ["bc", "obs"]


def test_a_healthy_inverse_run_is_not_reported():
    # the same problem at 1,000 epochs under DN β = 0.99 (λ_obs down to 0.68, 0.9-1.3x PINN's error), and
    # GradNormW (λ_obs 1.1-1.5): the weight never stays below 0.3 of its start for a window
    w, losses = reproduction(10)
    assert feed(WeightWatch(), w, losses, names=NAMES, observed=("obs",)) == []
    w, losses = reproduction()
    w[:, 0, 2] = np.linspace(1.0, 1.5, len(w))
    assert feed(WeightWatch(), w, losses, names=NAMES, observed=("obs",)) == []
    # a weight that dips below 0.3 and comes back within the window starts afresh
    w, losses = reproduction()
    w[::700, 0, 2] = 0.5
    assert feed(WeightWatch(), w, losses, names=NAMES, observed=("obs",)) == []


def test_observations_as_the_reference_under_raised_weights_are_reported():
    # `dn+beta=0.99+ref=obs` on the same problem: λ_obs is the reference, fixed at 1, and DN raises λ_pde to
    # 20-45 instead (0.177 ± 0.042 against PINN's 0.080, no report before): the same share of the weights
    E = 3000
    w = np.ones((E, 1, 3))
    w[:, 0, 1] = np.geomspace(1.0, 45.0, E)  # pde
    w[:, 0, 2] = np.geomspace(1.0, 9.5, E)  # bc
    _, losses = reproduction()
    losses = losses[:, :, [2, 0, 1]]
    reports = feed(WeightWatch(), w, losses, names=("obs", "pde", "bc"), observed=("obs",))
    assert [(r.kind, r.term) for r in reports] == [("data_held_low", "obs")]
    # λ_pde passes 1 / 0.3 at epoch 948: reported a window later
    assert (reports[0].since_epoch, reports[0].epoch) == (949, 2000)
    assert "against λ_pde" in reports[0].message
    assert reports[0].message.endswith("try an upper bound --weight-max 1 (no term weighted above the observations), "
                                       "or --scheme pinn")


def test_observations_already_fitted_are_not_reported():
    w, losses = reproduction()
    losses[:, 0, 2] = np.geomspace(0.7, 1e-6, len(losses))  # 1e-6 of its first level: nothing left to fit
    assert feed(WeightWatch(), w, losses, names=NAMES, observed=("obs",)) == []


def test_the_threshold_is_a_parameter_and_checked():
    assert "data_held_low" in KINDS and DATA_HELD == 0.3
    w, losses = reproduction()
    reports = feed(WeightWatch(data_held=0.5), w, losses, names=NAMES, observed=("obs",))
    assert [(r.epoch, r.since_epoch) for r in reports] == [(2000, 1000)]  # 0.503 in the window of 900
    for bad in (0, 1, -0.1, 2):
        with pytest.raises(ValueError, match="data_held"):
            WeightWatch(data_held=bad)


def test_data_marks_its_term_as_observed():
    import torch

    from fastpinn import Problem, data, dirichlet, pde
    from fastpinn.problem import stack

    x = torch.linspace(0, 1, 5, dtype=torch.float64)[:, None]
    assert data("obs", x, torch.zeros(5)).observed
    assert not dirichlet("bc", x, 0.0).observed
    # the mark survives an ensemble (terms are copied with dataclasses.replace)
    one = lambda s: Problem(name="p", coords=("x",), lower=(0.0,), upper=(1.0,), seeds=(s,),
                            terms=[pde("pde", x, lambda f: f["u_xx"][..., 0], requests=("u_xx",)),
                                   data("obs", x, torch.zeros(5))])
    assert [t.observed for t in stack([one(0), one(1)]).terms] == [False, True]


def test_the_remedy_named_fits_the_scheme():
    import fastpinn

    w, losses = reproduction()
    said = lambda scheme: feed(WeightWatch(), w, losses, names=NAMES, observed=("obs",), scheme=scheme)[0].message
    assert said(fastpinn.DN(beta=0.99, weight_min=0.01)).endswith(
        "try a higher --weight-min than 0.01 (e.g. 1: never below PINN's weight), or --scheme pinn")
    assert said(fastpinn.DN(beta=0.99)).endswith(
        "try a lower bound --weight-min 1 (the observations never weighted below PINN's 1), or --scheme pinn")


@pytest.mark.slow
def test_the_trials_reproduction_reports_in_history_and_metrics(tmp_path):
    # `fastpinn compare bench/trials/reaction_rate_inverse.py:make_problem --schemes pinn,dn+beta=0.99 --seeds 3
    # --epochs 3000`: DN 0.208 ± 0.075 against PINN 0.080 ± 0.017 and 0 weight warnings (user trial 2)
    import json
    from pathlib import Path

    from fastpinn import cli

    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "dn"
    assert cli.main(["train", str(repo / "bench/trials/reaction_rate_inverse.py") + ":make_problem", "--scheme", "dn",
                     "--beta", "0.99", "--seeds", "3", "--epochs", "3000", "--out", str(out), "--no-progress",
                     "--no-figures"]) == 0
    reports = json.loads((out / "metrics.json").read_text())["weight_warnings"]
    held = [r for r in reports if r["kind"] == "data_held_low"]
    assert [(r["term"], sorted(r["members"])) for r in held] in ([("obs", [0, 1, 2])], [("obs", [1]), ("obs", [0, 2])])
    assert min(r["epoch"] for r in held) == 2600
