"""Weighting-op microbenchmarks: fused statistics and the compiled weight update vs plain implementations.

For P in {3,000; 100,000; 10,000,000} parameters, K in {2, 3, 4} loss terms, S = 1, float32, one
pytest-benchmark group per (P, K) so the variants sit side by side:

* ``stats-fused-cpp``    ``grad_stats(G, p, backend="cpp")``: the 7 statistics of every row in one pass.
* ``stats-fused-triton`` the Triton kernel (CUDA tensors only; skipped on CPU).
* ``stats-torch-ref``    ``grad_stats(G, p, backend="torch")``: vectorised pure PyTorch (the test oracle).
* ``stats-naive-loop``   what a plain implementation does: for each row ``g`` of G, separate torch
                         reductions ``g.abs().sum()``, ``g.pow(2).sum()``, ``g.abs().max()``, ``g.sum()``,
                         ``torch.linalg.vector_norm(g, p)``, ``((g - g.mean())**2).sum()`` (what ``g.var()``
                         computes), non-finite count; stacked into the same ``[K, 7]`` tensor.
* ``ema-cpp``            the compiled ``ema_update`` (DN, bias correction) on precomputed statistics.
* ``ema-python``         the same update as reference implementations write it: a Python loop over terms
                         reading the statistics with ``.item()`` and keeping lambda in Python floats.
* ``dn-update-fused``    a whole DN weight update as fastpinn does it: ``grad_stats`` + ``ema_update``.
* ``dn-update-naive``    a whole DN weight update as reference code does it: per term
                         ``torch.linalg.vector_norm(g, p).item()``, lambda in Python floats (it computes only
                         the norms DN needs, so it is the strongest plain baseline).

    OMP_NUM_THREADS=1 pytest bench/bench_ops.py --benchmark-group-by=group \
        --benchmark-columns=min,median,mean,stddev,rounds --benchmark-sort=name

CPU timings use one thread (``bench/conftest.py`` sets ``torch.set_num_threads(1)``; override with
``FASTPINN_BENCH_THREADS``). The P = 10^7 cases run only a few rounds (the naive loop takes seconds
there). ``bench/run_all.py`` runs the same comparisons interleaved, which is what its ratios come from.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import pytest
import torch

from fastpinn import ops
from fastpinn.schemes import DN
from fastpinn.malloc import retain_freed_memory
from fastpinn.ops import layout as L

# Freed activation memory is reused, not page-faulted in again each step: what the fastpinn CLI does too.
ALLOCATOR_TUNED = retain_freed_memory()

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

P_VALUES = (3_000, 100_000, 10_000_000)
K_VALUES = (2, 3, 4)
NORM_P = 2.0
BETA = 0.9
_DN = DN(beta=BETA, bias_correction=True)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# (rounds, iterations per round) for pytest-benchmark's pedantic mode, by P.
ROUNDS = {3_000: (50, 20), 100_000: (20, 2), 10_000_000: (3, 1)}
EMA_ROUNDS = (50, 50)


def make_G(P: int, K: int, device: str = DEVICE, seed: int = 0) -> torch.Tensor:
    """``G[1, K, P]`` float32, rows of different scales (like per-term gradients)."""
    gen = torch.Generator().manual_seed(seed)
    G = torch.randn(1, K, P, generator=gen, dtype=torch.float32)
    G *= torch.logspace(0, -3, K).reshape(1, K, 1)
    return G.to(device)


def sync(device: str = DEVICE) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------- statistics
def naive_stats(G: torch.Tensor, p: float = NORM_P) -> torch.Tensor:
    """Per-row loop of separate torch reductions -> ``[S, K, 7]`` (same columns as ``grad_stats``)."""
    S, K, _ = G.shape
    out = []
    for s in range(S):
        rows = []
        for k in range(K):
            g = G[s, k]
            rows.append(torch.stack([
                g.abs().sum(),
                g.pow(2).sum(),
                g.abs().max(),
                g.sum(),
                torch.linalg.vector_norm(g, p),
                (g - g.mean()).pow(2).sum(),
                (~torch.isfinite(g)).sum().to(g.dtype),
            ]))
        out.append(torch.stack(rows))
    return torch.stack(out)


def stats_fns(G: torch.Tensor, p: float = NORM_P) -> dict[str, Callable[[], torch.Tensor]]:
    """The statistics variants to compare on ``G`` (Triton only for CUDA tensors)."""
    fns = {
        "stats-fused-cpp": lambda: ops.grad_stats(G, p, backend="cpp"),
        "stats-torch-ref": lambda: ops.grad_stats(G, p, backend="torch"),
        "stats-naive-loop": lambda: naive_stats(G, p),
    }
    if G.is_cuda:
        fns["stats-fused-triton"] = lambda: ops.grad_stats(G, p, backend="triton")
    return fns


# ------------------------------------------------------------------------------------- update
@dataclass
class FusedState:
    """Device-side weighting state for the compiled ``ema_update`` (DN, bias correction, reference 0)."""

    K: int
    device: str = DEVICE
    lam: torch.Tensor = field(init=False)
    lam_applied: torch.Tensor = field(init=False)
    n_updates: torch.Tensor = field(init=False)
    count: torch.Tensor = field(init=False)
    skipped: torch.Tensor = field(init=False)
    adaptive: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.lam = torch.zeros(1, self.K, device=self.device)
        self.lam[:, 0] = 1.0
        self.lam_applied = torch.ones(1, self.K, device=self.device)
        self.n_updates = torch.zeros(1, dtype=torch.int64, device=self.device)
        self.count = torch.zeros(1, self.K, dtype=torch.int64, device=self.device)
        self.skipped = torch.zeros(1, self.K, dtype=torch.int64, device=self.device)
        self.adaptive = torch.tensor([k != 0 for k in range(self.K)], device=self.device)

    def ema(self, stats: torch.Tensor, numel: int) -> None:
        # The scheme's candidate (a few tensor ops on [1, K]) and the scheme-free compiled EMA.
        hat, valid = _DN.candidate(stats.unsqueeze(0) if stats.dim() == 2 else stats, self.lam_applied, 0, numel)
        ops.ema_update(hat, valid, self.adaptive, self.lam, self.lam_applied, self.count, self.n_updates,
                       self.skipped, BETA, True, backend="cpp")


@dataclass
class PythonState:
    """Weighting state as reference implementations keep it: Python floats and ints."""

    K: int
    lam: list[float] = field(init=False)
    applied: list[float] = field(init=False)
    n: int = 0
    skipped: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.lam = [1.0] + [0.0] * (self.K - 1)
        self.applied = [1.0] * self.K
        self.skipped = [0] * self.K

    def ema(self, stats: torch.Tensor) -> list[float]:
        """DN update from precomputed statistics, one ``.item()`` per term (a host sync each on a GPU)."""
        num = stats[0, 0, L.NORM_P].item()
        return self._apply(num, [stats[0, j, L.NORM_P].item() for j in range(1, self.K)])

    def update_from_G(self, G: torch.Tensor, p: float = NORM_P) -> list[float]:
        """A whole DN update as reference code writes it: one norm + ``.item()`` per term."""
        norms = [torch.linalg.vector_norm(G[0, k], p).item() for k in range(self.K)]
        return self._apply(norms[0], norms[1:])

    def _apply(self, num: float, dens: list[float]) -> list[float]:
        self.n += 1
        correction = 1.0 - BETA ** self.n
        for j, den in enumerate(dens, start=1):
            hat = num / den if den > 0 else math.inf
            if not (math.isfinite(hat) and num > 0):
                self.skipped[j] += 1
                continue
            self.lam[j] = BETA * self.lam[j] + (1.0 - BETA) * hat
            self.applied[j] = self.lam[j] / correction
        return self.applied


def update_fns(G: torch.Tensor) -> dict[str, Callable[[], object]]:
    """EMA-only and whole-update variants on ``G`` (fresh state per call of this function)."""
    K, P = G.shape[1], G.shape[2]
    stats = ops.grad_stats(G, NORM_P, backend="cpp")
    fused, py = FusedState(K, str(G.device)), PythonState(K)
    fused_u, py_u = FusedState(K, str(G.device)), PythonState(K)
    return {
        "ema-cpp": lambda: fused.ema(stats, P),
        "ema-python": lambda: py.ema(stats),
        "dn-update-fused": lambda: fused_u.ema(ops.grad_stats(G, NORM_P, backend="cpp"), P),
        "dn-update-naive": lambda: py_u.update_from_G(G),
    }


def all_fns(G: torch.Tensor) -> dict[str, Callable[[], object]]:
    return {**stats_fns(G), **update_fns(G)}


# ------------------------------------------------------------------------------- interleaved
# (rounds, calls per timed sample) for the interleaved comparison, by P
COMPARE_ROUNDS = {3_000: (15, 40), 100_000: (9, 4), 10_000_000: (3, 1)}


def _time_calls(fn: Callable[[], object], n: int) -> float:
    sync()
    tick = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    return (time.perf_counter() - tick) / n


def compare(P_values=P_VALUES, K_values=K_VALUES, quick: bool = False, seed: int = 0,
            log: Optional[Callable[[str], None]] = None) -> dict:
    """Interleaved timings of every variant for each (P, K): per variant the median seconds per call, and
    the median over rounds of ``variant / baseline`` measured in the same round. Also the time of one
    ``G.sum(-1)`` (a single read of G: the memory-bound floor) and the fused op's GB/s (K*P*4 bytes read)."""
    rng = random.Random(seed)
    out: dict = {"cases": []}
    for P in P_values:
        for K in K_values:
            G = make_G(P, K)
            fns = all_fns(G)
            fns["floor: G.sum(-1)"] = lambda G=G: G.sum(-1)
            rounds, inner = COMPARE_ROUNDS[P]
            if quick:
                rounds = max(2, rounds // 3)
            ema_inner = 200
            for name, fn in fns.items():  # warm-up
                fn()
            samples: dict[str, list[float]] = {k: [] for k in fns}
            for _ in range(rounds):
                order = list(fns)
                rng.shuffle(order)
                for name in order:
                    samples[name].append(_time_calls(fns[name], ema_inner if name.startswith("ema") else inner))

            def ratio(a: str, b: str) -> float:
                return _median([x / y for x, y in zip(samples[a], samples[b])])

            case = {
                "P": P, "K": K, "rounds": rounds,
                "median_us": {k: 1e6 * _median(v) for k, v in samples.items()},
                "naive_over_fused_stats": ratio("stats-naive-loop", "stats-fused-cpp"),
                "ref_over_fused_stats": ratio("stats-torch-ref", "stats-fused-cpp"),
                "python_over_cpp_ema": ratio("ema-python", "ema-cpp"),
                "naive_over_fused_update": ratio("dn-update-naive", "dn-update-fused"),
                "fused_over_floor": ratio("stats-fused-cpp", "floor: G.sum(-1)"),
                "fused_gbs": K * P * 4 / _median(samples["stats-fused-cpp"]) / 1e9,
                "floor_gbs": K * P * 4 / _median(samples["floor: G.sum(-1)"]) / 1e9,
            }
            if "stats-fused-triton" in samples:
                case["naive_over_triton_stats"] = ratio("stats-naive-loop", "stats-fused-triton")
                case["triton_gbs"] = K * P * 4 / _median(samples["stats-fused-triton"]) / 1e9
            out["cases"].append(case)
            if log is not None:
                log(f"  ops P={P} K={K}: " + ", ".join(f"{k} {v:.1f}us" for k, v in case["median_us"].items()))
            del G, fns
    return out


def triton_bandwidth(P: int = 10_000_000, K_values=K_VALUES, reps: int = 50) -> Optional[dict]:
    """CUDA only: the Triton statistics kernel at ``P`` (S = 1, float32): median ms (CUDA events) and
    achieved GB/s (K*P*4 bytes read once) vs the device's peak and a ``torch.clone`` copy bandwidth."""
    if not torch.cuda.is_available():
        return None
    import _machine

    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    res = {"device": props.name, "peak_gbs": _machine.peak_bandwidth_gbs(props.name, props),
           "clone_gbs": _machine.copy_bandwidth_gbs(), "rows": []}
    for K in K_values:
        G = make_G(P, K, "cuda")
        row = {"K": K}
        for name, fn in (("triton", lambda: ops.grad_stats(G, NORM_P, backend="triton")),
                         ("cpp-cuda", lambda: ops.grad_stats(G, NORM_P, backend="cpp")),
                         ("torch.sum", lambda: G.sum(-1))):
            try:
                for _ in range(3):
                    fn()
                torch.cuda.synchronize()
                times = []
                for _ in range(reps):
                    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    a.record()
                    fn()
                    b.record()
                    torch.cuda.synchronize()
                    times.append(a.elapsed_time(b))
                ms = _median(times)
                row[name] = {"ms": ms, "gbs": K * P * 4 / (ms * 1e-3) / 1e9}
            except Exception as exc:  # noqa: BLE001 - e.g. the CUDA build of the C++ op is absent
                row[name] = {"error": f"{type(exc).__name__}: {exc}"}
        res["rows"].append(row)
        del G
        torch.cuda.empty_cache()
    return res


def _median(xs) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def main(argv: Optional[list[str]] = None) -> int:
    import argparse
    import sys

    ap = argparse.ArgumentParser(description="Interleaved weighting-op timings (fused vs plain)")
    ap.add_argument("--quick", action="store_true", help="fewer rounds, P <= 10^5")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads on CPU (default 1)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if DEVICE == "cpu":
        torch.set_num_threads(args.threads)
    P_values = P_VALUES[:2] if args.quick else P_VALUES
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    result = compare(P_values, K_VALUES, quick=args.quick, log=log)
    result["triton_bandwidth"] = triton_bandwidth()
    for c in result["cases"]:
        print(f"P={c['P']:>9} K={c['K']}: naive/fused stats {c['naive_over_fused_stats']:.1f}x, "
              f"python/cpp ema {c['python_over_cpp_ema']:.1f}x, naive/fused DN update {c['naive_over_fused_update']:.2f}x, "
              f"fused {c['fused_gbs']:.2f} GB/s (G.sum {c['floor_gbs']:.2f} GB/s)")
    if args.json:
        from fastpinn import _io

        _io.atomic_write_json(args.json, result)
    return 0


# ------------------------------------------------------------------------------------- pytest
try:  # the helpers above are also imported by bench/run_all.py, which does not need pytest-benchmark
    import pytest_benchmark  # noqa: F401
except ImportError:
    pytestmark = pytest.mark.skip(reason="pytest-benchmark is not installed (pip install pytest-benchmark)")

_CASES = [(P, K) for P in P_VALUES for K in K_VALUES]
_G_CACHE: dict[tuple[int, int], torch.Tensor] = {}


def _G(P: int, K: int) -> torch.Tensor:
    if (P, K) not in _G_CACHE:
        _G_CACHE.clear()  # keep at most one 10^7 tensor alive
        _G_CACHE[(P, K)] = make_G(P, K)
    return _G_CACHE[(P, K)]


def _run(benchmark, fn: Callable[[], object], rounds: int, iterations: int):
    def call():
        out = fn()
        sync()
        return out

    return benchmark.pedantic(call, rounds=rounds, iterations=iterations, warmup_rounds=1)


@pytest.mark.parametrize("P,K", _CASES, ids=[f"P{P}-K{K}" for P, K in _CASES])
@pytest.mark.parametrize("variant", ["stats-fused-cpp", "stats-fused-triton", "stats-torch-ref", "stats-naive-loop"])
def test_grad_stats(benchmark, variant: str, P: int, K: int) -> None:
    if variant == "stats-fused-triton" and DEVICE != "cuda":
        pytest.skip("the Triton statistics kernel is timed on CUDA only (the CPU interpreter is not a benchmark)")
    benchmark.group = f"ops-{DEVICE}-P{P}-K{K}"
    G = _G(P, K)
    fn = stats_fns(G)[variant]
    out = _run(benchmark, fn, *ROUNDS[P])
    ref = ops.grad_stats(G.double(), NORM_P, backend="torch")
    cols = [L.SUM_ABS, L.SUM_SQ, L.MAX_ABS, L.NORM_P, L.M2]
    torch.testing.assert_close(out.double()[..., cols], ref[..., cols], rtol=1e-3, atol=0.0)


@pytest.mark.parametrize("P,K", _CASES, ids=[f"P{P}-K{K}" for P, K in _CASES])
@pytest.mark.parametrize("variant", ["ema-cpp", "ema-python", "dn-update-fused", "dn-update-naive"])
def test_weight_update(benchmark, variant: str, P: int, K: int) -> None:
    benchmark.group = f"ops-{DEVICE}-P{P}-K{K}"
    G = _G(P, K)
    fn = update_fns(G)[variant]
    rounds = EMA_ROUNDS if variant.startswith("ema") else ROUNDS[P]
    _run(benchmark, fn, *rounds)


def test_update_variants_agree() -> None:
    """The Python-float update and the compiled one produce the same weights (so the timings compare
    equal work)."""
    G = make_G(3_000, 3)
    fns = update_fns(G)
    fused = FusedState(3, DEVICE)
    py = PythonState(3)
    for _ in range(5):
        fused.ema(ops.grad_stats(G, NORM_P, backend="cpp"), G.shape[-1])
        applied = py.update_from_G(G)
    torch.testing.assert_close(fused.lam_applied.cpu()[0].double(), torch.tensor(applied, dtype=torch.float64),
                               rtol=1e-5, atol=0.0)
    assert set(fns) == {"ema-cpp", "ema-python", "dn-update-fused", "dn-update-naive"}


if __name__ == "__main__":
    raise SystemExit(main())
