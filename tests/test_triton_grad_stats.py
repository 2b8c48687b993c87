"""The Triton grad_stats kernel against the pure-PyTorch definition ``grad_stats_ref``.

Runs compiled on CUDA when a GPU is present and under the Triton interpreter otherwise (``conftest.py`` sets
``TRITON_INTERPRET=1`` before triton is imported).  The interpreter executes every program in Python, so the
CPU runs use small BLOCKs (few, short chunks) and keep the row counts modest.

Tolerances (argued, not tuned; the mamba idiom)
    Truth is ``grad_stats_ref`` in float64 on the *same* data (``G.double()``).
    * float32: per entry, |kernel - truth| <= 2 * |torch_fp32 - truth| + SLACK32 * eps32 * scale, where
      ``torch_fp32 = grad_stats_ref(G)`` is plain PyTorch in float32 and ``scale`` is the column's condition
      scale: Σ|g| for Σ|g| and Σg (cancellation in Σg is not the kernel's fault), Σg² for Σg², ‖g‖_p for the
      norm and M2 for M2.  The slack exists because on one particular input PyTorch's reduction tree can be lucky
      (error ~0) while the kernel's different but equally valid tree is not; its size is the few roundings the
      kernel cannot avoid in float32: the final rounding of each output (eps/2), the residual of Kahan
      compensation and of Chan's merge (~eps each), the rounding of the chunk mean (~eps) -> 4 eps.  The
      approximate ex2/lg2 PTX instructions of the compiled float32 general-p path add ~1 eps on the norm after
      the 1/p root (relative error p*2^-22 per term, divided by p) and stay inside the same slack.
    * float64: |kernel - truth| <= 1e-12 * scale (the kernel's own error is ~1e-15 * scale).
    * max|g| and the non-finite count are exact (compared with ``==``); all-zero rows give exact zeros.
"""

from __future__ import annotations

import math
import time

import pytest
import torch

from fastpinn.kernels import grad_stats_triton
from fastpinn.kernels import grad_stats as gs_mod
from fastpinn.ops import layout as L
from fastpinn.ops.reference import grad_stats_ref

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
ON_GPU = DEVICE == "cuda"
BLOCK = 128  # small BLOCK for the shape tests: P = BLOCK - 1, BLOCK, BLOCK + 1 and a few chunks per row
EPS32 = torch.finfo(torch.float32).eps
SLACK32 = 4.0
RTOL64 = 1e-12
DTYPES = [torch.float32, torch.float64]

# numpy (under the interpreter) warns about the inf - inf and 0 * inf it meets in rows with non-finite entries.
pytestmark = pytest.mark.filterwarnings(
    "ignore:invalid value encountered:RuntimeWarning", "ignore:overflow encountered:RuntimeWarning"
)


def _scales(ref64: torch.Tensor) -> torch.Tensor:
    """Per-entry condition scale of each column (0 where the comparison must be exact)."""
    sc = torch.zeros_like(ref64)
    sc[..., L.SUM_ABS] = ref64[..., L.SUM_ABS]
    sc[..., L.SUM_SQ] = ref64[..., L.SUM_SQ]
    sc[..., L.SUM] = ref64[..., L.SUM_ABS]
    sc[..., L.NORM_P] = ref64[..., L.NORM_P]
    sc[..., L.M2] = ref64[..., L.M2]
    return sc


def assert_matches_reference(out: torch.Tensor, G: torch.Tensor, p: float, rows: torch.Tensor | None = None) -> None:
    """``out`` = kernel(G, p) against the float64 truth with the tolerances of the module docstring.

    ``rows``: optional bool mask [S, K] of the rows to compare (rows with non-finite entries are unspecified).
    """
    assert out.shape == (*G.shape[:-1], L.N_STATS)
    assert out.dtype == G.dtype and out.device == G.device
    truth = grad_stats_ref(G.double(), p)
    if rows is None:
        rows = torch.ones(G.shape[:-1], dtype=torch.bool, device=G.device)
    k = out.double()[rows]
    t = truth[rows]
    scale = _scales(truth)[rows]
    err = (k - t).abs()
    # Exact columns.
    assert torch.equal(out[rows][:, L.MAX_ABS], G.abs().amax(-1)[rows]), "max|g| must be exact"
    assert torch.equal(k[:, L.NONFINITE], t[:, L.NONFINITE]), "non-finite count must be exact"
    if G.dtype == torch.float64:
        bound = RTOL64 * scale
    else:
        torch_err = (grad_stats_ref(G, p).double()[rows] - t).abs()
        bound = 2.0 * torch_err + SLACK32 * EPS32 * scale
    bad = ~(err <= bound)
    if bad.any():
        idx = bad.nonzero()[0].tolist()
        col = L.STAT_NAMES[idx[1]]
        raise AssertionError(
            f"column {col}: kernel {k[idx[0], idx[1]].item()!r} vs truth {t[idx[0], idx[1]].item()!r}: "
            f"error {err[idx[0], idx[1]].item():.3e} > bound {bound[idx[0], idx[1]].item():.3e} "
            f"({int(bad.sum())} entries out of bound)"
        )


def _randn(*shape, dtype, seed=0, device=DEVICE):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype=dtype, device=device)


# ------------------------------------------------------------------------------------------------------------------
# Shapes
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("P", [1, BLOCK - 1, BLOCK, BLOCK + 1, 3021])
@pytest.mark.parametrize("SK", [(1, 1), (1, 3), (3, 8)], ids=lambda sk: f"S{sk[0]}K{sk[1]}")
def test_shapes_small_block(SK, P, dtype):
    S, K = SK
    # Rows with different scales and offsets, so that the rows are not interchangeable.
    G = _randn(S, K, P, dtype=dtype, seed=P) * torch.logspace(-3, 3, S * K, dtype=dtype, device=DEVICE).view(S, K, 1)
    G = G + 0.1 * G.abs().amax(-1, keepdim=True)
    block = BLOCK if P <= BLOCK + 1 else 1024  # 3021 = 2 full chunks + a tail of 973
    out = grad_stats_triton(G, 2.0, block=block)
    assert_matches_reference(out, G, 2.0)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("SK", [(1, 3), (3, 1)], ids=lambda sk: f"S{sk[0]}K{sk[1]}")
def test_shapes_large_row(SK, dtype):
    S, K = SK
    P = 10**5 + 7
    G = _randn(S, K, P, dtype=dtype, seed=7) + 0.25
    out = grad_stats_triton(G, 3.0, block=16384)  # 7 chunks per row (tail 1703), split over programs
    assert_matches_reference(out, G, 3.0)


def test_large_P_default_config():
    P = 10**6
    G = _randn(1, 1, P, dtype=torch.float32, seed=11) * 1e-3 + 2e-4
    out = grad_stats_triton(G)  # default block and splits
    assert_matches_reference(out, G, 2.0)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_very_large_P(dtype):
    P = 10**7
    G = _randn(1, 1, P, dtype=dtype, seed=12) * 1e-2 - 3e-3
    out = grad_stats_triton(G, 2.5)
    assert_matches_reference(out, G, 2.5)


# ------------------------------------------------------------------------------------------------------------------
# Norms
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, 2.5, math.inf, 60.0])
def test_norm_p(p, dtype):
    S, K, P = 1, 3, 1000
    G = _randn(S, K, P, dtype=dtype, seed=3)
    G[0, 1] = G[0, 1] ** 3  # heavy tails: the max-scaling matters for large p
    G[0, 2, 517] = 40.0  # a single dominant entry, not in the first chunk
    out = grad_stats_triton(G, p, block=256)
    assert_matches_reference(out, G, p)
    if p == 1.0:
        assert torch.equal(out[..., L.NORM_P], out[..., L.SUM_ABS])
    if math.isinf(p):
        assert torch.equal(out[..., L.NORM_P], out[..., L.MAX_ABS])


def test_norm_p_beyond_float32_range():
    # p beyond the largest float32 is run as p = inf; the reference agrees to working precision.
    G = _randn(1, 2, 200, dtype=torch.float64, seed=17)
    out = grad_stats_triton(G, 1e300, block=128)
    assert torch.equal(out[..., L.NORM_P], out[..., L.MAX_ABS])
    torch.testing.assert_close(out, grad_stats_ref(G, 1e300), rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_norm_p_no_overflow(dtype):
    # |g|^p overflows the dtype (1e30^60, 1e300^2.5), the max-scaled norm must not.
    big = 1e30 if dtype == torch.float32 else 1e300
    G = _randn(1, 2, 300, dtype=dtype, seed=4) * big
    for p in (60.0, 2.5):
        out = grad_stats_triton(G, p, block=128)
        ref64 = grad_stats_ref(G.double(), p)
        assert torch.isfinite(out[..., L.NORM_P]).all()
        torch.testing.assert_close(out[..., L.NORM_P].double(), ref64[..., L.NORM_P], rtol=8 * EPS32, atol=0)
        # Σg² and M2 overflow to +inf exactly like the reference in G's dtype (not NaN); the data are finite.
        ref = grad_stats_ref(G, p)
        for col in (L.SUM_SQ, L.M2):
            assert torch.equal(ref[..., col], torch.full_like(ref[..., col], math.inf))
            assert torch.equal(out[..., col], ref[..., col])
        assert torch.equal(out[..., L.NONFINITE], torch.zeros_like(out[..., L.NONFINITE]))


# ------------------------------------------------------------------------------------------------------------------
# Strides
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("layout", ["transpose01", "every_other", "p_strided", "expanded"])
def test_non_contiguous(layout, dtype):
    if layout == "transpose01":
        G = _randn(3, 2, 300, dtype=dtype, seed=5).transpose(0, 1)  # [2, 3, 300], strides (300, 600, 1)
    elif layout == "every_other":
        G = _randn(2, 6, 601, dtype=dtype, seed=6)[:, ::2, ::2]  # [2, 3, 301], stride_p = 2
    elif layout == "p_strided":
        G = _randn(300, 2, 3, dtype=dtype, seed=8).permute(1, 2, 0)  # [2, 3, 300], stride_p = 6
    else:
        G = _randn(1, 1, 300, dtype=dtype, seed=9).expand(2, 3, 300)  # stride 0 over rows
    assert not G.is_contiguous()
    out = grad_stats_triton(G, 2.0, block=128)
    assert_matches_reference(out, G, 2.0)
    # Identical to the kernel on a contiguous copy with the same config (same trees, same data).
    assert torch.equal(out, grad_stats_triton(G.contiguous(), 2.0, block=128))


# ------------------------------------------------------------------------------------------------------------------
# Special values
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_nonfinite_counted_exactly(dtype):
    S, K, P = 2, 4, 400
    G = _randn(S, K, P, dtype=dtype, seed=10)
    nan, inf = float("nan"), float("inf")
    G[0, 0, 0] = nan  # in the shift window and the first chunk
    G[0, 1, 399] = inf  # last entry (tail chunk)
    G[0, 1, 300] = -inf
    G[0, 2, 130:140] = nan  # a run inside one chunk
    G[0, 2, 256] = inf  # chunk boundary at BLOCK = 128
    G[1, 3, :] = inf  # a whole row
    expected = (~torch.isfinite(G)).sum(-1).to(dtype)
    clean = expected == 0
    for splits in (1, 3):
        out = grad_stats_triton(G, 2.5, block=128, splits=splits)
        assert torch.equal(out[..., L.NONFINITE], expected)
        # The finite rows are unaffected by their neighbours.
        assert_matches_reference(out, G, 2.5, rows=clean)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("p", [2.0, 3.0, math.inf])
def test_all_zero_rows(p, dtype):
    G = _randn(2, 3, 200, dtype=dtype, seed=13)
    G[0, 1] = 0.0
    G[1, 2] = -0.0
    out = grad_stats_triton(G, p, block=128, splits=2)
    zero = torch.zeros(L.N_STATS, dtype=dtype, device=DEVICE)
    assert torch.equal(out[0, 1], zero)
    assert torch.equal(out[1, 2], zero)
    assert_matches_reference(out, G, p)


@pytest.mark.parametrize("P", [1000, 20000])
def test_m2_with_large_common_offset(P):
    """mean >> std: the textbook one-pass Σg² - (Σg)²/P cancels; the kernel's M2 must stay accurate."""
    offset, std = 1.0e3, 1.0
    G = (_randn(1, 2, P, dtype=torch.float64, seed=14) * std + offset).float()
    G[0, 1] += torch.linspace(0, 50, P, device=DEVICE)  # a drifting mean: chunk means far from the row shift
    out = grad_stats_triton(G, 2.0, block=256 if P < 5000 else 1024, splits=3)
    assert_matches_reference(out, G, 2.0)
    truth = grad_stats_ref(G.double(), 2.0)[..., L.M2]
    rel = ((out[..., L.M2].double() - truth).abs() / truth).max().item()
    assert rel < 1e-5
    # The test is sensitive: the naive float32 formula is far off on the same data.
    naive = (G * G).sum(-1) - G.sum(-1) ** 2 / P
    assert ((naive.double() - truth).abs() / truth).max().item() > 100 * rel


# ------------------------------------------------------------------------------------------------------------------
# Splits and determinism
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_splits_deterministic_and_consistent(dtype):
    """Fixed (block, splits): no atomics and fixed merge trees -> bitwise identical reruns.  Different splits only
    reassociate the sums, so each must independently meet the reference tolerance."""
    G = _randn(1, 2, 1000, dtype=dtype, seed=15) * 0.1 + 0.05
    results = {}
    for splits in (1, 3, 40):  # 40 > 8 chunks: clamped to one chunk per program
        a = grad_stats_triton(G, 3.0, block=128, splits=splits)
        b = grad_stats_triton(G, 3.0, block=128, splits=splits)
        assert torch.equal(a, b)
        assert_matches_reference(a, G, 3.0)
        results[splits] = a
    # Exact columns agree across splits too.
    for a in results.values():
        assert torch.equal(a[..., L.MAX_ABS], results[1][..., L.MAX_ABS])
        assert torch.equal(a[..., L.NONFINITE], results[1][..., L.NONFINITE])


def test_fused_first_pass_bookkeeping():
    """The compiled GPU path reduces (|g|, g², g, g - shift) as one joined [BLOCK, 2, 2] tensor; run that code
    path under the interpreter too, in float64 (numpy reduces the joined axis sequentially, error ~BLOCK*eps64,
    far inside 1e-12), to check which partial sum lands in which statistic."""
    G = _randn(2, 2, 700, dtype=torch.float64, seed=16) + 0.5
    G[1, 0, 3] = float("nan")
    clean = torch.tensor([[True, True], [False, True]], device=DEVICE)
    for p in (2.0, 3.0):
        out = gs_mod.launch_grad_stats(G, p, block=128, splits=2, fused_sums=True)
        assert torch.equal(out[1, 0, L.NONFINITE], torch.tensor(1.0, dtype=torch.float64, device=DEVICE))
        assert_matches_reference(out, G, p, rows=clean)


# ------------------------------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------------------------------


def test_validation_errors():
    G = torch.zeros(1, 2, 8, device=DEVICE)
    with pytest.raises(ValueError, match="float32 or float64"):
        grad_stats_triton(G.half())
    with pytest.raises(ValueError, match="float32 or float64"):
        grad_stats_triton(G.int())
    with pytest.raises(ValueError, match=r"3-D \[S, K, P\]"):
        grad_stats_triton(G[0])
    with pytest.raises(ValueError, match=r"3-D \[S, K, P\]"):
        grad_stats_triton(G[None])
    with pytest.raises(ValueError, match="P >= 1"):
        grad_stats_triton(G[..., :0])
    for bad_p in (0.5, float("nan"), "two", -math.inf):
        with pytest.raises(ValueError, match="p must be"):
            grad_stats_triton(G, bad_p)
    for bad_block in (100, 8, 2**17, 64.0):
        with pytest.raises(ValueError, match="block must be"):
            grad_stats_triton(G, block=bad_block)
    for bad_splits in (0, -1, 2.0):
        with pytest.raises(ValueError, match="splits must be"):
            grad_stats_triton(G, splits=bad_splits)
    with pytest.raises(ValueError, match="G must be a torch.Tensor"):
        grad_stats_triton([[[1.0]]])


def test_empty_rows():
    G = torch.zeros(0, 3, 10, device=DEVICE)
    assert grad_stats_triton(G).shape == (0, 3, L.N_STATS)


# ------------------------------------------------------------------------------------------------------------------
# GPU: the compiled kernel, including P = 10^7 with the default configuration
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device for the compiled Triton kernel")
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("p", [2.0, 1.0, math.inf, 3.0, 2.5])
def test_gpu_compiled(dtype, p):
    cases = [(1, 1, 1), (1, 8, 1023), (1, 8, 1025), (3, 8, 2047), (3, 8, 2048), (3, 8, 2049), (3, 8, 3021),
             (2, 3, 10**5 + 7), (1, 3, 10**7)]
    for S, K, P in cases:  # 1023/1025, 2047..2049: the default fp64 / fp32 BLOCK +- 1
        G = _randn(S, K, P, dtype=dtype, seed=P, device="cuda") * 1e-2 + 1e-3
        out = grad_stats_triton(G, p)
        torch.cuda.synchronize()
        assert_matches_reference(out, G, p)
        assert torch.equal(out, grad_stats_triton(G, p))  # deterministic
    G = _randn(3, 8, 10**5, dtype=dtype, seed=1, device="cuda")[:, :, ::2]
    G[0, 0, 5] = float("nan")
    out = grad_stats_triton(G, p)
    assert out[0, 0, L.NONFINITE].item() == 1.0
    rows = torch.ones(3, 8, dtype=torch.bool, device="cuda")
    rows[0, 0] = False
    assert_matches_reference(out, G, p, rows=rows)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device for the compiled Triton kernel")
def test_gpu_reads_quickly():
    """Smoke check of the one-read design (not a benchmark; see bench/bench_grad_stats_bandwidth.py): 3 x 8 x 10^7
    float32 (0.96 GB, ~0.3 ms at H100/H200 bandwidth) in under 10 ms, i.e. far above 100 GB/s."""
    G = torch.randn(3, 8, 10**7, device="cuda")
    grad_stats_triton(G)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(5):
        grad_stats_triton(G)
    torch.cuda.synchronize()
    assert (time.perf_counter() - t0) / 5 < 0.010


# ------------------------------------------------------------------------------------------------------------------
# Compiles for the GPU (ahead of time, no GPU needed): catches code that only the interpreter accepts
# ------------------------------------------------------------------------------------------------------------------

_AOT_SCRIPT = r"""
import os, sys
os.environ.pop("TRITON_INTERPRET", None)
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
import fastpinn.kernels.grad_stats as gs

target = GPUTarget("cuda", 90, 32)

def build(fn, args, consts, num_warps):
    sig, const = {}, dict(consts)
    for n, v in args.items():
        if isinstance(v, str):
            sig[n] = v
        elif isinstance(v, float):
            sig[n] = "fp32"
        elif v == 1 and n != "n_cols":  # the JIT turns integer arguments equal to 1 into constants
            sig[n], const[n] = "constexpr", 1
        else:
            sig[n] = "i32"
    for n in consts:
        sig[n] = "constexpr"
    k = triton.compile(ASTSource(fn, sig, const), target=target, options={"num_warps": num_warps})
    assert "ld.global" in k.asm["ptx"] or "st.global" in k.asm["ptx"]

for dt, general in (("fp32", False), ("fp64", True)):
    ptr = "*" + dt
    build(gs.grad_stats_partial_kernel,
          dict(G_ptr=ptr, ws_ptr=ptr, cnt_ptr="*i32", n_terms=3, n_cols=5, stride_s=15, stride_k=5, stride_p=1,
               chunk_len=64, n_splits=2, ws_field_stride=6, p1=3.0, p2=0.0, p3=0.0),
          dict(BLOCK=gs.default_block(getattr(__import__("torch"), "float32" if dt == "fp32" else "float64"), False),
               SHIFT_WIN=256, GENERAL_P=general, USE_LIBDEVICE=general and dt == "fp64", WIDE_INDEX=False,
               FUSED_SUMS=True), 4)
    build(gs.grad_stats_merge_kernel,
          dict(ws_ptr=ptr, cnt_ptr="*i32", out_ptr=ptr, n_rows=3, n_cols=5, chunk_len=64, n_splits=2,
               ws_field_stride=6, p1=3.0, p2=0.0, p3=0.0),
          dict(ROW_BLOCK=4, SPLIT_BLOCK=2, NORM_KIND=4 if general else 2, USE_LIBDEVICE=general and dt == "fp64"), 4)
print("AOT-OK")
"""


@pytest.mark.skipif(ON_GPU, reason="with a GPU the compiled kernels are exercised directly by every test")
def test_compiles_for_sm90_ahead_of_time():
    """Compile the kernels as the GPU would (Triton front end -> PTX -> cubin for sm_90, with the ptxas bundled in
    the triton wheel) in a subprocess without TRITON_INTERPRET: fp32 p = 2 and fp64 general p (libdevice pow)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, "-c", _AOT_SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    missing = ("not found", "cannot find", "no such file")
    if r.returncode != 0 and "ptxas" in r.stderr and any(m in r.stderr.lower() for m in missing):
        pytest.skip("no ptxas available to finish the ahead-of-time compile")
    assert r.returncode == 0 and "AOT-OK" in r.stdout, r.stderr[-4000:]


# ------------------------------------------------------------------------------------------------------------------
# The dispatcher op fastpinn::grad_stats_triton (torch.library.triton_op) and the backend policy
# ------------------------------------------------------------------------------------------------------------------


def test_triton_op_registered_and_equal_to_launcher():
    G = torch.randn(2, 3, 777, dtype=torch.float64, device=DEVICE)
    via_op = torch.ops.fastpinn.grad_stats_triton(G, 2.5)
    direct = gs_mod.launch_grad_stats(G, 2.5, block=None, splits=None)
    assert torch.equal(via_op, direct)  # the same kernels with the same configuration: bitwise
    assert torch.equal(grad_stats_triton(G, 2.5), via_op)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_triton_op_opcheck(dtype):
    G = torch.randn(2, 3, 300, dtype=dtype, device=DEVICE)
    # Under the interpreter the traced (aot_dispatch) variants cannot run: the interpreter copies storages of
    # the fake tensors it is handed. The schema, autograd registration and fake implementation are checked
    # here; the full opcheck runs on the GPU (test_gpu_triton_op_full_opcheck).
    utils = ("test_schema", "test_autograd_registration", "test_faketensor")
    for args in ((G, 2.5), (G.transpose(0, 1), math.inf)):
        torch.library.opcheck(torch.ops.fastpinn.grad_stats_triton.default, args,
                              test_utils=None if G.is_cuda else utils)


def test_triton_op_compiles_without_graph_break():
    G = torch.randn(1, 3, 200, dtype=torch.float64, device=DEVICE)
    f = torch.compile(lambda g: torch.ops.fastpinn.grad_stats_triton(g, 2.0) * 2.0, backend="eager", fullgraph=True)
    assert torch.equal(f(G), 2.0 * grad_stats_triton(G, 2.0))


def test_backend_policy_is_explicit():
    from fastpinn import ops

    cpu = torch.zeros(1, 2, 3)
    assert ops.stats_implementation(cpu, "auto") == "cpp"
    assert ops.stats_implementation(cpu, "triton") == "triton"
    assert ops.stats_implementation(cpu, "torch") == "torch"
    with pytest.raises(ValueError, match="backend"):
        ops.stats_implementation(cpu, "cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device for the compiled Triton kernel")
def test_gpu_triton_op_full_opcheck_and_policy():
    from fastpinn import ops

    G = torch.randn(2, 3, 5000, device="cuda")
    torch.library.opcheck(torch.ops.fastpinn.grad_stats_triton.default, (G, 2.0))
    assert ops.stats_implementation(G, "auto") == "triton"
    f = torch.compile(lambda g: torch.ops.fastpinn.grad_stats_triton(g, 2.0), backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(f(G), grad_stats_triton(G, 2.0), rtol=0, atol=0)
