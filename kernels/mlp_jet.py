"""The fused tanh-MLP jet op in Triton: the CUDA kernels of ``fastpinn::mlp_jet_forward`` / ``mlp_jet_backward``.

Same semantics as the C++ CPU kernel (csrc/mlp_jet.h; oracle ``fastpinn.derivatives.jet_mlp``). One program
per (block of ``BLOCK`` points, ensemble member). A layer's jet lives in registers as ``H[BLOCK, CP, WP]``
(points x channels padded to a power of two x neurons padded to a power of two, at least 16 for ``tl.dot``):
the affine map of all channels is one ``[BLOCK * CP, WP] x [WP, WP]`` ``tl.dot`` (IEEE fp32, no TF32), and the
tanh-jet rules pick channels with masks. Padded neurons carry zeros (zero weights and biases), padded points are
masked on load and store, and their output gradients are zero.

Backward: the forward kernel is re-run with ``STORE`` to write every hidden layer's pre-activation jet,
activation jet and tanh' to a per-program scratch (it stays in L2 on a GPU), then the backward kernel sweeps the
layers in reverse, writing each program's partial gradient row (summed over programs by torch: deterministic, no
atomics). So the GPU path recomputes, like the CPU default; its forward never returns a tape.

Under ``TRITON_INTERPRET=1`` the kernels run on CPU tensors (tests use tiny shapes).
"""

from __future__ import annotations

from typing import Sequence

import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["mlp_jet_forward_triton", "mlp_jet_backward_triton", "BLOCK"]

BLOCK = 32  # points per program


@triton.jit
def _channel(H, ch3, c):
    """Channel ``c`` of a jet ``H[BLOCK, CP, WP]`` -> ``[BLOCK, WP]``."""
    return tl.sum(tl.where(ch3 == c, H, 0.0), axis=1)


@triton.jit
def _field_channel(first_out, oc, NT, NF):
    fo = tl.load(first_out + tl.maximum(oc - 1, 0), mask=(oc >= 1) & (oc <= NF), other=0)
    return tl.where(oc == 0, 0, tl.where(oc <= NF, 1 + fo, 1 + NT + (oc - 1 - NF)))


@triton.jit
def _first_layer(th, x, scale, shift, sizes, woff, boff, dirs, s, p, pm, x_stride_s, NT, ch3, col,
                 D: tl.constexpr, BLOCK: tl.constexpr, CP: tl.constexpr, WP: tl.constexpr):
    n1 = tl.load(sizes + 1)
    w0 = tl.load(woff)
    b0 = tl.load(boff)
    z = tl.zeros([BLOCK, WP], dtype=th.dtype.element_ty) + tl.load(th + b0 + col, mask=col < n1, other=0.0)[None, :]
    for i in tl.static_range(D):
        xi = tl.load(x + s * x_stride_s + p * D + i, mask=pm, other=0.0) * tl.load(scale + i) + tl.load(shift + i)
        z += xi[:, None] * tl.load(th + w0 + col * D + i, mask=col < n1, other=0.0)[None, :]
    H = tl.where(ch3 == 0, z[:, None, :], 0.0)
    for c in range(NT):
        dc = tl.load(dirs + c)
        t = tl.load(th + w0 + col * D + dc, mask=col < n1, other=0.0) * tl.load(scale + dc)
        H += tl.where(ch3 == 1 + c, t[None, None, :], 0.0)
    return H


@triton.jit
def _mlp_jet_fwd_kernel(theta, x, scale, shift, sizes, woff, boff, dirs, pair_i, pair_j, first_out, fields, tape,
                        N, P, x_stride_s, L, NT, NQ, NF, OC,
                        D: tl.constexpr, BLOCK: tl.constexpr, CP: tl.constexpr, WP: tl.constexpr,
                        STORE: tl.constexpr, WRITE_FIELDS: tl.constexpr):
    pb = tl.program_id(0)
    s = tl.program_id(1)
    nb = tl.num_programs(0)
    p = pb * BLOCK + tl.arange(0, BLOCK)
    pm = p < N
    ch3 = tl.arange(0, CP)[None, :, None]
    col = tl.arange(0, WP)
    th = theta + s * P
    H = _first_layer(th, x, scale, shift, sizes, woff, boff, dirs, s, p, pm, x_stride_s, NT, ch3, col, D, BLOCK, CP, WP)
    JET: tl.constexpr = BLOCK * CP * WP
    LAYER: tl.constexpr = 2 * JET + BLOCK * WP
    off3 = (tl.arange(0, BLOCK)[:, None, None] * CP + ch3) * WP + col[None, None, :]
    off2 = tl.arange(0, BLOCK)[:, None] * WP + col[None, :]
    base = tape + (s * nb + pb).to(tl.int64) * (L - 1) * LAYER
    for k in range(1, L):
        n_in = tl.load(sizes + k)
        n_out = tl.load(sizes + k + 1)
        zv = _channel(H, ch3, 0)
        e = tl.exp(-2.0 * tl.abs(zv))
        t = (1.0 - e) / (1.0 + e)
        a = tl.where(zv < 0, -t, t)
        sd = 4.0 * e / ((1.0 + e) * (1.0 + e))  # 1 - tanh^2 without cancellation near saturation
        A = tl.where(ch3 == 0, a[:, None, :], tl.where((ch3 >= 1) & (ch3 <= NT), sd[:, None, :] * H, 0.0))
        for q in range(NQ):
            ti = _channel(H, ch3, 1 + tl.load(pair_i + q))
            tj = _channel(H, ch3, 1 + tl.load(pair_j + q))
            qq = _channel(H, ch3, 1 + NT + q)
            A += tl.where(ch3 == 1 + NT + q, (sd * (qq - 2.0 * a * ti * tj))[:, None, :], 0.0)
        if STORE:
            lb = base + (k - 1) * LAYER
            tl.store(lb + off3, H)
            tl.store(lb + JET + off3, A)
            tl.store(lb + 2 * JET + off2, sd)
        W = tl.load(th + tl.load(woff + k) + col[:, None] * n_in + col[None, :],
                    mask=(col[:, None] < n_out) & (col[None, :] < n_in), other=0.0)
        H = tl.reshape(tl.dot(tl.reshape(A, [BLOCK * CP, WP]), tl.trans(W), input_precision="ieee"), [BLOCK, CP, WP])
        bias = tl.load(th + tl.load(boff + k) + col, mask=col < n_out, other=0.0)
        H += tl.where(ch3 == 0, bias[None, None, :], 0.0)
    if WRITE_FIELDS:
        n_out = tl.load(sizes + L)
        for oc in range(OC):
            v = _channel(H, ch3, _field_channel(first_out, oc, NT, NF))
            tl.store(fields + ((s * OC + oc) * N + p[:, None]) * n_out + col[None, :], v,
                     mask=pm[:, None] & (col[None, :] < n_out))


@triton.jit
def _mlp_jet_bwd_kernel(grad_fields, theta, x, scale, shift, sizes, woff, boff, dirs, pair_i, pair_j, first_out,
                        tape, partial, grad_x, N, P, x_stride_s, L, NT, NQ, NF, OC,
                        D: tl.constexpr, BLOCK: tl.constexpr, CP: tl.constexpr, WP: tl.constexpr,
                        X_GRAD: tl.constexpr):
    pb = tl.program_id(0)
    s = tl.program_id(1)
    nb = tl.num_programs(0)
    p = pb * BLOCK + tl.arange(0, BLOCK)
    pm = p < N
    ch3 = tl.arange(0, CP)[None, :, None]
    col = tl.arange(0, WP)
    th = theta + s * P
    gp = partial + (s * nb + pb).to(tl.int64) * P
    JET: tl.constexpr = BLOCK * CP * WP
    LAYER: tl.constexpr = 2 * JET + BLOCK * WP
    off3 = (tl.arange(0, BLOCK)[:, None, None] * CP + ch3) * WP + col[None, None, :]
    off2 = tl.arange(0, BLOCK)[:, None] * WP + col[None, :]
    base = tape + (s * nb + pb).to(tl.int64) * (L - 1) * LAYER
    n_last = tl.load(sizes + L)
    G = tl.zeros([BLOCK, CP, WP], dtype=theta.dtype.element_ty)
    for oc in range(OC):
        g = tl.load(grad_fields + ((s * OC + oc) * N + p[:, None]) * n_last + col[None, :],
                    mask=pm[:, None] & (col[None, :] < n_last), other=0.0)
        G += tl.where(ch3 == _field_channel(first_out, oc, NT, NF), g[:, None, :], 0.0)
    for kk in range(1, L):
        k = L - kk
        n_in = tl.load(sizes + k)
        n_o = tl.load(sizes + k + 1)
        wk = tl.load(woff + k)
        lb = base + (k - 1) * LAYER
        Z = tl.load(lb + off3)
        A = tl.load(lb + JET + off3)
        sd = tl.load(lb + 2 * JET + off2)
        G2 = tl.reshape(G, [BLOCK * CP, WP])
        gW = tl.dot(tl.trans(G2), tl.reshape(A, [BLOCK * CP, WP]), input_precision="ieee")  # [out, in]
        tl.store(gp + wk + col[:, None] * n_in + col[None, :], gW, mask=(col[:, None] < n_o) & (col[None, :] < n_in))
        tl.store(gp + tl.load(boff + k) + col, tl.sum(_channel(G, ch3, 0), axis=0), mask=col < n_o)
        W = tl.load(th + wk + col[:, None] * n_in + col[None, :], mask=(col[:, None] < n_o) & (col[None, :] < n_in),
                    other=0.0)
        GA = tl.reshape(tl.dot(G2, W, input_precision="ieee"), [BLOCK, CP, WP])  # wrt the activation jet
        a = _channel(A, ch3, 0)
        m2as = -2.0 * a * sd
        gs = tl.sum(tl.where((ch3 >= 1) & (ch3 <= NT), GA * Z, 0.0), axis=1)  # d loss / d s
        ga = _channel(GA, ch3, 0)  # d loss / d a
        Gn = tl.where((ch3 >= 1) & (ch3 <= NT + NQ), sd[:, None, :] * GA, 0.0)
        for q in range(NQ):
            qi = tl.load(pair_i + q)
            qj = tl.load(pair_j + q)
            ti = _channel(Z, ch3, 1 + qi)
            tj = _channel(Z, ch3, 1 + qj)
            gq = _channel(GA, ch3, 1 + NT + q)
            tt = ti * tj
            gs += gq * (_channel(Z, ch3, 1 + NT + q) - 2.0 * a * tt)
            ga += -2.0 * sd * gq * tt
            coef = m2as * gq
            Gn += tl.where(ch3 == 1 + qi, (coef * tj)[:, None, :], 0.0) + tl.where(ch3 == 1 + qj, (coef * ti)[:, None, :], 0.0)
        G = Gn + tl.where(ch3 == 0, (ga * sd + gs * m2as)[:, None, :], 0.0)
    # First layer: the value channel from the scaled points, the tangents from W0[:, dirs[c]] * scale[dirs[c]].
    n1 = tl.load(sizes + 1)
    w0 = tl.load(woff)
    g0 = _channel(G, ch3, 0)
    for i in tl.static_range(D):
        sc = tl.load(scale + i)
        xi = tl.load(x + s * x_stride_s + p * D + i, mask=pm, other=0.0) * sc + tl.load(shift + i)
        gw = tl.sum(g0 * xi[:, None], axis=0)
        for c in range(NT):
            gw += tl.where(tl.load(dirs + c) == i, sc * tl.sum(_channel(G, ch3, 1 + c), axis=0), 0.0)
        tl.store(gp + w0 + col * D + i, gw, mask=col < n1)
        if X_GRAD:
            wcol = tl.load(th + w0 + col * D + i, mask=col < n1, other=0.0)
            tl.store(grad_x + (s * N + p) * D + i, sc * tl.sum(g0 * wcol[None, :], axis=1), mask=pm)
    tl.store(gp + tl.load(boff) + col, tl.sum(g0, axis=0), mask=col < n1)


# ------------------------------------------------------------------------------------------------ host side


class _Launch:
    """Integer plan tensors and launch constants shared by the two kernels."""

    def __init__(self, theta: Tensor, x: Tensor, sizes: Sequence[int], dirs: Sequence[int], pairs: Sequence[int],
                 first_out: Sequence[int]) -> None:
        if theta.dim() != 2 or x.dim() not in (2, 3):
            raise ValueError(f"theta must be [S, P] and x [N, d] or [S, N, d], got {tuple(theta.shape)}, {tuple(x.shape)}")
        dev = theta.device
        self.L = len(sizes) - 1
        w_off, b_off, offset = [], [], 0
        for k in range(self.L):
            w_off.append(offset)
            offset += sizes[k + 1] * sizes[k]
            b_off.append(offset)
            offset += sizes[k + 1]
        if theta.shape[1] != offset:
            raise ValueError(f"theta must have P = {offset} columns for sizes {list(sizes)}, got {tuple(theta.shape)}")
        as_i64 = lambda v: torch.tensor(list(v) or [0], dtype=torch.int64, device=dev)  # noqa: E731 (never empty)
        self.sizes, self.woff, self.boff = as_i64(sizes), as_i64(w_off), as_i64(b_off)
        self.dirs, self.pair_i, self.pair_j = as_i64(dirs), as_i64(pairs[0::2]), as_i64(pairs[1::2])
        self.first_out = as_i64(first_out)
        self.S, self.N, self.D = theta.shape[0], x.shape[-2], sizes[0]
        self.NT, self.NQ, self.NF = len(dirs), len(pairs) // 2, len(first_out)
        self.OC = 1 + self.NF + self.NQ
        self.CP = triton.next_power_of_2(1 + self.NT + self.NQ)
        self.WP = max(16, triton.next_power_of_2(max(sizes)))
        self.x_stride_s = 0 if x.dim() == 2 else self.N * self.D
        self.nb = triton.cdiv(self.N, BLOCK)
        self.tape_numel = self.S * self.nb * max(self.L - 1, 0) * (2 * BLOCK * self.CP * self.WP + BLOCK * self.WP)

    def common(self) -> tuple:
        return (self.sizes, self.woff, self.boff, self.dirs, self.pair_i, self.pair_j, self.first_out)

    def scalars(self, P: int) -> tuple:
        return (self.N, P, self.x_stride_s, self.L, self.NT, self.NQ, self.NF, self.OC)


def _check_tanh(activation: str) -> None:
    if activation != "tanh":
        raise NotImplementedError(f"the Triton mlp_jet kernels are tanh-only, got activation {activation!r}; "
                                  "use derivative method 'jet' on CUDA")


def mlp_jet_forward_triton(theta: Tensor, x: Tensor, scale: Tensor, shift: Tensor, sizes: Sequence[int],
                           dirs: Sequence[int], pairs: Sequence[int], first_out: Sequence[int],
                           store: bool = False, activation: str = "tanh") -> tuple[Tensor, Tensor]:
    """``fastpinn::mlp_jet_forward`` on CUDA (or CPU under the interpreter): ``(fields, tape)``; the tape is
    always empty (``store`` is ignored: the GPU backward recomputes, see the module docstring). tanh only
    (the CPU kernel has every activation of ``fastpinn.ops.activations.JET_ACTIVATIONS``)."""
    _check_tanh(activation)
    theta, x, scale, shift = theta.contiguous(), x.contiguous(), scale.contiguous(), shift.contiguous()
    lp = _Launch(theta, x, sizes, dirs, pairs, first_out)
    fields = torch.empty((lp.S, lp.OC, lp.N, sizes[-1]), dtype=theta.dtype, device=theta.device)
    if lp.N > 0:
        _mlp_jet_fwd_kernel[(lp.nb, lp.S)](theta, x, scale, shift, *lp.common(), fields, theta, *lp.scalars(theta.shape[1]),
                                           D=lp.D, BLOCK=BLOCK, CP=lp.CP, WP=lp.WP, STORE=False, WRITE_FIELDS=True)
    return fields, theta.new_empty((0,))


def mlp_jet_backward_triton(grad_fields: Tensor, theta: Tensor, x: Tensor, scale: Tensor, shift: Tensor, tape: Tensor,
                            sizes: Sequence[int], dirs: Sequence[int], pairs: Sequence[int], first_out: Sequence[int],
                            x_grad: bool, activation: str = "tanh") -> tuple[Tensor, Tensor]:
    """``fastpinn::mlp_jet_backward`` on CUDA: ``(grad_theta[S, P], grad_x)`` (grad_x of x's shape if ``x_grad``,
    else ``[0]``). ``tape`` must be empty (the Triton forward never stores one)."""
    _check_tanh(activation)
    if tape.numel() != 0:
        raise ValueError("the Triton mlp_jet backward recomputes the forward state: tape must be empty")
    theta, x, scale, shift = theta.contiguous(), x.contiguous(), scale.contiguous(), shift.contiguous()
    grad_fields = grad_fields.contiguous()
    lp = _Launch(theta, x, sizes, dirs, pairs, first_out)
    P = theta.shape[1]
    partial = torch.zeros((lp.S * lp.nb, P), dtype=theta.dtype, device=theta.device)
    gx = torch.zeros((lp.S, lp.N, lp.D), dtype=theta.dtype, device=theta.device) if x_grad else theta.new_empty((0,))
    if lp.N > 0:
        scratch = torch.empty((max(lp.tape_numel, 1),), dtype=theta.dtype, device=theta.device)
        grid = (lp.nb, lp.S)
        _mlp_jet_fwd_kernel[grid](theta, x, scale, shift, *lp.common(), theta, scratch, *lp.scalars(P),
                                  D=lp.D, BLOCK=BLOCK, CP=lp.CP, WP=lp.WP, STORE=True, WRITE_FIELDS=False)
        _mlp_jet_bwd_kernel[grid](grad_fields, theta, x, scale, shift, *lp.common(), scratch, partial, gx,
                                  *lp.scalars(P), D=lp.D, BLOCK=BLOCK, CP=lp.CP, WP=lp.WP, X_GRAD=bool(x_grad))
    grad_theta = partial.view(lp.S, lp.nb, P).sum(1)
    if x_grad and x.dim() == 2:
        gx = gx.sum(0)
    return grad_theta, gx
