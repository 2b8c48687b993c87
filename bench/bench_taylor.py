"""The ``"taylor"`` derivative method (univariate Taylor mode, one compiled call) against the methods ``auto``
chose before it, on the grid of ``bench_auto_method.py`` (same networks, requests, points and CPU-time blocks).

Orders 3-4: ``taylor`` against ``autograd`` (the only other method there but ``func``, never the default); orders
1-2 (pure-derivative requests only, so the Burgers/order-2 request u, u_t, u_x, u_xx qualifies): against
``fused`` and ``jet``, for information. Interleaved rounds; per cell the median of the per-round ratio
``taylor / other`` (paired: robust to the load of a shared machine) and the median ms. ``--calibration`` prints
the ``"taylor"`` entries of :data:`fastpinn.method_costs.CALIBRATION` for orders 3-4 as the table's ``autograd``
entry times the paired ratio (so the rows stay on the table's own time base).

    OMP_NUM_THREADS=1 python bench/bench_taylor.py [--rounds 3] [--orders 3 4] [--calibration]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_auto_method import POINTS, WIDTHS, Case  # noqa: E402
from fastpinn import method_costs  # noqa: E402

from _machine import describe  # noqa: E402

OTHERS = {1: ("fused", "jet"), 2: ("fused", "jet"), 3: ("autograd",), 4: ("autograd",)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--orders", type=int, nargs="+", default=[3, 4])
    ap.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS))
    ap.add_argument("--points", type=int, nargs="+", default=list(POINTS))
    ap.add_argument("--calibration", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(describe(), flush=True)
    cases = []
    for order in args.orders:
        for width in args.widths:
            for n in args.points:
                c = Case(width, order, n)
                c.methods = [m for m in ("taylor",) + OTHERS[order] if m in c.methods]
                c.calibrate()
                cases.append(c)
    rng = random.Random(0)
    times = {(c.order, c.width, c.n): {m: [] for m in c.methods} for c in cases}
    for r in range(args.rounds):
        work = [(c, m) for c in cases for m in c.methods]
        rng.shuffle(work)
        for c, m in work:
            times[(c.order, c.width, c.n)][m].append(c.time(m) * 1e3)
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    print("| order | width | points | taylor ms | other ms | taylor / other (paired median) |")
    print("|---|---|---|---|---|---|")
    rows = []
    for key, t in times.items():
        for other in OTHERS[key[0]]:
            if other not in t or "taylor" not in t:
                continue
            ratio = statistics.median(a / b for a, b in zip(t["taylor"], t[other]))
            print(f"| {key[0]} | {key[1]} | {key[2]} | {statistics.median(t['taylor']):.3g} | {other} "
                  f"{statistics.median(t[other]):.3g} | {ratio:.2f} |")
            if other == "autograd":
                rows.append((key, ratio))
    if args.calibration:
        for (order, width, n), ratio in rows:
            base = method_costs.CALIBRATION[(order, width, n)]["autograd"]
            print(f"    ({order}, {width}, {n}): taylor {base * ratio:.3g}")


if __name__ == "__main__":
    main()
