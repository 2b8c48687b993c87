"""Loss terms: a residual on one or more fixed point sets, and the constructors of the usual ones.

A :class:`Term`'s loss is the mean of its squared residual; :func:`pde` declares a residual over the
derivatives it reads, :func:`data`, :func:`dirichlet`, :func:`initial`, :func:`neumann`, :func:`robin` and
:func:`periodic` the data and boundary terms. A :class:`~fastpinn.problem.Problem` holds a list of them
(the terms are re-exported from :mod:`fastpinn.problem`, where they used to live).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from .derivatives import Fields, derivatives
from .network import MLP
from .validation import check_number

__all__ = ["Term", "Value", "pde", "data", "dirichlet", "initial", "neumann", "robin", "periodic"]

Value = Union[float, Callable[[Tensor], Tensor], Tensor]
Outputs = Union[int, Sequence[int], None]  # which network outputs a value term constrains (None: all)


@dataclass
class Term:
    """One loss term: ``residual(*fields)`` on ``len(points)`` paired point sets.

    Attributes:
        name: shown in logs and tables (``"pde"``, ``"ic"``, ``"bc"``, ...).
        points: tuple of point sets, each ``[N, d]`` or ``[S, N, d]``, all with the same ``N``
            (several sets pair points, e.g. the two ends of a periodic boundary).
        residual: maps one :class:`Fields` per point set to the residual ``[..., N]`` or ``[..., N, m]``
            (leading ``S`` for an ensemble).
        requests: the derivatives the residual reads, e.g. ``("u", "u_t", "u_x", "u_xx")``.
        batch_size: mini-batch over this term's points (``None``: all points every step).
        targets: optional tensors the residual closes over, moved with the term (``[..., N, ...]``,
            indexed with the points when mini-batching).
        sampler: where the points come from, for resampling (:mod:`fastpinn.resampling`): a
            :mod:`fastpinn.geometry` domain (its interior) or ``fn(n, generator) -> [n, d]``; ``None``: the
            problem's box.
        out_dim: the network outputs a constraint's values are given for (``dirichlet(..., out_dim=)`` and the
            other value terms), checked against the problem's when it is built; ``None``: not a value term.
        outputs: which of the network's outputs a value term constrains (``data(..., output=0)``); ``None``:
            all of them (the first ``out_dim``).
        observed: the term holds observations of the solution (:func:`data` sets it): in an inverse problem
            what identifies the unknowns. The weight watcher reports an adaptive weight that keeps such a term
            far below its start (:class:`~fastpinn.weight_watch.WeightWatch`, ``data_held``).
    """

    name: str
    points: tuple[Tensor, ...]
    residual: Callable[..., Tensor]
    requests: tuple[str, ...] = ("u",)
    batch_size: Optional[int] = None
    targets: Optional[Tensor] = None
    sampler: Any = None
    out_dim: Optional[int] = None
    outputs: Optional[tuple[int, ...]] = None
    observed: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.points, (Tensor, np.ndarray)):
            self.points = (self.points,)
        self.points = tuple(torch.as_tensor(p) if isinstance(p, np.ndarray) else p for p in self.points)
        if not self.points:
            raise ValueError(f"term {self.name!r}: points must hold at least one point set")
        for pts in self.points:
            if not isinstance(pts, Tensor):
                raise ValueError(f"term {self.name!r}: points must be tensors [N, d] or [S, N, d], "
                                 f"got {type(pts).__name__}")
            if pts.dim() not in (2, 3):
                hint = " (one coordinate: use x.reshape(-1, 1) or x[:, None])" if pts.dim() == 1 else ""
                raise ValueError(f"term {self.name!r}: points must have shape [N, d] or [S, N, d], "
                                 f"got {pts.dim()}-D shape {tuple(pts.shape)}{hint}")
            if not (pts.is_floating_point() and bool(torch.isfinite(pts).all())):
                what = "floating-point" if not pts.is_floating_point() else "finite (they hold NaN or Inf)"
                raise ValueError(f"term {self.name!r}: points must be {what}")
        n = self.points[0].shape[-2]
        for pts in self.points:
            if pts.shape[-2] != n or pts.shape != self.points[0].shape:
                raise ValueError(
                    f"term {self.name!r}: every point set must have the same shape [N, d] or [S, N, d], "
                    f"got {[tuple(p.shape) for p in self.points]}")
        if n < 1:
            raise ValueError(f"term {self.name!r}: needs at least one point")
        if self.targets is not None:
            if not isinstance(self.targets, Tensor):
                raise ValueError(f"term {self.name!r}: targets must be a tensor, got {type(self.targets).__name__}")
            if self.targets.is_floating_point() and not bool(torch.isfinite(self.targets).all()):
                raise ValueError(f"term {self.name!r}: targets must be finite (they hold NaN or Inf)")
            # Targets are indexed with the points along dim -2 (mini-batches, resampling): [N] cannot be.
            if self.targets.dim() < 2 or self.targets.shape[-2] != n:
                hint = (" (one value per point: pass targets[:, None] and read tg[..., 0] in the residual)"
                        if self.targets.dim() == 1 and self.targets.shape[0] == n else "")
                raise ValueError(f"term {self.name!r}: targets must have shape [N, k] or [S, N, k] with N = {n} "
                                 f"(the points' N), got shape {tuple(self.targets.shape)}{hint}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise ValueError(f"term {self.name!r}: batch_size must be None or an integer >= 1, got {self.batch_size!r}")
        if not (self.sampler is None or callable(self.sampler) or hasattr(self.sampler, "sample_interior")):
            raise ValueError(f"term {self.name!r}: sampler must be None, a fastpinn.geometry domain or a function "
                             f"(n, generator) -> [n, d], got {type(self.sampler).__name__}")
        if isinstance(self.requests, str):
            self.requests = (self.requests,)  # one request, not its characters
        self.requests = tuple(self.requests)

    @property
    def n_points(self) -> int:
        return self.points[0].shape[-2]

    @property
    def n_batches(self) -> int:
        if self.batch_size is None or self.batch_size >= self.n_points:
            return 1
        return math.ceil(self.n_points / self.batch_size)

    def to(self, device: Union[str, torch.device, None] = None, dtype: Optional[torch.dtype] = None) -> "Term":
        pts = tuple(p.to(device=device, dtype=dtype) for p in self.points)
        tg = None if self.targets is None else self.targets.to(device=device, dtype=dtype)
        return replace(self, points=pts, targets=tg)

    def loss(self, net: Any, coords: Sequence[str], index: Optional[Tensor] = None, *,
             method: str = "auto", theta: Any = None, ensemble: Optional[bool] = None,
             coef: Optional[dict[str, Tensor]] = None) -> Tensor:
        """Mean squared residual: a scalar for one network, ``[S]`` for an ensemble.

        ``net``: a :class:`~fastpinn.MLP` or any pointwise ``nn.Module``; ``theta``: parameters to use
        instead of its own (see :func:`~fastpinn.derivatives.derivatives`). ``index``: optional ``[B]``
        indices of the points of this mini-batch. ``ensemble``: whether the residual has a leading member
        dimension (default: the points' ``[S, N, d]`` form). ``coef``: the problem's trainable
        coefficients, seen by the residual as ``f.coef``.
        """
        r = self.residual_values(net, coords, index, method=method, theta=theta, coef=coef)
        return self.mean_square(r, ensemble)

    def mean_square(self, r: Tensor, ensemble: Optional[bool] = None) -> Tensor:
        """The loss of residual values ``r`` ``[.., N]`` / ``[.., N, m]``: a scalar, ``[S]`` for an ensemble
        (default: the points' ``[S, N, d]`` form)."""
        if ensemble is None:
            ensemble = self.points[0].dim() == 3
        sq = r.pow(2)
        return sq.reshape(sq.shape[0], -1).mean(1) if ensemble else sq.mean()

    def residual_values(self, net: Any, coords: Sequence[str], index: Optional[Tensor] = None, *,
                        method: str = "auto", theta: Any = None, coef: Optional[dict[str, Tensor]] = None) -> Tensor:
        """The residual at this term's points (or the mini-batch ``index``): ``[.., N]`` or ``[.., N, m]``."""
        fields = []
        for pts in self.points:
            x = pts if index is None else pts.index_select(-2, index)
            f = derivatives(net, x, coords=tuple(coords), requests=self.requests, method=method, theta=theta)
            if coef:
                f.coef = coef
            fields.append(f)
        return self.residual_of(fields, index)

    def residual_of(self, fields: Sequence[Fields], index: Optional[Tensor] = None) -> Tensor:
        """The residual from fields already evaluated at this term's point sets (one :class:`Fields` per set,
        at the mini-batch ``index``; they may hold more derivatives than :attr:`requests`, e.g. when terms on
        the same points share one evaluation)."""
        if self.targets is not None:
            tg = self.targets if index is None else self.targets.index_select(-2, index)
            return self.residual(*fields, tg)
        return self.residual(*fields)

    def check_residual(self, coords: Sequence[str], out_dim: int, members: Optional[int],
                       coefficients: Optional[dict[str, float]] = None) -> None:
        """Evaluate the residual once on a few of the term's points with a small random network and
        check its contract: a tensor of shape ``[N]`` or ``[N, m]`` (``[S, N]`` / ``[S, N, m]`` for an
        ensemble of ``S``). Runs when the problem is built, so a wrong residual fails before training.

        Raises:
            ValueError: naming the term, the shape returned and the shape expected.
        """
        if self.outputs is not None and max(self.outputs) >= out_dim:
            raise ValueError(f"term {self.name!r}: output={list(self.outputs)} names an output the problem's network "
                             f"does not have (out_dim={out_dim}: outputs 0..{out_dim - 1})")
        if self.outputs is None and self.out_dim is not None and self.out_dim > 1 and self.out_dim != out_dim:
            # [N, 1] fields minus [N, k] values broadcast to [N, k]: the term would train, fitting the wrong thing
            # (values for one output on a wider network apply to every output, as they always have)
            raise ValueError(f"term {self.name!r}: its values are given for out_dim={self.out_dim} outputs, but the "
                             f"problem's network has out_dim={out_dim}; give the term and the Problem the same out_dim")
        lower = torch.zeros(len(coords))
        device = self.points[0].device
        dtype = self.points[0].dtype if self.points[0].dtype in (torch.float32, torch.float64) else torch.float64
        trial = MLP(len(coords), out_dim, 2, 4, lower - 1.0, lower + 1.0, ensemble=members, seed=0,
                    dtype=dtype, device=device)
        pre = "" if members is None else "S, "
        expected = f"[{pre}N] or [{pre}N, m]"
        coef = None
        if coefficients:
            shape = () if members is None else (members, 1)
            coef = {k: torch.full(shape, float(v), dtype=dtype, device=device) for k, v in coefficients.items()}
        trailing = set()
        # Two trial sizes (points repeated if the term has fewer): a trailing size that follows N (a
        # broadcast to [N, N]) is told apart from m values per point.
        for n in (2, 3):
            index = torch.arange(n, device=device) % self.n_points
            try:
                r = self.residual_values(trial, coords, index, method="autograd", coef=coef)
            except (KeyError, AttributeError, TypeError, IndexError, RuntimeError, ValueError) as exc:
                raise ValueError(f"term {self.name!r}: the residual failed on a trial evaluation "
                                 f"({type(exc).__name__}: {exc})") from exc
            if not isinstance(r, Tensor):
                raise ValueError(f"term {self.name!r}: the residual must return a torch.Tensor of shape {expected}, "
                                 f"got {type(r).__name__}")
            lead = (n,) if members is None else (members, n)
            ok = tuple(r.shape[:len(lead)]) == lead and r.dim() in (len(lead), len(lead) + 1)
            trailing.add(tuple(r.shape[len(lead):]))
            if not ok or len(trailing) > 1:
                raise ValueError(
                    f"term {self.name!r}: the residual returned shape {list(r.shape)} on {n} trial points, expected "
                    f"{expected} = {list(lead)} or {list(lead) + ['m']} (one value, or m values, per point; e.g. "
                    "f['u_xx'][..., 0] - q(x) rather than an [N, 1] field minus an [N] source, which broadcasts)")


def _target_values(name: str, value: Value, pts: Tensor, out_dim: int) -> Tensor:
    """Targets ``[..., N, out_dim]`` of the constraint ``name``, evaluated once on its points ``[..., N, d]``."""
    v = value(pts) if callable(value) else value
    v = torch.as_tensor(v, dtype=pts.dtype, device=pts.device)
    lead = tuple(pts.shape[:-1])
    if v.dim() == 0:
        return v.expand(*lead, out_dim).clone()
    if tuple(v.shape) == lead:
        return v.unsqueeze(-1).expand(*lead, out_dim).clone()
    if tuple(v.shape) == lead + (out_dim,):
        return v.clone()
    hint = (f" (values for {v.shape[-1]} outputs: pass out_dim={v.shape[-1]} to the term and to the Problem)"
            if v.dim() == len(lead) + 1 and tuple(v.shape[:-1]) == lead else "")
    raise ValueError(f"term {name!r}: value must be a number or have shape {list(lead)} or "
                     f"{list(lead + (out_dim,))} (out_dim={out_dim}), got {list(v.shape)}{hint}")


def pde(name: str, points: Tensor, residual: Callable[[Fields], Tensor], requests: Sequence[str],
        batch_size: Optional[int] = None, *, sampler: Any = None) -> Term:
    """A PDE residual term on collocation points ``[N, d]`` (or ``[S, N, d]``); ``sampler``: where resampling
    draws new ones (a :mod:`fastpinn.geometry` domain or ``fn(n, generator)``; default the problem's box)."""
    return Term(name, (points,), residual, (requests,) if isinstance(requests, str) else tuple(requests), batch_size,
                sampler=sampler)


def _chosen_outputs(name: str, output: Outputs, out_dim: int) -> tuple[Optional[tuple[int, ...]], int]:
    """``output`` as a tuple of output indices (``None``: every output) and the out_dim of the term's values."""
    if output is None:
        return None, out_dim
    idx = (output,) if isinstance(output, int) and not isinstance(output, bool) else tuple(output)
    if not idx or any(not isinstance(i, int) or isinstance(i, bool) or i < 0 for i in idx) or len(set(idx)) != len(idx):
        raise ValueError(f"term {name!r}: output must be an output index >= 0 or a list of distinct ones, got {output!r}")
    if out_dim not in (1, len(idx)):
        raise ValueError(f"term {name!r}: output={list(idx)} names {len(idx)} output(s) but out_dim={out_dim}; "
                         "leave out_dim out (it follows from output)")
    return idx, len(idx)


def _pick(field: Tensor, outputs: Optional[tuple[int, ...]]) -> Tensor:
    """The columns ``outputs`` of a field ``[..., N, out]`` (all of them for ``None``)."""
    return field if outputs is None else field[..., list(outputs)]


def _value_term(name: str, points: Tensor, value: Value, derivative: str, out_dim: int,
                output: Outputs = None) -> Term:
    outputs, out_dim = _chosen_outputs(name, output, out_dim)
    targets = _target_values(name, value, points, out_dim)

    def residual(f: Fields, target: Tensor) -> Tensor:
        return _pick(f[derivative], outputs) - target

    return Term(name, (points,), residual, (derivative,), None, targets, out_dim=out_dim, outputs=outputs)


def data(name: str, points: Tensor, values: Value, *, out_dim: int = 1, batch_size: Optional[int] = None,
         output: Outputs = None) -> Term:
    """Observations ``u(points) = values`` (e.g. measurements for an inverse problem): points ``[N, d]``,
    ``values`` ``[N]`` or ``[N, out]`` (or a number / a function of the points, as for :func:`dirichlet`).
    ``output``: the index (or list of indices) of the network outputs observed, e.g. ``output=0`` for ``u``
    of a network ``(u, k)`` whose ``k`` is not observed; default: a one-column value applies to every output."""
    term = _value_term(name, points, values, "u", out_dim, output)
    term.batch_size = batch_size
    term.observed = True
    term.__post_init__()
    return term


def dirichlet(name: str, points: Tensor, value: Value = 0.0, *, out_dim: int = 1, output: Outputs = None) -> Term:
    """``u = value`` on boundary points ``[N, d]``; ``value``: a number, ``[N]``/``[N, out]`` or a
    function of the points ``[N, d] -> [N]`` or ``[N, out]`` (evaluated once); ``output``: only these
    outputs (an index or a list, as for :func:`data`)."""
    return _value_term(name, points, value, "u", out_dim, output)


def initial(name: str, points: Tensor, value: Value, *, out_dim: int = 1, output: Outputs = None) -> Term:
    """``u(t0, x) = value`` on initial-time points ``[N, d]`` (same forms of ``value`` and ``output`` as
    :func:`dirichlet`)."""
    return _value_term(name, points, value, "u", out_dim, output)


def _outward_normals(points: Tensor, normals: Optional[Tensor], domain: Any, what: str) -> Tensor:
    """Unit normals shaped like ``points`` ``[..., N, d]``: given, or the domain's ``boundary_normal``."""
    if (normals is None) == (domain is None):
        raise ValueError(f"{what}: give exactly one of normals= (a tensor [N, d]) or domain= (a geometry domain)")
    if domain is not None:
        flat = points.detach().reshape(-1, points.shape[-1]).to(device="cpu", dtype=torch.float64)
        # a point off the boundary would get the normal of the nearest boundary point, silently: refuse it
        # (the tolerance admits float32 rounding of points drawn on the boundary)
        off = ~domain.on_boundary(flat, 1e-5 * max(1.0, float(getattr(domain, "diameter", 1.0))))
        if bool(off.any()):
            raise ValueError(f"{what}: {int(off.sum())} of {flat.shape[0]} points are not on the boundary of the "
                             f"domain= given (first: {flat[off.nonzero()[0, 0]].tolist()}); the outward normal is "
                             "defined on the boundary only: pass boundary points (domain.sample_boundary) or normals=")
        normals = domain.boundary_normal(flat).reshape(points.shape)
    n = torch.as_tensor(normals).to(device=points.device, dtype=points.dtype)
    if n.shape != points.shape:
        raise ValueError(f"{what}: normals must have the shape of the points {list(points.shape)}, got {list(n.shape)}")
    length = n.norm(dim=-1, keepdim=True)
    if not bool(torch.isfinite(length).all() and (length > 0).all()):
        raise ValueError(f"{what}: normals must be finite and non-zero")
    return n / length


def _normal_term(name: str, points: Tensor, a: float, b: float, value: Value, normals: Optional[Tensor],
                 domain: Any, coords: Optional[Sequence[str]], out_dim: int, what: str, output: Outputs = None) -> Term:
    """``a u + b du/dn = value``, ``du/dn = sum_i n_i du/dx_i`` with the outward unit normal ``n``."""
    d = points.shape[-1]
    if coords is None or isinstance(coords, str) or len(coords) != d:
        raise ValueError(f"{what}: coords must name the {d} coordinates of the points, e.g. ('x', 'y'), got {coords!r}")
    coords = tuple(coords)
    n = _outward_normals(points, normals, domain, what)
    outputs, out_dim = _chosen_outputs(name, output, out_dim)
    targets = torch.cat([n, _target_values(name, value, points, out_dim)], dim=-1)  # one tensor: mini-batched with points

    def residual(f: Fields, target: Tensor) -> Tensor:
        normal, goal = target[..., :d], target[..., d:]
        dudn = sum(normal[..., i:i + 1] * _pick(f[(c,)], outputs) for i, c in enumerate(coords))
        out = b * dudn if a == 0.0 else a * _pick(f["u"], outputs) + b * dudn
        return out - goal

    first = tuple((c,) for c in coords)  # every first derivative, in the names' tuple form
    return Term(name, (points,), residual, (("u",) if a != 0.0 else ()) + first, None, targets, out_dim=out_dim,
                outputs=outputs)


def neumann(name: str, points: Tensor, coord: Optional[str] = None, value: Value = 0.0, *, out_dim: int = 1,
            normals: Optional[Tensor] = None, domain: Any = None, coords: Optional[Sequence[str]] = None,
            output: Outputs = None) -> Term:
    """A Neumann condition on boundary points ``[N, d]``, in one of two forms:

    * ``neumann(name, points, coord, value)``: ``du/d(coord) = value`` (an axis derivative; its sign on a
      lower face is the caller's);
    * ``neumann(name, points, value=v, normals=n or domain=D, coords=("x", "y"))``: ``du/dn = v`` with the
      OUTWARD unit normal ``n`` ``[N, d]`` (given, or ``D.boundary_normal(points)`` of a
      :mod:`fastpinn.geometry` domain), ``du/dn = sum_i n_i du/dx_i``.

    ``output``: only these outputs (an index or a list, as for :func:`data`).
    """
    if coord is not None:
        if not isinstance(coord, str):
            raise ValueError(f"neumann: coord must be a coordinate name such as 'x', got {coord!r} (for the outward "
                             "normal give value= by keyword with normals= or domain=)")
        if normals is not None or domain is not None:
            raise ValueError("neumann: give coord (an axis derivative) or normals=/domain= (the outward normal), not both")
        return _value_term(name, points, value, "u_" + coord, out_dim, output)
    return _normal_term(name, points, 0.0, 1.0, value, normals, domain, coords, out_dim, f"neumann {name!r}", output)


def robin(name: str, points: Tensor, a: float, b: float, value: Value = 0.0, *, normals: Optional[Tensor] = None,
          domain: Any = None, coords: Optional[Sequence[str]] = None, out_dim: int = 1, output: Outputs = None) -> Term:
    """``a u + b du/dn = value`` on boundary points ``[N, d]``, ``n`` the outward unit normal ``[N, d]``
    (``normals=``, or ``domain=`` a :mod:`fastpinn.geometry` domain), ``coords`` the coordinate names;
    ``value`` and ``output`` as for :func:`dirichlet`."""
    a = check_number("robin a", a)
    b = check_number("robin b", b)
    if a == 0.0 and b == 0.0:
        raise ValueError("robin: a and b must not both be 0")
    return _normal_term(name, points, a, b, value, normals, domain, coords, out_dim, f"robin {name!r}", output)


def periodic(name: str, points_low: Tensor, points_high: Tensor, derivative: str = "u") -> Term:
    """``derivative`` equal at paired points of opposite faces (``points_low[i]`` <-> ``points_high[i]``).

    Use one term for the values (``"u"``) and one for each derivative (e.g. ``"u_x"``), as the paper does.
    """

    def residual(lo: Fields, hi: Fields) -> Tensor:
        return lo[derivative] - hi[derivative]

    return Term(name, (points_low, points_high), residual, (derivative,))
