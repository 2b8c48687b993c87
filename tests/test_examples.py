"""Every example in examples/ runs, in a short form, and gives a sensible answer."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_heat_equation(capsys):
    errors = _load("heat_equation").main(epochs=60)
    assert set(errors) == {"pinn", "dn"} and all(math.isfinite(e) and e < 1.5 for e in errors.values())
    assert "rel. L2" in capsys.readouterr().out


def test_own_model_loop():
    # 300 steps reach 6e-4 (measured); 0.05 still fails an untrained or mis-weighted model (~1)
    assert _load("own_model_loop").main(steps=300) < 0.05


def test_inverse_burgers():
    nu = _load("inverse_burgers").main(epochs=200)
    assert 0.0 < nu < 0.1  # moving from its start at 0.1 towards 0.0318 (full length: tests/test_inverse.py)


def test_kovasznay_system():
    errors = _load("kovasznay_system").main(epochs=40)
    assert all(math.isfinite(e) for e in errors.values())


def test_poisson_lshape(capsys):
    # 600 epochs reach 0.32 (measured, CPU float32; a plain-PyTorch loop on the same points: 0.25). An untrained
    # network is at 1.2 and u = 0 at 1.0; in the plain loop a flipped source sign ends at 2.1 and a missing
    # boundary term at 5.2 after 600 epochs, so 0.5 separates a working setup from those
    assert _load("poisson_lshape").main(epochs=600) < 0.5
    assert "rel. L2" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["heat_equation", "own_model_loop", "inverse_burgers", "kovasznay_system",
                                  "poisson_lshape", "volterra_ide", "laplace_disk", "diffusion_reaction"])
def test_every_example_has_a_main_and_a_docstring(name):
    module = _load(name)
    assert callable(module.main) and module.__doc__ and "python examples/" in module.__doc__


def test_train_distributed_runs_alone_as_the_one_rank_case_and_resumes(tmp_path):
    # Without torchrun it is the 1-rank job; a rerun with more epochs continues from its checkpoint.
    module = _load("train_distributed")
    out = str(tmp_path / "dp")
    err = module.main(["--problem", "poisson1d", "--n-pde", "32", "--epochs", "20", "--out", out])
    assert math.isfinite(err)
    assert (tmp_path / "dp" / "checkpoint.pt").exists() and (tmp_path / "dp" / "history.npz").exists()
    from fastpinn.trainer import History

    module.main(["--problem", "poisson1d", "--n-pde", "32", "--epochs", "30", "--out", out])
    assert History.load(str(tmp_path / "dp" / "history.npz")).epochs == 30


def test_volterra_ide(capsys):
    # 600 epochs reach 5.3e-2 (measured, CPU float32, seed 0); a plain-PyTorch loop of the same setup is at
    # 3.0e-1, 6.6e-2, 2.6e-2 after 600 (seeds 0-2). In that loop a flipped integral sign stays at 0.85 and a
    # dropped integral at 0.68 (3000 epochs), so 0.4 separates a working integral term from those
    module = _load("volterra_ide")
    assert callable(module.main) and "python examples/volterra_ide.py" in module.__doc__
    assert module.main(epochs=600) < 0.4
    assert "rel. L2" in capsys.readouterr().out


def test_laplace_disk(capsys):
    # 600 epochs reach 1.8e-2 (measured, CPU float32); a plain-PyTorch loop of the same setup is at 2.2e-2,
    # 4.5e-2, 1.0e-2 after 600 (seeds 0-2). In that loop dropping the Cartesian features stalls at 0.29 and a
    # flipped r u_r sign ends at 0.36 (600) / 1.3 (3000), so 0.1 separates a working setup from those
    module = _load("laplace_disk")
    assert callable(module.main) and "python examples/laplace_disk.py" in module.__doc__
    assert module.main(epochs=600) < 0.1
    assert "rel. L2" in capsys.readouterr().out


def test_diffusion_reaction(capsys):
    # 600 epochs reach 0.15 (measured, CPU float32); a plain-PyTorch loop of the same setup is at 0.14, 0.13,
    # 0.14 after 600 (seeds 0-2). The hard constraint with N = 0 is at 0.62; in the plain loop a flipped source
    # ends at 0.75 and dropping the constraint at 6.7, so 0.3 separates a working setup from those
    module = _load("diffusion_reaction")
    assert callable(module.main) and "python examples/diffusion_reaction.py" in module.__doc__
    assert module.main(epochs=600) < 0.3
    assert "rel. L2" in capsys.readouterr().out
