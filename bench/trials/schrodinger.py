"""User trial: the nonlinear Schrodinger equation of Raissi, Perdikaris & Karniadakis (2019), section 3.1.1.

    i h_t + 0.5 h_xx + |h|^2 h = 0,   x in [-5, 5], t in [0, pi/2],   h(0, x) = 2 sech(x),
    h(t, -5) = h(t, 5),  h_x(t, -5) = h_x(t, 5)   (periodic).

Two outputs (u, v), h = u + i v: the residual is [N, 2] (real and imaginary parts). The paper's setup is
N0 = 50 initial, Nb = 50 boundary and Nf = 20,000 collocation points and a 5 x 100 network; this trial's
default has 2,000 collocation points and a 4 x 64 network so that a CPU run is short. The reference is
computed here: split-step Fourier (Strang), 256 modes, 20,000 steps, on the periodic interval.

    fastpinn train bench/trials/schrodinger.py:make_problem --epochs 1000
"""

from __future__ import annotations

import math

import numpy as np
import torch

from fastpinn import Problem, initial, pde, periodic, sampling

T_END = math.pi / 2


def reference(n_modes: int = 256, n_steps: int = 20000, n_times: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """``X[M, 2]`` (t, x) and ``(u, v)[M, 2]`` on ``n_times`` x ``n_modes`` points (x = -5 ... 5 - dx)."""
    x = np.linspace(-5.0, 5.0, n_modes, endpoint=False)
    k = 2 * math.pi * np.fft.fftfreq(n_modes, d=10.0 / n_modes)
    dt = T_END / n_steps
    linear = np.exp(-0.5j * k ** 2 * dt)
    h = (2.0 / np.cosh(x)).astype(complex)
    keep = np.linspace(0, n_steps, n_times).round().astype(int)
    snaps = [h.copy()]
    for step in range(1, n_steps + 1):
        h = h * np.exp(0.5j * np.abs(h) ** 2 * dt)
        h = np.fft.ifft(linear * np.fft.fft(h))
        h = h * np.exp(0.5j * np.abs(h) ** 2 * dt)
        if step in keep[1:]:
            snaps.append(h.copy())
    H = np.stack(snaps)  # [n_times, n_modes]
    t, xx = np.meshgrid(keep * dt, x, indexing="ij")
    return np.stack([t.ravel(), xx.ravel()], 1), np.stack([H.real.ravel(), H.imag.ravel()], 1)


def make_problem(seed: int = 0, n_pde: int = 2000, n_ic: int = 50, n_bc: int = 50) -> Problem:
    lower, upper = (0.0, -5.0), (T_END, 5.0)  # (t, x)
    gen = torch.Generator().manual_seed(seed)
    x_pde = sampling.uniform(n_pde, lower, upper, gen)
    x_ic = sampling.on_face("uniform", n_ic, lower, upper, 0, 0.0, gen)
    t_bc = torch.rand(n_bc, 1, generator=gen, dtype=torch.float64) * T_END
    x_lo = torch.cat([t_bc, torch.full_like(t_bc, -5.0)], 1)
    x_hi = torch.cat([t_bc, torch.full_like(t_bc, 5.0)], 1)

    def residual(f):  # f["u"], f["u_t"], f["u_xx"]: [N, 2] -> [N, 2]
        u, v = f["u"][..., 0], f["u"][..., 1]
        sq = u ** 2 + v ** 2
        real = -f["u_t"][..., 1] + 0.5 * f["u_xx"][..., 0] + sq * u
        imag = f["u_t"][..., 0] + 0.5 * f["u_xx"][..., 1] + sq * v
        return torch.stack([real, imag], -1)

    def h0(X):  # [N, 2] -> (u, v) [N, 2]
        return torch.stack([2.0 / torch.cosh(X[:, 1]), torch.zeros_like(X[:, 1])], -1)

    return Problem(name="schrodinger", coords=("t", "x"), lower=lower, upper=upper,
                   terms=[pde("pde", x_pde, residual, requests=("u", "u_t", "u_xx")),
                          initial("ic", x_ic, h0, out_dim=2),
                          periodic("bc_u", x_lo, x_hi, "u"),
                          periodic("bc_ux", x_lo, x_hi, "u_x")],
                   depth=4, width=64, out_dim=2, epochs=50000, solution=reference, seeds=(seed,))
