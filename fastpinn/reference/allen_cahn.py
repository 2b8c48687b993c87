"""Reference solution of the Allen–Cahn benchmark by Fourier pseudo-spectral ETDRK4.

Problem (DN-PINN / Raissi et al. benchmark)::

    u_t - 0.0001 u_xx + 5 u^3 - 5 u = 0,   x in [-1, 1] periodic, t in [0, 1],
    u(0, x) = x^2 cos(pi x).

Space: ``N`` (= ``n_modes``) equispaced nodes ``x_j = -1 + 2 j / N``, real FFT, wavenumbers
``k = pi m`` (period 2). Time: ETDRK4 of Cox & Matthews with the phi-function coefficients computed
by the contour-integral trick of Kassam & Trefethen (SIAM J. Sci. Comput. 2005). The linear part
``L = 5 - 0.0001 k^2`` is integrated exactly; the nonlinear part is ``-5 u^3``.

Resolution: the initial condition is only C^0 as a periodic function (``u_x(0, ±1) = ∓2``), so its
Fourier coefficients decay like ``m^-2``. Sampling it (the usual pseudo-spectral start) aliases that
tail onto the resolved low modes, an O(N^-2) error diffusion never removes: measured relative L2
error over t in [0, 1] ~1.1e-5 at N = 512 and ~6e-7 at N = 2048, max pointwise ~1e-4 at N = 2048.
Hence the default of 2048 modes. By default we start instead from the exact Fourier coefficients
of the IC (``initial="projection"``): the discarded tail ``|m| >= N/2`` is damped like
``exp(-1e-4 pi^2 m^2 t)`` before the nonlinearity can feed it back, and N = 2048 agrees with
N = 4096 to ~1e-9 relative L2 (1.7e-7 max at the first output time, ~1e-11 for t >= 0.05).

Time: ETDRK4's error is far below the spatial one for any dt <= 1e-3 (dt = 1e-3 vs 5e-6: 1.5e-11
relative), so the reference grid uses dt = 1e-4 by default: the same values to ~1e-11 at a fiftieth
of the cost of dt = 5e-6 (still available through ``dt``).
"""

from __future__ import annotations

import math
import sys

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .cache import cached, check_int, tensor_grid

__all__ = ["AC_DIFFUSION", "AC_REACTION", "allen_cahn_initial", "allen_cahn_solve", "allen_cahn_reference"]

#: Diffusion coefficient ``d`` in ``u_t = d u_xx + r (u - u^3)``.
AC_DIFFUSION: float = 1e-4
#: Reaction rate ``r``.
AC_REACTION: float = 5.0

# Points on the contour for the phi-functions; with radius 1 around each h*L (|h*L| <= ~0.02 at the
# defaults) the trapezoid rule on the circle is exact to round-off long before 64 points.
_CONTOUR_POINTS = 64

_INITIAL_MODES = ("projection", "interpolation")


def allen_cahn_initial(x: ArrayLike) -> NDArray[np.float64]:
    """Initial condition ``x^2 cos(pi x)`` (float64, shape of ``x``)."""
    x = np.asarray(x, dtype=np.float64)
    return x * x * np.cos(np.pi * x)


def _initial_spectrum(n_modes: int, initial: str) -> NDArray[np.complex128]:
    """rfft-normalised spectrum ``[N/2 + 1]`` of the initial condition on ``x_j = -1 + 2 j / N``.

    ``"interpolation"``: rfft of the sampled IC. The IC's ``m^-2`` Fourier tail aliases onto the
    resolved modes, an O(N^-2) error that diffusion never removes (the aliased energy sits in
    low, undamped modes): relative L2 error ~1e-5 at N = 512, ~6e-7 at N = 2048.

    ``"projection"``: the exact Fourier coefficients ``c_m`` of ``x^2 cos(pi x)`` for ``|m| < N/2``
    (the Nyquist mode is dropped). The only error is the discarded tail ``|m| >= N/2``, which
    diffusion kills within ``t ~ 1 / (1e-4 pi^2 (N/2)^2)`` before the nonlinearity can move it into
    the resolved modes, so the solution converges much faster in N for ``t > 0``.
    With ``c_m = 1/2 int_{-1}^{1} u0 e^{-i pi m x} dx`` (even IC, so real) and
    ``I(n) = int_0^1 x^2 cos(pi n x) dx = 2 (-1)^n / (pi n)^2`` (``1/3`` at ``n = 0``):
    ``c_m = (I(m + 1) + I(m - 1)) / 2``; the grid starts at ``x = -1``, so the rfft coefficient is
    ``N (-1)^m c_m``.
    """
    N = n_modes
    if initial == "interpolation":
        x = -1.0 + 2.0 * np.arange(N) / N
        return np.fft.rfft(allen_cahn_initial(x))
    m = np.arange(N // 2 + 1, dtype=np.float64)

    def integral(n: NDArray[np.float64]) -> NDArray[np.float64]:
        sign = np.where(np.abs(n) % 2 == 0, 1.0, -1.0)
        safe = np.where(n == 0.0, 1.0, n)
        return np.where(n == 0.0, 1.0 / 3.0, 2.0 * sign / (np.pi * safe) ** 2)

    c = 0.5 * (integral(m + 1.0) + integral(m - 1.0))
    spec = N * np.where(m % 2 == 0, 1.0, -1.0) * c
    spec[-1] = 0.0  # Nyquist: keep the projection onto |m| < N/2 symmetric
    return spec.astype(np.complex128)


def _etdrk4_coefficients(
    hL: NDArray[np.float64], h: float, n_contour: int = _CONTOUR_POINTS
) -> tuple[NDArray[np.float64], ...]:
    """ETDRK4 coefficients ``E, E2, Q, f1, f2, f3`` for the diagonal linear operator ``hL = h * L``.

    Kassam–Trefethen: the phi-type functions below lose all digits to cancellation for small
    ``|hL|``; averaging them over a circle of radius 1 centred at each ``hL`` (Cauchy's formula)
    evaluates them stably. ``L`` is real, so the average is real up to round-off.
    """
    r = np.exp(2j * np.pi * (np.arange(n_contour) + 0.5) / n_contour)
    LR = hL[:, None] + r[None, :]
    eLR = np.exp(LR)
    eLR2 = np.exp(LR / 2.0)
    LR3 = LR**3
    Q = h * np.mean((eLR2 - 1.0) / LR, axis=1).real
    f1 = h * np.mean((-4.0 - LR + eLR * (4.0 - 3.0 * LR + LR**2)) / LR3, axis=1).real
    f2 = h * np.mean((2.0 + LR + eLR * (-2.0 + LR)) / LR3, axis=1).real
    f3 = h * np.mean((-4.0 - 3.0 * LR - LR**2 + eLR * (4.0 - LR)) / LR3, axis=1).real
    return np.exp(hL), np.exp(hL / 2.0), Q, f1, f2, f3


def _output_steps(t_out: NDArray[np.float64], dt: float) -> NDArray[np.int64]:
    """Step indices of the output times; they must be (to 1e-9 relative) multiples of ``dt``."""
    steps = np.rint(t_out / dt)
    if np.any(np.abs(steps * dt - t_out) > 1e-9 * np.maximum(1.0, np.abs(t_out))):
        raise ValueError("t_out must contain only integer multiples of dt (choose dt dividing the output spacing)")
    return steps.astype(np.int64)


def _want_progress(progress: bool | None) -> bool:
    if progress is None or progress:
        # A bar is only useful on a terminal; in logs/CI it is noise.
        try:
            return bool(sys.stderr.isatty())
        except (AttributeError, ValueError):
            return False
    return False


def allen_cahn_solve(
    t_end: float = 1.0,
    n_modes: int = 2048,
    dt: float = 5e-6,
    t_out: ArrayLike | None = None,
    progress: bool | None = True,
    diffusion: float = AC_DIFFUSION,
    reaction: float = AC_REACTION,
    initial: str = "projection",
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Integrate ``u_t = diffusion * u_xx + reaction * (u - u^3)`` on the 2-periodic ``[-1, 1)``.

    Args:
        t_end: final time (> 0).
        n_modes: number of grid nodes / real-FFT length ``N`` (even, >= 8).
        dt: time step (> 0). Every output time must be an integer multiple of it.
        t_out: output times in ``[0, t_end]``, increasing (default ``[0, t_end]``).
        progress: tqdm bar on stderr; shown only when stderr is a terminal. ``False`` disables.
        diffusion, reaction: PDE coefficients (defaults: the paper's ``1e-4`` and ``5``).
        initial: how the IC ``x^2 cos(pi x)`` enters the spectral space: ``"projection"`` (exact
            Fourier coefficients, default) or ``"interpolation"`` (rfft of the sampled IC); see
            ``_initial_spectrum``. Rows at ``t = 0`` are the exact IC either way.

    Returns:
        ``t_grid`` ``[T]`` (the output times), ``x_grid`` ``[N]`` with ``x_j = -1 + 2 j / N``, and
        ``u_grid`` ``[T, N]`` float64, ``u_grid[i, j] = u(t_grid[i], x_grid[j])``.
    """
    t_end = float(t_end)
    if not (math.isfinite(t_end) and t_end > 0.0):
        raise ValueError(f"t_end must be a finite number > 0, got {t_end!r}")
    n_modes = check_int("n_modes", n_modes, 8)
    if n_modes % 2:
        raise ValueError(f"n_modes must be even, got {n_modes}")
    dt = float(dt)
    if not (math.isfinite(dt) and 0.0 < dt <= t_end):
        raise ValueError(f"dt must be a finite number in (0, t_end], got {dt!r}")
    for pname, pval in (("diffusion", diffusion), ("reaction", reaction)):
        if not math.isfinite(float(pval)) or float(pval) < 0.0:
            raise ValueError(f"{pname} must be a finite number >= 0, got {pval!r}")
    if initial not in _INITIAL_MODES:
        raise ValueError(f"initial must be one of {_INITIAL_MODES}, got {initial!r}")
    if not (progress is None or isinstance(progress, bool)):
        raise ValueError(f"progress must be True, False or None, got {progress!r}")
    t_arr = np.array([0.0, t_end]) if t_out is None else np.asarray(t_out, dtype=np.float64).reshape(-1)
    if t_arr.size == 0 or not np.all(np.isfinite(t_arr)):
        raise ValueError("t_out must be a non-empty sequence of finite times")
    if np.any(np.diff(t_arr) <= 0.0) or t_arr[0] < 0.0 or t_arr[-1] > t_end * (1.0 + 1e-12):
        raise ValueError("t_out must be strictly increasing and lie in [0, t_end]")
    steps = _output_steps(t_arr, dt)

    N = n_modes
    x = -1.0 + 2.0 * np.arange(N) / N
    k = np.pi * np.arange(N // 2 + 1)  # rfft wavenumbers for period 2
    L = float(reaction) - float(diffusion) * k * k
    E, E2, Q, f1, f2, f3 = _etdrk4_coefficients(dt * L, dt)
    # Fold the nonlinear coefficient -reaction into the phi-coefficients: N(v) = g * rfft(u^3).
    g = -float(reaction)
    Q, f1, f2, f3 = g * Q, g * f1, g * f2, g * f3
    # f2 multiplies (Na + Nb) twice in Cox–Matthews' update.
    f2 = 2.0 * f2

    # Real coefficients stored as complex: numpy would otherwise cast them to complex on every
    # real*complex product (measured ~2x slower per product at N = 2048).
    E, E2, Q, f1, f2, f3 = (np.asarray(a, dtype=np.complex128) for a in (E, E2, Q, f1, f2, f3))

    rfft, irfft = np.fft.rfft, np.fft.irfft
    mul, add, sub = np.multiply, np.add, np.subtract
    M = N // 2 + 1
    v = _initial_spectrum(N, initial)
    # Preallocated work arrays + out= everywhere: at these sizes the loop is dominated by per-call
    # overhead, and avoiding ~30 allocations per step saves ~20 % of the run time.
    u = np.empty(N)
    u3 = np.empty(N)
    Nv, Na, Nb, Nc, a, b, c, Ev2, tmp = (np.empty(M, dtype=np.complex128) for _ in range(9))

    def nonlin(vh: NDArray[np.complex128], dest: NDArray[np.complex128]) -> None:
        """dest <- rfft(irfft(vh)^3) (the factor -reaction is folded into Q, f1, f2, f3)."""
        irfft(vh, n=N, out=u)
        mul(u, u, out=u3)
        mul(u3, u, out=u3)
        rfft(u3, out=dest)

    out = np.empty((t_arr.size, N))
    next_out = 0
    while next_out < steps.size and steps[next_out] == 0:
        # u(0, .) is known exactly; the truncated projection would show O(1/N) Gibbs wiggles at the kink.
        out[next_out] = allen_cahn_initial(x)
        next_out += 1

    total = int(steps[-1])
    bar = None
    if _want_progress(progress) and total > 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"Allen-Cahn ETDRK4 N={N}", unit="step", unit_scale=True, leave=False)
    bar_every = max(1, total // 200)  # update the bar ~200 times, not per step (cost)
    done = 0
    try:
        for n in range(1, total + 1):
            # Cox–Matthews ETDRK4 in Kassam–Trefethen form, all operators diagonal in Fourier space:
            #   a = E2 v + Q N(v);  b = E2 v + Q N(a);  c = E2 a + Q (2 N(b) - N(v))
            #   v <- E v + f1 N(v) + 2 f2 (N(a) + N(b)) + f3 N(c)      (f2 already doubled)
            nonlin(v, Nv)
            mul(E2, v, out=Ev2)
            mul(Q, Nv, out=a)
            add(a, Ev2, out=a)
            nonlin(a, Na)
            mul(Q, Na, out=b)
            add(b, Ev2, out=b)
            nonlin(b, Nb)
            add(Nb, Nb, out=tmp)
            sub(tmp, Nv, out=tmp)
            mul(tmp, Q, out=tmp)
            mul(E2, a, out=c)
            add(c, tmp, out=c)
            nonlin(c, Nc)
            add(Na, Nb, out=tmp)
            mul(tmp, f2, out=tmp)
            mul(v, E, out=v)
            add(v, tmp, out=v)
            mul(f1, Nv, out=tmp)
            add(v, tmp, out=v)
            mul(f3, Nc, out=tmp)
            add(v, tmp, out=v)
            while next_out < steps.size and steps[next_out] == n:
                out[next_out] = irfft(v, n=N)
                next_out += 1
            if bar is not None and n % bar_every == 0:
                bar.update(n - done)
                done = n
    finally:
        if bar is not None:
            bar.close()
    if not np.all(np.isfinite(out)):
        raise FloatingPointError("Allen-Cahn integration produced non-finite values")
    return t_arr.copy(), x, out


def allen_cahn_reference(
    nt: int = 201,
    nx: int = 513,
    n_modes: int = 2048,
    dt: float = 1e-4,
    cache: bool = True,
    progress: bool | None = True,
    initial: str = "projection",
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Allen–Cahn reference data on the paper's tensor grid.

    Grid: ``t = linspace(0, 1, nt)``, ``x = linspace(-1, 1, nx)`` (both endpoints; ``u(t, 1) = u(t, -1)``
    by periodicity). The x grid must be a subset of the spectral nodes so no interpolation is
    needed: ``nx - 1`` must divide ``n_modes``. The output spacing ``1 / (nt - 1)`` must be a
    multiple of ``dt``. ``n_modes``, ``dt``, ``progress``, ``initial``: see :func:`allen_cahn_solve`.

    Returns:
        ``X``: float64 ``[nt * nx, 2]``, columns ``(t, x)``, rows t-major (row ``i * nx + j`` is
        ``(t[i], x[j])``).
        ``U``: float64 ``[nt * nx]``.
    """
    nt = check_int("nt", nt, 2)
    nx = check_int("nx", nx, 2)
    n_modes = check_int("n_modes", n_modes, 8)
    if n_modes % (nx - 1):
        raise ValueError(
            f"nx - 1 must divide n_modes so the x grid lies on spectral nodes; got nx={nx}, n_modes={n_modes} "
            f"(allowed nx: d + 1 for each divisor d of n_modes, e.g. {n_modes // 4 + 1})"
        )
    if not isinstance(cache, bool):
        raise ValueError(f"cache must be True or False, got {cache!r}")
    if initial not in _INITIAL_MODES:
        raise ValueError(f"initial must be one of {_INITIAL_MODES}, got {initial!r}")
    dt = float(dt)
    if not (math.isfinite(dt) and 0.0 < dt <= 1.0):
        raise ValueError(f"dt must be a finite number in (0, 1], got {dt!r}")
    t = np.linspace(0.0, 1.0, nt)
    _output_steps(t, dt)  # validate before any work (and before touching the cache)

    def compute() -> dict[str, NDArray[np.float64]]:
        t_grid, _, u_full = allen_cahn_solve(
            t_end=1.0, n_modes=n_modes, dt=dt, t_out=t, progress=progress, initial=initial
        )
        stride = n_modes // (nx - 1)
        idx = (np.arange(nx) * stride) % n_modes  # x = 1 wraps to node 0 (x = -1)
        return {"t": t_grid, "x": np.linspace(-1.0, 1.0, nx), "u": u_full[:, idx]}

    if cache:
        params = {
            "nt": nt,
            "nx": nx,
            "n_modes": n_modes,
            "dt": dt,
            "initial": initial,
            "diffusion": AC_DIFFUSION,
            "reaction": AC_REACTION,
        }
        data = cached("allen_cahn", params, compute)
    else:
        data = compute()
    return tensor_grid(data["t"], data["x"]), np.ascontiguousarray(data["u"].reshape(-1))
