"""One closure optimizer per ensemble member, stepped in lock step over one batched evaluation.

An ensemble trains ``S`` networks as one flat ``theta[S, P]``. An elementwise optimizer (Adam, SGD) keeps the
members independent, but a closure optimizer such as ``torch.optim.LBFGS`` over the whole ``theta`` does not:
its two-loop recursion sums inner products over all members and its line search picks one step length for
all of them, so member ``s`` no longer trains as its own single run would.

:class:`LockstepOptimizer` gives every member its own optimizer (e.g. ``torch.optim.LBFGS``) on its rows
``theta[s]`` (and ``coefficients[s]``). Each member optimizer runs its ``step`` in its own thread; whenever it
calls its closure, the thread waits until every member still inside its step has asked too, and the batched
closure is evaluated once for all of them (a member that has finished its step keeps its parameters; its part
of that evaluation is ignored). So each member runs exactly the algorithm of its optimizer on its own loss,
and a step costs as many batched evaluations as the slowest member's line search needs. The threads only
take turns (one runs at a time), so nothing races on ``theta``.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional, Sequence

import torch

__all__ = ["LockstepOptimizer"]


class LockstepOptimizer(torch.optim.Optimizer):
    """``S`` closure optimizers, member ``s`` on row ``s`` of each parameter block.

    Args:
        blocks: the ensemble's parameter blocks, each ``[S, ...]`` (``theta[S, P]``, then the trainable
            coefficients ``[S, C]`` if any); their ``.grad`` is what the batched closure fills.
        build: makes one member's optimizer from its list of row views (``[theta[s], coefficients[s]]``),
            e.g. ``lambda params: torch.optim.LBFGS(params, line_search_fn="strong_wolfe")``.

    ``step(closure)``: ``closure()`` evaluates all members at the current ``blocks``, fills their ``.grad``
    and returns the per-member losses ``[S]``. Returns the per-member losses of the first evaluation ``[S]``.
    """

    def __init__(self, blocks: Sequence[torch.Tensor], build: Callable[[list[torch.Tensor]], torch.optim.Optimizer]
                 ) -> None:
        blocks = list(blocks)
        if not blocks or any(b.dim() < 1 or b.shape[0] != blocks[0].shape[0] for b in blocks):
            raise ValueError("LockstepOptimizer blocks must share a leading ensemble dimension S, got shapes "
                             f"{[tuple(b.shape) for b in blocks]}")
        super().__init__(blocks, {})
        self.blocks = blocks
        members = blocks[0].shape[0]
        # Row views of detached aliases: leaves the member optimizers may step in place (writes land in blocks).
        self.rows = [[b.detach()[s] for b in blocks] for s in range(members)]
        self.members = [build(rows) for rows in self.rows]

    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        if not callable(closure):
            raise ValueError("LockstepOptimizer.step needs a closure returning the per-member losses [S]")
        members = len(self.members)
        cond = threading.Condition()
        active = set(range(members))  # members still inside their optimizer's step
        waiting: set[int] = set()  # members blocked in their closure
        generation = [0]
        losses: list[Optional[torch.Tensor]] = [None]
        first: list[Optional[torch.Tensor]] = [None]
        failure: list[Optional[BaseException]] = [None]

        def member_closure(s: int) -> Callable[[], torch.Tensor]:
            def ask() -> torch.Tensor:
                with cond:
                    waiting.add(s)
                    seen = generation[0]
                    cond.notify_all()
                    cond.wait_for(lambda: generation[0] != seen or failure[0] is not None)
                    if failure[0] is not None:
                        raise _Aborted()
                    return losses[0][s]  # type: ignore[index]
            return ask

        def run(s: int) -> None:
            try:
                self.members[s].step(member_closure(s))
            except _Aborted:
                pass
            except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
                with cond:
                    failure[0] = failure[0] or error
            finally:
                with cond:
                    active.discard(s)
                    cond.notify_all()

        threads = [threading.Thread(target=run, args=(s,), daemon=True) for s in range(members)]
        for thread in threads:
            thread.start()
        try:
            while True:
                with cond:
                    cond.wait_for(lambda: failure[0] is not None or not active or waiting >= active)
                    if failure[0] is not None or not active:
                        break
                    asking = sorted(waiting)
                try:  # every active member waits: nothing else touches the blocks now
                    value = closure()
                    if value.shape != (members,):
                        raise ValueError(f"LockstepOptimizer closure must return the per-member losses [{members}], "
                                         f"got shape {tuple(value.shape)}")
                    value = value.detach()
                    for s in asking:
                        for row, block in zip(self.rows[s], self.blocks):
                            row.grad = None if block.grad is None else block.grad[s].detach().clone()
                except BaseException as error:  # noqa: BLE001
                    with cond:
                        failure[0] = error
                        cond.notify_all()
                    break
                with cond:
                    if first[0] is None:
                        first[0] = value.clone()
                    losses[0] = value
                    waiting.clear()
                    generation[0] += 1
                    cond.notify_all()
        finally:
            for thread in threads:
                thread.join()
        if failure[0] is not None:
            raise failure[0]
        if first[0] is None:
            raise RuntimeError("LockstepOptimizer: no member optimizer called its closure")
        return first[0]

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        return {"members": [m.state_dict() for m in self.members]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        stored = state_dict.get("members")
        if not isinstance(stored, list) or len(stored) != len(self.members):
            raise ValueError(f"LockstepOptimizer state has {len(stored) if isinstance(stored, list) else 'no'} "
                             f"member(s), this optimizer has {len(self.members)}")
        for member, state in zip(self.members, stored):
            member.load_state_dict(state)

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        for rows in self.rows:
            for row in rows:
                row.grad = None


class _Aborted(Exception):
    """Raised in a member's thread when another member or the closure failed."""
