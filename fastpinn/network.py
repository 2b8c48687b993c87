"""Multilayer perceptrons whose weights and biases live in one flat parameter tensor.

A single network keeps all of its parameters in ``theta[P]``; an ensemble of ``S`` independently
seeded networks keeps them in ``theta[S, P]``. Every layer's weight ``W[out, in]`` and bias ``b[out]``
are views into that tensor, so the gradient of any loss with respect to the network is one row of
length ``P`` -- exactly the layout the per-term gradient matrix ``G[S, K, P]`` needs.

Layout of one row of ``theta``: for each layer in order, ``W`` (row-major, ``out * in`` entries) then
``b`` (``out`` entries).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .validation import check_choice

__all__ = ["MLP", "INITS", "ACTIVATIONS", "Activation", "HardConstraint", "InputTransform", "OutputTransform",
           "box_bounds"]

#: Weight initialisations: ``"glorot_normal"`` (the default: normal with std ``sqrt(2 / (fan_in + fan_out))``),
#: ``"glorot_uniform"`` (uniform on ``[-a, a]``, ``a = sqrt(6 / (fan_in + fan_out))``: the same variance; Keras'
#: and DeepXDE's usual choice) and ``"truncated_normal"``, what the authors' TensorFlow code draws
#: (``tf.random.truncated_normal(stddev=sqrt(2 / (fan_in + fan_out)))``: that normal, redrawn outside two
#: standard deviations, so its true std is 0.88 of the nominal one). Biases start at zero for each.
INITS = ("glorot_normal", "glorot_uniform", "truncated_normal")

#: A feature map ``x[..., d] -> features[..., F]`` applied to the raw points (no box scaling), pointwise.
InputTransform = Callable[[Tensor], Tensor]
#: A pointwise output map ``(x[..., d], N[..., out]) -> u[..., out_u]`` of the points and the network's output.
OutputTransform = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Activation:
    """A hidden-layer activation, declared once: its value and the closed forms the forward jets need.

    Attributes:
        name: what ``MLP(activation=...)`` and the command line call it.
        value: ``z -> phi(z)`` (built from differentiable torch ops, so ``"func"``/``"autograd"`` reach any order).
        jet: ``z -> (phi(z), phi'(z), phi''(z))``: the first two derivatives in closed form, for the ``"jet"``
            method's rule ``T_a = phi' T``, ``Q_a(i, j) = phi' Q(i, j) + phi'' T_i T_j``.
        factored: optional ``z -> (phi, phi', r, c)`` with ``phi'' = phi' c r`` for a number ``c`` (tanh:
            ``r = phi``, ``c = -2``), ``r`` finite everywhere: the jet then forms ``Q_a = phi' (Q + c r T_i T_j)``
            with ``c`` folded into one ``addcmul``, one full-size product fewer per layer than the general rule
            (measured 15% of a Burgers jet step) and no tensor for ``c r``.
    """

    name: str
    value: Callable[[Tensor], Tensor]
    jet: Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]
    factored: Optional[Callable[[Tensor], tuple[Tensor, Tensor, Tensor, float]]] = None


def _tanh_factored(z: Tensor) -> tuple[Tensor, Tensor, Tensor, float]:
    a = torch.tanh(z)
    return a, 1.0 - a * a, a, -2.0


def _tanh_jet(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    a, s, r, c = _tanh_factored(z)
    return a, s, (c * r) * s


def _sin_jet(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    a = torch.sin(z)
    return a, torch.cos(z), -a


def _silu_jet(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    sig = torch.sigmoid(z)
    ds = sig * (1.0 - sig)  # sigma'
    # (z sigma)' = sigma + z sigma';  (z sigma)'' = 2 sigma' + z sigma'' with sigma'' = sigma' (1 - 2 sigma)
    return z * sig, sig + z * ds, ds * (2.0 + z * (1.0 - 2.0 * sig))


_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _gelu_jet(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    cdf = 0.5 * (1.0 + torch.erf(z * _INV_SQRT2))  # Phi(z)
    pdf = torch.exp(-0.5 * z * z) * _INV_SQRT2PI  # phi(z), phi' = -z phi
    # (z Phi)' = Phi + z phi;  (z Phi)'' = 2 phi - z^2 phi
    return z * cdf, cdf + z * pdf, pdf * (2.0 - z * z)


def _softplus(z: Tensor) -> Tensor:
    # log(1 + e^z) without overflow and without F.softplus's linear cut-off above 20, whose derivative (exactly 1)
    # would differ from the closed form sigma(z) by 2e-9.
    return torch.logaddexp(z, torch.zeros_like(z))


def _softplus_jet(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    sig = torch.sigmoid(z)
    return _softplus(z), sig, sig * (1.0 - sig)


#: Hidden-layer activations by name (the one registry: ``MLP(activation=...)``, the command line).
ACTIVATIONS: dict[str, Activation] = {a.name: a for a in (
    Activation("tanh", torch.tanh, _tanh_jet, _tanh_factored),
    Activation("sin", torch.sin, _sin_jet),
    Activation("silu", F.silu, _silu_jet),
    Activation("gelu", F.gelu, _gelu_jet),  # the exact erf form (approximate="none")
    Activation("softplus", _softplus, _softplus_jet),
)}


class HardConstraint:
    """The output transform ``u = g(x) + d(x) * N(x)``: ``u = g`` wherever ``d = 0``, exactly, for any network.

    ``g``, ``d``: pointwise torch callables ``x[..., dim] -> [..., 1]`` or ``[..., out]`` (e.g.
    ``d = lambda x: x[..., :1] * (1 - x[..., :1])`` vanishes on ``x = 0`` and ``x = 1``). A condition imposed
    this way needs no loss term: leave that term out of the problem (the loss weights then cover what is left).
    """

    def __init__(self, g: Callable[[Tensor], Tensor], d: Callable[[Tensor], Tensor]) -> None:
        if not callable(g) or not callable(d):
            raise ValueError(f"HardConstraint needs callables g(x) and d(x), got {type(g).__name__} and {type(d).__name__}")
        self.g, self.d = g, d

    def __call__(self, x: Tensor, n: Tensor) -> Tensor:
        return self.g(x) + self.d(x) * n

    def __repr__(self) -> str:
        return f"HardConstraint({_callable_name(self.g)}, {_callable_name(self.d)})"


def _callable_name(fn: Callable) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def _as_bounds(value: Union[float, Sequence[float], Tensor], dim: int, name: str) -> Tensor:
    t = torch.as_tensor(value, dtype=torch.float64).flatten()
    if t.numel() == 1:
        t = t.expand(dim).clone()
    if t.numel() != dim:
        raise ValueError(f"{name} must have {dim} entries (one per input coordinate), got {t.numel()}")
    return t


def box_bounds(lower: Union[float, Sequence[float], Tensor], upper: Union[float, Sequence[float], Tensor],
               dim: int) -> tuple[Tensor, Tensor]:
    """The box ``[lower, upper]`` as float64 tensors ``[dim]`` (a number is the same in every coordinate);
    ``ValueError`` naming the field for a wrong length or an empty side."""
    lo = _as_bounds(lower, dim, "lower")
    hi = _as_bounds(upper, dim, "upper")
    if not bool((hi > lo).all()):
        raise ValueError(f"upper must exceed lower in every coordinate, got lower={lo.tolist()} upper={hi.tolist()}")
    return lo, hi


class MLP(nn.Module):
    """Fully connected network (tanh by default) with flat parameters, as used in the DN-PINN paper.

    Args:
        in_dim: number of input coordinates ``d``.
        out_dim: number of outputs.
        depth: number of weight layers (the paper's ``L``; ``depth - 1`` hidden layers). ``depth >= 1``.
        width: neurons per hidden layer.
        lower, upper: the domain box ``[d]``; inputs are min-max scaled to ``[-1, 1]`` with it.
        ensemble: ``None`` for one network (``theta[P]``) or ``S >= 1`` for ``S`` independent networks
            (``theta[S, P]``).
        seed: seed of the initialisation; an int gives member ``s`` the seed ``seed + s``, a sequence
            gives each member its own. Member ``s`` is initialised exactly like a single network with
            that seed, so an ensemble is interchangeable with ``S`` separate runs.
        dtype, device: of ``theta``.
        init: ``"glorot_normal"`` (default), ``"glorot_uniform"`` or ``"truncated_normal"`` (the authors'
            code, see :data:`INITS`).
        activation: of the hidden layers, a name in :data:`ACTIVATIONS` (``"tanh"``, ``"sin"``, ``"silu"``,
            ``"gelu"``, ``"softplus"``); the output layer is linear.
        input_transform: ``fn(x[..., in_dim]) -> features[..., F]``, a pointwise torch callable the first layer
            sees instead of the box-scaled ``x`` (e.g. polar ``(r, cos theta, sin theta)`` or periodic
            ``(cos 2 pi x / L, sin 2 pi x / L)`` features); ``F`` is read by calling it once on the box centre.
            An ``nn.Module`` becomes a submodule (moved and cast with the network, e.g. fixed random features).
        output_transform: ``fn(x[..., in_dim], N[..., out_dim]) -> u[..., out_u]``, pointwise, applied to the
            network's output, e.g. :class:`HardConstraint` ``(g, d)`` for ``u = g(x) + d(x) N(x)``. For an
            ensemble ``x`` arrives as ``[S, N, in_dim]``, like ``N``.

    The transforms must be made of differentiable torch operations that ``torch.func`` can trace (no
    ``.item()``, no in-place changes of their inputs) and index coordinates from the end (``x[..., k]``: the
    ``"func"`` method calls them on one point ``x[d]`` at a time): every derivative method differentiates through them
    exactly (``"jet"`` propagates their jets with forward-mode ``jvp``; ``"fused"`` refuses transformed or non-tanh
    networks; ``"auto"`` picks the cheapest of ``"fused"``/``"jet"``/``"autograd"`` from measured costs for an
    untransformed MLP and ``"autograd"`` for a transformed one, see :func:`fastpinn.derivatives.choose_method`).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        depth: int,
        width: int,
        lower: Union[float, Sequence[float], Tensor] = -1.0,
        upper: Union[float, Sequence[float], Tensor] = 1.0,
        *,
        ensemble: Optional[int] = None,
        seed: Union[int, Sequence[int]] = 0,
        dtype: torch.dtype = torch.float32,
        device: Union[str, torch.device, None] = None,
        init: str = "glorot_normal",
        activation: str = "tanh",
        input_transform: Optional[InputTransform] = None,
        output_transform: Optional[OutputTransform] = None,
    ) -> None:
        super().__init__()
        self.init = check_choice("init", init, INITS)
        #: The hidden layers' activation (:data:`ACTIVATIONS`).
        self.activation: Activation = ACTIVATIONS[check_choice("activation", activation, tuple(ACTIVATIONS))]
        for name, fn in (("input_transform", input_transform), ("output_transform", output_transform)):
            if fn is not None and not callable(fn):
                raise ValueError(f"{name} must be None or a callable, got {type(fn).__name__}")
        self.input_transform = input_transform
        self.output_transform = output_transform
        for name, value, least in (("in_dim", in_dim, 1), ("out_dim", out_dim, 1), ("depth", depth, 1), ("width", width, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
        if ensemble is not None and (not isinstance(ensemble, int) or isinstance(ensemble, bool) or ensemble < 1):
            raise ValueError(f"ensemble must be None or an integer >= 1, got {ensemble!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.in_dim, self.out_dim, self.depth, self.width = in_dim, out_dim, depth, width
        self.ensemble = ensemble
        lo, hi = box_bounds(lower, upper, in_dim)
        #: Inputs of the first layer: ``in_dim``, or the input transform's feature count.
        if isinstance(input_transform, nn.Module):  # a submodule (its buffers move with the network)
            input_transform.to(dtype=dtype, device=device)
        centre = ((lo + hi) / 2).to(dtype=dtype, device=device)
        self.n_features = in_dim if input_transform is None else _feature_count(input_transform, centre)
        if output_transform is not None:
            _check_output_transform(output_transform, lo.to(dtype=dtype, device=device),
                                    hi.to(dtype=dtype, device=device), out_dim)
        n_members = 1 if ensemble is None else ensemble
        if isinstance(seed, int):
            seeds = [seed + s for s in range(n_members)]
        else:
            seeds = [int(s) for s in seed]
            if len(seeds) != n_members:
                raise ValueError(f"seed must be an int or have {n_members} entries (one per member), got {len(seeds)}")
        self.seeds = seeds

        sizes = [self.n_features] + [width] * (depth - 1) + [out_dim]
        self.layer_shapes: list[tuple[int, int]] = list(zip(sizes[1:], sizes[:-1]))  # (out, in)
        #: Per layer ``(weight offset, bias offset, end)`` in a row of ``theta``: layer ``i``'s ``W`` is
        #: ``theta[..., w:b]`` (row-major ``[out, in]``), its ``b`` is ``theta[..., b:end]``.
        self.layer_offsets: list[tuple[int, int, int]] = []
        offset = 0
        for n_out, n_in in self.layer_shapes:
            w_off = offset
            b_off = w_off + n_out * n_in
            offset = b_off + n_out
            self.layer_offsets.append((w_off, b_off, offset))
        self.n_params = offset

        scale = 2.0 / (hi - lo)
        # x_scaled = scale * x + shift maps [lower, upper] onto [-1, 1].
        self.register_buffer("input_scale", scale.to(dtype=dtype, device=device))
        self.register_buffer("input_shift", (-1.0 - scale * lo).to(dtype=dtype, device=device))
        self.register_buffer("lower", lo.to(dtype=dtype, device=device))
        self.register_buffer("upper", hi.to(dtype=dtype, device=device))

        rows = torch.stack([self._init_row(s) for s in seeds])  # float64 on CPU, then cast: same for any dtype
        rows = rows.to(dtype=dtype, device=device)
        self.theta = nn.Parameter(rows[0].clone() if ensemble is None else rows.contiguous())

    def _init_row(self, seed: int) -> Tensor:
        gen = torch.Generator().manual_seed(seed)
        row = torch.zeros(self.n_params, dtype=torch.float64)
        for (n_out, n_in), (w_off, b_off, _) in zip(self.layer_shapes, self.layer_offsets):
            std = math.sqrt(2.0 / (n_in + n_out))
            w = row[w_off:b_off]
            if self.init == "glorot_uniform":
                bound = math.sqrt(6.0 / (n_in + n_out))  # U(-a, a) has variance a^2 / 3 = 2 / (fan_in + fan_out)
                w.copy_((torch.rand(n_out * n_in, generator=gen, dtype=torch.float64) * 2.0 - 1.0) * bound)
            elif self.init == "truncated_normal":
                torch.nn.init.trunc_normal_(w, 0.0, std, -2.0 * std, 2.0 * std, generator=gen)
            else:
                w.copy_(torch.randn(n_out * n_in, generator=gen, dtype=torch.float64) * std)
        return row

    def layers(self, theta: Union[Tensor, Sequence[Tensor], None] = None) -> list[tuple[Tensor, Tensor]]:
        """Per-layer ``(W, b)`` of ``theta``.

        ``theta``: the flat ``[P]`` / ``[S, P]`` tensor (its slices are returned as views), or the per-layer
        tensors ``[W0, b0, W1, b1, ...]`` themselves (e.g. :meth:`leaves`). Shapes: ``W[..., out, in]`` and
        ``b[..., out]`` with the leading ``...`` empty for one network and ``S`` for an ensemble.
        """
        theta = self.theta if theta is None else theta
        if not isinstance(theta, Tensor):
            parts = list(theta)
            if len(parts) != 2 * self.depth:
                raise ValueError(f"per-layer parameters must hold {2 * self.depth} tensors [W0, b0, W1, b1, ...], "
                                 f"got {len(parts)}")
            return [(parts[2 * i], parts[2 * i + 1]) for i in range(self.depth)]
        lead = theta.shape[:-1]
        out = []
        for (n_out, n_in), (w_off, b_off, end) in zip(self.layer_shapes, self.layer_offsets):
            out.append((theta[..., w_off:b_off].reshape(*lead, n_out, n_in), theta[..., b_off:end]))
        return out

    def leaves(self) -> list[Tensor]:
        """``[W0, b0, W1, b1, ...]`` as separate autograd leaves that share ``theta``'s storage.

        Training through them (``derivatives(..., theta=net.leaves())``) lets autograd accumulate each
        layer's gradient straight into its slice of a gradient row, instead of scattering per-layer
        gradients back into a full-length row for every weight and bias (``slice_backward``). They see
        every in-place change of ``theta`` (optimizer steps, ``load_state_dict``); ``theta.grad`` is then
        set by whoever owns the backward (:class:`fastpinn.WeightedBackward`). Rebuilt if ``theta`` was
        given new storage (``.to()``).
        """
        key = (self.theta.data_ptr(), self.theta.dtype, self.theta.device, tuple(self.theta.shape))
        cached = self.__dict__.get("_leaves")
        if cached is None or cached[0] != key:
            flat = self.theta.detach()
            leaves = [t.requires_grad_(True) for pair in self.layers(flat) for t in pair]
            self.__dict__["_leaves"] = (key, leaves)
        return self.__dict__["_leaves"][1]

    def forward_with(self, theta: Union[Tensor, Sequence[Tensor]], x: Tensor) -> Tensor:
        """Evaluate the network with the given parameters (a pure function of ``theta`` and ``x``).

        Shapes: ``theta[P]`` with ``x[..., d]`` -> ``[..., out]``; ``theta[S, P]`` with ``x[N, d]`` (shared
        points) or ``x[S, N, d]`` -> ``[S, N, out]``. ``theta`` may also be the per-layer tensors
        (see :meth:`layers`).
        """
        layers = self.layers(theta)
        ensemble = layers[0][0].dim() == 3
        if ensemble and x.dim() == 2:
            x = x.unsqueeze(0).expand(layers[0][0].shape[0], *x.shape)
        h = self.features(x)
        for i, (w, b) in enumerate(layers):
            if ensemble:
                h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            else:
                h = h @ w.transpose(-1, -2) + b
            if i < len(layers) - 1:
                h = self.activation.value(h)
        return h if self.output_transform is None else self.output_transform(x, h)

    def features(self, x: Tensor) -> Tensor:
        """What the first layer sees: ``input_transform(x)`` ``[..., F]``, else ``x`` scaled to the box ``[..., d]``."""
        if self.input_transform is None:
            return x * self.input_scale + self.input_shift
        return self.input_transform(x)

    @property
    def transformed(self) -> bool:
        """Whether an input or output transform is set."""
        return self.input_transform is not None or self.output_transform is not None

    def forward(self, x: Tensor) -> Tensor:
        """``x[N, d]`` -> ``u[N, out]``; for an ensemble ``x[N, d]`` or ``x[S, N, d]`` -> ``u[S, N, out]``."""
        return self.forward_with(self.theta, x)

    def member_theta(self, s: int) -> Tensor:
        """Parameters ``[P]`` of ensemble member ``s`` (a view)."""
        if self.ensemble is None:
            if s != 0:
                raise ValueError(f"member index must be 0 for a single network, got {s}")
            return self.theta
        if not 0 <= s < self.ensemble:
            raise ValueError(f"member index must be in [0, {self.ensemble}), got {s}")
        return self.theta[s]

    def extra_repr(self) -> str:
        return (
            f"in_dim={self.in_dim}, out_dim={self.out_dim}, depth={self.depth}, width={self.width}, "
            f"n_params={self.n_params}, ensemble={self.ensemble}"
            + ("" if self.init == "glorot_normal" else f", init={self.init!r}")
            + ("" if self.activation.name == "tanh" else f", activation={self.activation.name!r}")
            + ("" if self.input_transform is None else f", input_transform={_callable_name(self.input_transform)}, "
               f"n_features={self.n_features}")
            + ("" if self.output_transform is None else f", output_transform={_callable_name(self.output_transform)}")
        )


def _check_output_transform(fn: OutputTransform, lo: Tensor, hi: Tensor, out_dim: int) -> None:
    """Call ``fn`` on 2 and on 3 points of the box: it must give ``[M, k]``, the same ``k`` both times.

    A ``g(x)`` or ``d(x)`` of :class:`HardConstraint` returning ``[M]`` (``x[..., 0]`` instead of ``x[..., :1]``)
    broadcasts against ``[M, 1]`` to ``[M, M]``: the network would train on a meaningless ``[M, M]`` output.
    """
    shapes = []
    for m in (2, 3):
        frac = torch.linspace(0.25, 0.75, m, dtype=lo.dtype, device=lo.device)[:, None]
        out = fn(lo + frac * (hi - lo), torch.ones(m, out_dim, dtype=lo.dtype, device=lo.device))
        shapes.append(tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__)
    if not all(isinstance(sh, tuple) and len(sh) == 2 and sh[0] == m for sh, m in zip(shapes, (2, 3))) \
            or shapes[0][1] != shapes[1][1]:
        raise ValueError(f"output_transform must map points [M, d] and network outputs [M, {out_dim}] to [M, k]; "
                         f"got {shapes[0]} for M = 2 and {shapes[1]} for M = 3 (a g(x) or d(x) returning [M] "
                         "broadcasts against [M, 1]: write x[..., :1] rather than x[..., 0])")


def _feature_count(fn: InputTransform, centre: Tensor) -> int:
    """``F`` of an input transform, from one call on the box centre ``[1, d]``."""
    out = fn(centre.unsqueeze(0))
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != 1 or out.shape[1] < 1:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"input_transform must map points [M, d] to features [M, F], got {got} for one point")
    return int(out.shape[1])
