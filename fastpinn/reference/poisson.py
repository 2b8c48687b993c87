"""Closed-form solution of the 2-D Poisson benchmark.

Problem (DN-PINN form)::

    Δu = q  on [0, 1]^2,   u = g on the boundary,
    u(x, y) = cos(ω x) sin(ω y),   q(x, y) = -2 ω^2 cos(ω x) sin(ω y),   ω = 4π.

Both functions accept numpy arrays (returning float64 ndarrays) or torch tensors (returning
tensors of the same dtype/device, differentiable), so PINN losses can use them directly.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .cache import check_int, tensor_grid

__all__ = ["POISSON_OMEGA", "poisson_solution", "poisson_source", "poisson_reference"]

#: The paper's frequency ``4 pi``.
POISSON_OMEGA: float = 4.0 * math.pi


def _is_tensor(a: Any) -> bool:
    # Only look for torch if it is already imported: a tensor cannot exist otherwise, and this
    # keeps ``import fastpinn.reference`` free of a torch import.
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(a, torch.Tensor)


def _check_omega(omega: float) -> float:
    omega = float(omega)
    if not math.isfinite(omega):
        raise ValueError(f"omega must be a finite number, got {omega!r}")
    return omega


def _cos_sin(x: Any, y: Any, omega: float) -> Any:
    if _is_tensor(x) or _is_tensor(y):
        torch = sys.modules["torch"]
        x = torch.as_tensor(x, device=y.device if _is_tensor(y) else None)
        y = torch.as_tensor(y, device=x.device)
        return torch.cos(omega * x) * torch.sin(omega * y)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return np.cos(omega * x) * np.sin(omega * y)


def poisson_solution(x: Any, y: Any, omega: float = POISSON_OMEGA) -> Any:
    """``u(x, y) = cos(omega x) sin(omega y)``; broadcast shape of ``x`` and ``y``."""
    return _cos_sin(x, y, _check_omega(omega))


def poisson_source(x: Any, y: Any, omega: float = POISSON_OMEGA) -> Any:
    """``q = Δu = -2 omega^2 cos(omega x) sin(omega y)``; broadcast shape of ``x`` and ``y``."""
    omega = _check_omega(omega)
    return (-2.0 * omega * omega) * _cos_sin(x, y, omega)


def poisson_reference(
    nx: int = 201, ny: int = 201, omega: float = POISSON_OMEGA
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Exact Poisson solution on ``x = linspace(0, 1, nx)``, ``y = linspace(0, 1, ny)``.

    Returns:
        ``X``: float64 ``[nx * ny, 2]``, columns ``(x, y)``, rows x-major (row ``i * ny + j`` is
        ``(x[i], y[j])``), mirroring the t-major order of the time-dependent problems.
        ``U``: float64 ``[nx * ny]``.

    Closed form, so nothing is cached.
    """
    nx = check_int("nx", nx, 2)
    ny = check_int("ny", ny, 2)
    omega = _check_omega(omega)
    X = tensor_grid(np.linspace(0.0, 1.0, nx), np.linspace(0.0, 1.0, ny))
    return X, poisson_solution(X[:, 0], X[:, 1], omega)
