"""Strong and weak scaling of data-parallel training (torch.distributed), 1 vs W ranks, in one run.

* strong: the same problem (``--n-pde`` PDE points) on 1 and on W ranks: speed-up = t_1 / t_W per epoch.
* weak: ``--n-pde`` points *per rank*: 1 rank with N, W ranks with W N: efficiency = t_1 / t_W.

Jobs are interleaved in rounds (1, W, 1, W, ...) so a change of machine load hits both; medians over
rounds. What bounds the ratios is measured in the W-rank job itself: the all-reduce of ``G[S, K, P]``
(+ losses) that update steps make, and of the combined ``[S, P]`` gradient that the other steps make
(K times less data), each timed alone, against the time of a step.

    OMP_NUM_THREADS=1 python bench/bench_distributed.py                   # CPU, gloo, 1 vs 2 processes
    OMP_NUM_THREADS=1 python bench/bench_distributed.py --quick
    python bench/bench_distributed.py --device cuda --ranks 4             # NCCL, one GPU per rank

Writes ``bench/results/distributed-<machine>-<date>.md`` (atomically) and prints it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _machine  # noqa: E402

import fastpinn  # noqa: E402
from fastpinn._io import atomic_write_text  # noqa: E402
from fastpinn.problems import burgers  # noqa: E402


def _job(rank: int, world: int, rdv: str, out: str, device: str, n_pde: int, epochs: int, tau: int) -> None:
    torch.set_num_threads(1)
    backend = "nccl" if device == "cuda" else "gloo"
    dev = f"cuda:{rank}" if device == "cuda" else "cpu"
    if device == "cuda":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, init_method=f"file://{rdv}", rank=rank, world_size=world,
                            timeout=_dt.timedelta(seconds=120))
    problem = burgers(0, n_pde=n_pde, n_ic=100, n_bc=200, depth=4, width=32)
    problem.solution = None  # time training only
    tr = fastpinn.Trainer(problem, fastpinn.DN(tau=tau), device=dev, eval_every=10**9, threads=None)
    tr.train(3)  # warm-up
    dist.barrier()
    h = tr.train(epochs)
    res = {"epoch_s": h.train_seconds / epochs}
    wb = tr.backward
    if world > 1:  # the collectives alone, on the step's own buffers
        for name, buf in (("G", wb._G_comm), ("grad", wb._grad_comm)):
            x = buf.clone()
            for _ in range(3):
                dist.all_reduce(x)
            reps = 30
            if device == "cuda":
                torch.cuda.synchronize()
            dist.barrier()
            t0 = time.perf_counter()
            for _ in range(reps):
                dist.all_reduce(x)
            if device == "cuda":
                torch.cuda.synchronize()
            res[f"allreduce_{name}_s"] = (time.perf_counter() - t0) / reps
            res[f"{name}_elements"] = buf.numel()
    if rank == 0:
        torch.save(res, out)
    dist.barrier()  # nobody tears gloo down while a peer is still using it
    dist.destroy_process_group()


def _load_note(info: dict, W: int, step_s: float, comm_s: float) -> str:
    """Which bound the numbers show: the collectives, or a machine whose cores are not free for W ranks."""
    load = (info.get("load_average") or (0.0,))[0]
    cores = int(info.get("cpu_cores_usable") or 1)
    if info.get("device") == "cpu" and (W > cores or load + W > cores + 0.5):
        return (f"Bound: the cores, not the collectives. {W} ranks need {W} free cores; this machine has {cores} "
                f"with a 1-minute load average of {load:.1f} from other work, so the ranks time-share cores and the "
                f"ratios measure that (the collectives are {100 * comm_s / step_s:.1f}% of a step). Rerun on an idle "
                "machine or on several GPUs (`--device cuda --ranks N`) for the method's own scaling.")
    return (f"Bound: per step, compute on 1/{W} of the points plus the collectives ({100 * comm_s / step_s:.1f}% of a "
            "step); small networks on few points are latency-bound in the all-reduce.")


def run_job(world: int, device: str, n_pde: int, epochs: int, tau: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = f"{tmp}/res.pt"
        mp.start_processes(_job, args=(world, f"{tmp}/rdv", out, device, n_pde, epochs, tau), nprocs=world,
                           join=True, start_method="spawn")
        return torch.load(out, weights_only=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--ranks", type=int, default=2, help="W, the ranks of the parallel job (default 2)")
    ap.add_argument("--n-pde", type=int, default=8000, help="PDE points (strong: total; weak: per rank)")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--tau", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a smoke run (small, 1 round)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.n_pde, args.epochs, args.rounds = 1000, 5, 1
    W = args.ranks
    started = time.time()
    info = _machine.describe(args.device)
    jobs = {"strong-1": (1, args.n_pde), f"strong-{W}": (W, args.n_pde),
            "weak-1": (1, args.n_pde), f"weak-{W}": (W, W * args.n_pde)}
    samples: dict[str, list[dict]] = {k: [] for k in jobs}
    for _ in range(args.rounds):
        for key, (world, n) in jobs.items():  # interleaved: 1, W, 1, W
            samples[key].append(run_job(world, args.device, n, args.epochs, args.tau))

    def med(key: str, field: str = "epoch_s") -> float:
        return statistics.median(s[field] for s in samples[key])

    def paired(a: str, b: str) -> float:
        return statistics.median(x["epoch_s"] / y["epoch_s"] for x, y in zip(samples[a], samples[b]))

    steps = 1  # burgers is full-batch: one step per epoch
    par = samples[f"strong-{W}"]
    g_s, c_s = med(f"strong-{W}", "allreduce_G_s"), med(f"strong-{W}", "allreduce_grad_s")
    per_step_comm = (g_s + (args.tau - 1) * c_s) / args.tau  # one G reduce per tau steps, the rest [S, P]
    lines = [f"# Data-parallel scaling, 1 vs {W} ranks ({'NCCL' if args.device == 'cuda' else 'gloo'})", "",
             f"Machine: {info.get('cpu_model')} ({info.get('cpu_cores_usable')} usable cores, load "
             f"{info.get('load_average')}); device {info.get('device_name')}; torch {torch.__version__}; one "
             f"thread per rank; Burgers 4x32 MLP, DN tau={args.tau}, float32, {args.epochs} timed epochs per job, "
             f"{args.rounds} interleaved rounds (medians); measured "
             f"{_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='minutes')}.", "",
             "| job | PDE points (total) | ms / epoch | ratio t_1 / t_W |", "|---|---:|---:|---:|",
             f"| strong, 1 rank | {args.n_pde} | {1e3 * med('strong-1'):.1f} | |",
             f"| strong, {W} ranks | {args.n_pde} | {1e3 * med(f'strong-{W}'):.1f} | "
             f"{paired('strong-1', f'strong-{W}'):.2f} (speed-up; ideal {W}) |",
             f"| weak, 1 rank | {args.n_pde} | {1e3 * med('weak-1'):.1f} | |",
             f"| weak, {W} ranks | {W * args.n_pde} | {1e3 * med(f'weak-{W}'):.1f} | "
             f"{paired('weak-1', f'weak-{W}'):.2f} (efficiency; ideal 1) |", "",
             "What bounds it (measured in the strong-scaling job, each collective timed alone):", "",
             f"- all-reduce of G[S, K, P] + losses ({par[0]['G_elements']} elements), update steps: "
             f"{1e3 * g_s:.3f} ms",
             f"- all-reduce of the combined [S, P] gradient + losses ({par[0]['grad_elements']} elements), "
             f"other steps: {1e3 * c_s:.3f} ms ({g_s / max(c_s, 1e-12):.1f}x faster for "
             f"{par[0]['G_elements'] / par[0]['grad_elements']:.1f}x less data)",
             f"- mean collective time per step {1e3 * per_step_comm:.3f} ms = "
             f"{100 * per_step_comm / (med(f'strong-{W}') / steps):.1f}% of a {W}-rank step", "",
             _load_note(info, W, med(f"strong-{W}"), per_step_comm), "",
             f"Wall time {time.time() - started:.0f} s. Command: `python bench/bench_distributed.py "
             f"{' '.join(argv if argv is not None else sys.argv[1:])}`", ""]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out) if args.out else (Path(__file__).resolve().parent / "results" /
                                           f"distributed-{_machine.device_slug(info)}-{_dt.date.today().isoformat()}"
                                           f"{'-quick' if args.quick else ''}.md")
    atomic_write_text(out, text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
