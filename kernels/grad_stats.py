"""Per-row gradient statistics in Triton: one read of ``G[S, K, P]``, deterministic, compensated.

``grad_stats_triton(G, p)`` computes exactly what :func:`fastpinn.ops.reference.grad_stats_ref` defines
(columns in :mod:`fastpinn.ops.layout`): Σ|g|, Σg², max|g|, Σg, ‖g‖_p, M2 = Σ(g - mean)², #non-finite.

Layout (bandwidth)
    Grid ``(S*K rows, n_splits)``.  Program ``(r, j)`` reduces the contiguous slice
    ``[j*chunk_len, min((j+1)*chunk_len, P))`` of row ``r`` in BLOCK-sized chunks and writes one set of partial
    statistics to a small workspace ``ws[field, r, j]``.  A second, tiny kernel merges the ``n_splits`` partials
    of each row in a fixed tree order (one program per tile of rows, reducing along the splits) and writes
    ``stats[s, k, :]``.  No atomics anywhere, so the result is bitwise reproducible for a fixed
    ``(block, splits)``; different ``splits`` only reassociate the sums.  Full chunks are loaded without a mask
    (16-byte vector loads on contiguous, aligned rows); only the last chunk of a slice is masked.

Numerics (accumulation in G's dtype)
    * Sums: per chunk a tree sum (``tl.sum``; compiled, the four sums of the first pass are one joined
      reduction); chunk sums are added to the program's running sums with Kahan-Babuska (Neumaier)
      compensation; the merge kernel adds the ``n_splits`` compensated partials with a tree sum (pairwise).  No
      naive running sum over 10^7 terms anywhere.  A sum that overflows reads +inf (its NaN compensation is
      dropped), as in the reference.
    * M2: per chunk a two-pass (mean, then Σ(d - mean_c)²) in registers over the valid lanes only, merged into the
      running (count, mean, M2) with Chan's pairwise formula (its M2 increment Kahan-added).  The merge kernel
      uses the k-way form of the same formula: M2 = Σ M2_j + Σ n_j (mean_j - mean)², both sums as trees.
      All of this runs on ``d = g - c_row``, where ``c_row`` is the mean of the row's first ``SHIFT_WIN`` entries
      (recomputed identically by every program of the row).  Without the shift, the chunk means of data with a
      large common offset carry rounding errors ~eps*|offset|, which enter Chan's between-chunk term to first
      order and cost ~2*eps*(|mean|/std)/sqrt(P) relative accuracy of M2; with it they are ~eps*std.
    * General p: a running (scale, ssq) pair with ‖g‖_p = scale * ssq^(1/p); per chunk m = max|g| and
      s = Σ(|g|/m)^p, rescaled whenever a larger m appears, so |g|^p never overflows.  This path is a
      ``tl.constexpr`` switch: p in {1, 2, inf} is read off the other columns and costs nothing per element.
    * Power function: fp32 uses ``exp2(p*log2(r))`` with r = |g|/m in [0, 1] (PTX ex2/lg2.approx on the GPU:
      relative error ~p*2^-22 per term, ~1 ulp on the norm after the 1/p root).  fp64 on the GPU uses libdevice
      ``pow`` (``__nv_pow``, ~1 ulp): fp64 ``tl.exp2``/``tl.log2`` depend on the Triton release's lowering
      (older releases rejected fp64 math ops outright), libdevice ``pow`` is supported by all 3.x releases.  The
      interpreter has no libdevice, so under ``TRITON_INTERPRET=1`` fp64 uses ``exp2(p*log2(r))`` in numpy
      float64 (about 1e-15 relative), the fp32-style fallback.  p reaches the kernels as three fp32 arguments
      whose fp64 sum is exactly p, so fp64 runs see the exact exponent without a recompile per p.
    * Non-finite entries are counted exactly: a chunk is counted (int32) only when its Σ|g| is not finite, which
      is the case whenever it holds a NaN or an Inf; counts are summed per row.  The other columns of such a
      row are unspecified (they usually come out NaN).  Masked (out-of-range) lanes are loaded as 0 and excluded
      explicitly from the shifted values and from M2; 0 is neutral for the sums and for max|g| >= 0.
"""

from __future__ import annotations

import math
import struct

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.library import triton_op, wrap_triton

try:  # backend-dispatching libdevice (triton >= 3.0)
    from triton.language.extra import libdevice
except ImportError:  # pragma: no cover - older layouts / NGC containers
    from triton.language.extra.cuda import libdevice

from fastpinn.ops import layout as L
from fastpinn.ops.reference import check_p

from .launch import (INT32_MAX, MAX_BLOCK, MAX_SPLITS, MIN_BLOCK, as_int, check_gradient_matrix, choose_splits,
                     is_interpreted)

__all__ = ["grad_stats_triton", "launch_grad_stats", "grad_stats_partial_kernel", "grad_stats_merge_kernel",
           "default_block"]

# Workspace fields of the partial kernel (float, G's dtype): ws[field, row, split].
_WS_SUM_ABS = tl.constexpr(0)
_WS_SUM_SQ = tl.constexpr(1)
_WS_MAX = tl.constexpr(2)
_WS_SUM = tl.constexpr(3)
_WS_MEAN = tl.constexpr(4)  # mean of d = g - c_row over the split
_WS_M2 = tl.constexpr(5)
_WS_SCALE = tl.constexpr(6)  # general p only
_WS_SSQ = tl.constexpr(7)  # general p only
_N_WS = 8

# NORM_KIND codes of the merge kernel.
_NORM_L1 = 1
_NORM_L2 = 2
_NORM_INF = 3
_NORM_GENERAL = 4

_SHIFT_WIN = 256  # entries averaged for the per-row shift c_row (capped by BLOCK)
_FP32_MAX = float(torch.finfo(torch.float32).max)
_MERGE_TILE = 4096  # partials per merge program (rows x splits tile)


# ----------------------------------------------------------------------------------------------------------------
# Device helpers
# ----------------------------------------------------------------------------------------------------------------


@triton.jit
def _pow_nonneg(r, pw, USE_LIBDEVICE: tl.constexpr):
    """r**pw for r >= 0 and pw >= 1 (r == 0 -> 0), elementwise or on a scalar."""
    pos = r > 0
    rs = tl.where(pos, r, 1.0)
    if USE_LIBDEVICE:
        # fp64 on the GPU: __nv_pow (~1 ulp, every Triton 3.x); fp64 tl.exp2/tl.log2 lowering varies by release.
        y = libdevice.pow(rs, pw + tl.zeros_like(rs))
    else:
        # fp32: ex2/lg2.approx on the GPU (relative error ~pw * 2^-22 per term).  fp64 reaches this branch only
        # under the interpreter (numpy float64), the documented fallback without libdevice.
        y = tl.exp2(pw * tl.log2(rs))
    return tl.where(pos, y, 0.0)


@triton.jit
def _sqrt_rn(x):
    if x.dtype == tl.float64:
        y = tl.sqrt(x)  # sqrt.rn.f64
    else:
        y = tl.sqrt_rn(x)  # IEEE sqrt for fp32 (tl.sqrt may be approximate)
    return y


@triton.jit
def _exponent(p1, p2, p3, DT: tl.constexpr):
    """The exponent p in dtype DT.  p = p1 + p2 + p3 with fp32 parts (launcher); exact in fp64."""
    if DT == tl.float64:
        pw = tl.cast(p1, tl.float64) + tl.cast(p2, tl.float64) + tl.cast(p3, tl.float64)
    else:
        pw = tl.cast(p1, tl.float32)
    return pw


# ----------------------------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------------------------


# Pass 1, one program per (row, split): the split's partial sums into the workspace. Public (with the merge
# kernel and default_block) so that tests can compile both for a GPU target ahead of time.
@triton.jit(do_not_specialize=["n_cols"])
def grad_stats_partial_kernel(
    G_ptr,
    ws_ptr,
    cnt_ptr,
    n_terms,  # K
    n_cols,  # P
    stride_s,
    stride_k,
    stride_p,
    chunk_len,  # columns per split, a multiple of BLOCK
    n_splits,
    ws_field_stride,  # rows * n_splits
    p1,
    p2,
    p3,
    BLOCK: tl.constexpr,
    SHIFT_WIN: tl.constexpr,
    GENERAL_P: tl.constexpr,
    USE_LIBDEVICE: tl.constexpr,
    WIDE_INDEX: tl.constexpr,
    FUSED_SUMS: tl.constexpr,
):
    row = tl.program_id(0)
    split = tl.program_id(1)
    DT: tl.constexpr = G_ptr.dtype.element_ty

    s_idx = (row // n_terms).to(tl.int64)
    k_idx = (row % n_terms).to(tl.int64)
    row_ptr = G_ptr + s_idx * stride_s + k_idx * stride_k
    offs = tl.arange(0, BLOCK)

    # Shift c_row: mean of the row's first min(P, SHIFT_WIN) entries.  Same data, same tree -> every program of
    # the row computes the same value, so the split partials live in one coordinate system.
    woffs = tl.arange(0, SHIFT_WIN)
    wmask = woffs < n_cols
    if WIDE_INDEX:
        wcols = woffs.to(tl.int64)
    else:
        wcols = woffs
    xw = tl.load(row_ptr + wcols * stride_p, mask=wmask, other=0.0)
    shift = tl.sum(xw) / tl.cast(tl.minimum(n_cols, SHIFT_WIN), DT)

    lo = split * chunk_len
    hi = lo + tl.minimum(chunk_len, n_cols - lo)

    zero = tl.zeros([], DT)
    sum_abs = zero
    sum_abs_c = zero
    sum_sq = zero
    sum_sq_c = zero
    total = zero
    total_c = zero
    mx = zero
    mean = zero  # running mean of d over the columns seen so far
    m2 = zero
    m2_c = zero
    count = tl.zeros([], tl.int32)
    bad = tl.zeros([], tl.int32)
    scale = zero
    ssq = zero
    ssq_c = zero
    if GENERAL_P:
        pw = _exponent(p1, p2, p3, DT)

    for start in range(lo, hi, BLOCK):
        cols = start + offs
        mask = cols < hi
        if WIDE_INDEX:
            cols = cols.to(tl.int64)
        ptrs = row_ptr + cols * stride_p
        if start + BLOCK <= hi:
            # Full chunk: no mask, so contiguous rows get 16-byte vector loads (a masked load can only be
            # vectorized when the mask is known constant over the vector, i.e. hi % 4 == 0).
            x = tl.load(ptrs, eviction_policy="evict_first")
        else:
            x = tl.load(ptrs, mask=mask, other=0.0, eviction_policy="evict_first")
        a = tl.abs(x)
        n_c = tl.minimum(hi - start, BLOCK)
        n_cf = n_c.to(DT)

        # First pass: Σ|x|, Σx², Σx, Σd as tree sums, plus the max.  Masked lanes hold x = 0, neutral for every
        # sum and for the max of |x| >= 0; the shifted values d are zeroed there explicitly.
        d = tl.where(mask, x - shift, 0.0)
        if FUSED_SUMS:
            # GPU: one 4-wide reduction (a single shared-memory round instead of four).
            sums = tl.sum(tl.join(tl.join(a, x * x), tl.join(x, d)), axis=0)  # [[Σ|x|, Σx], [Σx², Σd]]
            s_ab, s_xd = tl.split(sums)
            c_abs, c_sq = tl.split(s_ab)
            c_sum, c_d = tl.split(s_xd)
        else:
            # Interpreter: numpy reduces a non-contiguous axis sequentially (not pairwise), so stack the four
            # quantities along the leading axis and reduce the contiguous one (one interpreter call, pairwise).
            q = tl.arange(0, 4)[:, None]
            stack = tl.where(q == 0, a[None, :], tl.where(q == 1, (x * x)[None, :], x[None, :]))
            stack = tl.where(q == 3, d[None, :], stack)
            s02, s13 = tl.split(tl.reshape(tl.sum(stack, axis=1), (2, 2)))  # [[Σ|x|, Σx²], [Σx, Σd]]
            c_abs, c_sum = tl.split(s02)
            c_sq, c_d = tl.split(s13)
        c_max = tl.max(a)
        # NaN or +-Inf in the chunk <=> the sum of |x| is not finite; only then count them (uniform branch).
        if (c_abs != c_abs) | (c_abs == float("inf")):
            bad += tl.sum(tl.where(a < float("inf"), 0, 1))

        # Second pass (registers): chunk M2 about the chunk mean of d, valid lanes only.
        c_mean = c_d / n_cf
        e = tl.where(mask, d - c_mean, 0.0)
        if GENERAL_P:
            # s_c = Σ (|x| / m_c)^p (masked lanes: 0**p = 0), reduced together with the chunk M2.
            inv = 1.0 / tl.where(c_max > 0, c_max, 1.0)
            r_p = _pow_nonneg(a * inv, pw, USE_LIBDEVICE)
            if FUSED_SUMS:
                c_m2, c_ssq = tl.split(tl.sum(tl.join(e * e, r_p), axis=0))
            else:
                c_m2 = tl.sum(e * e)
                c_ssq = tl.sum(r_p)
        else:
            c_m2 = tl.sum(e * e)

        # Chan: merge (n_c, c_mean, c_m2) into (count, mean, m2).
        new_count = count + n_c
        frac = n_cf / new_count.to(DT)
        delta = c_mean - mean
        mean = mean + delta * frac
        v = c_m2 + delta * (delta * (count.to(DT) * frac))  # weight 0 on the first chunk: no inf * 0
        count = new_count

        # Neumaier-compensated running sums, written out (a jit helper costs a re-patch per call in the
        # interpreter).  For each (s, c, v): t = s + v; c += (s - t) + v if |s| >= |v| else (v - t) + s.
        t = m2 + v
        m2_c += tl.where(tl.abs(m2) >= tl.abs(v), (m2 - t) + v, (v - t) + m2)
        m2 = t
        t = sum_abs + c_abs
        sum_abs_c += tl.where(sum_abs >= c_abs, (sum_abs - t) + c_abs, (c_abs - t) + sum_abs)  # both >= 0
        sum_abs = t
        t = sum_sq + c_sq
        sum_sq_c += tl.where(sum_sq >= c_sq, (sum_sq - t) + c_sq, (c_sq - t) + sum_sq)  # both >= 0
        sum_sq = t
        t = total + c_sum
        total_c += tl.where(tl.abs(total) >= tl.abs(c_sum), (total - t) + c_sum, (c_sum - t) + total)
        total = t
        mx = tl.maximum(mx, c_max)

        if GENERAL_P:
            # Merge (c_max, c_ssq) into (scale, ssq) at the larger of the two scales: the side with the smaller
            # scale is multiplied by (small / large)^p <= 1, so nothing overflows.
            grew = c_max > scale
            big = tl.where(grew, c_max, scale)
            ratio = tl.where(grew, scale, c_max) / tl.where(big > 0, big, 1.0)
            f = _pow_nonneg(ratio, pw, USE_LIBDEVICE)
            f_old = tl.where(grew, f, 1.0)
            v = c_ssq * tl.where(grew, 1.0, f)
            ssq = ssq * f_old
            ssq_c = ssq_c * f_old
            t = ssq + v
            ssq_c += tl.where(ssq >= v, (ssq - t) + v, (v - t) + ssq)  # both >= 0
            ssq = t
            scale = big

    # A sum that overflowed to inf leaves a NaN compensation (inf - inf): drop it, so that an overflowing Σg² of
    # finite data reads inf like the reference, not NaN.
    slot = row * n_splits + split
    wp = ws_ptr + slot
    tl.store(wp + _WS_SUM_ABS * ws_field_stride, sum_abs + tl.where(tl.abs(sum_abs_c) < float("inf"), sum_abs_c, 0.0))
    tl.store(wp + _WS_SUM_SQ * ws_field_stride, sum_sq + tl.where(tl.abs(sum_sq_c) < float("inf"), sum_sq_c, 0.0))
    tl.store(wp + _WS_MAX * ws_field_stride, mx)
    tl.store(wp + _WS_SUM * ws_field_stride, total + tl.where(tl.abs(total_c) < float("inf"), total_c, 0.0))
    tl.store(wp + _WS_MEAN * ws_field_stride, mean)
    tl.store(wp + _WS_M2 * ws_field_stride, m2 + tl.where(tl.abs(m2_c) < float("inf"), m2_c, 0.0))
    if GENERAL_P:
        tl.store(wp + _WS_SCALE * ws_field_stride, scale)
        tl.store(wp + _WS_SSQ * ws_field_stride, ssq + tl.where(tl.abs(ssq_c) < float("inf"), ssq_c, 0.0))
    tl.store(cnt_ptr + slot, bad)


# Pass 2: the splits' partials of a block of rows merged into the statistics.
@triton.jit(do_not_specialize=["n_cols"])
def grad_stats_merge_kernel(
    ws_ptr,
    cnt_ptr,
    out_ptr,
    n_rows,
    n_cols,  # P
    chunk_len,
    n_splits,
    ws_field_stride,
    p1,
    p2,
    p3,
    ROW_BLOCK: tl.constexpr,
    SPLIT_BLOCK: tl.constexpr,
    NORM_KIND: tl.constexpr,
    USE_LIBDEVICE: tl.constexpr,
):
    # A [ROW_BLOCK, SPLIT_BLOCK] tile of partials; every reduction is along the splits (axis 1), a fixed-shape
    # tree per row whose padding lanes contribute 0 -> deterministic.
    DT: tl.constexpr = ws_ptr.dtype.element_ty
    r = tl.program_id(0) * ROW_BLOCK + tl.arange(0, ROW_BLOCK)
    j = tl.arange(0, SPLIT_BLOCK)
    rm = r < n_rows
    jm = j < n_splits
    m = rm[:, None] & jm[None, :]
    slot = r[:, None] * n_splits + j[None, :]
    wp = ws_ptr + slot

    sum_abs = tl.sum(tl.load(wp + _WS_SUM_ABS * ws_field_stride, mask=m, other=0.0), axis=1)
    sum_sq = tl.sum(tl.load(wp + _WS_SUM_SQ * ws_field_stride, mask=m, other=0.0), axis=1)
    mx = tl.max(tl.load(wp + _WS_MAX * ws_field_stride, mask=m, other=0.0), axis=1)
    total = tl.sum(tl.load(wp + _WS_SUM * ws_field_stride, mask=m, other=0.0), axis=1)
    bad = tl.sum(tl.load(cnt_ptr + slot, mask=m, other=0), axis=1)

    # k-way Chan merge of (n_j, mean_j, M2_j): mean = sum n_j mean_j / P, M2 = sum M2_j + sum n_j (mean_j - mean)^2.
    mean_j = tl.load(wp + _WS_MEAN * ws_field_stride, mask=m, other=0.0)
    m2_j = tl.load(wp + _WS_M2 * ws_field_stride, mask=m, other=0.0)
    jj = tl.where(jm, j, 0)
    n_j = tl.where(jm, tl.minimum(chunk_len, n_cols - jj * chunk_len), 0).to(DT)[None, :]
    mean = tl.sum(n_j * mean_j, axis=1) / tl.cast(n_cols, DT)
    dev = tl.where(m, mean_j - mean[:, None], 0.0)
    m2 = tl.sum(m2_j + n_j * dev * dev, axis=1)

    if NORM_KIND == 1:
        norm = sum_abs
    elif NORM_KIND == 2:
        norm = _sqrt_rn(sum_sq)
    elif NORM_KIND == 3:
        norm = mx
    else:
        pw = _exponent(p1, p2, p3, DT)
        scale_j = tl.load(wp + _WS_SCALE * ws_field_stride, mask=m, other=0.0)
        ssq_j = tl.load(wp + _WS_SSQ * ws_field_stride, mask=m, other=0.0)
        big = tl.max(scale_j, axis=1)
        safe = tl.where(big > 0, big, 1.0)
        tot = tl.sum(ssq_j * _pow_nonneg(scale_j / safe[:, None], pw, USE_LIBDEVICE), axis=1)
        # tot >= 1 when big > 0 (the chunk holding the max contributes (m/m)^p = 1), so the root is tame.
        norm = tl.where(big > 0, big * _pow_nonneg(tot, 1.0 / pw, USE_LIBDEVICE), 0.0)

    op = out_ptr + r * 7
    tl.store(op + 0, sum_abs, mask=rm)
    tl.store(op + 1, sum_sq, mask=rm)
    tl.store(op + 2, mx, mask=rm)
    tl.store(op + 3, total, mask=rm)
    tl.store(op + 4, norm, mask=rm)
    tl.store(op + 5, m2, mask=rm)
    tl.store(op + 6, bad.to(DT), mask=rm)


# ----------------------------------------------------------------------------------------------------------------
# Launcher
# ----------------------------------------------------------------------------------------------------------------


def default_block(dtype: torch.dtype, interpreted: bool) -> int:
    """The default chunk length (``BLOCK``) of :func:`grad_stats_partial_kernel` for ``dtype``, compiled or
    under the interpreter."""
    if interpreted:
        return 16384  # the interpreter pays per op, not per element: few large chunks
    # 8 KiB chunks: four 16-byte vector loads per thread at 4 warps.  sm_90 register counts (ptxas): ~93 (fp32) /
    # ~90 (fp64) per thread -> 5 resident programs = 40 KiB of loads in flight per SM, about twice the
    # bandwidth-latency product per SM of an H100/H200.
    return 2048 if dtype == torch.float32 else 1024


def _num_warps(block: int, itemsize: int) -> int:
    # 64 bytes (four 16-byte vector loads) per thread per chunk, 1..8 warps.
    return max(1, min(8, (block * itemsize) // (32 * 64)))


def _split_exponent(p: float) -> tuple[float, float, float]:
    """p as three float32 values whose float64 sum is exactly p (fp32 kernel arguments carry 24 bits each)."""
    if p in (1.0, 2.0) or math.isinf(p):
        return 0.0, 0.0, 0.0
    p1 = _to_fp32(p)
    p2 = _to_fp32(p - p1)
    p3 = _to_fp32(p - p1 - p2)
    return p1, p2, p3


def _to_fp32(v: float) -> float:
    return struct.unpack("f", struct.pack("f", v))[0]


@triton_op("fastpinn::grad_stats_triton", mutates_args=())
def _grad_stats_op(G: Tensor, p: float) -> Tensor:
    """The dispatcher op ``torch.ops.fastpinn.grad_stats_triton(G, p)``: default ``(block, splits)``.

    Registered with :func:`torch.library.triton_op`, so ``torch.compile`` and ``make_fx`` see the two Triton
    launches (through ``wrap_triton``) instead of an opaque Python call. The fake implementation is explicit
    (:func:`_grad_stats_fake`): the derived one would run the interpreter's launches on fake tensors.
    """
    return launch_grad_stats(G, p, block=None, splits=None)


@_grad_stats_op.register_fake
def _grad_stats_fake(G: Tensor, p: float) -> Tensor:
    """``G[S, K, P]`` -> a new contiguous ``[S, K, N_STATS]`` tensor of ``G``'s dtype and device."""
    torch._check(G.dim() == 3, lambda: f"fastpinn::grad_stats_triton: G must be 3-D [S, K, P], got {tuple(G.shape)}")
    torch._check(G.dtype in (torch.float32, torch.float64),
                 lambda: f"fastpinn::grad_stats_triton: G must be float32 or float64, got {G.dtype}")
    return G.new_empty((G.shape[0], G.shape[1], L.N_STATS))


def grad_stats_triton(G: Tensor, p: float = 2.0, *, block: int | None = None, splits: int | None = None) -> Tensor:
    """Per-row gradient statistics of ``G[S, K, P]`` with Triton; see :func:`fastpinn.ops.reference.grad_stats_ref`.

    Args:
        G: exactly 3-D ``[S, K, P]``, ``P >= 1``, float32 or float64, any strides.  A CUDA tensor, or a CPU
            tensor when the Triton interpreter is active (``TRITON_INTERPRET=1`` before triton is imported).
        p: exponent of the ``NORM_P`` column, ``p >= 1`` or ``math.inf``.
        block: elements per chunk, a power of two in [16, 65536]; default 2048 (fp32) / 1024 (fp64) on the GPU.
        splits: programs per row, clamped to ``[1, min(ceil(P / block), 1024)]``; the effective number is
            ``ceil(P / chunk_len)`` with ``chunk_len = ceil(ceil(P / splits) / block) * block``.  Default: about
            4 x SM count programs in total, but at least 4 chunks per program (1 program per row for small P).
            Results are bitwise reproducible for fixed ``(block, splits)``.

    Returns:
        ``stats[S, K, 7]`` in ``G``'s dtype (columns as in :mod:`fastpinn.ops.layout`).

    With the default ``block`` and ``splits`` this calls the dispatcher op ``fastpinn::grad_stats_triton``;
    explicit values (tuning, benchmarks) launch the same kernels directly.
    """
    if block is None and splits is None:
        _validate(G, p)  # ValueErrors with the field named, before entering the dispatcher
        return torch.ops.fastpinn.grad_stats_triton(G, float(p))
    return launch_grad_stats(G, p, block=block, splits=splits)


def _validate(G: Tensor, p: float) -> float:
    """Check ``G`` and ``p`` (ValueError naming the field); return ``p`` as a float."""
    p = check_p(p)
    check_gradient_matrix(G)
    return p


def launch_grad_stats(
    G: Tensor, p: float, *, block: int | None, splits: int | None, fused_sums: bool | None = None
) -> Tensor:
    """Launch the two kernels on ``G[S, K, P]`` -> ``stats[S, K, N_STATS]``: validate, pick (block, n_splits),
    run the partial and merge kernels (:func:`grad_stats_triton` without the dispatcher).

    ``fused_sums`` (default: on for compiled kernels, off under the interpreter) selects the 4-wide joined
    reduction of the first pass; the interpreter path stacks along a contiguous axis instead, because numpy sums a
    strided axis sequentially.  Tests force it on under the interpreter to check the GPU path's bookkeeping.
    """
    p = _validate(G, p)
    S, K, P = G.shape
    interpreted = is_interpreted()
    if block is None:
        block = default_block(G.dtype, interpreted)
    else:
        b = as_int(block)
        if b is None or not (MIN_BLOCK <= b <= MAX_BLOCK) or (b & (b - 1)):
            raise ValueError(f"block must be None or a power of two in [{MIN_BLOCK}, {MAX_BLOCK}], got {block!r}")
        block = b
    if splits is not None:
        n = as_int(splits)
        if n is None or n < 1:
            raise ValueError(f"splits must be None or an integer >= 1, got {splits!r}")
        splits = n

    out = torch.empty((S, K, L.N_STATS), dtype=G.dtype, device=G.device)
    rows = S * K
    if rows == 0:
        return out

    if splits is None:
        splits = choose_splits(rows, P, block, G.device, interpreted)
    splits = min(splits, triton.cdiv(P, block), MAX_SPLITS)
    chunk_len = triton.cdiv(triton.cdiv(P, splits), block) * block
    n_splits = triton.cdiv(P, chunk_len)  # every split non-empty

    if p > _FP32_MAX:  # not representable in the fp32 kernel argument; ||g||_p == max|g| to working precision
        p = math.inf
    general = not (p in (1.0, 2.0) or math.isinf(p))
    norm_kind = _NORM_L1 if p == 1.0 else _NORM_L2 if p == 2.0 else _NORM_INF if math.isinf(p) else _NORM_GENERAL
    use_libdevice = general and G.dtype == torch.float64 and not interpreted
    p1, p2, p3 = _split_exponent(p)
    sp, sk, spp = G.stride()
    wide = (P + block) * spp >= INT32_MAX  # element offsets (masked lanes included) need 64-bit arithmetic

    ws = torch.empty((_N_WS, rows, n_splits), dtype=G.dtype, device=G.device)
    cnt = torch.empty((rows, n_splits), dtype=torch.int32, device=G.device)
    wrap_triton(grad_stats_partial_kernel)[(rows, n_splits)](
        G, ws, cnt,
        K, P, sp, sk, spp,
        chunk_len, n_splits, rows * n_splits,
        p1, p2, p3,
        BLOCK=block,
        SHIFT_WIN=min(block, _SHIFT_WIN),
        GENERAL_P=general,
        USE_LIBDEVICE=use_libdevice,
        WIDE_INDEX=wide,
        FUSED_SUMS=(not interpreted) if fused_sums is None else bool(fused_sums),
        num_warps=_num_warps(block, G.element_size()),
    )  # fmt: skip
    split_block = max(2, triton.next_power_of_2(n_splits))
    row_block = max(1, min(triton.next_power_of_2(rows), _MERGE_TILE // split_block))
    wrap_triton(grad_stats_merge_kernel)[(triton.cdiv(rows, row_block),)](
        ws, cnt, out,
        rows, P, chunk_len, n_splits, rows * n_splits,
        p1, p2, p3,
        ROW_BLOCK=row_block,
        SPLIT_BLOCK=split_block,
        NORM_KIND=norm_kind,
        USE_LIBDEVICE=use_libdevice,
        num_warps=4,
    )  # fmt: skip
    return out
