"""The Gram matrix op ``fastpinn.ops.grad_gram`` (C++ CPU kernel, Triton kernel under the interpreter, the
pure-PyTorch twin ``grad_gram_ref``) against an exactly rounded truth.

Truth: ``math.fsum`` of the products in float64. For float32 input each product of two float32 numbers is exact in
float64, so the truth is the correctly rounded Gram entry; for float64 input each product rounds once more
(<= eps64/2 relative to |g_i g_j|).

Tolerance (argued): with ``A = sum_p |g_i g_j|``, a sum of n terms accumulated in float64 errs by at most
``(n - 1) eps64 A`` sequentially and ``ceil(log2 n) eps64 A`` as a tree. The C++ kernel sums each 512-column slab in
4 interleaved lanes (128 sequential adds), adds the lanes pairwise (2) and merges the ``ceil(P / 512)`` slabs with
Neumaier compensation (~2 eps): <= (128 + 2 + 2) eps64 A. The Triton kernel sums a BLOCK tile as a tree
(log2 BLOCK), the tiles of a program in sequence (<= P / BLOCK) and the splits in sequence: < (P / 16 + 20) eps64 A
for BLOCK >= 16. The reference (BLAS) is only bounded by P eps64 A. The tests use one bound per
implementation, plus 1 eps64 A for the truth's own rounding of float64 products; everything is far inside 1e-12 A,
so a wrong index or a dropped tile (errors ~A) cannot pass.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fastpinn import ops
from fastpinn.kernels import grad_gram_triton
from fastpinn.ops import _ext

EPS64 = torch.finfo(torch.float64).eps
# The Triton kernel runs where its input is: compiled on a GPU (bench/gpu_session.sh), under the interpreter on
# the CPU (tests/conftest.py sets TRITON_INTERPRET=1 only where there is no GPU, so CPU tensors would fail there).
TRITON_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
SHAPES = [(1, 1, 1), (1, 2, 511), (2, 3, 512), (2, 5, 513), (1, 8, 1537), (3, 4, 7)]
needs_cpp = pytest.mark.skipif(not _ext.available() or not hasattr(torch.ops.fastpinn, "grad_gram"),
                               reason="the compiled extension with fastpinn::grad_gram is not built")


def _truth(G: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(correctly rounded Gram, A = sum |g_i g_j|) of G[S, K, P], both float64."""
    g = G.detach().double().numpy()
    S, K, _ = g.shape
    out, mag = np.zeros((S, K, K)), np.zeros((S, K, K))
    for s in range(S):
        for i in range(K):
            for j in range(K):
                prod = g[s, i] * g[s, j]
                out[s, i, j] = math.fsum(prod)
                mag[s, i, j] = np.abs(prod).sum()
    return out, mag


def _data(shape, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    G = torch.randn(*shape, generator=gen, dtype=torch.float64)
    G = G * torch.logspace(-3, 3, shape[1], dtype=torch.float64).view(1, -1, 1)  # rows of very different size
    G[..., ::3] += 5.0  # a common offset: strong cancellation-free correlation between the rows
    return G.to(dtype)


def _check(out: torch.Tensor, G: torch.Tensor, sequential: float) -> None:
    truth, mag = _truth(G)
    assert out.dtype == torch.float64 and tuple(out.shape) == truth.shape
    err = np.abs(out.cpu().numpy() - truth)
    bound = (sequential + 1) * EPS64 * mag
    assert (err <= bound).all(), float((err / np.maximum(mag, 1e-300)).max())
    assert torch.equal(out, out.transpose(1, 2))  # exactly symmetric


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_reference_matches_exact_sum(shape, dtype):
    G = _data(shape, dtype)
    _check(ops.grad_gram(G, backend="torch"), G, sequential=shape[-1])


@needs_cpp
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_cpp_kernel_matches_exact_sum(shape, dtype):
    G = _data(shape, dtype, seed=1)
    _check(ops.grad_gram(G, backend="cpp"), G, sequential=128 + 4)
    assert ops.gram_implementation(G) == "cpp"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 3, 33), (1, 5, 130), (2, 9, 50)])
def test_triton_kernel_matches_exact_sum(shape, dtype):
    G = _data(shape, dtype, seed=2)
    on = G.to(TRITON_DEVICE)
    _check(grad_gram_triton(on), G, sequential=shape[-1] / 16 + 20)  # defaults, through the dispatcher op
    _check(grad_gram_triton(on, block=16, splits=3), G, sequential=shape[-1] / 16 + 20)  # several tiles and splits


@needs_cpp
def test_strided_and_two_dimensional_inputs():
    base = _data((2, 6, 300), torch.float64, seed=3)
    G = base[:, ::2, ::3]  # non-contiguous rows and columns
    _check(ops.grad_gram(G, backend="cpp"), G, sequential=132)
    _check(grad_gram_triton(G.to(TRITON_DEVICE), block=16, splits=2), G, sequential=G.shape[-1] / 16 + 20)
    two = ops.grad_gram(base[0], backend="cpp")
    assert two.shape == (6, 6) and torch.equal(two, ops.grad_gram(base[:1], backend="cpp")[0])


@needs_cpp
def test_cpp_kernel_does_not_depend_on_the_thread_count():
    G = _data((2, 4, 40_000), torch.float32, seed=4)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ops.grad_gram(G, backend="cpp")
        torch.set_num_threads(2)
        two = ops.grad_gram(G, backend="cpp")
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two)


def test_non_finite_entries_propagate_and_bad_input_is_refused():
    G = _data((1, 3, 20), torch.float64)
    G[0, 1, 4] = float("nan")
    for backend in ["torch"] + (["cpp"] if _ext.available() and hasattr(torch.ops.fastpinn, "grad_gram") else []):
        out = ops.grad_gram(G, backend=backend)
        assert torch.isnan(out[0, 1]).all() and torch.isfinite(out[0, 0, 0]) and torch.isfinite(out[0, 2, 2])
    with pytest.raises(ValueError, match="float32 or float64"):
        ops.grad_gram(G.half())
    with pytest.raises(ValueError, match=r"\[K, P\] or \[S, K, P\]"):
        ops.grad_gram(G[0, 0])
    with pytest.raises(ValueError, match="backend"):
        ops.grad_gram(G, backend="numpy")


@needs_cpp
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_opcheck_grad_gram(dtype):
    """The schema, the fake (meta) implementation and the CPU kernel agree (torch.compile can trace the op)."""
    G = _data((2, 3, 37), dtype)
    torch.library.opcheck(torch.ops.fastpinn.grad_gram.default, (G,))
    torch.library.opcheck(torch.ops.fastpinn.grad_gram.default, (G.transpose(0, 1),))
