"""Issue 17: the command line's optimizer, schedule and network options (--optimizer, --lbfgs-iters,
--lr-schedule, --depth, --width, --activation, --init, --no-input-scaling): parsed, recorded in config.json,
part of the run identity (a finished run is never reused for another of them) and applied to the trainer."""

from __future__ import annotations

import json

import pytest
import torch

from fastpinn import cli
from fastpinn.run import RunConfig, build_trainer

BASE = ["train", "poisson1d", "--epochs", "6", "--n-pde", "16", "--no-progress", "--no-figures", "--compile", "off",
        "--backend", "torch", "--eval-every", "3"]

#: (options, the config.json fields they set)
OPTIONS = [
    (["--optimizer", "adam+lbfgs", "--lbfgs-iters", "4"], {"optimizer": "adam+lbfgs", "lbfgs_iters": 4}),
    (["--optimizer", "lbfgs", "--lbfgs-iters", "5"], {"optimizer": "lbfgs", "lbfgs_iters": 5}),
    (["--lr-schedule", "exp:0.9"], {"lr_schedule": "exp:0.9"}),
    (["--lr-schedule", "step:2:0.5"], {"lr_schedule": "step:2:0.5"}),
    (["--lr-schedule", "cosine"], {"lr_schedule": "cosine"}),
    (["--depth", "3", "--width", "7"], {"depth": 3, "width": 7}),
    (["--init", "truncated_normal"], {"init": "truncated_normal"}),
    (["--no-input-scaling"], {"input_scaling": False}),
]


def _cfg(**kw) -> RunConfig:
    epochs = None if kw.get("optimizer") == "lbfgs" else 6  # an L-BFGS run's length is lbfgs_iters
    return RunConfig(problem="poisson1d", epochs=epochs, problem_kwargs={"n_pde": 16}, **kw)


@pytest.mark.parametrize("argv, fields", OPTIONS)
def test_option_reaches_config_json_and_changes_the_identity(tmp_path, argv, fields):
    argv = [a for a in BASE if not (fields.get("optimizer") == "lbfgs" and a in ("--epochs", "6"))] + argv
    assert cli.main(argv + ["--out", str(tmp_path / "run")]) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    for key, value in fields.items():
        assert saved["config"][key] == value and saved["identity"][key] == value, key
    cfg = RunConfig.from_dict(saved["config"])
    assert cfg.identity() == saved["identity"] != _cfg().identity()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs"] == cfg.resolved_epochs() == {"adam+lbfgs": 10, "lbfgs": 5}.get(cfg.optimizer, 6)


def test_defaults_keep_the_identity_of_older_runs():
    ident = _cfg().identity()
    assert not {"optimizer", "lbfgs_iters", "lr_schedule", "depth", "width", "activation", "input_scaling"} & set(ident)


def test_every_option_value_is_its_own_identity():
    variants = [_cfg(**fields) for _, fields in OPTIONS] + [_cfg(optimizer="adam+lbfgs", lbfgs_iters=5),
                                                           _cfg(lr_schedule="exp:0.99"), _cfg(depth=4), _cfg(width=8)]
    identities = [json.dumps(v.validate().identity(), sort_keys=True) for v in [_cfg()] + variants]
    assert len(set(identities)) == len(identities)


def test_a_finished_run_is_not_reused_for_another_optimizer(tmp_path):
    out = ["--out", str(tmp_path / "run")]
    assert cli.main(BASE + out) == 0
    first = (tmp_path / "run" / "metrics.json").read_text()
    assert cli.main(BASE + out + ["--optimizer", "adam+lbfgs", "--lbfgs-iters", "3"]) != 0  # refused, not reused
    assert (tmp_path / "run" / "metrics.json").read_text() == first


def test_options_reach_the_trainer_and_network():
    _, tr = build_trainer(_cfg(optimizer="adam+lbfgs", lbfgs_iters=4, lr_schedule="exp:0.5", depth=3, width=7,
                               input_scaling=False))
    assert [s.name for s in tr.stages.stages] == ["adam", "lbfgs"] and tr.stages.bounds == [(0, 6), (6, 10)]
    assert isinstance(tr.lr_scheduler, torch.optim.lr_scheduler.ExponentialLR)
    assert (tr.net.depth, tr.net.width) == (3, 7)
    assert torch.equal(tr.net.input_scale, torch.ones(1)) and torch.equal(tr.net.input_shift, torch.zeros(1))
    h = tr.train()
    assert h.epochs == 10 and tr.epoch == 10 and isinstance(tr.optimizer, torch.optim.LBFGS)
    _, plain = build_trainer(_cfg())
    assert len(plain.stages.stages) == 1 and plain.lr_scheduler is None and plain.optimizer.defaults["fused"]


def test_help_lists_the_options(capsys):
    for command in ("train", "compare"):
        assert cli.main([command, "--help"]) == 0
        text = capsys.readouterr().out
        for option in ("--optimizer", "--lbfgs-iters", "--lr-schedule", "--depth", "--width", "--activation",
                       "--init", "--no-input-scaling"):
            assert option in text, (command, option)
