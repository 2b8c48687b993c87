"""Point samplers on boxes and box faces. Points are drawn once, from a seed, and never resampled.

Points are drawn in float64 and returned in ``dtype`` -- float32 by default, the Trainer's default, so
``trainer.predict(sampling.uniform(...))`` needs no cast; the built-in problems ask for float64 (the
Trainer casts to its own dtype, and a float64 run keeps every digit).

Other domains (disks, polygons, CSG, space-time), boundary normals and quasi-random methods (Sobol', Halton):
:mod:`fastpinn.geometry`, whose ``Box`` samples the same boxes by every method."""

from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import Tensor

__all__ = ["uniform", "latin_hypercube", "sample", "on_face", "grid", "SAMPLERS"]

SAMPLERS = ("uniform", "lhs")


def _bounds(lower: Sequence[float], upper: Sequence[float]) -> tuple[Tensor, Tensor]:
    lo = torch.as_tensor(lower, dtype=torch.float64).flatten()
    hi = torch.as_tensor(upper, dtype=torch.float64).flatten()
    if lo.shape != hi.shape or not bool((hi >= lo).all()):
        raise ValueError(f"lower and upper must have the same length with upper >= lower, got {lower} and {upper}")
    return lo, hi


def uniform(n: int, lower: Sequence[float], upper: Sequence[float], generator: torch.Generator, *,
            dtype: torch.dtype = torch.float32) -> Tensor:
    """``n`` points ``[n, d]`` uniformly at random in the box ``[lower, upper]``."""
    lo, hi = _bounds(lower, upper)
    return (lo + (hi - lo) * torch.rand(n, lo.numel(), generator=generator, dtype=torch.float64)).to(dtype)


def latin_hypercube(n: int, lower: Sequence[float], upper: Sequence[float], generator: torch.Generator, *,
                    dtype: torch.dtype = torch.float32) -> Tensor:
    """``n`` points ``[n, d]``: one point in each of ``n`` equal slices of every coordinate."""
    lo, hi = _bounds(lower, upper)
    d = lo.numel()
    jitter = torch.rand(n, d, generator=generator, dtype=torch.float64)
    perms = torch.stack([torch.randperm(n, generator=generator) for _ in range(d)], dim=1).to(torch.float64)
    return (lo + (hi - lo) * (perms + jitter) / n).to(dtype)


def sample(method: str, n: int, lower: Sequence[float], upper: Sequence[float], generator: torch.Generator, *,
           dtype: torch.dtype = torch.float32) -> Tensor:
    """Dispatch on ``method`` in ``SAMPLERS``."""
    if method == "uniform":
        return uniform(n, lower, upper, generator, dtype=dtype)
    if method == "lhs":
        return latin_hypercube(n, lower, upper, generator, dtype=dtype)
    raise ValueError(f"sampler must be one of {SAMPLERS}, got {method!r}")


def on_face(
    method: str,
    n: int,
    lower: Sequence[float],
    upper: Sequence[float],
    coord: int,
    value: float,
    generator: torch.Generator,
    *,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``n`` points ``[n, d]`` on the face of the box where coordinate ``coord`` equals ``value``."""
    lo, hi = _bounds(lower, upper)
    lo, hi = lo.clone(), hi.clone()
    if not 0 <= coord < lo.numel():
        raise ValueError(f"coord must be in [0, {lo.numel()}), got {coord}")
    lo[coord] = value
    hi[coord] = value
    return sample(method, n, lo.tolist(), hi.tolist(), generator, dtype=dtype)


def grid(axes: Sequence[Union[Tensor, Sequence[float]]], *, dtype: torch.dtype = torch.float32) -> Tensor:
    """Tensor-product grid ``[prod(len(a)), d]``, the first axis slowest (row-major, like ``meshgrid(ij)``)."""
    ts = [torch.as_tensor(a, dtype=torch.float64) for a in axes]
    mesh = torch.meshgrid(*ts, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=1).to(dtype)
