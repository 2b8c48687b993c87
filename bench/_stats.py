"""Small summaries the benchmark scripts share."""

from __future__ import annotations

import statistics


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    """``(lower quartile, median, upper quartile)``; one sample gives itself three times."""
    xs = sorted(xs)
    if len(xs) < 2:
        return xs[0], xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], statistics.median(xs), q[2]


def fmt_quartiles(xs: list[float], digits: int = 3) -> str:
    """``median [lower–upper]`` with ``digits`` decimals."""
    lo, med, hi = quartiles(xs)
    return f"{med:.{digits}f} [{lo:.{digits}f}–{hi:.{digits}f}]"
