"""The residual contract and derivative requests are checked when a problem is built; predict takes any
float points; the derivative methods are one registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import fastpinn
from fastpinn import Problem, Trainer, dirichlet, pde, sampling
from fastpinn.derivatives import applicable_methods, method_names
from fastpinn.term_losses import derivative_method_choices, network_key as _network_key


def _problem(residual, requests=("u_xx",)):
    gen = torch.Generator().manual_seed(0)
    x = sampling.uniform(20, [0.0], [1.0], gen)
    xb = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    return Problem(name="p", coords=("x",), lower=(0.0,), upper=(1.0,),
                   terms=[pde("pde", x, residual, requests=requests), dirichlet("bc", xb, 0.0)], depth=2, width=4)


def _source(x):
    return math.pi ** 2 * torch.sin(math.pi * x[..., 0])


def test_good_residuals_are_accepted_in_both_forms():
    _problem(lambda f: f["u_xx"][..., 0] + _source(f.x))  # [N]
    _problem(lambda f: f["u_xx"] + _source(f.x).unsqueeze(-1))  # [N, 1]


@pytest.mark.parametrize("residual, shape", [
    (lambda f: f["u_xx"] + _source(f.x), "[3, 3]"),  # [N, 1] + [N] broadcasts to [N, N]
    (lambda f: f["u_xx"].mean(), "[]"),  # a scalar
    (lambda f: f["u_xx"][1:, 0], "[1]"),  # the wrong N
], ids=["broadcast", "scalar", "wrong-N"])
def test_wrong_residual_shapes_are_refused_with_term_and_shapes(residual, shape):
    with pytest.raises(ValueError) as err:
        _problem(residual)
    msg = str(err.value)
    assert "term 'pde'" in msg and f"returned shape {shape}" in msg and "expected [N] or [N, m]" in msg


def test_non_tensor_residual_is_refused():
    with pytest.raises(ValueError, match="term 'pde': the residual must return a torch.Tensor .* got float"):
        _problem(lambda f: 1.0)


def test_bad_request_is_refused_at_construction_naming_the_term():
    with pytest.raises(ValueError, match=r"term 'pde': bad derivative request 'u_yy': unknown coordinate\(s\) \['y', 'y'\]"):
        _problem(lambda f: f["u_yy"][..., 0], requests=("u_yy",))


def test_bare_string_request_is_one_request():
    p = _problem(lambda f: f["u_xx"][..., 0] + _source(f.x), requests="u_xx")
    assert p.terms[0].requests == ("u_xx",)


def test_residual_reading_an_unrequested_field_fails_at_construction():
    with pytest.raises(ValueError, match="term 'pde': the residual failed on a trial evaluation .*'u_x' was not requested"):
        _problem(lambda f: f["u_x"][..., 0], requests=("u_xx",))


def test_ensemble_residual_contract():
    def make(residual):
        problems = [_problem(lambda f: f["u_xx"][..., 0] + _source(f.x)) for _ in range(2)]
        stacked = fastpinn.stack(problems)
        stacked.terms[0].residual = residual
        return Problem(**{k: getattr(stacked, k) for k in ("name", "coords", "lower", "upper", "terms", "depth",
                                                              "width", "seeds", "ensemble")})

    make(lambda f: f["u_xx"][..., 0] + _source(f.x))  # [S, N]
    with pytest.raises(ValueError, match=r"returned shape \[2\] .* expected \[S, N\] or \[S, N, m\]"):
        make(lambda f: f["u_xx"][0, :, 0])  # member 0 only: the member dimension is missing


def test_reference_term_by_name():
    p = _problem(lambda f: f["u_xx"][..., 0] + _source(f.x))
    q = Problem(name="q", coords=("x",), lower=(0.0,), upper=(1.0,), terms=list(reversed(p.terms)),
                reference_term="pde", depth=2, width=4)
    assert q.reference_term == 1
    with pytest.raises(ValueError, match="reference_term must be a term name"):
        Problem(name="q", coords=("x",), lower=(0.0,), upper=(1.0,), terms=p.terms, reference_term="ic")


def test_predict_takes_float64_points_and_checks_their_width():
    trainer = Trainer(_problem(lambda f: f["u_xx"][..., 0] + _source(f.x)), fastpinn.DN())
    x64 = sampling.uniform(7, [0.0], [1.0], torch.Generator().manual_seed(1))
    out = trainer.predict(x64)
    assert out.shape == (7, 1) and out.dtype == torch.float32
    torch.testing.assert_close(out, trainer.predict(x64.float()))
    assert trainer.predict(np.linspace(0, 1, 5).reshape(5, 1)).shape == (5, 1)
    with pytest.raises(ValueError, match=r"points must have shape \[M, 1\] \(columns \('x',\)\), got \(7, 2\)"):
        trainer.predict(torch.zeros(7, 2))


def test_derivative_methods_are_one_registry():
    assert method_names()[:4] == ("jet", "fused", "func", "autograd")
    assert derivative_method_choices() == ("auto",) + method_names() + ("tune",)
    mlp = fastpinn.MLP(2, 1, 2, 4)
    seq = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))
    assert applicable_methods(mlp, ("u", "u_xx"), ("t", "x")) == {"jet": None, "fused": None, "func": None,
                                                                   "autograd": None, "taylor": None}
    third = applicable_methods(mlp, [("x", "x", "x")], ("t", "x"))
    assert "order 2" in third["jet"] and "order 2" in third["fused"] and third["func"] is None
    assert "needs a fastpinn.network.MLP" in applicable_methods(seq, "u_x", ("t", "x"))["jet"]


def test_tuning_cache_tells_user_modules_apart():
    a = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))
    b = nn.Sequential(nn.Linear(1, 8), nn.Sigmoid(), nn.Linear(8, 1))
    c = nn.Sequential(nn.Linear(1, 9), nn.Tanh(), nn.Linear(9, 1))
    keys = {_network_key(m) for m in (a, b, c)}
    assert len(keys) == 3
    assert _network_key(a) == _network_key(nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1)))


def test_samplers_default_to_the_trainers_dtype_and_keep_float64_on_request():
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    x32 = sampling.uniform(5, [0.0, -1.0], [1.0, 1.0], gen())
    x64 = sampling.uniform(5, [0.0, -1.0], [1.0, 1.0], gen(), dtype=torch.float64)
    assert x32.dtype == torch.float32 and x64.dtype == torch.float64
    assert torch.equal(x32, x64.float())  # drawn in float64, then rounded: what the Trainer's cast gives
    assert sampling.on_face("lhs", 4, [0.0, 0.0], [1.0, 1.0], 1, 1.0, gen()).dtype == torch.float32
    assert sampling.grid([[0.0, 1.0], [2.0, 3.0]]).dtype == torch.float32
    assert fastpinn.problems.burgers(0, n_pde=8, n_ic=4, n_bc=4).terms[0].points[0].dtype == torch.float64
