"""Issue 16's defects of the run identity, reproduced exactly: a finished run was silently reused for another
configuration of SoftAdapt (``--temperature``) or ReLoBRaLo (``--alpha``), because the identity listed scheme
parameters by hand; the header called SoftAdapt "SOFTADAPT-PINN (β=0.9)". The identity, the description,
config.json and the command-line options now come from the schemes' declarations."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from fastpinn import cli
from fastpinn.run import RunConfig
from fastpinn.schemes import SCHEME_NAMES, parameters_by_key, scheme_class

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("scheme, key, first, second", [
    ("softadapt", "temperature", 0.1, 5.0),
    ("relobralo", "alpha", 0.999, 0.5),
    ("relobralo", "temperature", 0.1, 5.0),
])
def test_run_identity_includes_the_parameter(scheme, key, first, second):
    a = RunConfig(problem="poisson1d", scheme=scheme, epochs=50, **{key: first})
    b = RunConfig(problem="poisson1d", scheme=scheme, epochs=50, **{key: second})
    assert a.identity()[key] == first and b.identity()[key] == second
    assert a.identity() != b.identity()


def test_softadapt_header_has_no_beta():
    label = RunConfig(problem="poisson1d", scheme="softadapt").describe()
    assert label == "SoftAdapt (T=0.1)" and "β" not in label
    assert RunConfig(problem="poisson1d", scheme="softadapt", temperature=5.0).describe() == "SoftAdapt (T=5)"


def test_every_declared_parameter_reaches_the_run_identity_and_config_json():
    """For every registered scheme and parameter: another value gives another run identity, and to_dict /
    from_dict (config.json) keep it."""
    from test_scheme_declarations import other_allowed_value

    for name in SCHEME_NAMES:
        base = RunConfig(problem="poisson1d", scheme=name, epochs=5)
        for key, spec in scheme_class(name).parameters().items():
            other = other_allowed_value(spec)
            if other is None:
                continue
            changed = RunConfig(problem="poisson1d", scheme=name, epochs=5, **{key: other})
            assert changed.identity() != base.identity(), (name, key)
            text = json.dumps(changed.to_dict(), allow_nan=False)
            assert RunConfig.from_dict(json.loads(text)) == changed, (name, key)


def test_scheme_parameter_keys_do_not_collide_with_run_fields():
    assert not set(parameters_by_key()) & {f.name for f in fields(RunConfig)}
    # a scheme that would: refused by the run layer, and RunConfig(lr=...) stays the training rate
    from dataclasses import dataclass

    from fastpinn.schemes import LossScheme, param, register, unregister

    @dataclass(frozen=True)
    class Clash(LossScheme):
        lr: float = param(0.5, help="collides with the run's lr")

    register("clash-lr", title="Clash")(Clash)
    try:
        cfg = RunConfig(problem="poisson1d", scheme="dn", lr=0.01)
        assert cfg.lr == 0.01 and "lr" not in cfg.scheme_params
        with pytest.raises(ValueError, match="declares a parameter 'lr', the name of a run setting"):
            RunConfig(problem="poisson1d", scheme="clash-lr")
    finally:
        unregister("clash-lr")


def test_old_config_json_with_flat_fields_still_reads():
    old = {"problem": "poisson1d", "scheme": "dn", "beta": 0.99, "tau": 10, "p": "Infinity", "bias_correction": False,
           "ma_form": "paper", "alpha": None, "reduce": "sum", "temperature": 0.1, "seeds": [0, 1], "ensemble": True,
           "epochs": 4}
    cfg = RunConfig.from_dict(old)
    assert cfg.scheme_params == {"beta": 0.99, "p": math.inf, "bias_correction": False, "tau": 10}
    assert cfg.identity()["p"] == "inf" and "temperature" not in cfg.identity()
    lra = RunConfig.from_dict(dict(old, scheme="lra"))
    assert lra.scheme_params == {"alpha": 0.9, "tau": 10, "bias_correction": False}  # alpha: null = the paper's


def test_cli_refuses_an_option_the_scheme_does_not_read(tmp_path, capsys):
    rc = cli.main(["train", "poisson1d", "--scheme", "dn", "--temperature", "5", "--epochs", "2",
                   "--out", str(tmp_path / "x")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(err) == 1
    assert "--temperature is not an option of scheme 'dn'" in err[0] and "--beta" in err[0]
    assert not (tmp_path / "x").exists()


def _fastpinn(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "fastpinn", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("scheme, option, first, second", [
    ("softadapt", "--temperature", "0.1", "5.0"),
    ("relobralo", "--alpha", "0.999", "0.5"),
])
def test_a_finished_run_is_not_reused_for_another_parameter_value(tmp_path, scheme, option, first, second):
    """The issue's commands: the second one used to print 'already holds this finished run; reusing it'."""
    base = ["train", "poisson1d", "--scheme", scheme, "--epochs", "50", "--out", "d"]
    one = _fastpinn(*base[:4], option, first, *base[4:], cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    two = _fastpinn(*base[:4], option, second, *base[4:], cwd=tmp_path)
    assert "reusing" not in two.stdout + two.stderr
    assert two.returncode == 2 and "holds a run of a different configuration" in two.stderr
    key = option[2:]
    assert json.loads((tmp_path / "d" / "config.json").read_text())["identity"][key] == float(first)
    if scheme != "softadapt":
        return  # the rest is the run layer's, the same for any parameter
    # asked to replace it, the second configuration trains
    three = _fastpinn(*base[:4], option, second, *base[4:], "--force", cwd=tmp_path)
    assert three.returncode == 0 and "reusing" not in three.stdout + three.stderr, three.stderr
    config = json.loads((tmp_path / "d" / "config.json").read_text())
    assert config["identity"][key] == float(second) and config["config"][key] == float(second)
    # and the same command again is the finished run
    four = _fastpinn(*base[:4], option, second, *base[4:], cwd=tmp_path)
    assert four.returncode == 0 and "reusing it" in four.stdout + four.stderr
