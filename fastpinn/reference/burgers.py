"""Exact solution of the viscous Burgers benchmark by the Cole–Hopf transform.

Problem (DN-PINN / Raissi et al. benchmark)::

    u_t + u u_x - nu u_xx = 0,   x in [-1, 1], t in [0, 1],   nu = 0.01 / pi,
    u(0, x) = -sin(pi x),        u(t, -1) = u(t, 1) = 0.

With ``eta = sqrt(4 nu t) z`` the Cole–Hopf solution reads (Basdevant et al. 1986)::

    u(t, x) = - ∫ sin(pi (x - eta)) F(x - eta) exp(-z^2) dz / ∫ F(x - eta) exp(-z^2) dz,
    F(s)    = exp(-cos(pi s) / (2 pi nu)).

``1 / (2 pi nu)`` is 50 for the paper's viscosity, so ``F`` spans ``e^{±50}``: both integrals are
evaluated as weighted averages with the largest exponent subtracted per point (log-sum-exp), which
keeps every term in ``[0, 1]`` and makes the quotient exact to round-off.

Two independent quadratures of the same integrals are offered: Gauss–Hermite (weight ``e^{-z^2}``
folded into the rule) and the trapezoid rule on a truncated uniform ``z`` grid (weight evaluated
explicitly). Both converge geometrically because the integrands are entire; they agree to ~1e-15
on the paper's grid.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.polynomial.hermite import hermgauss
from numpy.typing import ArrayLike, NDArray

from .cache import cached, check_int, tensor_grid

__all__ = ["BURGERS_NU", "burgers_solution", "burgers_reference"]

#: The paper's viscosity ``0.01 / pi``.
BURGERS_NU: float = 0.01 / math.pi

_METHODS = ("hermite", "trapezoid")

# Largest Gauss–Hermite rule numpy's ``hermgauss`` builds reliably: checked finite weights with
# exact low moments up to n = 370; at n = 380 its weight normalisation overflows and returns NaN.
_HERMGAUSS_MAX = 360

# Points x nodes per chunk: bounds the temporaries (a handful of float64 arrays of this size,
# ~16 MB each) whatever the number of evaluation points.
_CHUNK_ELEMS = 1 << 21


def _bandwidth(t_max: float) -> float:
    """Angular frequency in ``z`` beyond which the weighted integrand's spectrum is below ~e^-45.

    ``F(x - c z)`` with ``c = sqrt(4 nu t)`` is ``exp(-A cos(pi x - pi c z))`` with ``A = 1/(2 pi nu)``;
    its Fourier content sits at multiples ``m pi c`` with weights ``I_m(A)/I_0(A) ~ exp(-m^2/(2A))``,
    negligible past ``m = sqrt(90 A)``. ``pi c sqrt(90 A) = sqrt(90 * 2 pi t)`` does not depend on
    ``nu``. The Gaussian ``e^{-z^2}`` adds ``2 sqrt(45)`` (its transform is ``e^{-w^2/4}``).
    """
    return math.sqrt(90.0 * 2.0 * math.pi * t_max) + 2.0 * math.sqrt(45.0)


def _hermite_nodes(nu: float, t_max: float) -> int:
    """Number of Gauss–Hermite nodes for ``t <= t_max``.

    Measured (nu = 0.01/pi, t <= 1, all x, worst point next to the shock at t = 1): 80 nodes give
    1e-13 agreement with a converged trapezoid rule, 60 give 1e-9, 40 give 3e-5. Over nu*pi in
    [0.0025, 0.1] and t_max in {1, 4} the 1e-13 threshold follows ``max(W^2/16, pi A t/4)`` within
    a factor ~1.4 (W from ``_bandwidth``: frequency resolution; ``pi A t / 4``: the squared distance
    to the Gaussian-shifted peak of the integrand, which the nodes' span ``sqrt(2n)`` must cover).
    Twice that plus 20 leaves a safety factor ~2: 192 nodes for the paper's problem.
    """
    A = 1.0 / (2.0 * math.pi * nu)
    need = max(_bandwidth(t_max) ** 2 / 16.0, math.pi * A * t_max / 4.0)
    return int(math.ceil(2.0 * need)) + 20


def _trapezoid_grid(nu: float, t_max: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Uniform ``z`` nodes and log-weights (``log h - z^2``) of the truncated trapezoid rule.

    Truncation: the exponent ``g(z) = -z^2 - A cos(.)`` obeys ``g(z) <= A - z^2`` and
    ``max g >= g(0) >= -A``, so beyond ``L = sqrt(2A + 60)`` every term is below ``e^-60`` of the
    largest one (measured at nu = 0.01/pi: L = 10.5 already gives 2e-14; we use 12.6).
    Step: the trapezoid rule on an analytic integrand of bandwidth ``W`` is exact up to aliasing
    at ``2 pi / h``; measured at t <= 1 it reaches 1e-13 for h <= 0.27 while ``2 pi / W = 0.17``.
    We take ``h = 2 pi / (1.5 W)`` (0.11, 227 nodes for the paper's problem), a margin of ~2.4.
    """
    A = 1.0 / (2.0 * math.pi * nu)
    L = math.sqrt(2.0 * A + 60.0)
    h = 2.0 * math.pi / (1.5 * _bandwidth(t_max))
    n_half = int(math.ceil(L / h))
    z = h * np.arange(-n_half, n_half + 1, dtype=np.float64)
    return z, math.log(h) - z * z


def _rule(nu: float, t_max: float, method: str, n_nodes: int | None) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Nodes ``z`` and log-weights for ``method``; the weight ``e^{-z^2}`` is included."""
    if method == "hermite":
        n = _hermite_nodes(nu, t_max) if n_nodes is None else n_nodes
        if n > _HERMGAUSS_MAX:
            raise ValueError(
                f"method='hermite' would need {n} Gauss-Hermite nodes for nu={nu!r}, t_max={t_max!r}, "
                f"but numpy's hermgauss is reliable only up to {_HERMGAUSS_MAX}; use method='trapezoid'"
            )
        z, w = hermgauss(n)
        # Guard against outer weights underflowing to 0 (log(0)): such nodes carry e^{-z^2} < e^{-700}
        # and lie far outside the integrand's bulk, which _hermite_nodes keeps within the rule's span.
        keep = w > 0.0
        return z[keep], np.log(w[keep])
    if n_nodes is not None:
        # A user-chosen count for the trapezoid rule sets the step over the same truncated range.
        A = 1.0 / (2.0 * math.pi * nu)
        L = math.sqrt(2.0 * A + 60.0)
        z = np.linspace(-L, L, n_nodes)
        h = z[1] - z[0]
        return z, math.log(h) - z * z
    return _trapezoid_grid(nu, t_max)


def _moments(
    t: NDArray[np.float64],
    x: NDArray[np.float64],
    nu: float,
    z: NDArray[np.float64],
    logw: NDArray[np.float64],
    with_slope: bool,
) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
    """Cole–Hopf averages for flat ``t``, ``x`` (same length P, t > 0), chunked over points.

    Returns ``u = -<sin(pi s)>`` and, if ``with_slope``, ``u_x = -pi <cos(pi s)> - Var(sin(pi s)) / (2 nu)``
    (differentiate ``u = -2 nu phi_x / phi`` under the integral), where ``<.>`` is the average with
    weights ``w(z) F(x - c z)``.
    """
    A = 1.0 / (2.0 * math.pi * nu)
    P = t.shape[0]
    u = np.empty(P)
    ux = np.empty(P) if with_slope else None
    chunk = max(1, _CHUNK_ELEMS // max(1, z.shape[0]))
    for i0 in range(0, P, chunk):
        sl = slice(i0, min(P, i0 + chunk))
        c = np.sqrt(4.0 * nu * t[sl])[:, None]
        s = x[sl, None] - c * z[None, :]
        ps = np.pi * s
        expo = logw[None, :] - A * np.cos(ps)
        # log-sum-exp: after subtracting the row max every weight is in (0, 1], the largest is 1.
        expo -= expo.max(axis=1, keepdims=True)
        wgt = np.exp(expo)
        wgt /= wgt.sum(axis=1, keepdims=True)
        sin_ps = np.sin(ps)
        mean_sin = np.einsum("pk,pk->p", wgt, sin_ps)
        u[sl] = -mean_sin
        if ux is not None:
            dev = sin_ps - mean_sin[:, None]
            var = np.einsum("pk,pk->p", wgt, dev * dev)
            mean_cos = np.einsum("pk,pk->p", wgt, np.cos(ps))
            ux[sl] = -math.pi * mean_cos - var / (2.0 * nu)
    return u, ux


def _check_nu(nu: float) -> float:
    nu = float(nu)
    if not (math.isfinite(nu) and nu > 0.0):
        raise ValueError(f"nu must be a finite number > 0, got {nu!r}")
    return nu


def _check_method(method: str) -> str:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    return method


def _evaluate(
    t: ArrayLike, x: ArrayLike, nu: float, method: str, n_nodes: int | None, with_slope: bool
) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
    nu = _check_nu(nu)
    _check_method(method)
    if n_nodes is not None and (isinstance(n_nodes, bool) or not isinstance(n_nodes, (int, np.integer)) or n_nodes < 2):
        raise ValueError(f"n_nodes must be None or an integer >= 2, got {n_nodes!r}")
    t_arr, x_arr = np.broadcast_arrays(np.asarray(t, dtype=np.float64), np.asarray(x, dtype=np.float64))
    if not np.all(np.isfinite(t_arr)) or np.any(t_arr < 0.0):
        raise ValueError("t must be finite and >= 0")
    if not np.all(np.isfinite(x_arr)):
        raise ValueError("x must be finite")
    shape = t_arr.shape
    tf, xf = t_arr.ravel(), x_arr.ravel()
    # Exact initial data at t = 0 (the quadrature would give it too, up to round-off).
    u = -np.sin(np.pi * xf)
    ux = -np.pi * np.cos(np.pi * xf) if with_slope else None
    pos = tf > 0.0
    if np.any(pos):
        # One rule for all points (sized for the latest time), so results do not depend on chunking.
        z, logw = _rule(nu, float(tf[pos].max()), method, None if n_nodes is None else int(n_nodes))
        up, uxp = _moments(tf[pos], xf[pos], nu, z, logw, with_slope)
        u[pos] = up
        if ux is not None and uxp is not None:
            ux[pos] = uxp
    return u.reshape(shape), None if ux is None else ux.reshape(shape)


def burgers_solution(
    t: ArrayLike,
    x: ArrayLike,
    nu: float = BURGERS_NU,
    method: Literal["hermite", "trapezoid"] = "hermite",
    n_nodes: int | None = None,
) -> NDArray[np.float64]:
    """Exact Burgers solution ``u(t, x)`` by Cole–Hopf quadrature.

    Args:
        t: times (>= 0), any shape broadcastable with ``x``.
        x: positions; the formula is the odd, 2-periodic extension, so ``x`` in ``[-1, 1]`` is the
            physical domain.
        nu: viscosity (> 0); default ``0.01 / pi``.
        method: ``"hermite"`` (Gauss–Hermite) or ``"trapezoid"`` (truncated uniform ``z`` grid).
        n_nodes: override the quadrature size (default: chosen from ``nu`` and ``max(t)`` so the
            result is converged to round-off; see ``_hermite_nodes`` / ``_trapezoid_grid``).

    Returns:
        float64 array of the broadcast shape of ``t`` and ``x``. At ``t == 0`` it is exactly
        ``-sin(pi x)``.
    """
    u, _ = _evaluate(t, x, nu, method, n_nodes, with_slope=False)
    return u


def burgers_slope(
    t: ArrayLike,
    x: ArrayLike,
    nu: float = BURGERS_NU,
    method: Literal["hermite", "trapezoid"] = "hermite",
) -> NDArray[np.float64]:
    """Exact ``u_x(t, x)`` (same conventions as :func:`burgers_solution`).

    ``u_x = -pi <cos(pi s)> - Var(sin(pi s)) / (2 nu)`` with the Cole–Hopf weights. For the paper's
    ``nu`` its extreme at ``x = 0`` is ``-152.00516`` at ``t = 1.6037 / pi`` (Basdevant et al. 1986).
    """
    _, ux = _evaluate(t, x, nu, method, None, with_slope=True)
    assert ux is not None
    return ux


def burgers_reference(
    nt: int = 101,
    nx: int = 256,
    nu: float = BURGERS_NU,
    cache: bool = True,
    method: Literal["hermite", "trapezoid"] = "hermite",
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Burgers reference data on the paper's tensor grid.

    Grid: ``t = linspace(0, 1, nt)``, ``x = linspace(-1, 1, nx)`` (both endpoints included).

    Returns:
        ``X``: float64 ``[nt * nx, 2]``, columns ``(t, x)``, rows t-major (all ``x`` for ``t[0]``,
        then ``t[1]``, ...), i.e. row ``i * nx + j`` is ``(t[i], x[j])``.
        ``U``: float64 ``[nt * nx]``, ``u`` at those rows.

    ``cache=True`` stores/loads the result under the fastpinn cache directory (see
    :mod:`fastpinn.reference.cache`).
    """
    nt = check_int("nt", nt, 2)
    nx = check_int("nx", nx, 2)
    nu = _check_nu(nu)
    _check_method(method)
    if not isinstance(cache, bool):
        raise ValueError(f"cache must be True or False, got {cache!r}")

    def compute() -> dict[str, NDArray[np.float64]]:
        t = np.linspace(0.0, 1.0, nt)
        x = np.linspace(-1.0, 1.0, nx)
        U = burgers_solution(t[:, None], x[None, :], nu=nu, method=method)
        return {"t": t, "x": x, "u": U}

    if cache:
        params = {"nt": nt, "nx": nx, "nu": nu, "method": method}
        data = cached("burgers", params, compute)
    else:
        data = compute()
    return tensor_grid(data["t"], data["x"]), np.ascontiguousarray(data["u"].reshape(-1))

