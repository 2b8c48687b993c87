"""Triton kernels of fastpinn (installed as ``fastpinn.kernels``).

Under ``TRITON_INTERPRET=1`` (set before triton is first imported; ``tests/conftest.py`` does this when there is
no CUDA device) the kernels run on CPU tensors through the Triton interpreter.
"""

from .grad_gram import grad_gram_triton
from .grad_stats import grad_stats_triton
from .mlp_jet import mlp_jet_backward_triton, mlp_jet_forward_triton

__all__ = ["grad_stats_triton", "grad_gram_triton", "mlp_jet_forward_triton", "mlp_jet_backward_triton"]
