"""The fused Taylor-mode MLP op: pure input derivatives ``d^k u / dx_c^k`` (``k = 0..order``) of a tanh or sin
MLP along a few coordinates ``c``, in one compiled call, with its backward to ``theta`` (and ``x``).

Univariate Taylor mode: along coordinate ``c`` the network is evaluated on the line ``x + t e_c`` with truncated
Taylor series in ``t``; every pre-activation carries its value and ``order`` normalised coefficients
``z_k = (1/k!) d^k z / dt^k``. An affine map maps every coefficient by ``W`` (the bias only touches the value);
an activation maps the series by the recursion of its ODE (tanh: ``a' = (1 - a^2) z'``; sin: ``a' = cos(z) z'``,
``cos(z)' = -sin(z) z'``), see csrc/mlp_taylor.h. A 4th derivative costs one pass with 5 channels instead of four
nested autograd graphs.

``torch.ops.fastpinn.mlp_taylor_forward`` (C++ CPU kernel, csrc/mlp_taylor*.{h,cpp}) computes what
:func:`taylor_reference` computes -- the pure-PyTorch twin and the test oracle, differentiable by autograd (any
order). The op's autograd formula (:mod:`fastpinn.ops.mlp_taylor_autograd`) calls
``torch.ops.fastpinn.mlp_taylor_backward``, which recomputes each tile's forward and reverses the recursions; it
is differentiable once (a double backward raises). Layout and input scaling are those of
:mod:`fastpinn.ops.mlp_jet`: flat ``theta`` rows ``[W0, b0, W1, b1, ...]`` (row-major ``W[out, in]``), the
network sees ``x * scale + shift``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .activations import TAYLOR_ACTIVATIONS, check_activation

__all__ = ["mlp_taylor", "taylor_reference", "taylor_available", "TAYLOR_ACTIVATIONS", "MAX_ORDER"]

#: Highest order the compiled op takes (csrc/mlp_taylor.h kMaxOrder).
MAX_ORDER = 8


def _check_args(sizes: Sequence[int], dirs: Sequence[int], order: int, activation: str) -> None:
    check_activation("mlp_taylor", activation)
    if not isinstance(order, int) or isinstance(order, bool) or not 0 <= order <= MAX_ORDER:
        raise ValueError(f"order must be an integer in [0, {MAX_ORDER}], got {order!r}")
    if len(set(dirs)) != len(dirs) or any(not 0 <= c < sizes[0] for c in dirs):
        raise ValueError(f"dirs must be distinct coordinate indices in [0, {sizes[0]}), got {list(dirs)}")


def taylor_available() -> bool:
    """Whether the compiled extension is loaded and defines the op (a library built before it existed lacks it)."""
    from . import _ext

    return _ext.available() and hasattr(torch.ops.fastpinn, "mlp_taylor_forward")


def mlp_taylor(theta: Tensor, x: Tensor, scale: Tensor, shift: Tensor, sizes: Sequence[int], dirs: Sequence[int],
               order: int, activation: str = "tanh") -> Tensor:
    """Pure derivatives of an MLP along ``dirs`` up to ``order``, by the compiled op.

    Args:
        theta: ``[S, P]`` parameters (layout of :class:`~fastpinn.network.MLP`).
        x: ``[N, d]`` points shared by the members, or ``[S, N, d]``.
        scale, shift: ``[d]``; the network sees ``x * scale + shift``.
        sizes: ``[d, hidden..., out]`` layer widths. dirs: distinct coordinate indices. order: ``0..MAX_ORDER``.
        activation: of the hidden layers, ``"tanh"`` or ``"sin"``.

    Returns:
        ``fields[S, 1 + len(dirs) * order, N, out]``: channel 0 the value, channel ``1 + i * order + k - 1`` the
        ``k``-th derivative along ``dirs[i]``.

    Raises:
        ValueError: bad arguments. NotImplementedError: the tensors are not on the CPU, or the compiled extension
        (which defines the op) is not built -- so that ``fastest_method`` skips the method; the message says why.
    """
    _check_args(sizes, dirs, order, activation)
    if theta.device.type != "cpu":
        raise NotImplementedError(f"fastpinn::mlp_taylor_forward has a CPU (C++) kernel only, got {theta.device}")
    from . import _ext

    try:
        _ext.load()
    except RuntimeError as exc:
        raise NotImplementedError(f"derivative method 'taylor' needs the compiled extension: {exc}") from exc
    if not hasattr(torch.ops.fastpinn, "mlp_taylor_forward"):
        raise NotImplementedError("derivative method 'taylor' needs a compiled extension built with the "
                                  "mlp_taylor op (rebuild: python setup.py build_ext --inplace)")
    return torch.ops.fastpinn.mlp_taylor_forward(theta, x, scale, shift, list(sizes), list(dirs), int(order),
                                                 str(activation))


def _activation_series(z: Tensor, order: int, n_dirs: int, activation: str) -> Tensor:
    """Taylor coefficients of ``phi(z)`` from those of ``z`` ``[.., C, N, w]`` (channel layout of
    :func:`mlp_taylor`), by the recursion of ``phi``'s ODE."""
    z0 = z[..., 0, :, :]
    if activation == "tanh":
        a0 = torch.tanh(z0)
        x0 = 1 - a0 * a0  # s = 1 - a^2
    else:
        a0, x0 = torch.sin(z0), torch.cos(z0)
    out = [a0]
    for d in range(n_dirs):
        zs = [z0] + [z[..., 1 + d * order + k - 1, :, :] for k in range(1, order + 1)]
        a, x = [a0], [x0]
        for k in range(1, order + 1):
            a.append(sum((j / k) * zs[j] * x[k - j] for j in range(1, k + 1)))
            if k == order:
                break
            if activation == "tanh":
                x.append(-sum(a[j] * a[k - j] for j in range(k + 1)))
            else:
                x.append(-sum((j / k) * zs[j] * a[k - j] for j in range(1, k + 1)))
        out.extend(a[1:])
    return torch.stack(out, dim=-3)


def taylor_reference(theta: Tensor, x: Tensor, scale: Tensor, shift: Tensor, sizes: Sequence[int],
                     dirs: Sequence[int], order: int, activation: str = "tanh") -> Tensor:
    """:func:`mlp_taylor` in pure PyTorch (the test oracle; differentiable by autograd to any order). Same
    arguments and result."""
    _check_args(sizes, dirs, order, activation)
    S, L, d = theta.shape[0], len(sizes) - 1, sizes[0]
    n_dirs = len(dirs)
    offset, layers = 0, []
    for k in range(L):
        n_out, n_in = sizes[k + 1], sizes[k]
        w = theta[:, offset:offset + n_out * n_in].reshape(S, n_out, n_in)
        offset += n_out * n_in
        layers.append((w, theta[:, offset:offset + n_out]))
        offset += n_out
    xs = (x * scale + shift).expand(S, *x.shape[-2:])  # [S, N, d]
    w0, b0 = layers[0]
    value = torch.baddbmm(b0.unsqueeze(1), xs, w0.transpose(1, 2))  # [S, N, w]
    channels = [value]
    for c in dirs:
        for k in range(1, order + 1):
            coef = w0[:, :, c] * scale[c] if k == 1 else torch.zeros_like(w0[:, :, c])
            channels.append(coef.unsqueeze(1).expand_as(value))
    z = torch.stack(channels, dim=1)  # [S, C, N, w]
    for w, b in layers[1:]:
        a = _activation_series(z, order, n_dirs, activation)
        z = torch.matmul(a, w.transpose(1, 2).unsqueeze(1))
        z = torch.cat([z[:, :1] + b[:, None, None, :], z[:, 1:]], dim=1)
    factorials = [1.0] + [float(torch.arange(1, k + 1).prod()) for _ in dirs for k in range(1, order + 1)]
    return z * torch.tensor(factorials, dtype=z.dtype, device=z.device)[:, None, None]
