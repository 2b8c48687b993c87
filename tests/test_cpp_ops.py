"""The compiled ops torch.ops.fastpinn.{grad_stats, ema_update} against their pure-PyTorch twins.

Tolerances (grad_stats, float32): the op is compared with the float64 reference of the *same* input, and
its error must be at most twice the error of plain PyTorch computing the same formula in float32 (the
reference run on the float32 input), plus a floor of ``SLACK_ULPS * eps32 * scale``. ``scale`` is the
magnitude a summation of the column is conditioned on: sum|g| for SUM and SUM_ABS, sum g^2 for SUM_SQ,
the value itself for the non-negative M2 and NORM_P. The floor is needed because the float32 reference
can be exact by luck (e.g. P = 1, or a sum that happens to round correctly), and then "twice its error"
would demand a bit-exact answer; 4 ulps of the scale is the cost of a handful of roundings of the result
(the chunk merge, the compensated-sum finalisation, the float32 store), far below a pairwise sum's
worst-case bound of ~log2(512) = 9 ulps. MAX_ABS is exact in any summation order and NONFINITE is a count:
both must match exactly. In float64 the op must agree with the reference to 1e-12 of the same scale.
"""

from __future__ import annotations

import math

import pytest
import torch

from fastpinn.ops import _ext
from fastpinn.ops import layout as L
from fastpinn.ops.reference import ema_update_ref, grad_stats_ref

pytestmark = pytest.mark.skipif(not _ext.available(), reason="fastpinn._C is not built")

EPS32 = torch.finfo(torch.float32).eps
SLACK_ULPS = 4.0
F64_RTOL = 1e-12
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (and a CUDA build of fastpinn)")


def op_grad_stats(G: torch.Tensor, p: float) -> torch.Tensor:
    _ext.load()
    return torch.ops.fastpinn.grad_stats(G, float(p))


def scales(exact: torch.Tensor) -> torch.Tensor:
    """Per-column magnitude a rounding error of the column is measured against, ``[..., N_STATS]``."""
    sc = exact.abs().clone()
    sc[..., L.SUM] = exact[..., L.SUM_ABS]
    return sc


def assert_stats_close(G: torch.Tensor, p: float, got: torch.Tensor | None = None) -> None:
    """Check op(G) against the float64 reference with the argued tolerance (module docstring)."""
    if got is None:
        got = op_grad_stats(G, p)
    assert got.shape == (*G.shape[:-1], L.N_STATS) and got.dtype == G.dtype and got.is_contiguous()
    exact = grad_stats_ref(G.double(), p)
    sc = scales(exact)
    finite_cols = [L.SUM_ABS, L.SUM_SQ, L.SUM, L.NORM_P, L.M2]
    got64 = got.double()
    assert torch.equal(got64[..., L.MAX_ABS], exact[..., L.MAX_ABS])
    assert torch.equal(got64[..., L.NONFINITE], exact[..., L.NONFINITE])
    err = (got64 - exact).abs()[..., finite_cols]
    if G.dtype == torch.float64:
        bound = F64_RTOL * sc[..., finite_cols]
    else:
        torch_err = (grad_stats_ref(G, p).double() - exact).abs()[..., finite_cols]
        bound = 2.0 * torch_err + SLACK_ULPS * EPS32 * sc[..., finite_cols]
    bad = err > bound
    if bad.any():
        idx = bad.nonzero()[0].tolist()
        col = finite_cols[idx[-1]]
        pytest.fail(
            f"{L.STAT_NAMES[col]} at {idx[:-1]}: got {got64[tuple(idx[:-1]) + (col,)].item()!r}, "
            f"exact {exact[tuple(idx[:-1]) + (col,)].item()!r}, error {err[tuple(idx)].item():.3e} > "
            f"bound {bound[tuple(idx)].item():.3e}"
        )


def make_G(S: int, K: int, P: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """Gradient-like rows of different magnitudes and signs per term."""
    gen = torch.Generator().manual_seed(seed)
    scale = torch.logspace(-3, 2, K, dtype=torch.float64).view(1, K, 1)
    offset = 0.1 * torch.randn(S, K, 1, generator=gen, dtype=torch.float64)
    return (torch.randn(S, K, P, generator=gen, dtype=torch.float64) * scale + offset).to(dtype)


# ----------------------------------------------------------------------------------------------------- grad_stats

P_VALUES = [1, 2, 255, 256, 257, 1023, 1024, 1025, 10**5 + 3]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("P", P_VALUES)
def test_grad_stats_lengths(P: int, dtype: torch.dtype) -> None:
    # Chunk boundaries (512) and the power-of-two padding of the last chunk: P = 1, 2, block +- 1, several chunks.
    G = make_G(3, 3, P, dtype, seed=P)
    assert_stats_close(G, 2.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("S,K", [(1, 1), (1, 3), (1, 8), (3, 1), (3, 3), (3, 8)])
def test_grad_stats_members_and_terms(S: int, K: int, dtype: torch.dtype) -> None:
    assert_stats_close(make_G(S, K, 1025, dtype, seed=S * 10 + K), 3.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, 2.5, math.inf, 60.0], ids=["1", "2", "3", "2.5", "inf", "60"])
@pytest.mark.parametrize("P", [257, 10**5 + 3])
def test_grad_stats_norms(P: int, p: float, dtype: torch.dtype) -> None:
    assert_stats_close(make_G(2, 3, P, dtype, seed=7), p)


def test_grad_stats_large_p_does_not_overflow() -> None:
    # |g|^60 with |g| ~ 10 is ~1e60: the naive float32 sum overflows, the max-scaled one does not.
    G = (10.0 + torch.rand(1, 2, 5000, generator=torch.Generator().manual_seed(1))).float()
    G[0, 1, ::2] *= -1
    assert torch.isinf((G.abs() ** 60).sum(-1)).all()
    got = op_grad_stats(G, 60.0)
    assert torch.isfinite(got[..., L.NORM_P]).all()
    assert_stats_close(G, 60.0, got)


def test_grad_stats_huge_row() -> None:
    # One member, two terms, P = 1e7: parallelised over chunks rather than rows.
    gen = torch.Generator().manual_seed(3)
    G = torch.randn(1, 2, 10**7, generator=gen) * torch.tensor([1e-3, 10.0]).view(1, 2, 1) + 0.5
    assert_stats_close(G, 2.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_grad_stats_non_contiguous(dtype: torch.dtype) -> None:
    base = make_G(3, 4, 2100, dtype, seed=11)
    views = {
        "transposed": base.permute(2, 1, 0).contiguous().permute(2, 1, 0),  # P has stride S*K
        "sliced": base[:, :, ::3],
        "terms_last": base.transpose(0, 1).contiguous().transpose(0, 1),
        "expanded": base[:1, :, :1000].expand(3, 4, 1000),  # stride 0 over S
        "offset": base[1:, 1:3, 5:],
    }
    for name, G in views.items():
        assert not G.is_contiguous(), name
        got = op_grad_stats(G, 2.5)
        assert torch.equal(got, op_grad_stats(G.contiguous(), 2.5)), name  # strides do not change the numerics
        assert_stats_close(G, 2.5, got)


@pytest.mark.parametrize("offset", [1e3, 1e4])
def test_grad_stats_m2_large_offset(offset: float) -> None:
    # mean >> std: sum g^2 - (sum g)^2 / P cancels catastrophically in float32, the op must not.
    gen = torch.Generator().manual_seed(5)
    G = (offset + torch.randn(2, 2, 100_003, generator=gen, dtype=torch.float64)).float()
    exact = grad_stats_ref(G.double())[..., L.M2]
    naive = ((G * G).sum(-1) - G.sum(-1) ** 2 / G.shape[-1]).double()
    assert ((naive - exact).abs() / exact).min() > 1e-2  # the test data does defeat the naive formula
    got = op_grad_stats(G, 2.0)[..., L.M2].double()
    assert ((got - exact).abs() / exact).max() < 50 * EPS32
    assert_stats_close(G, 2.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_grad_stats_nonfinite_counted(dtype: torch.dtype) -> None:
    G = make_G(2, 3, 3000, dtype, seed=2)
    G[0, 0, 10] = math.nan
    G[0, 0, 2999] = math.inf
    G[1, 2, 0] = -math.inf  # in the first chunk, which also defines the row's shift
    G[1, 1, 700:705] = math.nan
    got = op_grad_stats(G, 3.0)
    expected = torch.zeros(2, 3, dtype=dtype)
    expected[0, 0], expected[1, 2], expected[1, 1] = 2, 1, 5
    assert torch.equal(got[..., L.NONFINITE], expected)
    # The rows without NaN/Inf are unaffected by their neighbours.
    clean = (expected == 0).flatten()
    rows = G.reshape(-1, G.shape[-1])[clean].unsqueeze(0)
    assert_stats_close(rows, 3.0, got.reshape(-1, L.N_STATS)[clean].unsqueeze(0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("p", [1.0, 2.0, 2.5, math.inf])
def test_grad_stats_zero_rows(p: float, dtype: torch.dtype) -> None:
    G = make_G(2, 3, 1500, dtype)
    G[0, 1] = 0.0
    G[1, :, :] = 0.0
    got = op_grad_stats(G, p)
    assert torch.equal(got[0, 1], torch.zeros(L.N_STATS, dtype=dtype))
    assert torch.equal(got[1], torch.zeros(3, L.N_STATS, dtype=dtype))
    assert_stats_close(G, p, got)


def test_grad_stats_empty_members() -> None:
    assert op_grad_stats(torch.zeros(0, 3, 5), 2.0).shape == (0, 3, L.N_STATS)


def test_grad_stats_deterministic_across_threads() -> None:
    G = make_G(1, 2, 300_001, torch.float32, seed=9)
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = op_grad_stats(G, 2.5)
        torch.set_num_threads(max(2, n))
        many = op_grad_stats(G, 2.5)
    finally:
        torch.set_num_threads(n)
    assert torch.equal(one, many)


KCHUNK = 512  # kChunk in csrc/grad_stats.h: elements per pairwise-summed chunk


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_grad_stats_pairwise_error_bound(dtype: torch.dtype) -> None:
    # Every block of KCHUNK elements holds one +-1.0 and KCHUNK - 1 values of eps/4, each below half an ulp of 1:
    # a recursive sum drops them against the 1.0 one by one (error ~KCHUNK/4 eps per block), and so does a
    # blocked one with independent lanes summed recursively (KCHUNK/(4 * lanes) eps: ~8 eps for 16 lanes).
    # A balanced pairwise tree adds the small values among themselves first; its error for n terms is at most
    # log2(n) * eps/2 * sum|g|. The chunks are merged with compensated sums, so the whole row must stay within
    # that bound for n = KCHUNK, plus 2 eps for the merge and the final roundings -- over ~10^6 elements, where
    # even a random-walk recursive error would be ~sqrt(10^6) eps. The 77-element tail exercises the last,
    # zero-padded chunk; the second row puts the 1.0 at another position of the tree, with the opposite sign.
    eps = torch.finfo(dtype).eps
    n_blocks, tail = 2048, 77
    P = n_blocks * KCHUNK + tail
    G = torch.full((1, 2, P), eps / 4, dtype=dtype)
    G[0, 0, : n_blocks * KCHUNK : KCHUNK] = 1.0
    G[0, 1, 300 : n_blocks * KCHUNK : KCHUNK] = 1.0
    G[0, 1] *= -1
    got = op_grad_stats(G, 2.0).double()
    bound_rel = (math.log2(KCHUNK) / 2 + 2) * eps
    for k in range(2):
        row = G[0, k].double().tolist()
        sum_abs = math.fsum(abs(v) for v in row)
        exact = {
            L.SUM: math.fsum(row),
            L.SUM_ABS: sum_abs,
            L.SUM_SQ: math.fsum(v * v for v in row),  # v * v is exact for float32 input, within eps/2 for float64
        }
        scale = {L.SUM: sum_abs, L.SUM_ABS: sum_abs, L.SUM_SQ: exact[L.SUM_SQ]}
        for col, value in exact.items():
            err = abs(got[0, k, col].item() - value)
            assert err <= bound_rel * scale[col], (L.STAT_NAMES[col], k, err / (eps * scale[col]))
    assert_stats_close(G, 2.0)


@pytest.mark.parametrize(
    "G,p,match",
    [
        (torch.zeros(3, 4), 2.0, "G must be 3-D"),
        (torch.zeros(1, 3, 4, dtype=torch.int64), 2.0, "float32 or float64"),
        (torch.zeros(1, 3, 4, dtype=torch.float16), 2.0, "float32 or float64"),
        (torch.zeros(1, 3, 0), 2.0, "P = G.size\\(2\\) >= 1"),
        (torch.zeros(1, 3, 4), 0.5, "p must be a number >= 1 or inf"),
        (torch.zeros(1, 3, 4), math.nan, "p must be a number >= 1 or inf"),
    ],
)
def test_grad_stats_rejects_bad_input(G: torch.Tensor, p: float, match: str) -> None:
    with pytest.raises(RuntimeError, match=match):
        op_grad_stats(G, p)


# ----------------------------------------------------------------------------------------------------- ema_update


def ema_state(S: int, K: int, dtype: torch.dtype, bias_correction: bool, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    lam0 = 0.0 if bias_correction else 1.0
    return {
        "lam": (lam0 + 0.1 * torch.rand(S, K, generator=gen, dtype=torch.float64)).to(dtype),
        "lam_applied": (1.0 + torch.rand(S, K, generator=gen, dtype=torch.float64)).to(dtype),
        "n_updates": torch.randint(2, 5, (S,), generator=gen),
        "skipped": torch.randint(0, 2, (S, K), generator=gen),
    }


STATE_KEYS = ("lam", "lam_applied", "n_updates", "skipped")


def clone_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in state.items()}


def random_candidates(S: int, K: int, dtype: torch.dtype, gen: torch.Generator, invalid: bool = True):
    """Candidates over four decades, with (optionally) invalid flags and non-finite values sprinkled in."""
    hat = torch.logspace(-2, 2, S * K, dtype=torch.float64)[torch.randperm(S * K, generator=gen)].view(S, K)
    hat = (hat * (1 + torch.rand(S, K, generator=gen, dtype=torch.float64))).to(dtype)
    valid = torch.ones(S, K, dtype=torch.bool)
    if invalid:
        valid &= torch.rand(S, K, generator=gen) > 0.2
        bad = torch.rand(S, K, generator=gen) < 0.1
        hat[bad] = math.nan
        hat[torch.rand(S, K, generator=gen) < 0.05] = math.inf
    return hat, valid


def run_both(hat, valid, target, active, op_state, ref_state, beta, bias) -> None:
    _ext.load()
    torch.ops.fastpinn.ema_update(hat, valid, target, active, *[op_state[k] for k in STATE_KEYS], beta, bias)
    ema_update_ref(hat, valid, target, active, *[ref_state[k] for k in STATE_KEYS], beta, bias)


def assert_state_equal(op_state, ref_state, dtype: torch.dtype) -> None:
    # float64: the same operations in the same order, so 1e-12 is generous. float32: the op rounds beta and
    # 1 - beta to float32 like the reference; allow a few ulps for std::pow versus torch.pow and a compiler's
    # different-but-valid evaluation (fused multiply-add).
    rtol = F64_RTOL if dtype == torch.float64 else 4 * EPS32
    for name in ("lam", "lam_applied"):
        torch.testing.assert_close(op_state[name], ref_state[name], rtol=rtol, atol=0.0, msg=name)
    for name in ("n_updates", "skipped"):
        assert torch.equal(op_state[name], ref_state[name]), name


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("beta", [0.0, 0.9, 0.99])
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
def test_ema_update_matches_reference(bias: bool, beta: float, dtype: torch.dtype) -> None:
    S, K = 3, 5
    gen = torch.Generator().manual_seed(int(bias) + int(100 * beta))
    target = torch.tensor([True, True, False, True, True])
    op_state = ema_state(S, K, dtype, bias, seed=1)
    ref_state = clone_state(op_state)
    for step in range(8):  # successive updates: the EMA and the per-term counts advance
        hat, valid = random_candidates(S, K, dtype, gen)
        active = None if step % 3 == 0 else torch.tensor(step % 3 == 1)
        run_both(hat, valid, target, active, op_state, ref_state, beta, bias)
        assert_state_equal(op_state, ref_state, dtype)
    assert op_state["skipped"].sum() > 0  # the random invalid entries were exercised


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_ema_update_semantics(dtype: torch.dtype) -> None:
    """The op's contract written out for one member: invalid or non-finite candidates are skipped and counted,
    non-target terms are untouched, valid ones move by the EMA and are corrected by their own count."""
    _ext.load()
    beta = 0.9
    state = {"lam": torch.zeros(1, 4, dtype=dtype), "lam_applied": torch.ones(1, 4, dtype=dtype),
             "n_updates": torch.zeros(1, dtype=torch.int64),
             "skipped": torch.zeros(1, 4, dtype=torch.int64)}
    target = torch.tensor([False, True, True, True])
    hat = torch.tensor([[7.0, 2.0, math.nan, 3.0]], dtype=dtype)
    valid = torch.tensor([[True, True, True, False]])
    torch.ops.fastpinn.ema_update(hat, valid, target, None, *[state[k] for k in STATE_KEYS], beta, True)
    # term 1: lam = 0.1 * 2 and applied = lam / (1 - 0.9) = 2 (up to rounding of 1 - beta in dtype).
    torch.testing.assert_close(state["lam_applied"], torch.tensor([[1.0, 2.0, 1.0, 1.0]], dtype=dtype),
                               rtol=4 * torch.finfo(dtype).eps, atol=0)
    assert state["skipped"].tolist() == [[0, 0, 1, 1]]
    assert state["n_updates"].tolist() == [1]
    # Term 2 is valid for the first time at the second call: it is corrected by its own count (1), so the
    # applied weight is the candidate itself -- not 0.1 * 5 / (1 - 0.81) = 2.63 from the call count.
    hat2 = torch.tensor([[7.0, 2.0, 5.0, 3.0]], dtype=dtype)
    torch.ops.fastpinn.ema_update(hat2, torch.ones(1, 4, dtype=torch.bool), target, None,
                                  *[state[k] for k in STATE_KEYS], beta, True)
    torch.testing.assert_close(state["lam_applied"][0, 2], torch.tensor(5.0, dtype=dtype),
                               rtol=4 * torch.finfo(dtype).eps, atol=0)
    assert state["skipped"].tolist() == [[0, 0, 1, 1]] and state["n_updates"].tolist() == [2]


def test_ema_update_gate_off_leaves_state_bitwise() -> None:
    _ext.load()
    gen = torch.Generator().manual_seed(5)
    state = ema_state(2, 3, torch.float64, True, seed=0)
    before = clone_state(state)
    hat, valid = random_candidates(2, 3, torch.float64, gen, invalid=True)
    torch.ops.fastpinn.ema_update(hat, valid, torch.ones(3, dtype=torch.bool), torch.tensor(False),
                                  *[state[k] for k in STATE_KEYS], 0.9, True)
    for k in STATE_KEYS:
        assert torch.equal(state[k], before[k]), k


def test_ema_update_strided_state() -> None:
    S, K = 3, 4
    gen = torch.Generator().manual_seed(3)
    hat_storage, valid_storage = random_candidates(K, S, torch.float64, gen)  # [K, S] storage viewed as [S, K]
    hat, valid = hat_storage.t(), valid_storage.t()
    state = ema_state(S, K, torch.float64, True, seed=0)
    op_state = {k: v.t().contiguous().t() if v.dim() == 2 else v for k, v in state.items()}  # column-major
    assert not op_state["lam"].is_contiguous() and not hat.is_contiguous()
    ref_state = clone_state(op_state)
    target = torch.tensor([True, False, True, True])
    for _ in range(3):
        run_both(hat, valid, target, None, op_state, ref_state, 0.99, True)
    assert_state_equal(op_state, ref_state, torch.float64)


def _ema_args(**overrides):
    S, K = 2, 3
    args = dict(
        hat=torch.ones(S, K),
        valid=torch.ones(S, K, dtype=torch.bool),
        target=torch.ones(K, dtype=torch.bool),
        active=None,
        lam=torch.ones(S, K),
        lam_applied=torch.ones(S, K),
        n_updates=torch.zeros(S, dtype=torch.int64),
        skipped=torch.zeros(S, K, dtype=torch.int64),
        beta=0.9,
        bias_correction=True,
    )
    args.update(overrides)
    return list(args.values())


@pytest.mark.parametrize(
    "overrides,match",
    [
        (dict(hat=torch.ones(2, 3, 1)), "hat must have shape"),
        (dict(hat=torch.ones(2, 3, dtype=torch.int64)), "hat must be float32 or float64"),
        (dict(lam=torch.ones(2, 3, dtype=torch.float64)), "lam must have the dtype of hat"),
        (dict(lam_applied=torch.ones(3, 2)), "lam_applied must have shape"),
        (dict(valid=torch.ones(2, 3)), "valid must be bool"),
        (dict(n_updates=torch.zeros(2, dtype=torch.int32)), "n_updates must be int64"),
        (dict(skipped=torch.zeros(2, 3)), "skipped must be int64"),
        (dict(target=torch.ones(3)), "target must be bool"),
        (dict(target=torch.ones(2, dtype=torch.bool)), "target must have shape"),
        (dict(active=torch.tensor([True])), "active must be a 0-dim bool"),
        (dict(beta=1.5), "beta must be in \\[0, 1\\)"),
    ],
)
def test_ema_update_rejects_bad_input(overrides, match: str) -> None:
    _ext.load()
    with pytest.raises(RuntimeError, match=match):
        torch.ops.fastpinn.ema_update(*_ema_args(**overrides))


# ----------------------------------------------------------------------------------------------------- opcheck


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_opcheck_grad_stats(dtype: torch.dtype) -> None:
    _ext.load()
    G = make_G(2, 3, 600, dtype)
    torch.library.opcheck(torch.ops.fastpinn.grad_stats.default, (G, 2.5))
    torch.library.opcheck(torch.ops.fastpinn.grad_stats.default, (G.transpose(0, 1), math.inf))


def test_opcheck_ema_update() -> None:
    _ext.load()
    hat, valid = random_candidates(2, 3, torch.float32, torch.Generator().manual_seed(0))
    for active in (None, torch.tensor(True), torch.tensor(False)):
        state = ema_state(2, 3, torch.float32, True, seed=0)
        args = (hat, valid, torch.tensor([True, False, True]), active, *[state[k] for k in STATE_KEYS], 0.9, True)
        torch.library.opcheck(torch.ops.fastpinn.ema_update.default, args)


def test_ops_compile_without_graph_breaks() -> None:
    _ext.load()
    from fastpinn.schemes import DN

    scheme = DN(beta=0.9, bias_correction=True)

    def step(G, lam, lam_applied, n, skipped, target, active):
        stats = torch.ops.fastpinn.grad_stats(G, 2.0)
        hat, valid = scheme.candidate(stats, lam_applied, 0, G.shape[-1])
        torch.ops.fastpinn.ema_update(hat, valid, target, active, lam, lam_applied, n, skipped, 0.9, True)
        return stats

    G = make_G(1, 3, 100, torch.float32)
    state = ema_state(1, 3, torch.float32, True, seed=0)
    ref_state = clone_state(state)
    target = torch.tensor([False, True, True])
    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)
    stats = compiled(G, *[state[k] for k in STATE_KEYS], target, torch.tensor(True))
    hat, valid = scheme.candidate(grad_stats_ref(G.double()).float(), ref_state["lam_applied"], 0, 100)
    ema_update_ref(hat, valid, target, None, *[ref_state[k] for k in STATE_KEYS], 0.9, True)
    assert stats.shape == (1, 3, L.N_STATS)
    torch.testing.assert_close(state["lam"], ref_state["lam"], rtol=1e-5, atol=0)
    assert torch.equal(state["n_updates"], ref_state["n_updates"])


# ----------------------------------------------------------------------------------------------------- CUDA


@CUDA
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("p", [1.0, 2.0, 2.5, math.inf, 60.0], ids=["1", "2", "2.5", "inf", "60"])
@pytest.mark.parametrize("P", [1, 2, 255, 256, 257, 1023, 1024, 1025, 10**5 + 3])
def test_grad_stats_cuda(P: int, p: float, dtype: torch.dtype) -> None:
    if not _ext.build_info()["cuda"]:
        pytest.skip("fastpinn._C was built without CUDA kernels")
    G = make_G(3, 3, P, dtype, seed=P).cuda()
    got = op_grad_stats(G, p)
    assert got.is_cuda
    assert_stats_close(G.cpu(), p, got.cpu())
    # Same chunking as the CPU kernel, balanced trees of the same depth but pairing the leaves differently
    # (CPU: SIMD vectors first): each side is within SLACK_ULPS of the scale from the exact value (checked
    # above for CUDA, by the CPU tests for the CPU), so they agree within twice that.
    cpu = op_grad_stats(G.cpu(), p).double()
    sc = scales(cpu)
    eps = torch.finfo(dtype).eps
    assert ((got.cpu().double() - cpu).abs() <= 2 * SLACK_ULPS * eps * sc).all()


@CUDA
@pytest.mark.gpu
def test_grad_stats_cuda_strided_nonfinite_and_large() -> None:
    if not _ext.build_info()["cuda"]:
        pytest.skip("fastpinn._C was built without CUDA kernels")
    G = make_G(3, 4, 5000, torch.float32, seed=4).cuda()
    G[0, 1, 17] = math.nan
    G[2, 3, 4000] = -math.inf
    for view in (G, G.permute(2, 1, 0).contiguous().permute(2, 1, 0), G[:, :, ::3]):
        got = op_grad_stats(view, 3.0).cpu()
        exact = grad_stats_ref(view.cpu().double(), 3.0)
        assert torch.equal(got[..., L.NONFINITE].double(), exact[..., L.NONFINITE])
    H = make_G(1, 2, 10**7, torch.float32, seed=3).cuda()
    assert_stats_close(H.cpu(), 2.0, op_grad_stats(H, 2.0).cpu())
    M = (1e4 + torch.randn(2, 2, 100_003, dtype=torch.float64)).float().cuda()
    assert_stats_close(M.cpu(), 2.0, op_grad_stats(M, 2.0).cpu())


@CUDA
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
def test_ema_update_cuda(bias: bool, dtype: torch.dtype) -> None:
    if not _ext.build_info()["cuda"]:
        pytest.skip("fastpinn._C was built without CUDA kernels")
    S, K = 3, 5
    gen = torch.Generator().manual_seed(1)
    target = torch.tensor([True, True, False, True, True])
    ref_state = ema_state(S, K, dtype, bias, seed=0)
    op_state = {k: v.cuda() for k, v in clone_state(ref_state).items()}
    for step in range(6):
        hat, valid = random_candidates(S, K, dtype, gen)
        active = None if step % 3 == 0 else torch.tensor(step % 3 == 1)
        torch.ops.fastpinn.ema_update(hat.cuda(), valid.cuda(), target.cuda(),
                                      None if active is None else active.cuda(),
                                      *[op_state[k] for k in STATE_KEYS], 0.9, bias)
        ema_update_ref(hat, valid, target, active, *[ref_state[k] for k in STATE_KEYS], 0.9, bias)
        assert_state_equal({k: v.cpu() for k, v in op_state.items()}, ref_state, dtype)
