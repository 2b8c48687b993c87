"""Built-in problems: the paper's Burgers, Poisson and Allen-Cahn, a small 1D Poisson, an inverse
Burgers problem (the viscosity trained from data) and a PDE system (Kovasznay flow)."""

from .inverse import burgers_inverse
from .kovasznay import kovasznay
from .paper import PROBLEMS, allen_cahn, burgers, get, poisson
from .poisson1d import poisson1d

__all__ = ["burgers", "poisson", "allen_cahn", "poisson1d", "burgers_inverse", "kovasznay", "get", "PROBLEMS"]
