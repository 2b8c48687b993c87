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
activation (``fused`` is tanh-only; ``jet`` and ``autograd`` evaluate other activations' derivatives
elementwise at similar cost), the number of input coordinates (2 measured).
"""

from __future__ import annotations

import bisect
import math
from typing import Sequence

__all__ = ["MACHINE", "SOURCE", "CALIBRATION", "predicted_ms", "fastest", "join_pays"]

MACHINE = "Intel(R) Xeon(R) Processor (2 cores shared, AVX-512), torch 2.13.0+cpu, 1 thread, float32"
SOURCE = "bench/results/auto-method-cpu-intel-xeon-2c-2026-12-06.md"

#: (highest derivative order, width, points) -> method -> median ms of forward + backward (MLP 2 -> 3 hidden x
#: width -> 1, tanh; requests: order 1 u, u_t, u_x; 2 u, u_t, u_x, u_xx; 3 u, u_x, u_xxx; 4 u, u_xxxx).
CALIBRATION: dict[tuple[int, int, int], dict[str, float]] = {
    (1, 16, 100): {"autograd": 0.827, "fused": 0.605, "jet": 0.912},
    (1, 16, 1000): {"autograd": 1.29, "fused": 0.779, "jet": 1.6},
    (1, 16, 10000): {"autograd": 6.89, "fused": 3.42, "jet": 11.3},
    (1, 20, 100): {"autograd": 0.905, "fused": 0.486, "jet": 0.934},
    (1, 20, 1000): {"autograd": 1.42, "fused": 0.897, "jet": 2.01},
    (1, 20, 10000): {"autograd": 8.63, "fused": 4.33, "jet": 14},
    (1, 50, 100): {"autograd": 0.997, "fused": 0.784, "jet": 1.12},
    (1, 50, 1000): {"autograd": 2.87, "fused": 2.74, "jet": 4.15},
    (1, 50, 10000): {"autograd": 23.6, "fused": 18.4, "jet": 39.2},
    (1, 150, 100): {"autograd": 1.97, "fused": 2.61, "jet": 2.57},
    (1, 150, 1000): {"autograd": 10.4, "fused": 13.9, "jet": 16.3},
    (1, 150, 10000): {"autograd": 101, "fused": 119, "jet": 158},
    (1, 256, 100): {"autograd": 4.31, "fused": 5.98, "jet": 5.22},
    (1, 256, 1000): {"autograd": 20.1, "fused": 36.6, "jet": 32.5},
    (1, 256, 10000): {"autograd": 194, "fused": 331, "jet": 309},
    (2, 16, 100): {"autograd": 1.31, "fused": 0.537, "jet": 1.29},
    (2, 16, 1000): {"autograd": 2.43, "fused": 0.898, "jet": 2.36},
    (2, 16, 10000): {"autograd": 17.7, "fused": 4.19, "jet": 17},
    (2, 20, 100): {"autograd": 1.36, "fused": 0.591, "jet": 1.27},
    (2, 20, 1000): {"autograd": 2.91, "fused": 1.1, "jet": 2.62},
    (2, 20, 10000): {"autograd": 21.1, "fused": 5.54, "jet": 22.1},
    (2, 50, 100): {"autograd": 1.77, "fused": 0.895, "jet": 1.59},
    (2, 50, 1000): {"autograd": 6.49, "fused": 3.43, "jet": 6.45},
    (2, 50, 10000): {"autograd": 58.8, "fused": 24.6, "jet": 62.1},
    (2, 150, 100): {"autograd": 3.75, "fused": 3.37, "jet": 3.39},
    (2, 150, 1000): {"autograd": 23.2, "fused": 18.1, "jet": 23.6},
    (2, 150, 10000): {"autograd": 231, "fused": 157, "jet": 243},
    (2, 256, 100): {"autograd": 7.23, "fused": 7.87, "jet": 6.65},
    (2, 256, 1000): {"autograd": 47, "fused": 47.4, "jet": 46.9},
    (2, 256, 10000): {"autograd": 469, "fused": 443, "jet": 465},
    (3, 16, 100): {"autograd": 2.25, "func": 21.7},
    (3, 16, 1000): {"autograd": 5.17, "func": 29.9},
    (3, 16, 10000): {"autograd": 40.7},
    (3, 20, 100): {"autograd": 2.49, "func": 22.1},
    (3, 20, 1000): {"autograd": 6.14, "func": 32.4},
    (3, 20, 10000): {"autograd": 52.3},
    (3, 50, 100): {"autograd": 3.22, "func": 24.2},
    (3, 50, 1000): {"autograd": 15.4, "func": 53.5},
    (3, 50, 10000): {"autograd": 145},
    (3, 150, 100): {"autograd": 7.14, "func": 33.4},
    (3, 150, 1000): {"autograd": 52.1, "func": 147},
    (3, 150, 10000): {"autograd": 599},
    (3, 256, 100): {"autograd": 13.8, "func": 53.4},
    (3, 256, 1000): {"autograd": 103, "func": 285},
    (3, 256, 10000): {"autograd": 1.32e+03},
    (4, 16, 100): {"autograd": 5.03, "func": 47.8},
    (4, 16, 1000): {"autograd": 13.8, "func": 66.6},
    (4, 16, 10000): {"autograd": 105},
    (4, 20, 100): {"autograd": 5.3, "func": 47.3},
    (4, 20, 1000): {"autograd": 15.2, "func": 74.3},
    (4, 20, 10000): {"autograd": 136},
    (4, 50, 100): {"autograd": 7.33, "func": 54.4},
    (4, 50, 1000): {"autograd": 38, "func": 131},
    (4, 50, 10000): {"autograd": 395},
    (4, 150, 100): {"autograd": 17.1, "func": 78.4},
    (4, 150, 1000): {"autograd": 134, "func": 487},
    (4, 150, 10000): {"autograd": 1.64e+03},
    (4, 256, 100): {"autograd": 31.7, "func": 125},
    (4, 256, 1000): {"autograd": 258, "func": 777},
    (4, 256, 10000): {"autograd": 3.38e+03},
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
