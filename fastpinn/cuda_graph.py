"""A training step captured in a CUDA graph, and the snapshot that makes capturing leave no trace.

Capture follows PyTorch's recipe: a few eager warm-up steps on a side stream (they allocate the optimizer
state and fix cuBLAS/Triton workspaces), then one captured step. Those steps train, so every piece of
state the step mutates is snapshotted first and written back in place afterwards (:class:`StateSnapshot`).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch
from torch import Tensor

__all__ = ["fresh_optimizer_state", "StateSnapshot", "CapturedStep", "batch_key"]

Indices = Sequence[Optional[Tensor]]


def batch_key(indices: Indices) -> tuple:
    """Mini-batch sizes of one step (``None``: the term's full point set): one compiled/captured graph each."""
    return tuple(None if i is None else i.numel() for i in indices)


class _StopAfterInit(Exception):
    """Raised from inside a twin optimizer's lazy state initialisation to stop before any update."""


def fresh_optimizer_state(optimizer: torch.optim.Optimizer) -> dict[int, dict[str, Any]]:
    """The state a fresh optimizer of ``optimizer``'s type and hyper-parameters creates for each of its
    parameters on their first step, keyed by ``id(param)`` (e.g. Adam's zero moments and step 0,
    NAdam's ``mu_product`` 1, ASGD's ``eta`` = lr).

    A twin optimizer over detached copies runs its own lazy initialisation (``_init_group``, which every
    built-in ``torch.optim`` optimizer has) and is stopped right after it, so no update is applied.

    Raises:
        ValueError: for an optimizer without ``_init_group`` (its fresh state cannot be known).
    """
    if not hasattr(type(optimizer), "_init_group"):
        raise ValueError(f"cannot tell what a fresh {type(optimizer).__name__} holds (it has no _init_group); "
                         "run one training step before capturing a CUDA graph, or use torch.optim's optimizers")
    fresh: dict[int, dict[str, Any]] = {}
    # One twin per parameter group: step() initialises and then updates group by group, so stopping after
    # the first initialisation of a many-group twin would leave the later groups without state.
    for g in optimizer.param_groups:
        twins: dict[int, Tensor] = {}
        for p in g["params"]:
            twin = p.detach().clone().requires_grad_(True)
            twin.grad = torch.zeros_like(twin)
            twins[id(p)] = twin
        hyper = {k: v for k, v in g.items() if k != "params"}
        twin_opt = type(optimizer)([{**hyper, "params": list(twins.values())}], **optimizer.defaults)
        original = twin_opt._init_group

        def init_then_stop(*args: Any, original: Any = original, **kwargs: Any) -> Any:
            original(*args, **kwargs)
            raise _StopAfterInit

        twin_opt._init_group = init_then_stop  # type: ignore[method-assign]
        try:
            twin_opt.step()
        except _StopAfterInit:
            pass
        fresh.update({pid: dict(twin_opt.state.get(twin, {})) for pid, twin in twins.items()})
    return fresh


class StateSnapshot:
    """Copies of training-state tensors (parameters, weights, counters) and of an optimizer's state;
    :meth:`restore` writes them back in place (a captured graph holds these addresses). Optimizer state
    created after the snapshot is set to what a fresh optimizer holds (:func:`fresh_optimizer_state`)."""

    def __init__(self, tensors: Sequence[Tensor], optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        with torch.no_grad():
            self.tensors = [(x, x.detach().clone()) for x in tensors]
            self.optimizer_state = {id(p): {k: (v.detach().clone() if isinstance(v, Tensor) else v)
                                            for k, v in st.items()} for p, st in optimizer.state.items()}

    def restore(self) -> None:
        opt = self.optimizer
        fresh: Optional[dict[int, dict[str, Any]]] = None
        with torch.no_grad():
            for x, saved in self.tensors:
                x.copy_(saved)
            for p, st in opt.state.items():
                before = self.optimizer_state.get(id(p), {})
                for key, value in list(st.items()):
                    if key in before:
                        old = before[key]
                    else:
                        if fresh is None:
                            fresh = fresh_optimizer_state(opt)
                        old = fresh[id(p)][key]
                    if isinstance(value, Tensor):
                        value.copy_(old)  # in place: the captured graph holds this address
                    else:
                        st[key] = old
        devices = {x.device for x, _ in self.tensors if x.device.type == "cuda"}
        for device in devices:
            torch.cuda.synchronize(device)


class CapturedStep:
    """``step(indices)`` (a step whose every tensor keeps its address across calls, e.g. the trainer's
    device-gate step) for one mini-batch shape, captured in a CUDA graph.

    ``state_tensors`` and ``optimizer``: every piece of state the step mutates, asked of the objects that
    own it; they are snapshotted before the warm-up steps and restored after the capture. Replays read the
    batch indices from fixed buffers that :meth:`replay` fills.
    """

    WARMUP_STEPS = 3

    def __init__(self, step: Callable[[list[Optional[Tensor]]], Tensor], indices: Indices,
                 state_tensors: Sequence[Tensor], optimizer: torch.optim.Optimizer,
                 device: torch.device) -> None:
        self.indices = [None if i is None else i.clone() for i in indices]
        saved = StateSnapshot(state_tensors, optimizer)
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(self.WARMUP_STEPS):
                step(self.indices)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.losses = step(self.indices)
        saved.restore()
        torch.cuda.synchronize(device)

    def replay(self, indices: Indices) -> Tensor:
        """Run the captured step on these batch indices; returns the term losses ``[S, K]`` (overwritten
        by the next replay)."""
        for buf, idx in zip(self.indices, indices):
            if buf is not None:
                buf.copy_(idx)
        self.graph.replay()
        return self.losses
