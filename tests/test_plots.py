"""Every figure function writes a non-empty PNG atomically, from synthetic data (no training).

``run_figures`` on a trained problem is covered end to end by tests/test_cli.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fastpinn import plots
from fastpinn.trainer import History

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000
    # atomic writer: no temporary files left behind
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def _history(E=50, S=2, K=3, M=5):
    rng = np.random.default_rng(0)
    losses = np.exp(-np.linspace(0, 5, E))[:, None, None] * (1 + rng.random((E, S, K)))
    weights = np.ones((E, S, K))
    weights[:, :, 1:] = 1 + np.linspace(0, 10, E)[:, None, None] * rng.random((1, S, K - 1))
    return History(term_names=["pde", "ic", "bc"][:K], losses=losses, weights=weights,
                   eval_epochs=np.linspace(E // M, E, M).astype(np.int64), rel_l2=rng.random((M, S)) + 0.01,
                   skipped=np.zeros((S, K), dtype=np.int64), train_seconds=1.0, ensemble=S)


def test_grid_shape():
    t, x = np.linspace(0, 1, 4), np.linspace(-1, 1, 3)
    X = np.stack(np.meshgrid(t, x, indexing="ij"), -1).reshape(-1, 2)
    assert plots.grid_shape(X) == (4, 3)
    assert plots.grid_shape(X[::-1].copy()) is None or plots.grid_shape(X[::-1].copy()) == (4, 3)
    assert plots.grid_shape(np.random.default_rng(0).random((12, 2))) is None
    assert plots.grid_shape(np.zeros((5, 1))) is None


@pytest.mark.parametrize("kind", ["grid", "scatter", "1d", "ensemble"])
def test_solution_maps(tmp_path, kind):
    rng = np.random.default_rng(1)
    if kind == "1d":
        X = np.linspace(-1, 1, 50)[:, None]
    elif kind == "scatter":
        X = rng.random((200, 2))
    else:
        t, x = np.linspace(0, 1, 11), np.linspace(-1, 1, 21)
        X = np.stack(np.meshgrid(t, x, indexing="ij"), -1).reshape(-1, 2)
    U = np.sin(3 * X.sum(1))
    pred = U + 0.01 * rng.standard_normal(U.shape)
    if kind == "ensemble":
        pred = np.stack([pred, pred + 0.1])[..., None]  # [S, M, 1] as Trainer.predict returns
    out = plots.plot_solution_maps(X, U, pred, tmp_path / "sol.png", coords=("t", "x"), title="test", member=1
                                   if kind == "ensemble" else 0)
    _assert_png(out)


def test_solution_maps_shape_mismatch(tmp_path):
    with pytest.raises(ValueError, match="do not match"):
        plots.plot_solution_maps(np.zeros((5, 2)), np.zeros(5), np.zeros(4), tmp_path / "x.png")


def test_gradient_histograms(tmp_path):
    rng = np.random.default_rng(2)
    G = rng.standard_normal((2, 3, 500)) * np.array([1.0, 1e-3, 1e-5])[None, :, None]
    G[0, 2, :10] = 0.0  # exact zeros are counted, not plotted
    lam = np.array([[1.0, 1e3, 1e5], [1.0, 2e3, 1e5]])  # [S, K]: what DN-PINN applies
    _assert_png(plots.plot_gradient_histograms(G, ["pde", "ic", "bc"], tmp_path / "g.png", weights=lam))
    _assert_png(plots.plot_gradient_histograms(G[0], ["pde", "ic", "bc"], tmp_path / "g2.png", weights=lam[0]))
    _assert_png(plots.plot_gradient_histograms(G, ["pde", "ic", "bc"], tmp_path / "g1.png", weighted=False))
    _assert_png(plots.plot_gradient_histograms(np.zeros((2, 40)), ["pde", "bc"], tmp_path / "g3.png",
                                               weights=np.ones(2)))
    with pytest.raises(ValueError):
        plots.plot_gradient_histograms(G, ["pde", "ic"], tmp_path / "bad.png", weights=lam)
    with pytest.raises(ValueError, match="weights"):
        plots.plot_gradient_histograms(G, ["pde", "ic", "bc"], tmp_path / "bad.png")
    _assert_png(plots.plot_gradients_side_by_side({"PINN": (G, np.ones(3)), "DN-PINN": (G, lam)},
                                                  ["pde", "ic", "bc"], tmp_path / "side.png"))


def test_training_curves_trajectory_weights(tmp_path):
    h = _history()
    _assert_png(plots.plot_training_curves(h, tmp_path / "t.png", title="x"))
    _assert_png(plots.plot_loss_trajectory(h, tmp_path / "l.png"))
    _assert_png(plots.plot_weights(h, tmp_path / "w.png"))
    h1 = _history(S=1, K=2)
    h1.rel_l2 = np.zeros((0, 1))
    h1.eval_epochs = np.zeros(0, dtype=np.int64)
    _assert_png(plots.plot_training_curves(h1, tmp_path / "t1.png"))


def test_bias_correction_and_summary(tmp_path):
    hist = {(b, bc): _history(K=2) for b in (0.9, 0.99, 0.999) for bc in (False, True)}
    _assert_png(plots.plot_bias_correction(hist, tmp_path / "bc.png"))
    _assert_png(plots.plot_table_summary(["PINN", "DN"], [0.5, 0.01], [0.1, None], tmp_path / "s.png",
                                         paper=[None, 0.02], title="t"))
    _assert_png(plots.plot_table_summary(["PINN", "DN"], [None, math.nan], [None, None], tmp_path / "s2.png"))
    with pytest.raises(ValueError):
        plots.plot_bias_correction({}, tmp_path / "none.png")
