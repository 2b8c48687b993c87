"""The cost model behind ``derivative_method="auto"``: measured CPU times of each derivative method per term
shape, and the lookup :func:`fastest` that :func:`fastpinn.derivatives.choose_method` makes from them.

The table is data, not a rule of thumb: every entry is the median CPU time (ms) of one forward + backward of a
term's fields, measured by ``bench/bench_auto_method.py --calibration`` on :data:`MACHINE` (the run's report is
:data:`SOURCE`). A term's shape is its highest derivative order, the network's width and its points per step;
between grid points the time is interpolated linearly in (log width, log points) of log time, outside the
grid it is clamped to the nearest edge. The choice is a pure function of the shape -- no timing at run time --
so every rank, every resumed run and every repetition of a problem picks the same method.

What the grid does not vary, and why that is acceptable: depth (every method's cost is a sum over layers, so
the ratios barely move), dtype (float32 measured; float64 slows the matmuls of every method alike), the
activation (tanh measured; ``fused`` also runs sin, whose sin/cos cost what its tanh does -- within 2 % on the
op at widths 32 and 128 --, and silu and softplus, where ``jet`` and ``autograd`` pay more for the activation's
derivatives than with tanh (bench/results/fused-widths-cpu-intel-xeon-2c-2026-12-06-b.md: jet 1.3-1.8x its tanh
time, fused about the same), so the tanh table errs towards them there), the number of input coordinates (2
measured).
"""

from __future__ import annotations

import bisect
import math
from typing import Sequence

__all__ = ["MACHINE", "SOURCE", "TAYLOR_SOURCE", "CALIBRATION", "predicted_ms", "fastest", "join_pays"]

MACHINE = "Intel(R) Xeon(R) Processor (2 cores shared, AVX-512), torch 2.13.0+cpu, 1 thread, float32"
SOURCE = ("bench/results/auto-method-cpu-intel-xeon-2c-2026-12-06-b.md (orders 1-2, after the fused kernel's "
          "2026-12-06 speed-ups), bench/results/auto-method-cpu-intel-xeon-2c-2026-12-06.md (orders 3-4)")
TAYLOR_SOURCE = "bench/results/taylor-euler-beam-cpu-intel-xeon-2c-2026-12-06.md"

#: (highest derivative order, width, points) -> method -> median ms of forward + backward (MLP 2 -> 3 hidden x
#: width -> 1, tanh; requests: order 1 u, u_t, u_x; 2 u, u_t, u_x, u_xx; 3 u, u_x, u_xxx; 4 u, u_xxxx).
#: ``"taylor"`` (orders 3-4): the row's ``autograd`` entry times the paired median ratio taylor / autograd measured
#: by ``bench/bench_taylor.py --calibration`` (same grid and timing; :data:`TAYLOR_SOURCE`), so the row stays on
#: one time base: 0.17-0.35x autograd at widths 16-20 (4th order), 1.7-2.8x at width 150-256 (3rd order).
CALIBRATION: dict[tuple[int, int, int], dict[str, float]] = {
    (1, 16, 100): {"autograd": 0.812, "fused": 0.409, "jet": 0.781},
    (1, 16, 1000): {"autograd": 1.13, "fused": 0.638, "jet": 1.32},
    (1, 16, 10000): {"autograd": 5.25, "fused": 2.89, "jet": 9.05},
    (1, 20, 100): {"autograd": 0.788, "fused": 0.42, "jet": 0.812},
    (1, 20, 1000): {"autograd": 1.28, "fused": 0.811, "jet": 1.64},
    (1, 20, 10000): {"autograd": 6.82, "fused": 3.75, "jet": 11.8},
    (1, 50, 100): {"autograd": 0.951, "fused": 0.559, "jet": 1.07},
    (1, 50, 1000): {"autograd": 2.51, "fused": 1.87, "jet": 3.25},
    (1, 50, 10000): {"autograd": 19.3, "fused": 13.9, "jet": 31.7},
    (1, 150, 100): {"autograd": 1.81, "fused": 1.73, "jet": 2.26},
    (1, 150, 1000): {"autograd": 8.25, "fused": 8.8, "jet": 14.3},
    (1, 150, 10000): {"autograd": 90.1, "fused": 75.6, "jet": 141},
    (1, 256, 100): {"autograd": 3.37, "fused": 3.88, "jet": 4.13},
    (1, 256, 1000): {"autograd": 19.1, "fused": 22.9, "jet": 28.9},
    (1, 256, 10000): {"autograd": 178, "fused": 201, "jet": 287},
    (2, 16, 100): {"autograd": 1.14, "fused": 0.471, "jet": 1.12},
    (2, 16, 1000): {"autograd": 2.19, "fused": 0.784, "jet": 1.85},
    (2, 16, 10000): {"autograd": 14.4, "fused": 3.38, "jet": 14.3},
    (2, 20, 100): {"autograd": 1.22, "fused": 0.559, "jet": 1.12},
    (2, 20, 1000): {"autograd": 2.52, "fused": 0.947, "jet": 2.39},
    (2, 20, 10000): {"autograd": 17.8, "fused": 4.57, "jet": 18.1},
    (2, 50, 100): {"autograd": 1.6, "fused": 0.732, "jet": 1.5},
    (2, 50, 1000): {"autograd": 5.33, "fused": 2.27, "jet": 5.23},
    (2, 50, 10000): {"autograd": 50, "fused": 17.1, "jet": 51.7},
    (2, 150, 100): {"autograd": 3.24, "fused": 2.22, "jet": 3.14},
    (2, 150, 1000): {"autograd": 20.5, "fused": 12.1, "jet": 18.4},
    (2, 150, 10000): {"autograd": 209, "fused": 107, "jet": 222},
    (2, 256, 100): {"autograd": 5.78, "fused": 5.18, "jet": 5.65},
    (2, 256, 1000): {"autograd": 41, "fused": 32.2, "jet": 39.3},
    (2, 256, 10000): {"autograd": 436, "fused": 278, "jet": 439},
    (3, 16, 100): {"autograd": 2.25, "func": 21.7, "taylor": 0.665},
    (3, 16, 1000): {"autograd": 5.17, "func": 29.9, "taylor": 3.05},
    (3, 16, 10000): {"autograd": 40.7, "taylor": 28.2},
    (3, 20, 100): {"autograd": 2.49, "func": 22.1, "taylor": 0.846},
    (3, 20, 1000): {"autograd": 6.14, "func": 32.4, "taylor": 4.16},
    (3, 20, 10000): {"autograd": 52.3, "taylor": 37.5},
    (3, 50, 100): {"autograd": 3.22, "func": 24.2, "taylor": 2.38},
    (3, 50, 1000): {"autograd": 15.4, "func": 53.5, "taylor": 15.5},
    (3, 50, 10000): {"autograd": 145, "taylor": 140},
    (3, 150, 100): {"autograd": 7.14, "func": 33.4, "taylor": 12.4},
    (3, 150, 1000): {"autograd": 52.1, "func": 147, "taylor": 101},
    (3, 150, 10000): {"autograd": 599, "taylor": 1.09e+03},
    (3, 256, 100): {"autograd": 13.8, "func": 53.4, "taylor": 36},
    (3, 256, 1000): {"autograd": 103, "func": 285, "taylor": 287},
    (3, 256, 10000): {"autograd": 1.32e+03, "taylor": 3.31e+03},
    (4, 16, 100): {"autograd": 5.03, "func": 47.8, "taylor": 0.864},
    (4, 16, 1000): {"autograd": 13.8, "func": 66.6, "taylor": 2.4},
    (4, 16, 10000): {"autograd": 105, "taylor": 33.8},
    (4, 20, 100): {"autograd": 5.3, "func": 47.3, "taylor": 0.901},
    (4, 20, 1000): {"autograd": 15.2, "func": 74.3, "taylor": 5.07},
    (4, 20, 10000): {"autograd": 136, "taylor": 47.8},
    (4, 50, 100): {"autograd": 7.33, "func": 54.4, "taylor": 2.68},
    (4, 50, 1000): {"autograd": 38, "func": 131, "taylor": 17.3},
    (4, 50, 10000): {"autograd": 395, "taylor": 185},
    (4, 150, 100): {"autograd": 17.1, "func": 78.4, "taylor": 15.9},
    (4, 150, 1000): {"autograd": 134, "func": 487, "taylor": 135},
    (4, 150, 10000): {"autograd": 1.64e+03, "taylor": 1.32e+03},
    (4, 256, 100): {"autograd": 31.7, "func": 125, "taylor": 42},
    (4, 256, 1000): {"autograd": 258, "func": 777, "taylor": 368},
    (4, 256, 10000): {"autograd": 3.38e+03, "taylor": 3.55e+03},
}

_ORDERS = sorted({o for o, _, _ in CALIBRATION})
_WIDTHS = sorted({w for _, w, _ in CALIBRATION})
_POINTS = sorted({n for _, _, n in CALIBRATION})


def _bracket(grid: Sequence[int], value: float) -> tuple[int, int, float]:
    """Neighbours ``lo, hi`` in ``grid`` and the weight of ``hi`` for ``value``, linear in log, clamped."""
    if value <= grid[0]:
        return grid[0], grid[0], 0.0
    if value >= grid[-1]:
        return grid[-1], grid[-1], 0.0
    k = bisect.bisect_right(grid, value)
    lo, hi = grid[k - 1], grid[k]
    return lo, hi, (math.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo))


def predicted_ms(order: int, width: int, n_points: int) -> dict[str, float]:
    """Method -> predicted ms of one forward + backward for a term of this shape, for the methods measured
    at all four surrounding grid points. Orders beyond the grid use its highest order; order 0 (the value
    only) uses order 1 (every method then runs little more than the network's forward)."""
    order = min(max(order, _ORDERS[0]), _ORDERS[-1])
    w0, w1, a = _bracket(_WIDTHS, width)
    n0, n1, b = _bracket(_POINTS, n_points)
    corners = [(CALIBRATION[(order, w0, n0)], (1 - a) * (1 - b)), (CALIBRATION[(order, w1, n0)], a * (1 - b)),
               (CALIBRATION[(order, w0, n1)], (1 - a) * b), (CALIBRATION[(order, w1, n1)], a * b)]
    methods = set.intersection(*(set(c) for c, _ in corners))
    return {m: math.exp(sum(weight * math.log(c[m]) for c, weight in corners)) for m in sorted(methods)}


def fastest(candidates: Sequence[str], order: int, width: int, n_points: int) -> str:
    """The candidate with the least predicted time; candidates the table does not price rank after the priced
    ones, in the given order (so the first candidate is the fallback)."""
    if not candidates:
        raise ValueError("candidates must name at least one method")
    cost = predicted_ms(order, width, n_points)
    return min(candidates, key=lambda m: (cost.get(m, math.inf), list(candidates).index(m)))


def join_pays(method: str, order: int, width: int, points: int, join_method: str, join_points: int) -> bool:
    """Whether one evaluation by ``method`` of derivatives up to ``order`` over ``points + join_points`` points is
    predicted faster than that evaluation over ``points`` plus a values-only evaluation of the other
    ``join_points`` by ``join_method`` on their own (a small problem's values-only term joining a group that
    reads derivatives: the fixed cost of an evaluation against the per-point cost of the group's derivatives).
    ``False`` when the table does not price a method."""
    together = predicted_ms(order, width, points + join_points).get(method)
    group = predicted_ms(order, width, points).get(method)
    alone = predicted_ms(0, width, join_points).get(join_method)
    if together is None or group is None or alone is None:
        return False
    return together < group + alone
