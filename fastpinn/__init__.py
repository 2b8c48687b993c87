"""fastpinn: physics-informed neural networks with dynamic loss weights on a compiled-kernel engine.

The data flow: points -> network -> derivatives -> loss terms -> per-term gradients G[S, K, P]
-> statistics -> weights -> weighted update.
"""

from . import problems
from .backward import WeightedBackward
from .derivatives import Fields, derivatives
from .network import MLP
from .problem import Problem, Term, data, dirichlet, initial, neumann, pde, periodic, stack
from .schemes import DN, ID, MA, PINN, scheme_from_name
from .trainer import History, NonFiniteError, Trainer
from .weighter import Weighter

__version__ = "0.1.0"

__all__ = [
    "MLP", "WeightedBackward", "PINN", "MA", "ID", "DN", "Weighter", "scheme_from_name", "Trainer", "History", "NonFiniteError",
    "Problem", "Term", "pde", "data", "dirichlet", "initial", "neumann", "periodic", "stack", "derivatives", "Fields",
    "problems", "__version__",
]
