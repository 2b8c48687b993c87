"""The fused jet op alone, forward and backward, by network width: best-of-7 CPU ms and GFLOP/s of the hidden
layers' matmuls (forward: 2 * sum(w_k * w_{k+1}) * channels * points; backward: 3x that -- it recomputes each
tile's forward, then W^T G and the weight gradient). Compare two builds of ``fastpinn._C`` by running this
script with each, alternating (see bench/results/fused-widths-*.md).

    OMP_NUM_THREADS=1 python bench/bench_fused_widths.py [--widths 20,50,150,256] [--points 2000]
"""

from __future__ import annotations

import argparse
import time

import torch

import fastpinn
from fastpinn.ops import _ext
from fastpinn.ops.mlp_jet import JetPlan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="20,50,150,256")
    ap.add_argument("--points", type=int, default=2000)
    ap.add_argument("--depth", type=int, default=4)
    args = ap.parse_args()
    _ext.load()
    torch.set_num_threads(1)
    plan = JetPlan([(), (0,), (1,), (1, 1)])  # Burgers' u, u_t, u_x, u_xx: 4 channels
    pairs = [p for pair in plan.pairs for p in pair]
    n, depth = args.points, args.depth
    for w in (int(v) for v in args.widths.split(",")):
        net = fastpinn.MLP(2, 1, depth, w, seed=0)
        sizes = [2] + [w] * (depth - 1) + [1]
        theta, x = net.theta.detach().unsqueeze(0), torch.rand(n, 2)
        plan_args = (sizes, plan.dirs, pairs, plan.first_out)
        fields, tape = torch.ops.fastpinn.mlp_jet_forward(theta, x, net.input_scale, net.input_shift, *plan_args, False)
        grad = torch.randn_like(fields)

        def forward() -> None:
            torch.ops.fastpinn.mlp_jet_forward(theta, x, net.input_scale, net.input_shift, *plan_args, False)

        def backward() -> None:
            torch.ops.fastpinn.mlp_jet_backward(grad, theta, x, net.input_scale, net.input_shift, tape, *plan_args, False)

        best = []
        for fn in (forward, backward):
            fn()
            b = float("inf")
            for _ in range(7):
                tick = time.process_time()
                fn()
                b = min(b, time.process_time() - tick)
            best.append(1e3 * b)
        flops = 2 * sum(sizes[k] * sizes[k + 1] for k in range(1, depth)) * 4 * n
        print(f"width {w}, {n} points: forward {best[0]:.2f} ms ({flops / best[0] / 1e6:.0f} GFLOP/s), "
              f"backward {best[1]:.2f} ms ({3 * flops / best[1] / 1e6:.0f} GFLOP/s)", flush=True)


if __name__ == "__main__":
    main()
