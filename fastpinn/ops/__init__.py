"""One Python entry per op, dispatching to Triton (CUDA tensors), the C++ extension, or pure PyTorch.

``backend="auto"`` picks the compiled implementation for the tensor's device and raises if it is not
built -- it never falls back silently to a different implementation.

The statistics op has two compiled GPU implementations, both registered with the dispatcher:
``fastpinn::grad_stats_triton`` (kernels/grad_stats.py, a ``torch.library.triton_op``) and the CUDA kernel
of ``fastpinn::grad_stats`` (csrc/cuda/grad_stats.cu). The choice for ``"auto"`` is deliberate and made
here only (:func:`stats_implementation`): CUDA tensors use the Triton op when triton is installed, because
its split count adapts to the SM count and block size per dtype (bench/bench_grad_stats_bandwidth.py
measures its bandwidth), while the C++ CUDA kernel uses fixed 512-element chunks tuned for nothing in
particular and exists so that a CUDA build without triton still runs on the GPU. CPU tensors use the C++
kernel (the Triton interpreter is a test vehicle, not an implementation). ``backend="cpp"`` or
``"triton"`` forces either; both are tested against the same reference. ``backend="torch"`` selects the
pure-PyTorch twin in :mod:`fastpinn.ops.reference`, which is also the test oracle.
"""

from __future__ import annotations

import math
from typing import Literal, Optional

import torch
from torch import Tensor

from . import layout
from .reference import check_p, ema_update_ref, grad_gram_ref, grad_stats_ref

__all__ = ["grad_stats", "grad_gram", "ema_update", "stats_implementation", "gram_implementation", "layout",
           "grad_stats_ref", "grad_gram_ref", "ema_update_ref", "BACKENDS", "load_extension"]

Backend = Literal["auto", "triton", "cpp", "torch"]
BACKENDS = ("auto", "triton", "cpp", "torch")


def load_extension() -> object:
    """Load the compiled extension ``fastpinn._C`` (once) and return it; ``RuntimeError`` with instructions
    to rebuild when it is missing or was built against another torch."""
    from . import _ext

    return _ext.load()


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")



def _check_gradients(G: Tensor) -> None:
    """The per-term gradient matrix an op reads: ``[K, P]`` or ``[S, K, P]``, float32/float64, non-empty."""
    if G.dim() not in (2, 3):
        raise ValueError(f"G must have shape [K, P] or [S, K, P], got {tuple(G.shape)}")
    if G.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"G must be float32 or float64, got {G.dtype}")
    if G.shape[-1] < 1 or G.shape[-2] < 1:
        raise ValueError(f"G must have K >= 1 and P >= 1, got shape {tuple(G.shape)}")

def _triton_usable(t: Tensor) -> bool:
    if not t.is_cuda:
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def stats_implementation(G: Tensor, backend: Backend = "auto") -> str:
    """Which implementation :func:`grad_stats` runs for ``G``: ``"triton"``, ``"cpp"`` or ``"torch"``
    (the policy in this module's docstring)."""
    _check_backend(backend)
    if backend != "auto":
        return backend
    return "triton" if _triton_usable(G) else "cpp"


def grad_stats(G: Tensor, p: float = 2.0, *, backend: Backend = "auto") -> Tensor:
    """Fused per-row statistics of per-term gradients.

    Args:
        G: ``[K, P]`` or ``[S, K, P]`` gradient rows, float32 or float64, any strides, ``P >= 1``.
        p: exponent of the ``NORM_P`` column, ``p >= 1`` or ``math.inf``.
        backend: ``"auto"`` (Triton for CUDA tensors when installed, else the C++ op), ``"triton"``
            (also on CPU under ``TRITON_INTERPRET=1``), ``"cpp"`` or ``"torch"``.

    Returns:
        ``stats[K, N_STATS]`` or ``stats[S, K, N_STATS]`` in ``G``'s dtype (columns in
        :mod:`fastpinn.ops.layout`).
    """
    _check_backend(backend)
    p = check_p(p)
    _check_gradients(G)
    if backend == "torch":
        return grad_stats_ref(G, p)
    G3 = G if G.dim() == 3 else G.unsqueeze(0)
    if stats_implementation(G3, backend) == "triton":
        from ..kernels import grad_stats_triton

        out = grad_stats_triton(G3, p)  # torch.ops.fastpinn.grad_stats_triton
    else:
        from . import _ext

        _ext.load()
        out = torch.ops.fastpinn.grad_stats(G3, p)
    return out if G.dim() == 3 else out.squeeze(0)


def gram_implementation(G: Tensor, backend: Backend = "auto") -> str:
    """Which implementation :func:`grad_gram` runs for ``G``: ``"auto"`` is Triton for CUDA tensors when it is
    installed, else cuBLAS through PyTorch (``"torch"``: the C++ library has a CPU kernel of the Gram only), and
    the C++ kernel for CPU tensors."""
    _check_backend(backend)
    if backend != "auto":
        return backend
    if G.is_cuda:
        return "triton" if _triton_usable(G) else "torch"
    return "cpp"


def grad_gram(G: Tensor, *, backend: Backend = "auto") -> Tensor:
    """The Gram matrix of each member's gradient rows, in one pass over ``G``.

    Args:
        G: ``[K, P]`` or ``[S, K, P]``, float32 or float64, any strides, ``K, P >= 1``.
        backend: ``"auto"`` (:func:`gram_implementation`), ``"triton"`` (also on CPU under
            ``TRITON_INTERPRET=1``), ``"cpp"`` (CPU tensors) or ``"torch"`` (:func:`grad_gram_ref`).

    Returns:
        ``gram[K, K]`` or ``gram[S, K, K]``, float64 (``gram[s, i, j] = G[s, i] . G[s, j]``).
    """
    _check_backend(backend)
    _check_gradients(G)
    G3 = G if G.dim() == 3 else G.unsqueeze(0)
    how = gram_implementation(G3, backend)
    if how == "torch":
        out = grad_gram_ref(G3)
    elif how == "triton":
        from ..kernels import grad_gram_triton

        out = grad_gram_triton(G3)
    else:
        from . import _ext

        _ext.load()
        if G3.is_cuda:
            raise ValueError("backend='cpp' has no CUDA kernel of the Gram matrix: use 'triton' or 'torch'")
        out = torch.ops.fastpinn.grad_gram(G3)
    return out if G.dim() == 3 else out.squeeze(0)


def _overlap(a: Tensor, b: Tensor) -> bool:
    """Whether two tensors' memory ranges intersect (same storage, overlapping byte spans)."""
    if a.numel() == 0 or b.numel() == 0 or a.untyped_storage().data_ptr() != b.untyped_storage().data_ptr():
        return False

    def span(t: Tensor) -> tuple[int, int]:
        lo = t.storage_offset() * t.element_size()
        hi = lo + (sum((n - 1) * st for n, st in zip(t.shape, t.stride())) + 1) * t.element_size()
        return lo, hi

    (a0, a1), (b0, b1) = span(a), span(b)
    return a0 < b1 and b0 < a1


def _check_ema_update_args(hat: Tensor, lam: Tensor, lam_applied: Tensor, beta: float) -> None:
    """The argument checks every backend shares (the C++ op repeats them for direct callers)."""
    if hat.dim() != 2 or hat.shape[1] < 1:
        raise ValueError(f"hat must have shape [S, K] with K >= 1, got {tuple(hat.shape)}")
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and 0.0 <= beta < 1.0):
        # beta = 1 never moves lam and divides by 1 - beta^n = 0 under bias correction.
        raise ValueError(f"beta must be in [0, 1), got {beta!r}")
    if _overlap(lam, lam_applied):
        raise ValueError("lam and lam_applied must be distinct buffers, got overlapping memory")


def ema_update(
    hat: Tensor,
    valid: Tensor,
    target: Tensor,
    lam: Tensor,
    lam_applied: Tensor,
    n_updates: Tensor,
    skipped: Tensor,
    beta: float,
    bias_correction: bool,
    active: Optional[Tensor] = None,
    *,
    backend: Backend = "auto",
) -> None:
    """Scheme-free in-place EMA update of the loss weights (semantics: ``ema_update_ref``).

    Shapes: ``hat[S, K]`` candidate weights (float32/float64), ``valid[S, K]`` bool, ``target[K]`` bool;
    ``lam``, ``lam_applied`` ``[S, K]`` (mutated); ``skipped[S, K]``, ``n_updates[S]`` int64
    (mutated); ``active``: ``None`` or a 0-dim bool tensor on the same device (False: nothing changes).
    ``backend``: ``"auto"``/``"cpp"``/``"triton"`` (the compiled op, CPU or CUDA; there is no Triton EMA, the
    op is a few hundred flops) or ``"torch"``.
    """
    _check_backend(backend)
    _check_ema_update_args(hat, lam, lam_applied, beta)
    if backend == "torch":
        ema_update_ref(hat, valid, target, active, lam, lam_applied, n_updates, skipped, beta, bias_correction)
        return
    from . import _ext

    _ext.load()
    torch.ops.fastpinn.ema_update(hat, valid, target, active, lam, lam_applied, n_updates, skipped,
                                  float(beta), bool(bias_correction))
