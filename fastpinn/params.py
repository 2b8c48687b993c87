"""Where each trainable tensor of a model sits in one row of the per-term gradient matrix ``G[S, K, P]``.

The weighted backward fills row ``(s, k)`` of ``G`` with the gradient of term ``k`` for member ``s``. It
does so without copying: every trainable tensor (a *leaf* of autograd) gets its ``.grad`` pointed at its
own slice of that row before the term's backward, so autograd accumulates straight into ``G``.

:class:`ParameterRows` holds that layout for any model. :func:`flatten_parameters` additionally moves a
module's parameters into one flat tensor ``theta[P]`` (the module's parameters become views of it), so
an optimizer can step all of them in one fused kernel and a checkpoint holds one tensor.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from .network import MLP

__all__ = ["ParameterRows", "flatten_parameters", "trainable_tensors", "training_parameters", "coefficient_parameter"]


def trainable_tensors(parameters: Union[nn.Module, Iterable[Tensor]]) -> list[Tensor]:
    """The distinct tensors that require grad, in order (frozen parameters excluded).

    Raises:
        ValueError: if there is none, or one is not a floating-point leaf tensor.
    """
    items = list(parameters.parameters()) if isinstance(parameters, nn.Module) else list(parameters)
    seen: set[int] = set()
    out: list[Tensor] = []
    for i, p in enumerate(items):
        if not isinstance(p, Tensor):
            raise ValueError(f"parameters[{i}] must be a torch.Tensor, got {type(p).__name__}")
        if not p.requires_grad or id(p) in seen:
            continue
        if not p.is_leaf:
            raise ValueError(f"parameters[{i}] (shape {tuple(p.shape)}) is not a leaf tensor: autograd does not "
                             "accumulate gradients into it; pass the module's parameters")
        if not p.is_floating_point():
            raise ValueError(f"parameters[{i}] must be floating point, got {p.dtype}")
        seen.add(id(p))
        out.append(p)
    if not out:
        raise ValueError("no trainable parameters: every tensor given has requires_grad=False")
    dtypes = {p.dtype for p in out}
    devices = {p.device for p in out}
    if len(dtypes) > 1 or len(devices) > 1:
        raise ValueError(f"all trainable parameters must share one dtype and device, got dtypes "
                         f"{sorted(map(str, dtypes))} and devices {sorted(map(str, devices))}")
    return out


class ParameterRows:
    """The layout of one row of ``G``: trainable tensors laid end to end, member by member.

    Args:
        leaves: the tensors autograd accumulates gradients into (requires_grad leaves).
        members: ``S``, the ensemble size. With ``S > 1`` every leaf's first dimension indexes the members
            (``[S, ...]``) and member ``s``'s row holds ``leaf[s]`` of every leaf; with ``S = 1`` leaves
            have any shape.

    Attributes:
        n_params: ``P``, entries of one member's row.
        offsets: start of each leaf's slice in the row.
    """

    def __init__(self, leaves: Sequence[Tensor], members: int = 1) -> None:
        if isinstance(members, bool) or not isinstance(members, int) or members < 1:
            raise ValueError(f"members must be an integer >= 1, got {members!r}")
        self.leaves = list(leaves)
        self.members = members
        sizes = []
        for i, p in enumerate(self.leaves):
            if members > 1:
                if p.dim() < 1 or p.shape[0] != members:
                    raise ValueError(f"with members={members} every trainable tensor needs a leading member dimension "
                                     f"of {members}; tensor {i} has shape {tuple(p.shape)}")
                sizes.append(p[0].numel())
            else:
                sizes.append(p.numel())
        self.sizes = sizes
        self.offsets = [sum(sizes[:i]) for i in range(len(sizes))]
        self.n_params = sum(sizes)
        self.dtype = self.leaves[0].dtype
        self.device = self.leaves[0].device

    def views(self, rows: Tensor) -> list[Tensor]:
        """Leaf-shaped views into ``rows[S, P]`` (a row per member, e.g. ``G[:, k]``), one per leaf."""
        out = []
        for p, off, n in zip(self.leaves, self.offsets, self.sizes):
            out.append(rows[:, off:off + n].view(p.shape))  # a view: fails loudly rather than copy
        return out

    def gather(self, out: Tensor) -> Tensor:
        """Copy the leaves' current values into ``out[S, P]`` (e.g. a snapshot of the parameters)."""
        with torch.no_grad():
            for view, p in zip(self.views(out), self.leaves):
                view.copy_(p)
        return out


def flatten_parameters(module: nn.Module) -> nn.Parameter:
    """Move ``module``'s trainable parameters into one flat tensor and return it as ``theta[P]``.

    Afterwards every trainable parameter of the module is a view of ``theta``'s storage (layout: the
    module's ``parameters()`` order, each flattened row-major), so the module computes exactly as
    before while an optimizer built on ``[theta]`` steps them all in one kernel. Frozen parameters stay
    where they are. Autograd still accumulates into the module's own parameters: ``theta.grad`` is set
    by :class:`fastpinn.WeightedBackward`. Build optimizers after this call (it replaces ``.data``).
    """
    leaves = trainable_tensors(module)
    rows = ParameterRows(leaves)
    theta = nn.Parameter(torch.empty(rows.n_params, dtype=rows.dtype, device=rows.device))
    with torch.no_grad():
        for view, p in zip(rows.views(theta.detach().unsqueeze(0)), leaves):
            view.copy_(p)
            p.data = view
    return theta


def training_parameters(net: nn.Module, ensemble: Optional[int]) -> tuple[Tensor, list[Tensor], Any]:
    """What a Trainer trains of ``net`` (on its device already): ``(theta, leaves, loss_params)``.

    ``theta``: the flat parameters ``[P]`` (``[S, P]`` for an ensemble :class:`~fastpinn.MLP`) the optimizer
    steps; ``leaves``: the tensors each backward accumulates into; ``loss_params``: what the term losses
    take as parameters (``None``: a module computes with its own). ``ensemble``: the problem's.
    """
    if isinstance(net, MLP):
        if net.ensemble != ensemble:
            raise ValueError(f"network ensemble={net.ensemble} does not match problem ensemble={ensemble}")
        # Separate per-layer leaves aliasing theta: each backward accumulates into its slice of G.
        leaves = net.leaves()
        return net.theta, leaves, leaves
    if ensemble is not None:
        raise ValueError(f"an ensemble problem (ensemble={ensemble}) needs a fastpinn.MLP network "
                         f"(one flat theta[S, P]); got {type(net).__name__}: train single-network "
                         "problems with it, one per seed")
    theta = flatten_parameters(net)
    # The module computes with its own parameters (views of the flat theta).
    return theta, trainable_tensors(net), None


def coefficient_parameter(values: Iterable[float], ensemble: Optional[int], dtype: torch.dtype,
                          device: torch.device) -> Optional[nn.Parameter]:
    """A problem's trainable coefficients (inverse problems) as one parameter: ``[C]`` (``[S, C]`` for an
    ensemble of ``S``) in the given order, or ``None`` when there are none."""
    values = [float(v) for v in values]
    if not values:
        return None
    init = torch.tensor(values, dtype=dtype, device=device)
    return nn.Parameter(init if ensemble is None else init.expand(ensemble, -1).contiguous())
