"""Achieved memory bandwidth of the Triton grad_stats kernel (``fastpinn.kernels.grad_stats_triton``).

Standalone script, CUDA only (exits 0 with a message when there is no CUDA device):

    python bench/bench_grad_stats_bandwidth.py                 # P = 10^7, S x K = 1 x 8, fp32 and fp64, p = 2 and 3
    python bench/bench_grad_stats_bandwidth.py --S 3 --K 8 --p 2 --dtype float32 --block 4096

The kernel reads G exactly once, so the useful traffic is S*K*P*itemsize bytes (the workspace and the output are
a few KiB).  Reported: time per call (median of CUDA-event timings), achieved GB/s, the device's theoretical
peak (2 x memory clock x bus width, from the device properties when torch exposes them) and, as a practical
ceiling, the bandwidth of ``torch.sum(G, -1)`` on the same tensor.
"""

from __future__ import annotations

import argparse
import math
import sys

import torch


def _peak_gbs(props) -> float | None:
    clock_khz = getattr(props, "memory_clock_rate", None)
    bus_bits = getattr(props, "memory_bus_width", None)
    if clock_khz and bus_bits:
        return 2.0 * clock_khz * 1e3 * bus_bits / 8 / 1e9
    return None


def _time_ms(fn, iters: int) -> float:
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=max(3, iters // 4), rep=iters, return_mode="median"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--P", type=int, default=10**7)
    ap.add_argument("--S", type=int, default=1)
    ap.add_argument("--K", type=int, default=8)
    ap.add_argument("--dtype", choices=["float32", "float64", "both"], default="both")
    ap.add_argument("--p", type=float, nargs="*", default=[2.0, 3.0], help="norm exponents (inf allowed)")
    ap.add_argument("--block", type=int, default=None)
    ap.add_argument("--splits", type=int, default=None)
    ap.add_argument("--ms", type=int, default=200, help="timing budget per case in ms (triton do_bench rep)")
    args = ap.parse_args(argv)

    if not torch.cuda.is_available():
        print("bench_grad_stats_bandwidth: no CUDA device, nothing to measure (skipped).")
        return 0

    from fastpinn.kernels import grad_stats_triton
    from fastpinn.ops.reference import grad_stats_ref

    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    peak = _peak_gbs(props)
    print(f"device: {props.name}, {props.multi_processor_count} SMs, "
          f"theoretical peak {'%.0f GB/s' % peak if peak else 'unknown'}")
    dtypes = [torch.float32, torch.float64] if args.dtype == "both" else [getattr(torch, args.dtype)]
    header = (f"{'dtype':8s} {'p':>5s} {'S x K x P':>18s} {'ms':>8s} {'GB/s':>8s} {'% peak':>7s} {'sum GB/s':>9s} "
              f"{'max rel err':>11s}")
    print(header)
    print("-" * len(header))
    for dtype in dtypes:
        G = torch.randn(args.S, args.K, args.P, device=dev, dtype=dtype)
        nbytes = G.numel() * G.element_size()
        t_sum = _time_ms(lambda: torch.sum(G, -1), args.ms)
        for p in args.p:
            out = grad_stats_triton(G, p, block=args.block, splits=args.splits)
            ref = grad_stats_ref(G.double(), p)
            rel = ((out.double() - ref).abs() / ref.abs().clamp_min(1e-300))[..., [0, 1, 2, 4, 5]].max().item()
            t = _time_ms(lambda: grad_stats_triton(G, p, block=args.block, splits=args.splits), args.ms)
            gbs = nbytes / t / 1e6
            pct = f"{100 * gbs / peak:6.1f}%" if peak else "    n/a"
            p_s = "inf" if math.isinf(p) else f"{p:g}"
            print(f"{str(dtype).replace('torch.', ''):8s} {p_s:>5s} {f'{args.S} x {args.K} x {args.P}':>18s} "
                  f"{t:8.3f} {gbs:8.0f} {pct:>7s} {nbytes / t_sum / 1e6:9.0f} {rel:11.2e}")
        del G
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
