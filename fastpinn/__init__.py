"""fastpinn: physics-informed neural networks with dynamic loss weights on a compiled-kernel engine.

The data flow: points -> network -> derivatives -> loss terms -> per-term gradients G[S, K, P]
-> statistics -> weights -> weighted update.
"""

from . import problems
from .backward import WeightedBackward
from .derivatives import Fields, derivatives
from .network import MLP
from .optim import Stage
from . import resampling
from .resampling import Resampling
from .problem import Problem, Term, data, dirichlet, initial, neumann, pde, periodic, robin, stack
from . import geometry, quadrature
from . import schemes
from . import ntk, rba
from .schemes import DN, ID, LRA, MA, NTK, PINN, SCHEME_NAMES, GradNorm, GradNormW, ReLoBRaLo, SoftAdapt, Uncertainty, scheme_from_name
from .schemes import (DCGD, IMTLG, MGDA, AlignedMTL, CAGrad, ConFIG, MConFIG, NashMTL, PCGrad,  # aggregators
                      UPGrad)
from .trainer import History, NonFiniteError, Trainer
from .weighter import Weighter

__version__ = "0.1.0"

__all__ = [
    "PCGrad", "MGDA", "CAGrad", "IMTLG", "AlignedMTL", "NashMTL", "UPGrad", "ConFIG", "MConFIG", "DCGD",
    "MLP", "WeightedBackward", "PINN", "MA", "ID", "DN", "LRA", "GradNormW", "GradNorm", "NTK", "SoftAdapt",
    "ReLoBRaLo", "Uncertainty", "ntk", "rba", "SCHEME_NAMES", "schemes", "Weighter", "scheme_from_name", "Trainer",
    "History", "NonFiniteError", "Stage",
    "Problem", "Term", "pde", "data", "dirichlet", "initial", "neumann", "robin", "periodic", "geometry", "stack",
    "derivatives", "Fields", "quadrature", "Resampling", "resampling",
    "problems", "__version__",
]
