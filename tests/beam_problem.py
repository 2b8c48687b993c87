"""The Euler beam the tests share: bench/bench_deepxde_suite.py's copy of DeepXDE's cantilever, u'''' = -1 on
[0, 1], u(0) = u'(0) = u''(1) = u'''(1) = 0 -- a 4th-order term on a few points and four one-point end terms
(the shape of issue 20's small-problem and Taylor-mode cases)."""

from __future__ import annotations

from typing import Optional

import torch

from fastpinn.problem import Problem, dirichlet, pde


def euler_beam(x: Optional[torch.Tensor] = None, *, depth: int = 4, width: int = 20,
               dtype: torch.dtype = torch.float64) -> Problem:
    """``x``: the PDE points ``[N, 1]`` (default: 10 evenly spaced inside plus both ends, 12 points)."""
    if x is None:
        x = torch.cat([torch.linspace(0.05, 0.95, 10, dtype=dtype).unsqueeze(1), torch.tensor([[0.0], [1.0]], dtype=dtype)])
    left, right = torch.tensor([[0.0]], dtype=dtype), torch.tensor([[1.0]], dtype=dtype)
    return Problem(name="euler_beam", coords=("x",), lower=(0.0,), upper=(1.0,), input_scaling=False,
                   terms=[pde("pde", x, lambda f: f["u_xxxx"][..., 0] + 1.0, ("u_xxxx",)),
                          dirichlet("u0", left),
                          pde("du0", left, lambda f: f["u_x"][..., 0], ("u_x",)),
                          pde("ddu1", right, lambda f: f["u_xx"][..., 0], ("u_xx",)),
                          pde("dddu1", right, lambda f: f["u_xxx"][..., 0], ("u_xxx",))],
                   depth=depth, width=width)
