"""Point resampling (fastpinn.resampling): periodic, RAR, RAD; resume; checkpoint; bad input."""

from __future__ import annotations

import math

import pytest
import torch

import fastpinn
from fastpinn import PINN, Resampling, Trainer, sampling
from fastpinn.problem import Problem, dirichlet, pde
from fastpinn.errors import CheckpointError
from fastpinn.problems import poisson1d
from fastpinn.resampling import SEED_OFFSET, rad_indices, rad_probabilities, rar_indices, residual_magnitude


def _trainer(kind: str, *, seed=0, n_pde=32, scheme=None, **options) -> Trainer:
    opts = {"every": 3, "candidates": 400, "points": 5, **options}
    return Trainer(poisson1d(seed, n_pde=n_pde, width=16), scheme, dtype=torch.float64, threads=1,
                   resampling=Resampling(kind, **opts), eval_every=1000)


def _magnitude(tr: Trainer, candidates: torch.Tensor) -> torch.Tensor:
    term = tr.problem.terms[0]
    return residual_magnitude(term, tr.net, tr.problem.coords, candidates, method="autograd")


def _generator_copy(tr: Trainer, member: int = 0) -> torch.Generator:
    g = torch.Generator()
    g.set_state(tr.resampler.generators[member].get_state())
    return g


# ------------------------------------------------------------------------------------- each kind
def test_periodic_redraws_every_point_from_its_own_generator():
    tr = _trainer("periodic", scheme=PINN())
    first = tr.problem.terms[0].points[0].clone()
    tr.train(3)  # epochs 0, 1, 2: nothing resampled yet
    assert torch.equal(tr.problem.terms[0].points[0], first)
    expected = sampling.uniform(32, [-1.0], [1.0], torch.Generator().manual_seed(0 + SEED_OFFSET), dtype=torch.float64)
    tr.train(1)  # epoch 3 starts with a resampling
    assert torch.equal(tr.problem.terms[0].points[0], expected)
    assert tr.resampler.count == 1


@pytest.mark.parametrize("kind", ["periodic", "rad"])
def test_same_count_kinds_write_in_place(kind):
    """What keeps a captured CUDA graph valid: the point tensor the step reads keeps its address."""
    tr = _trainer(kind, scheme=PINN(), every=1)
    tensor = tr.problem.terms[0].points[0]
    before = tensor.clone()
    tr.train(2)
    assert tr.problem.terms[0].points[0] is tensor and not torch.equal(tensor, before)


def test_rar_adds_exactly_the_top_m_residual_candidates():
    tr = _trainer("rar", scheme=PINN())
    tr.train(3)
    old = tr.problem.terms[0].points[0].clone()
    candidates = sampling.uniform(400, [-1.0], [1.0], _generator_copy(tr), dtype=torch.float64)
    mag = _magnitude(tr, candidates)  # at the parameters the resampling sees
    tr.train(1)
    new = tr.problem.terms[0].points[0]
    assert new.shape == (37, 1) and torch.equal(new[:32], old)
    chosen = mag.topk(5).indices
    assert torch.equal(new[32:], candidates[chosen])
    others = torch.ones(400, dtype=torch.bool)
    others[chosen] = False
    assert float(mag[chosen].min()) >= float(mag[others].max())
    assert tr.batches.layout[0][0] == 37  # the whole term trains on the new points
    tr.train(3)
    assert tr.problem.terms[0].n_points == 42


def test_rad_keeps_the_count_and_draws_from_the_candidates():
    tr = _trainer("rad", scheme=PINN(), k=2.0, c=0.0)
    tr.train(3)
    candidates = sampling.uniform(400, [-1.0], [1.0], _generator_copy(tr), dtype=torch.float64)
    mag = _magnitude(tr, candidates)
    tr.train(1)
    new = tr.problem.terms[0].points[0]
    assert new.shape == (32, 1)
    pos = (new[:, 0:1] == candidates[:, 0][None, :]).float().argmax(1)
    assert torch.equal(candidates[pos], new) and pos.unique().numel() == 32  # distinct candidates
    # c = 0, k = 2: p ∝ |r|^2, so E_p |r|^2 = E |r|^4 / E |r|^2, 1.5 E |r|^2 for the (near-sinusoidal)
    # residual here; 32 of 400 without replacement keeps most of that
    assert float(mag[pos].pow(2).mean()) > 1.2 * float(mag.pow(2).mean())


@pytest.mark.parametrize("k, c, cdf", [
    (1.0, 0.0, lambda x: x ** 2),                # p ∝ x / mean x = 2x
    (2.0, 1.0, lambda x: (x ** 3 + x) / 2),      # p ∝ x^2 / (1/3) + 1 = 3x^2 + 1, normalized (3x^2 + 1) / 2
])
def test_rad_samples_follow_the_density(k, c, cdf):
    """|r| = x on 200 000 uniform candidates in [0, 1]: the 2 000 drawn follow p(x) ∝ |r|^k / mean |r|^k + c.
    Kolmogorov-Smirnov distance against the density's CDF: 1.95 / sqrt(2000) = 0.044 is its 0.1 % critical value
    for independent draws; drawing 1 % of the pool without replacement moves the CDF by under 0.01. The same
    statistic against the uniform CDF is > 0.1, so the check can fail."""
    x = torch.rand(200_000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    idx = rad_indices(x, 2000, k, c, torch.Generator().manual_seed(2))
    s = x[idx].sort().values
    ecdf_hi = torch.arange(1, 2001, dtype=torch.float64) / 2000
    ks = float(torch.maximum((ecdf_hi - cdf(s)).abs(), (ecdf_hi - 1 / 2000 - cdf(s)).abs()).max())
    ks_uniform = float(torch.maximum((ecdf_hi - s).abs(), (ecdf_hi - 1 / 2000 - s).abs()).max())
    assert ks < 0.044 + 0.01
    assert ks_uniform > 0.1


def test_rad_probabilities_and_rar_indices_directly():
    mag = torch.tensor([[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]])
    p = rad_probabilities(mag, 1.0, 0.0)
    assert torch.allclose(p[0], torch.tensor([0.0, 0.25, 0.75], dtype=torch.float64))
    assert torch.allclose(p[1], torch.full((3,), 1 / 3, dtype=torch.float64))
    assert torch.allclose(rad_probabilities(torch.zeros(4), 1.0, 1.0), torch.full((4,), 0.25, dtype=torch.float64))
    assert rar_indices(mag, 1)[0].tolist() == [2]
    # a non-finite residual counts as 0 (the NaN check reports divergence; sampling must not fail first)
    p = rad_probabilities(torch.tensor([math.nan, 1.0, 3.0]), 1.0, 0.0)
    assert torch.allclose(p, torch.tensor([0.0, 0.25, 0.75], dtype=torch.float64))


# --------------------------------------------------------------------------------- resume and checkpoints
@pytest.mark.parametrize("kind", ["periodic", "rar", "rad"])
def test_resume_equals_the_uninterrupted_run_bit_for_bit(kind, tmp_path):
    straight = _trainer(kind)
    straight.train(12)
    first = _trainer(kind)
    first.train(6)  # a resampling happened at epoch 3; the next is at the first epoch of the resumed call
    first.save_checkpoint(tmp_path / "ck.pt")
    resumed = _trainer(kind)
    resumed.load_checkpoint(tmp_path / "ck.pt")
    resumed.train(6)
    assert torch.equal(resumed.theta, straight.theta)
    assert torch.equal(resumed.problem.terms[0].points[0], straight.problem.terms[0].points[0])
    assert resumed.resampler.count == straight.resampler.count == 3


def test_checkpoint_round_trip_and_mismatches(tmp_path):
    tr = _trainer("rar")
    tr.train(4)
    tr.save_checkpoint(tmp_path / "ck.pt")
    state = Trainer.read_checkpoint(tmp_path / "ck.pt")
    assert torch.equal(state["resampling"]["points"]["pde"], tr.problem.terms[0].points[0])
    assert state["meta"]["resampling"]["pde"]["kind"] == "rar"
    other = _trainer("rar")
    other.load_checkpoint(tmp_path / "ck.pt")
    assert other.problem.terms[0].n_points == 37 and other.batches.layout[0][0] == 37
    with pytest.raises(CheckpointError, match="resampling"):
        _trainer("rad").load_checkpoint(tmp_path / "ck.pt")
    with pytest.raises(CheckpointError, match="resampling"):
        Trainer(poisson1d(0, n_pde=32, width=16), dtype=torch.float64).load_checkpoint(tmp_path / "ck.pt")


def test_ensemble_members_resample_as_their_single_runs():
    ens = _trainer("periodic", seed=[0, 1], scheme=PINN())
    ens.train(4)
    for s in (0, 1):
        single = _trainer("periodic", seed=s, scheme=PINN())
        single.train(4)
        assert torch.equal(ens.problem.terms[0].points[0][s], single.problem.terms[0].points[0])
    rar = _trainer("rar", seed=[0, 1], scheme=PINN())
    rar.train(4)
    assert rar.problem.terms[0].points[0].shape == (2, 37, 1)


@pytest.mark.parametrize("kind", ["rar", "rad"])
def test_the_nan_roll_back_restores_the_points(kind):
    """A loss that turns NaN after epoch 4: the trainer rolls back to the boundary at 4, points included
    (RAR: 32 + 5 points from the resampling at epoch 2, not the 42 or 47 it reached)."""
    from fastpinn import NonFiniteError

    problem = poisson1d(0, n_pde=32, width=16)
    scale = torch.ones((), dtype=torch.float64)
    term = problem.terms[0]
    inner = term.residual
    term.residual = lambda f: inner(f) * scale
    tr = Trainer(problem, PINN(), dtype=torch.float64, threads=1, eval_every=4,
                 resampling=Resampling(kind, every=2, candidates=400, points=5))
    saved = {}

    def poison(trainer, epoch, info):
        if epoch == 4:
            saved["points"] = trainer.problem.terms[0].points[0].clone()
            scale.fill_(math.nan)

    with pytest.raises(NonFiniteError):
        tr.train(12, callback=poison)
    assert tr.epoch == 4
    assert torch.equal(tr.problem.terms[0].points[0], saved["points"])
    assert tr.batches.layout[0][0] == saved["points"].shape[0] == (37 if kind == "rar" else 32)


def test_the_users_problem_points_are_not_changed():
    problem = poisson1d(0, n_pde=32, width=16)
    before = problem.terms[0].points[0].clone()
    Trainer(problem, PINN(), dtype=torch.float64, resampling=Resampling("periodic", every=1)).train(2)
    assert torch.equal(problem.terms[0].points[0], before)


def test_a_geometry_domain_or_a_function_draws_the_candidates():
    from fastpinn.geometry import Interval

    for sampler in (Interval(0.0, 0.5), lambda n, g: 0.5 * torch.rand(n, 1, generator=g, dtype=torch.float64)):
        tr = _trainer("periodic", scheme=PINN(), sampler=sampler, every=1)
        tr.train(2)
        pts = tr.problem.terms[0].points[0]
        assert float(pts.min()) >= 0.0 and float(pts.max()) <= 0.5


def test_the_terms_own_sampler_is_the_default():
    """A user's problem on a domain that is not its box says where its PDE points come from once
    (``pde(..., sampler=domain)``); resampling, also from the command line, draws there."""
    from fastpinn import pde
    from fastpinn.geometry import Interval

    problem = poisson1d(0, n_pde=32, width=16)
    old = problem.terms[0]
    problem.terms[0] = pde("pde", old.points[0].abs() / 2, old.residual, old.requests, sampler=Interval(0.0, 0.5))
    tr = Trainer(problem, PINN(), dtype=torch.float64, threads=1, resampling=Resampling("rar", every=1, points=50))
    tr.train(2)
    pts = tr.problem.terms[0].points[0]
    assert pts.shape == (82, 1) and float(pts.min()) >= 0.0 and float(pts.max()) <= 0.5
    with pytest.raises(ValueError, match="term 'pde': sampler must be None, a fastpinn.geometry domain"):
        pde("pde", old.points[0], old.residual, old.requests, sampler="disk")


# ----------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "adaptive"}, "resampling kind must be one of none, periodic, rar, rad, got 'adaptive'"),
    ({"kind": "rar", "every": 0}, "resampling every must be an integer >= 1, got 0"),
    ({"kind": "rad", "k": -1.0}, "resampling k must be a finite number >= 0, got -1.0"),
    ({"kind": "rad", "c": math.nan}, "resampling c must be a finite number >= 0"),
    ({"kind": "rar", "points": 2.5}, "resampling points must be an integer >= 1, got 2.5"),
    ({"kind": "rar", "sampler": 3}, "resampling sampler must be None"),
])
def test_bad_options_are_one_line_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")) as err:
        Resampling(**kwargs)
    assert "\n" not in str(err.value)


def test_terms_that_cannot_be_resampled_are_refused():
    problem = poisson1d(0, n_pde=32, width=16)
    with pytest.raises(ValueError, match="resampling term must be one of pde, bc, got 'interior'"):
        Trainer(problem, resampling=Resampling("rar", term="interior"))
    with pytest.raises(ValueError, match="resampling term 'bc': only a term on one point set without targets"):
        Trainer(problem, resampling=Resampling("rar", term="bc"))
    with pytest.raises(ValueError, match="resampling candidates must be >= the term's 32 points"):
        Trainer(problem, resampling=Resampling("rad", candidates=16))
    problem.terms[0].batch_size = 8
    with pytest.raises(ValueError, match="kind 'rar' on the mini-batched term 'pde'"):
        Trainer(problem, resampling=Resampling("rar"))
    Trainer(problem, resampling=Resampling("rad", every=1)).train(2)  # the count stays: mini-batches are fine



# ----------------------------------------------------------------------------------------------- the CLI
TINY = ["--epochs", "12", "--n-pde", "16", "--threads", "1", "--no-progress", "--no-figures", "--backend", "torch",
        "--eval-every", "4", "--scheme", "pinn"]


def test_cli_records_resampling_and_refuses_a_directory_of_another(tmp_path, capsys):
    import json

    from fastpinn import cli

    out = tmp_path / "run"
    argv = ["train", "poisson1d", "--out", str(out), *TINY, "--resample", "rar", "--resample-every", "5",
            "--resample-candidates", "100", "--resample-points", "3"]
    assert cli.main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    expected = {"kind": "rar", "every": 5, "candidates": 100, "points": 3, "term": None}
    assert config["config"]["resampling"] == expected
    assert config["identity"]["resampling"] == {**expected, "sampler": "default"}
    state = Trainer.read_checkpoint(out / "checkpoint.pt")
    assert state["resampling"]["points"]["pde"].shape == (16 + 2 * 3, 1)  # resampled at epochs 5 and 10
    capsys.readouterr()
    assert cli.main(argv[:-1] + ["4"]) == 2  # another resampling: the directory is refused
    assert "different configuration" in capsys.readouterr().err


@pytest.mark.parametrize("extra, needle", [
    (["--resample", "rar", "--resample-k", "2"], "--resample-k is not an option of --resample rar"),
    (["--resample-every", "3"], "--resample-every needs --resample periodic, rar or rad"),
    (["--resample", "rad", "--resample-every", "0"], "resampling every must be an integer >= 1, got 0"),
    (["--resample", "auto"], "invalid choice"),
    (["--resample", "rar", "--resample-term", "bc"], "resampling term 'bc': only a term on one point set"),
])
def test_cli_bad_resampling_options_exit_2_with_one_line(extra, needle, tmp_path, capsys):
    from fastpinn import cli

    assert cli.main(["train", "poisson1d", "--out", str(tmp_path / "o"), *TINY, *extra]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and needle in err[0]
    assert not (tmp_path / "o").exists()

# ------------------------------------------------------------------------------------- does it help
def _sharp_layer(seed: int, n_pde: int = 24, a: float = 20.0):
    """-u'' = f on [-1, 1] with u = arctan(a x): a layer of width ~1/a at 0 that 24 uniform points miss."""
    import numpy as np

    from fastpinn import Problem, dirichlet, pde

    x = sampling.uniform(n_pde, [-1.0], [1.0], torch.Generator().manual_seed(seed), dtype=torch.float64)

    def residual(f):
        x = f.x[..., 0]
        return f["u_xx"][..., 0] + 2 * a ** 3 * x / (1 + (a * x) ** 2) ** 2

    def solution():
        X = np.linspace(-1, 1, 2001)[:, None]
        return X, np.arctan(a * X[:, 0])

    bc = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)
    return Problem("sharp_layer", ("x",), (-1.0,), (1.0,),
                   [pde("pde", x, residual, ("u_xx",)), dirichlet("bc", bc, lambda p: torch.atan(a * p[:, 0]))],
                   depth=4, width=32, solution=solution, seeds=(seed,))


@pytest.mark.slow
def test_rar_and_rad_lower_the_error_on_a_sharp_layer():
    """The measurement of docs/resampling.md, seed 0 (2000 epochs of Adam, 24 points, resampling every 500):
    measured rel. L2 0.34 without resampling, 7e-3 with RAR (+6 points each time), 5e-2 with RAD."""
    errors = {}
    for kind in ("none", "rar", "rad"):
        spec = None if kind == "none" else Resampling(kind, every=500, candidates=2000, points=6)
        tr = Trainer(_sharp_layer(0), PINN(), dtype=torch.float64, resampling=spec, threads=1, eval_every=2000)
        tr.train(2000)
        errors[kind] = float(tr.evaluate()[0])
    assert errors["rar"] < errors["none"] / 5
    assert errors["rad"] < errors["none"] / 2


def test_what_resampling_cannot_train_with_is_refused():
    """Data parallelism, RAR under a CUDA graph and attention on a resampled term (checked without launching
    ranks or needing a GPU: the Resampler's check the Trainer calls)."""
    from fastpinn.resampling import Resampler

    def resampler(kind):
        return Resampler([Resampling(kind)], poisson1d(0, n_pde=32, width=16))

    with pytest.raises(ValueError, match="resampling is not supported with distributed training"):
        resampler("periodic").check_training(world_size=2, step_mode="eager")
    with pytest.raises(ValueError, match="kind 'rar' changes the point count, which a captured CUDA graph"):
        resampler("rar").check_training(world_size=1, step_mode="cuda_graph")
    resampler("rad").check_training(world_size=1, step_mode="cuda_graph")  # same count: graphs stay valid
    with pytest.raises(ValueError, match="resampling a term with pointwise attention is not supported"):
        resampler("rad").check_training(world_size=1, step_mode="eager", attended=(0,))
    from fastpinn.rba import ResidualAttention

    with pytest.raises(ValueError, match="pointwise attention"):
        Trainer(poisson1d(0, n_pde=32, width=16), attention=ResidualAttention([32, 2], terms=(0,)),
                resampling=Resampling("rad"))


def test_a_resampled_term_is_trained_on_its_new_points_when_terms_would_share_an_evaluation():
    """Small nested-autograd problems evaluate their derivative terms once over concatenated points; that copy
    was made when the trainer was built, so a resampled term of such a group trained on its first points
    forever (the run equalled one without resampling). A resampled term keeps its own evaluation."""
    F64 = torch.float64
    x = torch.linspace(0.05, 0.95, 10, dtype=F64).unsqueeze(1)
    ends = torch.tensor([[0.0], [1.0]], dtype=F64)

    def beam():
        return Problem(name="beam", coords=("x",), lower=(0.0,), upper=(1.0,),
                       terms=[pde("pde", x.clone(), lambda f: f["u_xxxx"][..., 0] - 1.0, ("u_xxxx",)),
                              dirichlet("u_ends", ends),
                              pde("m_ends", ends, lambda f: f["u_xx"][..., 0], ("u_xx",))],
                       depth=2, width=8)

    def trainer(resampling):
        return fastpinn.Trainer(beam(), fastpinn.PINN(), dtype=F64, derivative_method="autograd", eval_every=100,
                                resampling=resampling)

    still, moving = trainer(None), trainer(fastpinn.Resampling("periodic", every=1, term="pde"))
    assert [g for g, _ in still.loss_functions.groups] == [[0, 2], [1]]  # what the pde term would share
    assert [0] in [g for g, _ in moving.loss_functions.groups]
    still.train(6)
    moving.train(6)
    assert (still.theta - moving.theta).abs().max() > 1e-6
    term = moving.problem.terms[0]
    own = term.loss(moving.net, moving.problem.coords, method="autograd", theta=moving.theta)
    torch.testing.assert_close(moving.term_losses()[0].reshape(()), own.reshape(()), rtol=1e-12, atol=0)
