"""What the second user trial of 2026-12-06 found (bench/results/user-trial-2-*.md), each test the reproduction
of a defect that the code before the trial had."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastpinn import MLP, Problem, data, dirichlet, neumann, pde

X1 = torch.linspace(0.0, 1.0, 9, dtype=torch.float64)[:, None]


def _reaction(f):  # DeepXDE's diffusion-reaction inverse: lambda u_xx - k(x) u = sin(2 pi x), outputs (u, k)
    return 0.01 * f["u_xx"][..., 0] - f["u"][..., 1] * f["u"][..., 0] - torch.sin(2 * torch.pi * f.x[..., 0])


def test_an_observation_of_one_output_of_a_two_output_network_constrains_that_output_only():
    # Identifying a field k(x) with a network (u, k) observes u only; data("obs", x, u_obs) applied u_obs to
    # k as well (a one-column value applies to every output), and there was no way to say "output 0".
    u_obs = torch.sin(torch.pi * X1[:, 0])
    obs = data("obs", X1, u_obs, output=0)
    bc = dirichlet("bc", X1[[0, -1]], 0.0, output=0)
    problem = Problem(name="rate", coords=("x",), lower=(0.0,), upper=(1.0,), out_dim=2, depth=2, width=8,
                      terms=[pde("pde", X1, _reaction, requests=("u", "u_xx")), bc, obs])
    net = MLP(1, 2, 2, 8, [0.0], [1.0], seed=0, dtype=torch.float64)
    r = obs.residual_values(net, problem.coords, method="autograd")
    assert r.shape == (9, 1)
    torch.testing.assert_close(r[:, 0], net(X1)[:, 0] - u_obs)      # u only: k is not pulled towards u_obs
    assert bc.residual_values(net, problem.coords, method="autograd").shape == (2, 1)
    both = data("obs", X1, u_obs).residual_values(net, problem.coords, method="autograd")
    assert both.shape == (9, 2)                                      # the default is unchanged: every output


def test_an_output_the_network_does_not_have_is_named_when_the_problem_is_built():
    with pytest.raises(ValueError, match=r"term 'obs': output=\[2\].*out_dim=2: outputs 0..1"):
        Problem(name="rate", coords=("x",), lower=(0.0,), upper=(1.0,), out_dim=2,
                terms=[pde("pde", X1, _reaction, requests=("u", "u_xx")), data("obs", X1, 0.0, output=2)])
    with pytest.raises(ValueError, match=r"term 'obs': output must be an output index"):
        data("obs", X1, 0.0, output=-1)
    with pytest.raises(ValueError, match=r"term 'obs': output=\[0\] names 1 output\(s\) but out_dim=2"):
        data("obs", X1, 0.0, output=0, out_dim=2)


def test_a_normal_derivative_condition_on_one_output_reads_that_output():
    x = torch.tensor([[0.0, 0.5], [1.0, 0.5]], dtype=torch.float64)
    normals = torch.tensor([[-1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    term = neumann("wall", x, value=0.0, normals=normals, coords=("x", "y"), output=1)
    net = MLP(2, 3, 2, 8, [0.0, 0.0], [1.0, 1.0], seed=0, dtype=torch.float64)
    xg = x.clone().requires_grad_(True)
    v = net(xg)[:, 1]
    grad = torch.autograd.grad(v.sum(), xg)[0]
    expected = (grad * normals).sum(-1)
    torch.testing.assert_close(term.residual_values(net, ("x", "y"), method="autograd")[:, 0], expected)


@pytest.mark.parametrize("d", [1, 2])
def test_the_solution_figure_of_a_two_output_problem_is_drawn(tmp_path, d):
    # fastpinn train of the reaction-rate inverse problem (outputs u, k; reference [M, 2]) warned "figures were not
    # written: ValueError: X (201, 1), U_ref (2,) and U_pred (2,) do not match": [M, 2] was read as [S, M].
    from fastpinn import plots

    X = np.random.default_rng(0).random((40, d))
    U = np.stack([np.sin(X.sum(1)), np.cos(X.sum(1))], -1)
    out = plots.plot_solution_maps(X, U, U + 0.01, tmp_path / "sol.png", coords=("x", "y")[:d])
    assert out.stat().st_size > 1000
    ensemble = np.stack([U, U + 0.1])                                 # [S, M, 2] as an ensemble's predict gives
    assert plots.plot_solution_maps(X, U, ensemble, tmp_path / "ens.png", coords=("x", "y")[:d], member=1).exists()


def test_a_hard_constraint_whose_g_returns_one_value_per_point_is_refused_when_the_network_is_built():
    # HardConstraint(g=lambda x: sin(pi x[..., 0]), ...): g [M] + d [M, 1] * N [M, 1] broadcasts to [M, M]; the
    # network returned [50, 50] for 50 points and a wave problem trained on it without a word (loss 4.7e3).
    import math

    from fastpinn.network import HardConstraint

    hc = HardConstraint(g=lambda x: torch.sin(math.pi * x[..., 0]), d=lambda x: x[..., :1] * x[..., 1:2])
    with pytest.raises(ValueError, match=r"output_transform must map .* got \(2, 2\) for M = 2 .* x\[\.\.\., :1\]"):
        MLP(2, 1, 2, 8, [0.0, 0.0], [1.0, 1.0], output_transform=hc)
    good = HardConstraint(g=lambda x: torch.sin(math.pi * x[..., :1]), d=lambda x: x[..., :1] * x[..., 1:2])
    assert MLP(2, 1, 2, 8, [0.0, 0.0], [1.0, 1.0], output_transform=good)(torch.rand(5, 2)).shape == (5, 1)
    two = MLP(2, 2, 2, 8, [0.0, 0.0], [1.0, 1.0], output_transform=lambda x, n: n[..., :1] * x[..., :1])
    assert two(torch.rand(5, 2)).shape == (5, 1)    # a transform may change the number of outputs


def _watch(scheme, weights: np.ndarray, losses: np.ndarray, eval_every: int = 100,
           names: tuple = ("pde", "obs")) -> list:
    """The watcher's reports over given per-epoch weights/losses ``[E, S, K]`` under ``scheme``."""
    from watch_replay import feed

    from fastpinn.weight_watch import WeightWatch

    return feed(WeightWatch(), weights, losses, eval_every, scheme=scheme, names=names)


def test_a_weight_report_does_not_advise_the_remedies_the_run_already_uses():
    # compare --schemes dn+clamp on the reaction-rate inverse problem: "λ_obs collapsed to 1.0e-02 ...; try --beta
    # 0.99, a lower bound --weight-min (e.g. 0.01), ..." -- the weight sat at the bound --weight-min 0.01 it advised;
    # and under the default β = 0.99 every collapse was told to use --beta 0.99.
    import fastpinn

    E = 1000
    w = np.ones((E, 1, 2), dtype=np.float32)
    w[:, 0, 1] = np.logspace(0, -2.5, E)
    losses = np.ones_like(w)
    losses[:, 0, 1] = np.linspace(1.0, 0.1, E)
    (report,) = _watch(fastpinn.DN(beta=0.99, weight_min=0.01, weight_max=100.0), w, losses)
    assert report.kind == "collapse"
    assert "--beta 0.99" not in report.message and "(e.g. 0.01)" not in report.message
    assert report.message.endswith("try a higher --weight-min than 0.01, a warm-up --weight-warmup N, or --scheme pinn")
    (plain,) = _watch(fastpinn.DN(beta=0.9), w, losses)      # the paper's DN: the advice as before
    assert plain.message.endswith("try --beta 0.99, a lower bound --weight-min (e.g. 0.01), a warm-up "
                                  "--weight-warmup N, or --scheme pinn")


def test_a_runaway_under_lra_advises_its_own_parameter_not_beta():
    # LRA has no --beta (fastpinn train --scheme lra --beta 0.99 is refused); its EMA is lam <- (1-α) lam + α hat.
    import fastpinn

    w = np.ones((300, 1, 2), dtype=np.float32)
    w[150:, 0, 1] = 1e6
    (report,) = _watch(fastpinn.LRA(), w, np.ones_like(w))
    assert report.kind == "runaway" and "--beta" not in report.message
    assert report.message.endswith("try an upper bound --weight-max (e.g. 100), --alpha 0.01, or --scheme pinn")


def test_a_weight_coming_down_from_a_peak_above_its_start_is_not_said_to_fail_its_term():
    # compare on the square with four holes: DN (β = 0.9) won, 5.1e-3 against PINN's 0.17, and was the one row
    # with warnings: "L_holes rose from epoch 400 to 1400 (3.46e-04 -> at best 3.84e-04) while λ_holes went from
    # 307 to 25.4 (25.4x its start): the weight is not helping this term" -- the weight, 25x its start, gave the
    # term more than PINN's 1 all along; the scheme was stepping back from a peak.
    import fastpinn

    E = 2000
    w = np.ones((E, 1, 2), dtype=np.float32)
    w[:, 0, 1] = np.interp(np.arange(E), [0, 100, 400, 1000, 1400, E - 1], [5.5, 100, 307, 73, 25, 6.2])
    losses = np.ones_like(w)
    losses[:, 0, 1] = np.interp(np.arange(E), [0, 100, 200, 400, 600, 1400, E - 1],
                                [10, 1.1, 0.02, 3.5e-4, 1.7e-4, 3.8e-4, 5.7e-4])
    assert _watch(fastpinn.DN(beta=0.9), w, losses) == []
    # the same loss under a weight that fell below its start is still a stall (the term is being switched off)
    w[:, 0, 1] = np.interp(np.arange(E), [0, 100, 400, 1000, 1400, E - 1], [1.0, 0.9, 0.5, 0.05, 0.02, 0.015])
    assert [r.kind for r in _watch(fastpinn.DN(beta=0.9), w, losses)] == ["stall"]


FAST = ["--epochs", "3", "--no-figures", "--no-progress", "--compile", "off", "--threads", "1", "--backend", "torch"]


def _one_term_problem(tmp_path):
    """A problem file whose only loss term is the PDE's (the boundary values are a hard constraint)."""
    path = tmp_path / "one_term.py"
    path.write_text(
        "import math, numpy as np, torch\n"
        "from functools import partial\n"
        "from fastpinn import MLP, Problem, pde\n"
        "from fastpinn.network import HardConstraint\n"
        "def solution():\n"
        "    x = np.linspace(0, 1, 11)[:, None]\n"
        "    return x, np.sin(np.pi * x[:, 0])\n"
        "def make_problem(seed=0):\n"
        "    x = torch.rand(16, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))\n"
        "    res = lambda f: f['u_xx'][..., 0] + math.pi ** 2 * torch.sin(math.pi * f.x[..., 0])\n"
        "    hc = HardConstraint(lambda x: 0 * x[..., :1], lambda x: x[..., :1] * (1 - x[..., :1]))\n"
        "    return Problem(name='one', coords=('x',), lower=(0.0,), upper=(1.0,), terms=[pde('pde', x, res, 'u_xx')],\n"
        "                   depth=2, width=4, seeds=(seed,), solution=solution,\n"
        "                   architecture=partial(MLP, output_transform=hc))\n")
    return path


def test_train_says_that_a_problem_of_one_loss_term_has_nothing_to_weight(tmp_path, capsys):
    # bench/trials/wave_hard.py: every condition a hard constraint, one PDE term; `fastpinn train` said "with
    # DN-PINN (β=0.99)" and trained the weight 1 for 2,000 epochs, and nothing said the scheme could not matter.
    from fastpinn import cli

    path = _one_term_problem(tmp_path)
    assert cli.main(["train", f"{path}:make_problem", "--out", str(tmp_path / "dn"), *FAST]) == 0
    said = capsys.readouterr()
    assert "has one loss term ('pde'): loss weights have nothing to balance" in said.out + said.err
    assert cli.main(["train", f"{path}:make_problem", "--scheme", "pinn", "--out", str(tmp_path / "pinn"), *FAST]) == 0
    said = capsys.readouterr()
    assert "nothing to balance" not in said.out + said.err


def test_compare_of_a_problem_of_one_loss_term_trains_pinn_alone_and_names_no_best(tmp_path, capsys):
    # `fastpinn compare bench/trials/wave_hard.py:make_problem --schemes pinn,dn`: two equal rows and "Best: PINN
    # ..., not distinguishable from DN-PINN"; every scheme trains a single term as PINN does
    import json

    from fastpinn import cli

    path = _one_term_problem(tmp_path)
    out = tmp_path / "cmp"
    assert cli.main(["compare", f"{path}:make_problem", "--schemes", "dn,lra", "--seeds", "1", "--out", str(out),
                     "--no-step-timing", *FAST]) == 0
    said = capsys.readouterr().out.rstrip("\n").splitlines()
    assert said[-1].startswith(f"{path}:make_problem has one loss term ('pde'): loss weights have nothing to "
                               "balance, so every weighting scheme trains it as PINN does")
    assert "only PINN was trained (not trained: DN-PINN (β=0.9), LRA (α=0.9))" in said[-1]
    assert said[-1].endswith(f"train it with: fastpinn train {path}:make_problem --scheme pinn --seeds 1 --epochs 3")
    assert not any(line.startswith("Best:") for line in said)
    result = json.loads((out / "compare.json").read_text())
    assert [r["scheme"] for r in result["rows"]] == ["pinn"] and not (out / "dn").exists()
    assert result["winner"] is None and result["one_loss_term"] is True
    assert result["not_trained"] == ["DN-PINN (β=0.9)", "LRA (α=0.9)"]


def test_a_normal_condition_on_points_off_the_domains_boundary_is_refused():
    # neumann("holes", x, value=..., domain=D, coords=...) with interior points (the wrong variable) built a term
    # with the normals of the nearest boundary points and trained it without a word.
    from fastpinn.geometry import Disk, Rectangle

    domain = Rectangle((-0.5, -0.5), (0.5, 0.5)) - Disk((0.0, 0.0), 0.1)
    gen = torch.Generator().manual_seed(0)
    inside = domain.sample_interior(10, "uniform", gen)
    with pytest.raises(ValueError, match=r"neumann 'holes': 10 of 10 points are not on the boundary of the domain="):
        neumann("holes", inside, value=0.0, domain=domain, coords=("x", "y"))
    edge = domain.sample_boundary(10, "uniform", gen).to(torch.float32)     # float32 rounding is on the boundary
    assert neumann("holes", edge, value=0.0, domain=domain, coords=("x", "y")).n_points == 10


def test_a_term_left_behind_by_another_terms_far_larger_weight_is_reported():
    # compare on the reaction-rate inverse problem, DN β = 0.9, 3 seeds, 3,000 epochs: member 1 ended at rel. L2
    # 4.7 (PINN 0.08) with λ_bc at 2.7e4 (below the runaway threshold 1e5) and λ_obs at 3.4 (moved 3x: no
    # stall), L_obs flat at 0.54 -- the worst member of the table, and the one no report named.
    import fastpinn

    E = 3000
    w = np.ones((E, 1, 3), dtype=np.float32)
    w[:, 0, 1] = np.interp(np.arange(E), [0, 500, 1500, E - 1], [1.0, 300.0, 5000.0, 26509.0])
    w[:, 0, 2] = np.interp(np.arange(E), [0, 500, E - 1], [1.0, 2.0, 3.4])
    losses = np.ones_like(w)
    losses[:, 0, 0] = np.logspace(0, -1, E)
    losses[:, 0, 1] = np.logspace(0, -9, E)
    losses[:, 0, 2] = np.interp(np.arange(E), [0, 300, E - 1], [0.7, 0.55, 0.54])
    reports = _watch(fastpinn.DN(beta=0.9), w, losses, names=("pde", "bc", "obs"))
    # L_pde here fell 10x while L_bc fell 1e9x under λ_bc ≥ 1e3: the reference term is left behind too (a rule of
    # its own, tests/test_weight_progress.py; the real member's history gets both reports)
    assert [(r.kind, r.term) for r in reports if r.kind == "left_behind"] == [("left_behind", "pde")]
    reports = [r for r in reports if r.kind != "left_behind"]
    assert [(r.kind, r.term) for r in reports] == [("stall", "obs")]
    assert "while λ_bc is" in reports[0].message and "'obs' is all but ignored" in reports[0].message
    # the same weights with the observations fitted: nothing to say about them
    losses[:, 0, 2] = np.logspace(-0.2, -4, E)
    assert [r for r in _watch(fastpinn.DN(beta=0.9), w, losses, names=("pde", "bc", "obs"))
            if r.kind != "left_behind"] == []


def test_evaluate_scores_one_output_of_a_two_output_run(tmp_path, capsys):
    # The (u, k) inverse run: `fastpinn evaluate RUN --points x.npy --values u.npy` with u alone said "values must
    # hold one entry per point and output (22), got 11"; checking the observed field needed k's values too.
    import json

    from fastpinn import cli

    path = tmp_path / "two.py"
    path.write_text(
        "import numpy as np, torch\n"
        "from fastpinn import Problem, data, pde\n"
        "def make_problem(seed=0):\n"
        "    x = torch.linspace(0, 1, 12, dtype=torch.float64)[:, None]\n"
        "    res = lambda f: 0.01 * f['u_xx'][..., 0] - f['u'][..., 1] * f['u'][..., 0]\n"
        "    def solution():\n"
        "        X = np.linspace(0, 1, 21)[:, None]\n"
        "        return X, np.stack([np.sin(np.pi * X[:, 0]), 1 + X[:, 0]], -1)\n"
        "    return Problem(name='two', coords=('x',), lower=(0.0,), upper=(1.0,), out_dim=2, depth=2, width=4,\n"
        "                   terms=[pde('pde', x, res, ('u', 'u_xx')), data('obs', x, torch.sin(torch.pi * x[:, 0]), output=0)],\n"
        "                   seeds=(seed,), solution=solution)\n")
    run = tmp_path / "run"
    fast = ["--epochs", "3", "--no-figures", "--no-progress", "--compile", "off", "--threads", "1", "--backend", "torch"]
    assert cli.main(["train", f"{path}:make_problem", "--scheme", "pinn", "--out", str(run), *fast]) == 0
    X = np.linspace(0, 1, 11)[:, None]
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "u.npy", np.sin(np.pi * X[:, 0]))
    np.save(tmp_path / "pred.npy", np.zeros(1))
    capsys.readouterr()
    assert cli.main(["predict", str(run), "--problem", f"{path}:make_problem", "--points", str(tmp_path / "x.npy"),
                     "--out", str(tmp_path / "pred.npy")]) == 0
    u_pred = np.load(tmp_path / "pred.npy")[:, 0]
    expected = np.linalg.norm(u_pred - np.sin(np.pi * X[:, 0])) / np.linalg.norm(np.sin(np.pi * X[:, 0]))
    capsys.readouterr()
    assert cli.main(["evaluate", str(run), "--problem", f"{path}:make_problem", "--points", str(tmp_path / "x.npy"),
                     "--values", str(tmp_path / "u.npy"), "--output", "0"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["rel_l2_per_seed"][0] == pytest.approx(expected, rel=1e-5)
    assert result["on"] == "11 given points, outputs [0]"
    assert cli.main(["evaluate", str(run), "--problem", f"{path}:make_problem", "--output", "1"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["on"] == "reference grid, outputs [1]"
    assert cli.main(["evaluate", str(run), "--problem", f"{path}:make_problem", "--output", "2"]) != 0
    assert "--output must name distinct outputs of the network (0..1), got [2]" in capsys.readouterr().err
