"""Residual-based attention (pointwise weights), Anagnostopoulos, Toscano, Stergiopulos & Karniadakis 2024
(Comput. Methods Appl. Mech. Engrg. 421, 116805), eq. 9-10.

Every point ``i`` of a chosen term keeps a weight updated from the term's residual at each step,

    lam_i <- gamma lam_i + eta |r_i| / max_k |r_k|          (max over the step's points, per member)

and the term's loss becomes ``mean_i (lam_i r_i)^2``. The weights are bounded by ``eta / (1 - gamma)``.
They are kept per point set (``[S, N]`` per term, indexed by the mini-batch's point indices), updated on
the device (no host sync; gated by an optional 0-dim bool ``active``), and checkpointed by
:meth:`ResidualAttention.state_dict`. Unlike the term weights of :class:`fastpinn.Weighter`, these
multiply each point's residual, so the step calls :meth:`ResidualAttention.loss` in place of the term's
mean squared residual (the residual comes from :func:`fastpinn.ntk.term_residuals`).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor

__all__ = ["ResidualAttention"]


class ResidualAttention:
    """Pointwise residual-based attention weights for some terms.

    Args:
        n_points: points of every term of the problem, ``[t.n_points for t in problem.terms]``.
        terms: indices of the weighted terms (default ``(0,)``, the PDE residual).
        gamma: memory, in ``[0, 1)`` (default 0.999).
        eta: learning rate of the weights, ``> 0`` (default 0.01).
        init: initial weight of every point, ``>= 0`` (default 1: the unweighted loss at the start).
    """

    def __init__(self, n_points: Sequence[int], terms: Sequence[int] = (0,), *, gamma: float = 0.999,
                 eta: float = 0.01, init: float = 1.0) -> None:
        n_points = [int(n) for n in n_points]
        if not n_points or any(n < 1 for n in n_points):
            raise ValueError(f"n_points must list the points (>= 1) of every term, got {n_points}")
        terms = tuple(terms)
        if not terms or any(isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < len(n_points)
                            for k in terms) or len(set(terms)) != len(terms):
            raise ValueError(f"terms must be distinct term indices in [0, {len(n_points)}), got {list(terms)}")
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0.0 <= gamma < 1.0:
            raise ValueError(f"gamma must be a number in [0, 1), got {gamma!r}")
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not (math.isfinite(eta) and eta > 0):
            raise ValueError(f"eta must be a finite number > 0, got {eta!r}")
        if isinstance(init, bool) or not isinstance(init, (int, float)) or not (math.isfinite(init) and init >= 0):
            raise ValueError(f"init must be a finite number >= 0, got {init!r}")
        self.n_points, self.terms = n_points, terms
        self.gamma, self.eta, self.init = float(gamma), float(eta), float(init)
        self.lam: dict[int, Tensor] = {}  # term index -> [S, N_k]

    def check_training(self, *, n_points: Sequence[int], world_size: int, closure: bool, compiled: bool,
                       step_mode: str) -> None:
        """``ValueError`` unless a Trainer can train with these weights: the problem's term sizes ``n_points``,
        one process (``world_size``), no closure optimizer, not compiled (``compile=True``) or captured."""
        if world_size > 1:
            raise ValueError("attention (pointwise weights) normalises by the largest residual of a step's points, "
                             "which data parallelism splits over ranks: train it in one process")
        if closure:
            raise ValueError("attention (pointwise weights) follows each step's residuals, which a closure "
                             "optimizer evaluates at several trial points per step: use another optimizer")
        if compiled or step_mode == "cuda_graph":
            raise ValueError("attention (pointwise weights) updates from each step's residuals in Python: "
                             "use compile=False or 'auto' and step_mode='eager' or 'device'")
        if list(self.n_points) != list(n_points):
            raise ValueError(f"attention was built for term sizes {list(self.n_points)}, the problem has "
                             f"{list(n_points)}")

    def reset(self, members: int = 1, dtype: torch.dtype = torch.float32, device=None) -> None:
        self.lam = {k: torch.full((members, self.n_points[k]), self.init, dtype=dtype, device=device)
                    for k in self.terms}

    def _rows(self, k: int, r: Tensor, index: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        """``(lam[S, n], r[S, n, m])`` of term ``k`` for the step's points."""
        if not self.lam:
            raise RuntimeError("call reset(members, dtype, device) first")
        if k not in self.terms:
            raise ValueError(f"term {k} has no pointwise weights (terms {list(self.terms)})")
        lam = self.lam[k]
        S = lam.shape[0]
        n = self.n_points[k] if index is None else index.numel()
        if r.numel() % (S * n) != 0:
            raise ValueError(f"r must have shape [n={n}, ...] or [S={S}, n={n}, ...], got {tuple(r.shape)}")
        return (lam if index is None else lam.index_select(1, index)), r.reshape(S, n, -1)

    def loss(self, k: int, r: Tensor, index: Optional[Tensor] = None) -> Tensor:
        """``mean_i (lam_i r_i)^2`` of term ``k`` (mean over points and residual components), ``[S]``.

        ``r``: the residual ``[n, ...]`` or ``[S, n, ...]`` of the step's points (``index``: their indices,
        ``None`` for all points). The weights are constants (no gradient flows into them)."""
        lam, rr = self._rows(k, r, index)
        return (lam.detach().unsqueeze(-1) * rr).pow(2).reshape(lam.shape[0], -1).mean(1)

    def update(self, k: int, r: Tensor, index: Optional[Tensor] = None, active: Optional[Tensor] = None) -> None:
        """``lam_i <- gamma lam_i + eta |r_i| / max|r|`` for the step's points of term ``k`` (in place;
        ``|r_i|`` the Euclidean norm over residual components). A member whose residuals are not all
        finite, or all zero, keeps its weights."""
        lam_rows, rr = self._rows(k, r.detach(), index)
        a = rr.to(lam_rows.dtype).norm(dim=-1)  # [S, n]
        top = a.amax(1, keepdim=True)
        ok = torch.isfinite(a).all(1, keepdim=True) & (top > 0)
        if active is not None:
            ok = ok & active.to(torch.bool)
        safe = torch.where(top > 0, top, torch.ones_like(top))
        new = torch.where(ok, self.gamma * lam_rows + self.eta * a / safe, lam_rows)
        if index is None:
            self.lam[k].copy_(new)
        else:
            self.lam[k].index_copy_(1, index, new)

    def state_dict(self) -> dict[str, Tensor]:
        return {f"lam.{k}": v for k, v in self.lam.items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        want = {f"lam.{k}" for k in self.terms}
        if set(state) != want:
            raise ValueError(f"state must hold {sorted(want)}, got {sorted(state)}")
        self.lam = {k: state[f"lam.{k}"].clone() for k in self.terms}
