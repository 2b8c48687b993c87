"""User trial: DeepXDE's "inverse problem for the Lorenz system" with data computed here.

    x' = C1 (y - x),   y' = x (C2 - z) - y,   z' = x y - C3 z,   t in [0, 3],   (x, y, z)(0) = (-8, 7, 27),

true (C1, C2, C3) = (10, 15, 8/3), all three learned from 1.0. Observations of (x, y, z) at n_data times
come from scipy's solve_ivp (DOP853, rtol 1e-12) with the true coefficients; 400 collocation points and a
3 x 40 network as in DeepXDE's example.

    fastpinn train bench/trials/lorenz_inverse.py:make_problem --epochs 2000
"""

from __future__ import annotations

import numpy as np
import torch

from fastpinn import Problem, data, initial, pde

T_END = 3.0
START = (-8.0, 7.0, 27.0)
TRUE = {"C1": 10.0, "C2": 15.0, "C3": 8.0 / 3.0}


def trajectory(t: np.ndarray) -> np.ndarray:
    """``(x, y, z)[n, 3]`` at the times ``t[n]`` with the true coefficients."""
    from scipy.integrate import solve_ivp

    c1, c2, c3 = TRUE["C1"], TRUE["C2"], TRUE["C3"]
    rhs = lambda _, s: [c1 * (s[1] - s[0]), s[0] * (c2 - s[2]) - s[1], s[0] * s[1] - c3 * s[2]]
    return solve_ivp(rhs, (0.0, T_END), START, method="DOP853", t_eval=t, rtol=1e-12, atol=1e-12).y.T.copy()


def make_problem(seed: int = 0, n_pde: int = 400, n_data: int = 40) -> Problem:
    gen = torch.Generator().manual_seed(seed)
    t_pde = torch.rand(n_pde, 1, generator=gen, dtype=torch.float64) * T_END
    t_obs = np.linspace(0.0, T_END, n_data)
    t0 = torch.zeros(1, 1, dtype=torch.float64)

    def residual(f):  # f["u"], f["u_t"]: [N, 3] -> [N, 3]
        x, y, z = f["u"][..., 0], f["u"][..., 1], f["u"][..., 2]
        c1, c2, c3 = f.coef["C1"], f.coef["C2"], f.coef["C3"]
        return torch.stack([f["u_t"][..., 0] - c1 * (y - x),
                            f["u_t"][..., 1] - (x * (c2 - z) - y),
                            f["u_t"][..., 2] - (x * y - c3 * z)], -1)

    def solution():
        t = np.linspace(0.0, T_END, 301)
        return t[:, None], trajectory(t)

    return Problem(name="lorenz_inverse", coords=("t",), lower=(0.0,), upper=(T_END,),
                   terms=[pde("ode", t_pde, residual, requests=("u", "u_t")),
                          initial("ic", t0, torch.tensor([START], dtype=torch.float64), out_dim=3),
                          data("obs", torch.from_numpy(t_obs[:, None]), torch.from_numpy(trajectory(t_obs)), out_dim=3)],
                   depth=3, width=40, out_dim=3, epochs=60000, solution=solution, seeds=(seed,),
                   coefficients={"C1": 1.0, "C2": 1.0, "C3": 1.0})
