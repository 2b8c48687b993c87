"""Loss-weighting schemes: the paper's four (PINN, MA, ID, DN; Deguchi & Asai 2023) and published others.

A scheme is one frozen dataclass that declares its parameters (:func:`param`) under a base class saying what
it reads (:mod:`fastpinn.schemes.base`), plus one registration with its command-line name and title
(:func:`register`); :class:`fastpinn.Weighter` turns it into weights. The identity of a run, its description,
``config.json``, the command-line options (:mod:`fastpinn.schemes.options`) and ``compare`` are generated
from the declaration, so adding a scheme is one class and one registration::

    @register("my-scheme", title="MyScheme")
    @dataclass(frozen=True)
    class MyScheme(GradientStatsScheme):
        beta: float = ema_beta()
        tau: int = update_interval()
        bias_correction: bool = bias_correction_flag()
        gain: float = param(1.0, minimum=0.0, low_open=True, help="...")

        def candidate(self, stats, lam_applied, reference, numel): ...

Modules: :mod:`~fastpinn.schemes.paper` (PINN, MA, ID, DN), :mod:`~fastpinn.schemes.gradient` (LRA, GradNormW,
NTK), :mod:`~fastpinn.schemes.losses` (SoftAdapt, ReLoBRaLo, Uncertainty, GradNorm),
:mod:`~fastpinn.schemes.aggregators` (PCGrad, MGDA, CAGrad, IMTL-G, Aligned-MTL, Nash-MTL, UPGrad, ConFIG, M-ConFIG,
DCGD: the update direction from the Gram matrix of the term gradients, every step).
"""

from .base import (EMAScheme, FixedWeights, GradientStatsScheme, LossScheme, Param, Scheme, StatefulScheme,
                   StatefulStatsScheme, TraceScheme, bias_correction_flag, ema_beta, param, stat_ratio,
                   update_interval)
from .registry import (SCHEME_NAMES, parameters_by_key, register, scheme_class, scheme_from_dict, scheme_from_name,
                       unregister)
from .paper import DN, ID, MA, PINN
from .gradient import LRA, NTK, GradNormW
from .losses import GradNorm, ReLoBRaLo, SoftAdapt, Uncertainty, uniform_draws
from .options import add_scheme_options, scheme_params_from_args
from .aggregators import (AggregatorScheme, AlignedMTL, CAGrad, ConFIG, DCGD, IMTLG, MConFIG, MGDA, NashMTL, PCGrad,
                          UPGrad)

#: The earlier name of :class:`EMAScheme` (the base of the schemes whose weights follow the shared EMA).
DynamicScheme = EMAScheme

__all__ = ["Scheme", "PINN", "MA", "ID", "DN", "LRA", "GradNormW", "NTK", "SoftAdapt", "ReLoBRaLo", "Uncertainty",
           "GradNorm", "FixedWeights", "EMAScheme", "DynamicScheme", "GradientStatsScheme", "TraceScheme",
           "StatefulScheme", "LossScheme", "StatefulStatsScheme", "Param", "param", "ema_beta", "update_interval",
           "bias_correction_flag", "stat_ratio", "register", "unregister", "scheme_class", "scheme_from_name",
           "scheme_from_dict", "parameters_by_key", "SCHEME_NAMES", "uniform_draws", "add_scheme_options",
           "scheme_params_from_args", "AggregatorScheme", "PCGrad", "MGDA", "CAGrad", "IMTLG", "AlignedMTL", "NashMTL",
           "UPGrad", "ConFIG", "MConFIG", "DCGD"]
