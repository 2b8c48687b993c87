"""Built-in networks beyond the plain MLP: random Fourier features and the modified MLP.

* :class:`FourierFeatureMLP` -- an :class:`~fastpinn.network.MLP` whose input transform is a fixed random
  Fourier embedding ``[cos(2 pi x B), sin(2 pi x B)]`` (Tancik et al. 2020; Wang, Wang & Perdikaris 2021 for
  PINNs). It *is* an MLP, so the ``"jet"`` method applies (the features' jets come from forward-mode ``jvp``);
  ``"fused"`` does not (the compiled kernel has no input transform); ``"auto"`` picks ``"autograd"``, measured
  faster through transforms on the CPU (:func:`fastpinn.derivatives.choose_method`).
* :class:`MultiScaleFourierFeatureMLP` -- several Fourier embeddings (one per ``sigma``) through shared hidden
  layers, outputs concatenated (Wang, Wang & Perdikaris 2021), an ordinary ``nn.Module``.
* :class:`ModifiedMLP` -- the modified MLP of Wang, Teng & Perdikaris (2021), an ordinary ``nn.Module``:
  the ``"func"`` and ``"autograd"`` methods (``"auto"`` picks ``"autograd"``), trained through its own parameters.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
from torch import Tensor, nn

from .network import ACTIVATIONS, INITS, MLP, OutputTransform, box_bounds
from .validation import check_choice, check_int, check_number

__all__ = ["FourierFeatures", "FourierFeatureMLP", "MultiScaleFourierFeatureMLP", "ModifiedMLP", "PlainNetwork", "glorot_linear"]

Bounds = Union[float, Sequence[float], Tensor]


class FourierFeatures(nn.Module):
    """``x[..., d] -> [cos(2 pi x~ B), sin(2 pi x~ B)]`` ``[..., 2 m]`` with a fixed ``B[d, m] ~ N(0, sigma^2)``.

    ``x~`` is ``x`` min-max scaled from the box ``[lower, upper]`` to ``[-1, 1]``, so ``sigma`` means the same
    on any box (frequencies up to about ``sigma`` periods per half box). ``B`` is a buffer, drawn from ``seed``
    in float64 (the same draw for any dtype), never trained.
    """

    def __init__(self, in_dim: int, n_features: int, sigma: Union[float, Sequence[float]], lower: Bounds = -1.0,
                 upper: Bounds = 1.0, *, seed: int = 0) -> None:
        super().__init__()
        check_int("in_dim", in_dim, minimum=1)
        check_int("n_features", n_features, minimum=1)
        sigmas = (sigma,) if isinstance(sigma, (int, float)) else tuple(sigma)
        if not sigmas:
            raise ValueError("sigma must be a number > 0 or a non-empty sequence of them, got ()")
        for s in sigmas:
            check_number("sigma", s, minimum=0.0, low_open=True)
        gen = torch.Generator().manual_seed(int(seed))
        self.sigma = float(sigmas[0]) if len(sigmas) == 1 else tuple(map(float, sigmas))
        self.n_features = n_features
        lo, hi = box_bounds(lower, upper, in_dim)
        scale = 2.0 / (hi - lo)
        # one block of n_features frequencies per scale, drawn in turn from the same generator
        B = torch.cat([torch.randn(in_dim, n_features, generator=gen, dtype=torch.float64) * s for s in sigmas], 1)
        self.register_buffer("B", B)
        self.register_buffer("scale", scale)
        self.register_buffer("shift", -1.0 - scale * lo)

    def forward(self, x: Tensor) -> Tensor:
        angle = (2.0 * math.pi) * ((x * self.scale + self.shift) @ self.B)
        return torch.cat([torch.cos(angle), torch.sin(angle)], dim=-1)

    def extra_repr(self) -> str:
        sigma = f"{self.sigma:g}" if isinstance(self.sigma, float) else str(self.sigma)
        return f"sigma={sigma}, n_features={self.n_features}"


class FourierFeatureMLP(MLP):
    """An :class:`~fastpinn.network.MLP` on random Fourier features (:class:`FourierFeatures`): ``2 n_features``
    inputs to the first layer. ``sigma``: std of the frequencies (per unit of the box scaled to ``[-1, 1]``);
    ``feature_seed``: seed of ``B`` (default: the network's first seed). Other arguments as :class:`MLP`'s
    (``output_transform`` included, for a hard constraint on top)."""

    def __init__(self, in_dim: int, out_dim: int, depth: int, width: int, lower: Bounds = -1.0, upper: Bounds = 1.0,
                 *, sigma: float = 1.0, n_features: int = 64, feature_seed: Optional[int] = None,
                 seed: Union[int, Sequence[int]] = 0, **kwargs) -> None:
        if feature_seed is None:
            feature_seed = seed if isinstance(seed, int) else int(list(seed)[0])
        features = FourierFeatures(in_dim, n_features, sigma, lower, upper, seed=feature_seed)
        super().__init__(in_dim, out_dim, depth, width, lower, upper, seed=seed, input_transform=features, **kwargs)


def glorot_linear(n_in: int, n_out: int, gen: torch.Generator, init: str = "glorot_normal") -> nn.Linear:
    """A float64 ``nn.Linear(n_in, n_out)`` with Glorot weights (``init``: ``"glorot_normal"`` or
    ``"glorot_uniform"``) drawn from ``gen`` and zero biases."""
    layer = nn.Linear(n_in, n_out, dtype=torch.float64)
    with torch.no_grad():
        if init == "glorot_uniform":
            bound = math.sqrt(6.0 / (n_in + n_out))
            layer.weight.copy_((torch.rand(n_out, n_in, generator=gen, dtype=torch.float64) * 2 - 1) * bound)
        else:
            layer.weight.copy_(torch.randn(n_out, n_in, generator=gen, dtype=torch.float64)
                               * math.sqrt(2.0 / (n_in + n_out)))
        layer.bias.zero_()
    return layer


class PlainNetwork(nn.Module):
    """An ordinary ``nn.Module`` network (no ensemble, no jet path) that reports its size like :class:`MLP`."""

    @property
    def n_params(self) -> int:
        """Number of trained parameters (as :attr:`MLP.n_params`; the run records read it)."""
        return sum(p.numel() for p in self.parameters())


class MultiScaleFourierFeatureMLP(PlainNetwork):
    """The multi-scale Fourier feature network of Wang, Wang & Perdikaris (2021, "On the eigenvector bias of
    Fourier feature networks"): one :class:`FourierFeatures` embedding per entry of ``sigmas`` (``n_features``
    each; the ``i``-th drawn from ``feature_seed + i``), the same hidden layers applied to each embedding, their
    outputs concatenated and mapped to ``u`` by one linear layer::

        H_i = trunk(gamma_i(x)),   N = [H_1, ..., H_S] W + b,   u = output_transform(x, N) (default: N)

    ``trunk`` is ``depth - 1`` layers ``phi(h W_k + b_k)`` (``phi``: ``activation``) of ``width``, so ``depth``
    counts the weight layers on the path from ``x`` to ``u`` as :class:`MLP`'s does; ``depth >= 2``.
    ``x[..., in_dim] -> u[..., out_dim]``, pointwise. Weights Glorot, biases zero, drawn in float64 from
    ``seed``. An ordinary ``nn.Module``: the ``"func"`` and ``"autograd"`` methods (``"auto"`` picks
    ``"autograd"``).
    """

    def __init__(self, in_dim: int, out_dim: int, depth: int, width: int, lower: Bounds = -1.0, upper: Bounds = 1.0,
                 *, sigmas: Sequence[float] = (1.0, 10.0), n_features: int = 64, feature_seed: Optional[int] = None,
                 activation: str = "tanh", init: str = "glorot_normal", seed: Union[int, Sequence[int]] = 0,
                 output_transform: Optional[OutputTransform] = None, ensemble: Optional[int] = None,
                 dtype: torch.dtype = torch.float32, device: Union[str, torch.device, None] = None) -> None:
        super().__init__()
        for name, value in (("in_dim", in_dim), ("out_dim", out_dim), ("depth", depth), ("width", width)):
            check_int(name, value, minimum=2 if name == "depth" else 1)
        if ensemble not in (None, 1):  # a stacked problem (several seeds) asks for one network per seed
            raise ValueError(f"ensemble: MultiScaleFourierFeatureMLP trains one network (one seed at a time), "
                             f"got ensemble={ensemble}")
        seed = seed if isinstance(seed, int) else int(list(seed)[0])
        sigmas = tuple(sigmas)
        if not sigmas:
            raise ValueError("sigmas must name at least one feature scale, got ()")
        self.activation = ACTIVATIONS[check_choice("activation", activation, tuple(ACTIVATIONS))]
        self.init = check_choice("init", init, tuple(i for i in INITS if i.startswith("glorot")))
        if output_transform is not None and not callable(output_transform):
            raise ValueError(f"output_transform must be callable, got {type(output_transform).__name__}")
        self.in_dim, self.out_dim, self.depth, self.width = in_dim, out_dim, depth, width
        first_seed = int(seed) if feature_seed is None else int(feature_seed)
        self.embeddings = nn.ModuleList([FourierFeatures(in_dim, n_features, sigma, lower, upper, seed=first_seed + i)
                                         for i, sigma in enumerate(sigmas)])
        gen = torch.Generator().manual_seed(int(seed))
        sizes = [2 * n_features] + [width] * (depth - 1)
        self.trunk = nn.ModuleList([glorot_linear(a, b, gen, init) for a, b in zip(sizes[:-1], sizes[1:])])
        self.output = glorot_linear(width * len(sigmas), out_dim, gen, init)
        self.output_transform = output_transform
        self.to(dtype=dtype, device=device)

    def forward(self, x: Tensor) -> Tensor:
        phi = self.activation.value
        branches = []
        for embedding in self.embeddings:
            h = embedding(x).to(x.dtype)
            for layer in self.trunk:
                h = phi(layer(h))
            branches.append(h)
        n = self.output(torch.cat(branches, dim=-1))
        return n if self.output_transform is None else self.output_transform(x, n)

    def extra_repr(self) -> str:
        return (f"in_dim={self.in_dim}, out_dim={self.out_dim}, depth={self.depth}, width={self.width}, "
                f"activation={self.activation.name!r}, init={self.init!r}")


class ModifiedMLP(PlainNetwork):
    """The modified MLP of Wang, Teng & Perdikaris (2021, "Understanding and mitigating gradient pathologies in
    physics-informed neural networks"), with ``x`` scaled from the box to ``[-1, 1]``::

        U = phi(x W_u + b_u),  V = phi(x W_v + b_v),  H_1 = x
        Z_k = phi(H_k W_{z,k} + b_{z,k}),  H_{k+1} = (1 - Z_k) * U + Z_k * V,   k = 1 .. depth - 1
        u = H_depth W + b

    (The paper writes ``H_1 = phi(x W_{z,1} + b_{z,1})`` and then reuses ``W_{z,1}`` on ``H_1``, which does not
    fit the shapes; with ``H_1 = x`` every hidden layer is gated, as in the authors' later code.) ``depth``
    counts the weight layers on the path from ``x`` to ``u`` (the ``depth - 1`` gates and the output), like
    :class:`MLP`'s; ``depth >= 2``. ``x[..., in_dim] -> u[..., out_dim]``, pointwise. Weights Glorot (``init``:
    ``"glorot_normal"`` or ``"glorot_uniform"``), biases zero, drawn in float64 from ``seed``.
    """

    def __init__(self, in_dim: int, out_dim: int, depth: int, width: int, lower: Bounds = -1.0, upper: Bounds = 1.0,
                 *, activation: str = "tanh", init: str = "glorot_normal", seed: int = 0,
                 dtype: torch.dtype = torch.float32, device: Union[str, torch.device, None] = None) -> None:
        super().__init__()
        for name, value in (("in_dim", in_dim), ("out_dim", out_dim), ("depth", depth), ("width", width)):
            check_int(name, value, minimum=2 if name == "depth" else 1)
        self.activation = ACTIVATIONS[check_choice("activation", activation, tuple(ACTIVATIONS))]
        self.init = check_choice("init", init, tuple(i for i in INITS if i.startswith("glorot")))
        self.in_dim, self.out_dim, self.depth, self.width = in_dim, out_dim, depth, width
        gen = torch.Generator().manual_seed(int(seed))

        def linear(n_in: int, n_out: int) -> nn.Linear:
            return glorot_linear(n_in, n_out, gen, init)

        self.encoder_u = linear(in_dim, width)
        self.encoder_v = linear(in_dim, width)
        self.gates = nn.ModuleList([linear(in_dim, width)] + [linear(width, width) for _ in range(depth - 2)])
        self.output = linear(width, out_dim)
        lo, hi = box_bounds(lower, upper, in_dim)
        scale = 2.0 / (hi - lo)
        self.register_buffer("input_scale", scale)
        self.register_buffer("input_shift", -1.0 - scale * lo)
        self.to(dtype=dtype, device=device)

    def forward(self, x: Tensor) -> Tensor:
        phi = self.activation.value
        x = x * self.input_scale + self.input_shift
        u, v = phi(self.encoder_u(x)), phi(self.encoder_v(x))
        h = x
        for gate in self.gates:
            z = phi(gate(h))
            h = (1.0 - z) * u + z * v
        return self.output(h)

    def extra_repr(self) -> str:
        return (f"in_dim={self.in_dim}, out_dim={self.out_dim}, depth={self.depth}, width={self.width}, "
                f"activation={self.activation.name!r}, init={self.init!r}")
