"""Built-in problems: the paper's Burgers, Poisson and Allen-Cahn, and a small 1D Poisson."""

from .paper import PROBLEMS, allen_cahn, burgers, get, poisson
from .poisson1d import poisson1d

__all__ = ["burgers", "poisson", "allen_cahn", "poisson1d", "get", "PROBLEMS"]
