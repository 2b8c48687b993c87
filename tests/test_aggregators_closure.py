"""M-ConFIG with a closure optimizer (L-BFGS) is refused, in the Trainer and up front in the run layer (CLI,
compare); ConFIG, without momentum, still trains with L-BFGS.

Before, the Trainer ran M-ConFIG under L-BFGS silently: the closure's first call returned the direction of the
momenta, the line search's later calls the momentum weights applied to the current gradients -- gradients of
different functions in one line search (see ``check_closure_optimizer``)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import fastpinn
from fastpinn import Stage
from fastpinn.problems import poisson1d
from fastpinn.run.config import RunConfig
from fastpinn.schemes import ConFIG, MConFIG
from fastpinn.schemes.aggregators import check_closure_optimizer
from fastpinn.trainer import Trainer


def _problem():
    return poisson1d(seed=0, n_pde=32, depth=2, width=8)


@pytest.mark.parametrize("stages", [[Stage("lbfgs", iterations=2)],
                                    [Stage("adam", epochs=3), Stage("lbfgs", iterations=2)]])
def test_trainer_refuses_m_config_under_lbfgs_when_built(stages):
    # Refused by the constructor, also where L-BFGS only follows Adam epochs (not after them).
    with pytest.raises(ValueError, match=r"^scheme 'm-config' cannot train with optimizer .*'adam'.*'config'"):
        Trainer(_problem(), MConFIG(), stages=stages)


def test_trainer_refuses_m_config_with_a_users_lbfgs():
    with pytest.raises(ValueError, match="m-config.*closure optimizer"):
        Trainer(_problem(), MConFIG(), optimizer=lambda p: torch.optim.LBFGS(p, max_iter=1))


def test_config_still_trains_under_lbfgs():
    h = Trainer(_problem(), ConFIG(), stages=[Stage("lbfgs", iterations=3)]).train()
    assert h.epochs == 3 and np.isfinite(h.losses).all()


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam+lbfgs"])
def test_run_config_refuses_m_config_with_lbfgs_up_front(optimizer):
    cfg = RunConfig("poisson1d", scheme="m-config", optimizer=optimizer)
    with pytest.raises(ValueError, match=f"^scheme 'm-config' cannot train with optimizer '{re.escape(optimizer)}'"):
        cfg.validate()


def test_run_config_accepts_m_config_with_adam_and_config_with_lbfgs():
    RunConfig("poisson1d", scheme="m-config").validate()
    RunConfig("poisson1d", scheme="config", optimizer="lbfgs").validate()


def test_the_check_passes_every_other_scheme():
    for scheme in (ConFIG(), fastpinn.DN(), fastpinn.PINN()):
        check_closure_optimizer(scheme, "lbfgs")
    with pytest.raises(ValueError) as err:
        check_closure_optimizer(MConFIG(beta=0.5), "lbfgs")
    assert "\n" not in str(err.value)  # one line
