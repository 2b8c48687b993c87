"""bench/tf32_emulation.py: TF32 rounding on hand-computed bit patterns, the rounded matmul's forward and
backward, and the derivative streams against the library's derivatives (rounding off)."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import tf32_emulation as te


def bits(*patterns: int) -> torch.Tensor:
    """float32 tensor with the given bit patterns (ints as unsigned 32-bit)."""
    signed = [p - (1 << 32) if p >= 1 << 31 else p for p in patterns]
    return torch.tensor(signed, dtype=torch.int32).view(torch.float32)


def pattern(x: torch.Tensor) -> list[int]:
    return [p & 0xFFFFFFFF for p in x.view(torch.int32).tolist()]


def test_round_to_nearest_even_on_hand_computed_values():
    one = 1.0
    x = torch.tensor([
        one + 2.0 ** -11,  # exactly halfway between 1 and 1 + 2^-10, kept lsb even -> 1
        one + 3 * 2.0 ** -11,  # halfway between 1 + 2^-10 (odd) and 1 + 2^-9 -> 1 + 2^-9
        one + 3 * 2.0 ** -12,  # above halfway -> 1 + 2^-10
        one + 2.0 ** -12,  # below halfway -> 1
        -(one + 3 * 2.0 ** -12),  # negatives round the magnitude
        2.0 - 2.0 ** -23,  # carry into the exponent -> 2
        3.0e38 * 1.1342,  # just under float32 max: above TF32's largest finite -> inf
    ], dtype=torch.float32)
    want = [1.0, one + 2.0 ** -9, one + 2.0 ** -10, 1.0, -(one + 2.0 ** -10), 2.0, float("inf")]
    assert te.round_to_tf32(x).tolist() == want


def test_round_bit_patterns_subnormals_and_specials():
    x = bits(0x00000001, 0x00001000, 0x00003000, 0x00001001, 0x00002000, 0x80001800,
             0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0x7FFFFFFF, 0x00000000, 0x80000000)
    got = te.round_to_tf32(x)
    assert pattern(got) == [0x0, 0x0, 0x4000, 0x2000, 0x2000, 0x80002000,
                            0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0x7FFFFFFF, 0x0, 0x80000000]
    assert pattern(te.round_to_tf32(bits(0x3F801FFF, 0xBF801FFF), "truncate")) == [0x3F800000, 0xBF800000]


def test_tf32_values_are_fixed_points_and_rounding_is_nearest():
    gen = torch.Generator().manual_seed(0)
    raw = torch.randint(-(2 ** 31), 2 ** 31 - 1, (20000,), generator=gen, dtype=torch.int64).to(torch.int32)
    x = raw.view(torch.float32)
    x = x[torch.isfinite(x) & (x.abs() > 1e-30) & (x.abs() < 1e30)]
    tf32 = (x.view(torch.int32) & ~0x1FFF).view(torch.float32)
    assert torch.equal(te.round_to_tf32(tf32).view(torch.int32), tf32.view(torch.int32))
    # Independent reference in float64: scale by the TF32 ulp of x, round half to even, scale back.
    xd = x.double()
    ulp = torch.exp2(torch.floor(torch.log2(xd.abs())) - 10)
    want = (torch.round(xd / ulp) * ulp).float()
    assert torch.equal(te.round_to_tf32(x), want)


def test_round_rejects_other_dtypes_and_modes():
    with pytest.raises(ValueError, match="float32"):
        te.round_to_tf32(torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="mode"):
        te.round_to_tf32(torch.ones(2), "up")


def test_rounded_matmul_rounds_forward_and_backward_operands():
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(3, 5, 4, generator=gen, requires_grad=True)
    b = torch.randn(3, 4, 6, generator=gen, requires_grad=True)
    g = torch.randn(3, 5, 6, generator=gen)
    y = te.rounded_matmul(a, b, "nearest_even")
    r = te.round_to_tf32
    assert torch.equal(y, r(a.detach()) @ r(b.detach()))
    assert not torch.equal(y, a.detach() @ b.detach())
    y.backward(g)
    assert torch.equal(a.grad, r(g) @ r(b.detach()).transpose(-1, -2))
    assert torch.equal(b.grad, r(a.detach()).transpose(-1, -2) @ r(g))
    assert torch.equal(te.rounded_matmul(a, b, None), a @ b)  # the switch turns the rounding off


def test_streams_equal_library_derivatives_without_rounding():
    from fastpinn import MLP
    from fastpinn.derivatives import derivatives

    net = MLP(2, 1, 3, 8, lower=(0.0, 0.0), upper=(1.0, 2.0), ensemble=2, seed=3, dtype=torch.float64)
    x = torch.rand(2, 7, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * torch.tensor([1.0, 2.0],
                                                                                                          dtype=torch.float64)
    f = derivatives(net, x, coords=("x", "y"), requests=("u", "u_xx", "u_yy"), method="autograd")
    u, u_xx, u_yy = te.poisson_streams(net.layers(), x * net.input_scale + net.input_shift, net.input_scale, None)
    torch.testing.assert_close(u, f["u"], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(u_xx, f["u_xx"], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(u_yy, f["u_yy"], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(te.network_values(net.layers(), x * net.input_scale + net.input_shift, None), f["u"],
                               rtol=1e-12, atol=1e-12)


def test_training_resumes_from_its_checkpoint_exactly(tmp_path):
    """Two steps, a checkpoint, one more step equals three steps at once (the background run relies on it); the
    rounding-off loss at step 0 equals the library's."""
    a, b = tmp_path / "a", tmp_path / "b"
    setup = te.build_setup([0, 1], n_pde=64, n_bc=16)
    ours = te.term_losses(setup, setup.initial_theta(), None)
    torch.testing.assert_close(torch.stack(ours), torch.stack(setup.trainer.term_losses()).detach(), rtol=1e-6, atol=0)
    run = {"eval_every": 2, "compile": False, "setup": setup, "log": lambda *_: None}
    te.train("tf32", [0, 1], 2, out_dir=a, **run)
    resumed = te.train("tf32", [0, 1], 3, out_dir=a, **run)
    straight = te.train("tf32", [0, 1], 3, out_dir=b, **run)
    assert resumed["eval_epochs"] == straight["eval_epochs"] == [0, 2, 3]
    assert resumed["rel_l2"] == straight["rel_l2"]
    assert torch.equal(te.load_checkpoint(a / "tf32.pt")["theta"], te.load_checkpoint(b / "tf32.pt")["theta"])
