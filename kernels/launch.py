"""What the Triton launchers share: the limits on chunk length and splits, whether the kernels run under the
Triton interpreter, how many programs a row of ``G[S, K, P]`` is split into, and the checks of ``G``."""

from __future__ import annotations

import functools
import operator

import torch
import triton
from torch import Tensor

__all__ = ["MIN_BLOCK", "MAX_BLOCK", "MAX_SPLITS", "INT32_MAX", "is_interpreted", "choose_splits", "as_int",
           "check_gradient_matrix"]

MIN_BLOCK = 16
MAX_BLOCK = 65536
MAX_SPLITS = 1024  # programs per row at most (grid dim 1 and the merge tile stay small)
INT32_MAX = 2**31 - 1
_PROGRAMS_PER_SM = 4  # grid target: rows * n_splits ~ 4 x SM count
_MIN_CHUNKS_PER_SPLIT = 4  # never split a row so finely that a program reduces fewer than this many chunks
_INTERPRETER_SMS = 4  # "SM count" used under the interpreter (programs run one after another there)


@triton.jit
def _probe(x):  # never launched: its type says whether triton.jit made interpreted functions
    pass


def is_interpreted() -> bool:
    """True when the kernels were created by the Triton interpreter (TRITON_INTERPRET=1 at import time)."""
    return type(_probe).__name__ == "InterpretedFunction"


@functools.lru_cache(maxsize=None)
def _sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def choose_splits(rows: int, n_cols: int, block: int, device: torch.device, interpreted: bool) -> int:
    """Programs per row: about four per SM over all ``rows``, none with fewer than four ``block`` chunks."""
    if interpreted or device.type != "cuda":
        n_sm = _INTERPRETER_SMS
    else:
        n_sm = _sm_count(device.index if device.index is not None else torch.cuda.current_device())
    want = triton.cdiv(_PROGRAMS_PER_SM * n_sm, rows)
    most = triton.cdiv(n_cols, block * _MIN_CHUNKS_PER_SPLIT)
    return max(1, min(want, most))


def as_int(v) -> int | None:
    """``v`` as a Python int if it is an integer (not a bool), else None."""
    if isinstance(v, bool):
        return None
    try:
        return operator.index(v)
    except TypeError:
        return None


def check_gradient_matrix(G: Tensor) -> None:
    """``G`` must be a float32/float64 ``[S, K, P]`` tensor with ``1 <= P < 2**31 - MAX_BLOCK``, on a CUDA device
    or under the interpreter; ValueError naming the field otherwise."""
    if not isinstance(G, Tensor):
        raise ValueError(f"G must be a torch.Tensor, got {type(G).__name__}")
    if G.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"G must be float32 or float64, got {G.dtype}")
    if G.dim() != 3:
        raise ValueError(f"G must be 3-D [S, K, P], got shape {tuple(G.shape)}")
    P = G.shape[2]
    if P < 1:
        raise ValueError(f"G must have P >= 1 columns, got shape {tuple(G.shape)}")
    if P > INT32_MAX - MAX_BLOCK:
        raise ValueError(f"G must have P < 2**31 - {MAX_BLOCK} columns, got P = {P}")
    if G.device.type != "cuda" and not is_interpreted():
        raise ValueError(
            f"G must be a CUDA tensor, got device {G.device}; to run the Triton kernel on the CPU set "
            "TRITON_INTERPRET=1 before triton is first imported"
        )
