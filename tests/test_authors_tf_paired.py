"""bench/authors_tf_paired.py: Keras's Adam in torch, and fastpinn started from a run exported by the authors' code
(TensorFlow itself is not in the test environment; the export is built here in its format)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import authors_tf_paired as paired  # noqa: E402


def test_keras_adam_puts_epsilon_on_the_uncorrected_root():
    # Keras: θ -= lr √(1-β₂ᵗ)/(1-β₁ᵗ) · m / (√v + ε), written out in numpy for three steps of fixed gradients,
    # tiny ones included (there ε = 1e-7 on √v differs from torch's 1e-8 on √v̂ by far more than rounding).
    g = np.array([3.0, -1e-3, 2e-6, -5e-8])
    theta = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    opt = paired.KerasAdam([theta], lr=1e-3)
    m = v = np.zeros(4)
    expected = np.zeros(4)
    for t in range(1, 4):
        theta.grad = torch.as_tensor(g)
        opt.step()
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        expected -= 1e-3 * math.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t) * m / (np.sqrt(v) + 1e-7)
    np.testing.assert_allclose(theta.detach().numpy(), expected, rtol=1e-13, atol=0)
    # torch's Adam steps the tiny gradients much further (its ε is on the bias-corrected root)
    torch_theta = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    torch_opt = torch.optim.Adam([torch_theta], lr=1e-3)
    for _ in range(3):
        torch_theta.grad = torch.as_tensor(g)
        torch_opt.step()
    assert abs(torch_theta[3].item()) > 5 * abs(expected[3])


def _export(seed: int, n_pde: int = 12, n_bc: int = 8) -> dict:
    """A run in the format of authors_tf_poisson_pinn.py --export: TensorFlow's W is [in, out], b is [1, out]."""
    rng = np.random.default_rng(seed)
    run = {"x_pde": rng.uniform(size=(n_pde, 2)), "x_bc": rng.uniform(size=(n_bc, 2))}
    sizes = [2, 50, 50, 50, 50, 1]
    for layer in range(5):
        run[f"start_{2 * layer}"] = rng.normal(scale=1.0, size=(sizes[layer], sizes[layer + 1]))
        run[f"start_{2 * layer + 1}"] = rng.normal(scale=0.1, size=(1, sizes[layer + 1]))
    return run


def test_population_members_start_from_their_exported_parameters():
    runs = [_export(0), _export(1)]
    epochs, rel = paired.population_from_starts(runs, epochs=1, eval_every=1, adam="torch")
    assert epochs.tolist() == [1] and rel.shape == (1, 2) and np.isfinite(rel).all()
    # after one step the two members differ as their starts do, and each is the network its export describes
    # to Adam's first step (each parameter moves by at most lr): compare with that network evaluated by hand
    from fastpinn.reference import poisson_reference

    X, u = poisson_reference(omega=paired.OMEGA)
    X = np.asarray(X).reshape(-1, 2)
    u = np.asarray(u).reshape(-1)
    for s, run in enumerate(runs):
        z = 2.0 * X - 1.0  # the authors' min-max scaling of [0, 1]² onto [-1, 1]²
        for layer in range(5):
            z = z @ run[f"start_{2 * layer}"] + run[f"start_{2 * layer + 1}"]
            if layer < 4:
                z = np.tanh(z)
        start_error = np.linalg.norm(z[:, 0] - u) / np.linalg.norm(u)
        assert abs(rel[0, s] - start_error) < 0.02 * start_error, (s, rel[0, s], start_error)
    assert abs(rel[0, 0] - rel[0, 1]) > 1e-4
