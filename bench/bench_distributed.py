"""Strong and weak scaling of data-parallel training (torch.distributed), 1 vs W ranks, in one run.

* strong: the same problem (``--n-pde`` PDE points) on 1 and on W ranks: speed-up = t_1 / t_W per epoch.
* weak: ``--n-pde`` points *per rank*: 1 rank with N, W ranks with W N: efficiency = t_1 / t_W.

Jobs are interleaved in rounds (1, W, 1, W, ...) so a change of machine load hits both; medians over
rounds. What bounds the ratios is measured in the W-rank job itself: the all-reduce of ``G[S, K, P]``
(+ losses) that update steps make, and of the combined ``[S, P]`` gradient that the other steps make
(K times less data), each timed alone, against the time of a step.

``--overlap`` measures instead the W-rank job's step with the all-reduces overlapped with the backward
passes (``Trainer(overlap=True)``) against the blocking ones, side by side in the same processes (rounds
alternate the two, each mode first in every other round; medians and paired ratios), on a wider network
where the collectives carry more data, for three kinds of step: update steps (DN, tau=1: ``G`` reduced
row by row while the next term's backward runs), the other steps of a dynamic scheme (the combined
gradient reduced bucket by bucket during the last backward) and fixed weights (PINN: buckets during the
single backward); a control row times blocking against blocking the same way, the ratio's noise floor on
this machine. Both modes train the same points from the same start, and the benchmark checks that they end
on bit-identical parameters.

    OMP_NUM_THREADS=1 python bench/bench_distributed.py                   # CPU, gloo, 1 vs 2 processes
    OMP_NUM_THREADS=1 python bench/bench_distributed.py --quick
    python bench/bench_distributed.py --device cuda --ranks 4             # NCCL, one GPU per rank
    OMP_NUM_THREADS=1 python bench/bench_distributed.py --overlap         # overlapped vs blocking, gloo
    python bench/bench_distributed.py --overlap --device cuda --ranks 2 --n-pde 20000 --width 512

Writes ``bench/results/distributed-<machine>-<date>.md`` (``distributed-overlap-...`` with ``--overlap``;
atomically) and prints it.
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
from _stats import fmt_quartiles  # noqa: E402

import fastpinn  # noqa: E402
from fastpinn._io import atomic_write_text  # noqa: E402
from fastpinn.problems import burgers  # noqa: E402


def _job(rank: int, world: int, rdv: str, out: str, device: str, n_pde: int, epochs: int, tau: int, depth: int,
         width: int) -> None:
    torch.set_num_threads(1)
    backend = "nccl" if device == "cuda" else "gloo"
    dev = f"cuda:{rank}" if device == "cuda" else "cpu"
    if device == "cuda":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, init_method=f"file://{rdv}", rank=rank, world_size=world,
                            timeout=_dt.timedelta(seconds=120))
    problem = burgers(0, n_pde=n_pde, n_ic=100, n_bc=200, depth=depth, width=width)
    problem.solution = None  # time training only
    tr = fastpinn.Trainer(problem, fastpinn.DN(tau=tau), device=dev, eval_every=10**9, threads=None)
    tr.train(3)  # warm-up
    dist.barrier()
    h = tr.train(epochs)
    res = {"epoch_s": h.train_seconds / epochs}
    wb = tr.backward
    if world > 1:  # the collectives alone, on the step's own buffers
        for name, buf in (("G", wb.G_packed), ("grad", wb.grad_packed)):
            res[f"allreduce_{name}_s"] = _time_allreduce(buf, device)
            res[f"{name}_elements"] = buf.numel()
    if rank == 0:
        torch.save(res, out)
    dist.barrier()  # nobody tears gloo down while a peer is still using it
    dist.destroy_process_group()


OVERLAP_KINDS = {  # step kind -> (scheme, whether the second mode overlaps); DN with a huge tau updates at
    # step 0 (in the warm-up) only; the control pits blocking against blocking: the noise floor of the ratio
    "update steps (DN, tau=1)": (lambda: fastpinn.DN(tau=1), True),
    "other steps (DN, no update)": (lambda: fastpinn.DN(tau=10**9), True),
    "fixed weights (PINN)": (fastpinn.PINN, True),
    "control: blocking vs blocking (PINN)": (fastpinn.PINN, False),
}


def _write_report(lines: list, args: argparse.Namespace, info: dict, kind: str) -> None:
    """Print the report and write it atomically to ``--out`` or ``results/<kind>-<machine>-<date>.md``."""
    text = "\n".join(lines)
    print(text)
    out = Path(args.out) if args.out else (Path(__file__).resolve().parent / "results" /
                                           f"{kind}-{_machine.device_slug(info)}-{_dt.date.today().isoformat()}"
                                           f"{'-quick' if args.quick else ''}.md")
    atomic_write_text(out, text)
    print(f"wrote {out}")


def _time_allreduce(buf: torch.Tensor, device: str, reps: int = 30) -> float:
    x = buf.clone()
    for _ in range(3):
        dist.all_reduce(x)
    if device == "cuda":
        torch.cuda.synchronize()
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(reps):
        dist.all_reduce(x)
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


def _overlap_job(rank: int, world: int, rdv: str, out: str, device: str, n_pde: int, depth: int, width: int,
                 epochs: int, rounds: int) -> None:
    torch.set_num_threads(1)
    backend = "nccl" if device == "cuda" else "gloo"
    dev = f"cuda:{rank}" if device == "cuda" else "cpu"
    if device == "cuda":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, init_method=f"file://{rdv}", rank=rank, world_size=world,
                            timeout=_dt.timedelta(seconds=300))
    res: dict = {}
    for kind, (scheme, second) in OVERLAP_KINDS.items():
        trainers = {}
        for overlap in (False, True):  # the keys name the modes' slots; the second slot overlaps if `second`
            problem = burgers(0, n_pde=n_pde, n_ic=100, n_bc=200, depth=depth, width=width)
            problem.solution = None  # time training only
            trainers[overlap] = fastpinn.Trainer(problem, scheme(), device=dev, eval_every=10**9, threads=None,
                                                 overlap=overlap and second)
            trainers[overlap].train(2)  # warm-up (and DN's update at step 0)
        before = {m: (t.backward.collectives, t.backward.reduced_elements) for m, t in trainers.items()}
        times: dict[bool, list[float]] = {False: [], True: []}
        for r in range(rounds):
            for overlap in ((False, True) if r % 2 == 0 else (True, False)):
                dist.barrier()
                times[overlap].append(trainers[overlap].train(epochs).train_seconds / epochs)
        steps = rounds * epochs  # burgers is full-batch: one step per epoch
        wb = trainers[False].backward
        buf = wb.G_packed if "update steps" in kind else wb.grad_packed
        res[kind] = {
            "blocking_s": times[False], "overlap_s": times[True],
            "identical": torch.equal(trainers[False].theta, trainers[True].theta),
            "collectives": {m: (t.backward.collectives - before[m][0]) / steps for m, t in trainers.items()},
            "elements": {m: (t.backward.reduced_elements - before[m][1]) / steps for m, t in trainers.items()},
            "allreduce_s": _time_allreduce(buf, device), "n_params": wb.rows.n_params}
        del trainers
    if rank == 0:
        torch.save(res, out)
    dist.barrier()
    dist.destroy_process_group()


def overlap_main(args: argparse.Namespace, argv: list[str] | None) -> int:
    W = args.ranks
    started = time.time()
    info = _machine.describe(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        out = f"{tmp}/res.pt"
        mp.start_processes(_overlap_job, args=(W, f"{tmp}/rdv", out, args.device, args.n_pde, args.depth,
                                               args.width, args.epochs, args.rounds),
                           nprocs=W, join=True, start_method="spawn")
        res = torch.load(out, weights_only=False)
    P = next(iter(res.values()))["n_params"]
    lines = [f"# Overlapped vs blocking gradient all-reduce, {W} ranks "
             f"({'NCCL' if args.device == 'cuda' else 'gloo'})", "",
             f"Machine: {info.get('cpu_model')} ({info.get('cpu_cores_usable')} usable cores, load "
             f"{info.get('load_average')}); device {info.get('device_name')}; torch {torch.__version__}; one "
             f"thread per rank; Burgers {args.depth}x{args.width} MLP (P = {P}), {args.n_pde} PDE points in all "
             f"(+100 IC, 200 BC), float32; {args.rounds} rounds of {args.epochs} steps per mode, the modes "
             f"alternating in the same {W} processes (each first in every other round); measured "
             f"{_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='minutes')}.", "",
             "ms / step: median [quartiles] over rounds; ratio = paired median of blocking / overlapped "
             "(> 1: overlap faster). all-reduce alone: the step's blocking collective timed by itself; ceiling: "
             "that time over the blocking step, the most hiding it could save.", "",
             "| step kind | blocking ms / step | overlapped ms / step | ratio | collectives / step "
             "(blocking, overlapped) | elements / step | all-reduce alone, ms | ceiling | bit-identical |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for kind, r in res.items():
        ratio = statistics.median(b / o for b, o in zip(r["blocking_s"], r["overlap_s"]))
        c, e = r["collectives"], r["elements"]
        lines.append(f"| {kind} | {fmt_quartiles([1e3 * x for x in r['blocking_s']], 1)} | "
                     f"{fmt_quartiles([1e3 * x for x in r['overlap_s']], 1)} | {ratio:.3f} | "
                     f"{c[False]:.0f}, {c[True]:.0f} | {e[False]:.0f}"
                     f"{'' if e[False] == e[True] else f' vs {e[True]:.0f}'} | {1e3 * r['allreduce_s']:.2f} | "
                     f"{100 * r['allreduce_s'] / statistics.median(r['blocking_s']):.1f}% | "
                     f"{'yes' if r['identical'] else 'NO'} |")
    lines += ["", f"Load average after the run: {_machine.describe(args.device).get('load_average')} (the "
              f"{W} ranks themselves add {W}).", "",
              f"Wall time {time.time() - started:.0f} s. Command: `python bench/bench_distributed.py "
              f"{' '.join(argv if argv is not None else sys.argv[1:])}`", ""]
    _write_report(lines, args, info, "distributed-overlap")
    if not all(r["identical"] for r in res.values()):
        print("ERROR: the overlapped run did not end on the blocking run's parameters", file=sys.stderr)
        return 1
    return 0


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


def run_job(world: int, device: str, n_pde: int, epochs: int, tau: int, depth: int, width: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = f"{tmp}/res.pt"
        mp.start_processes(_job, args=(world, f"{tmp}/rdv", out, device, n_pde, epochs, tau, depth, width),
                           nprocs=world, join=True, start_method="spawn")
        return torch.load(out, weights_only=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--ranks", type=int, default=2, help="W, the ranks of the parallel job (default 2)")
    ap.add_argument("--n-pde", type=int, default=None,
                    help="PDE points (strong: total; weak: per rank; default 8000; 1000 with --overlap)")
    ap.add_argument("--epochs", type=int, default=None, help="timed epochs per job (default 40; with --overlap "
                    "steps per mode and round, default 10)")
    ap.add_argument("--tau", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3; 8 with --overlap)")
    ap.add_argument("--width", type=int, default=None, help="MLP width (default 32; 256 with --overlap)")
    ap.add_argument("--depth", type=int, default=4, help="MLP hidden layers (default 4)")
    ap.add_argument("--overlap", action="store_true",
                    help="overlapped vs blocking all-reduce in the W-rank job instead of the scaling jobs")
    ap.add_argument("--quick", action="store_true", help="a smoke run (small, few rounds)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    #                      n_pde epochs rounds width: defaults, then --quick's (explicit values win)
    presets = {(False, False): (8000, 40, 3, 32), (False, True): (1000, 5, 1, 32),
               (True, False): (1000, 10, 8, 256), (True, True): (400, 2, 2, 64)}[args.overlap, args.quick]
    for name, value in zip(("n_pde", "epochs", "rounds", "width"), presets):
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.overlap:
        return overlap_main(args, argv)
    W = args.ranks
    started = time.time()
    info = _machine.describe(args.device)
    jobs = {"strong-1": (1, args.n_pde), f"strong-{W}": (W, args.n_pde),
            "weak-1": (1, args.n_pde), f"weak-{W}": (W, W * args.n_pde)}
    samples: dict[str, list[dict]] = {k: [] for k in jobs}
    for _ in range(args.rounds):
        for key, (world, n) in jobs.items():  # interleaved: 1, W, 1, W
            samples[key].append(run_job(world, args.device, n, args.epochs, args.tau, args.depth, args.width))

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
             f"thread per rank; Burgers {args.depth}x{args.width} MLP, DN tau={args.tau}, float32, {args.epochs} timed epochs per job, "
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
    _write_report(lines, args, info, "distributed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
