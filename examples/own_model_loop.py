"""Your own model and your own loop: an nn.Module with random Fourier features, plain torch.optim, and
fastpinn.WeightedBackward for the DN-PINN weights -- nothing else from fastpinn.

Problem: -u'' = pi^2 sin(pi x) on [0, 1], u(0) = u(1) = 0 (exact u = sin(pi x)).

    python examples/own_model_loop.py --steps 2000
"""

from __future__ import annotations

import argparse
import math

import torch
from torch import nn

import fastpinn


class FourierNet(nn.Module):
    """x -> [sin(xB), cos(xB)] -> tanh MLP; B fixed (a buffer), everything else trained."""

    def __init__(self, features: int = 16, width: int = 32, scale: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("B", torch.randn(1, features, generator=torch.Generator().manual_seed(0)) * scale)
        self.mlp = nn.Sequential(nn.Linear(2 * features, width), nn.Tanh(), nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x @ self.B
        return self.mlp(torch.cat([torch.sin(z), torch.cos(z)], dim=-1))


def main(steps: int = 2000) -> float:
    torch.manual_seed(0)
    model = FourierNet()
    x = torch.rand(256, 1)
    xb = torch.tensor([[0.0], [1.0]])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    wb = fastpinn.WeightedBackward(model, fastpinn.DN(beta=0.9, tau=10), terms=["pde", "bc"])
    for step in range(steps):
        f = fastpinn.derivatives(model, x, coords=("x",), requests=("u_xx",))  # torch.func per point
        pde = (-f["u_xx"][:, 0] - math.pi ** 2 * torch.sin(math.pi * x[:, 0])).pow(2).mean()
        bc = model(xb).pow(2).mean()
        lam = wb([pde, bc])  # per-term backward, weights every 10 steps, .grad set
        opt.step()
        if step % max(1, steps // 4) == 0 or step == steps - 1:
            l_pde, l_bc = wb.losses[0].tolist()  # the detached term losses of this step
            print(f"step {step:5d}  L_pde={l_pde:.2e}  L_bc={l_bc:.2e}  lambda_bc={float(lam[1]):.3g}")
    xs = torch.linspace(0, 1, 201).reshape(-1, 1)
    with torch.no_grad():
        err = float(torch.linalg.vector_norm(model(xs)[:, 0] - torch.sin(math.pi * xs[:, 0]))
                    / torch.linalg.vector_norm(torch.sin(math.pi * xs[:, 0])))
    print(f"rel. L2 = {err:.3e}")
    return err


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    main(parser.parse_args().steps)
