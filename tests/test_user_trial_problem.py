"""What the user trial of 2026-12-06 found in building problems (bench/results/user-trial-*.md): the 1-D
space-time domain, and vector values or solutions whose width disagrees with the network's out_dim."""

from __future__ import annotations

import pytest
import torch

from fastpinn import Problem, Trainer, data, geometry, initial, pde


def test_interval_times_interval_is_the_1d_space_time_domain():
    # docs/problems.md: "domain * Interval(t0, t1) for space-time"; with an Interval as the space (DeepXDE's
    # diffusion_1d) it raised TypeError: Python never tries __rmul__ for operands of the same type.
    domain = geometry.Interval(-1.0, 1.0) * geometry.Interval(0.0, 1.0)
    assert isinstance(domain, geometry.TimeDomain) and domain.dim == 2
    x = domain.sample_interior(200, "uniform", torch.Generator().manual_seed(0))
    assert x.shape == (200, 2) and x[:, 0].min() >= -1 and x[:, 0].max() <= 1 and x[:, 1].min() >= 0
    assert x[:, 1].max() <= 1 and x[:, 0].min() < -0.5 and x[:, 1].max() > 0.5  # space first, time last


def _two_outputs(f):  # [N, 2]
    return torch.stack([f["u"][..., 0], f["u"][..., 1]], -1)


X = torch.rand(12, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def test_a_vector_value_without_out_dim_names_the_term_and_the_fix():
    # It said "value must be a number or have shape [12] or [12, 1], got [12, 2]": no term, no out_dim.
    with pytest.raises(ValueError, match=r"term 'ic'.*pass out_dim=2 to the term and to the Problem"):
        initial("ic", X, lambda x: torch.stack([x[:, 1], 0 * x[:, 1]], -1))


def test_values_for_more_outputs_than_the_network_has_are_refused():
    # data(..., out_dim=3) on a Problem of out_dim=1 built and trained without a word: [N, 1] - [N, 3]
    # broadcast, fitting one output to three observed series.
    obs = data("obs", X[:5, :1], torch.zeros(5, 3), out_dim=3)
    with pytest.raises(ValueError, match=r"term 'obs'.*out_dim=3.*out_dim=1"):
        Problem(name="p", coords=("t",), lower=(0.0,), upper=(1.0,), terms=[
            pde("ode", X[:, :1], lambda f: f["u_t"][..., 0], "u_t"), obs])
    # one value for every output of a wider network is fine, as before
    Problem(name="p", coords=("t", "x"), lower=(0.0, 0.0), upper=(1.0, 1.0), out_dim=2,
            terms=[pde("pde", X, _two_outputs, "u"), initial("ic", X, 0.0)])


def test_a_solution_narrower_than_the_outputs_is_named_at_the_first_evaluation():
    # U[M] for a 2-output network failed inside the evaluation with "The size of tensor a (24) must match the
    # size of tensor b (12) at non-singleton dimension 1".
    problem = Problem(name="two", coords=("t", "x"), lower=(0.0, 0.0), upper=(1.0, 1.0), out_dim=2, depth=2, width=4,
                      terms=[pde("pde", X, _two_outputs, "u")], solution=lambda: (X.numpy(), X[:, 0].numpy()))
    with pytest.raises(ValueError, match=r"problem 'two': solution\(\) returned U of shape \[12\], expected \[12, 2\]"):
        Trainer(problem, backend="torch", eval_every=1).train(1)
