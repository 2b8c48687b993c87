"""Exact / converged reference solutions of the DN-PINN benchmark PDEs, computed locally and cached.

* Burgers: Cole–Hopf quadrature (:mod:`.burgers`).
* Allen–Cahn: Fourier pseudo-spectral ETDRK4 (:mod:`.allen_cahn`).
* Poisson 2-D: closed form (:mod:`.poisson`).

The ``*_reference`` functions return ``(X, U)`` with ``X`` float64 ``[n_points, 2]`` and ``U``
float64 ``[n_points]``; see each docstring for the column meaning and row order.
"""

from .allen_cahn import allen_cahn_reference, allen_cahn_solve
from .burgers import burgers_reference, burgers_slope, burgers_solution
from .cache import cache_dir, cached
from .poisson import poisson_reference, poisson_solution, poisson_source

__all__ = [
    "burgers_reference",
    "allen_cahn_reference",
    "poisson_reference",
    "burgers_solution",
    "burgers_slope",
    "allen_cahn_solve",
    "poisson_solution",
    "poisson_source",
    "cached",
    "cache_dir",
]
