"""The ``fastpinn`` command line: the commands and their exit codes (the arguments: :mod:`fastpinn.cli_options`).

    fastpinn train poisson --scheme dn --epochs 3000 --device cpu
    fastpinn train burgers --scheme ma --beta 0.99 --seeds 10 --out runs/burgers-ma
    fastpinn reproduce table2 --seeds 10
    fastpinn demo

Exit status (errors are one line on stderr, no traceback):

    0    success (also: the run directory already holds this finished run)
    1    training diverged (NaN/Inf); the last finite state is in checkpoint.pt, metrics.json says where
    2    bad argument (or an output directory holding something else, or a checkpoint of another
         configuration)
    3    filesystem or environment fault: read-only or full disk, an output path that is a file, a corrupt
         checkpoint, CUDA requested but not available, an invalid $FASTPINN_THREADS
    4    data-parallel run (torchrun): another rank died or a collective timed out; rerun the same
         command to continue from the last checkpoint
    5    the output directory is in use: another live fastpinn process writes it (its pid is named)
    6    training failed for another reason than divergence (the cause in one line); the same command
         starts again
    130  interrupted by SIGINT (Ctrl-C), 143 by SIGTERM: a checkpoint was written first; rerun the same
         command (or add --resume) to continue
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Optional, Sequence

from .cli_options import UsageError, build_parser

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_DIVERGED", "EXIT_USAGE", "EXIT_ENVIRONMENT", "EXIT_SIGINT",
           "EXIT_SIGTERM", "EXIT_PEER"]

EXIT_OK, EXIT_DIVERGED, EXIT_USAGE, EXIT_ENVIRONMENT, EXIT_PEER, EXIT_BUSY, EXIT_RUN_FAILED = 0, 1, 2, 3, 4, 5, 6
EXIT_SIGINT, EXIT_SIGTERM = 128 + signal.SIGINT, 128 + signal.SIGTERM  # 130, 143: the shell's convention


def _compile_arg(args: argparse.Namespace) -> "bool | str":
    """``--compile`` [on|off|auto] as the Trainer's ``compile`` argument."""
    value = getattr(args, "compile", "auto")
    return "auto" if value == "auto" else value == "on"


def _training(args: argparse.Namespace) -> dict:
    """The RunConfig fields of :func:`_add_training_options`."""
    return {"optimizer": args.optimizer, "lbfgs_iters": args.lbfgs_iters, "lr_schedule": args.lr_schedule,
            "depth": args.depth, "width": args.width, "activation": args.activation,
            "input_scaling": not args.no_input_scaling}


# ----------------------------------------------------------------------------------------- helpers
def _err(msg: str) -> None:
    print(msg.strip().splitlines()[0] if msg.strip() else "fastpinn: error", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _weight_warnings_as_lines():
    """Show the weight watcher's reports as ``warning: ...`` lines on stderr, as with a progress bar, instead of
    Python's ``FILE:LINE: WeightWarning: ...`` plus a source line of fastpinn's (``--no-progress``, compare)."""
    from .weight_watch import WeightWarning

    with warnings.catch_warnings():  # restores the previous showwarning: main() may be called in-process
        previous = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, WeightWarning):
                print(f"warning: {message}", file=sys.stderr, flush=True)
            else:
                previous(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def _os_error(exc: OSError) -> str:
    """``cannot write 'runs/x/config.json': Read-only file system`` -- the path and the cause."""
    if exc.filename is not None and exc.strerror:
        return f"cannot use {str(exc.filename)!r}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _device(arg: Optional[str]) -> str:
    if arg is not None:
        return arg
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _sizes(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k) for k in ("n_pde", "n_bc", "n_ic", "batch_size") if getattr(args, k, None) is not None}


def _fmt_err(mean: Optional[float], sem: Optional[float], n: int) -> str:
    if mean is None or not math.isfinite(mean):
        return "n/a"
    if n > 1 and sem is not None and math.isfinite(sem):
        return f"{mean:.3e} ± {sem:.1e} (mean ± s.e. over {n} seeds)"
    return f"{mean:.3e}"


# ------------------------------------------------------------------------------------- commands
def _fidelity(args: argparse.Namespace) -> dict:
    attention = {"gamma": args.rba_gamma, "eta": args.rba_eta} if getattr(args, "rba", False) else None
    return {"update_schedule": args.update_schedule, "init": args.init, "keep_best": args.keep_best,
            "patience": args.patience, "attention": attention}


def _run_options(args: argparse.Namespace) -> dict:
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        raise ValueError(f"--checkpoint-every must be an integer >= 1 (epochs), got {args.checkpoint_every}")
    if not (math.isfinite(args.checkpoint_seconds) and args.checkpoint_seconds >= 0):
        raise ValueError(f"--checkpoint-seconds must be a number >= 0, got {args.checkpoint_seconds}")
    return {"checkpoint_every": args.checkpoint_every, "checkpoint_seconds": args.checkpoint_seconds or None}


def _cmd_train(args: argparse.Namespace) -> int:
    from .resampling import resampling_from_args
    from .schemes import scheme_params_from_args
    from .run import RunConfig, build_trainer, directory, is_user_problem, nothing_to_balance, plan_run_dir, train_run
    from .data_parallel import launcher_rank_and_world

    if args.seeds is not None:
        if args.seeds < 1:
            raise ValueError(f"--seeds must be an integer >= 1, got {args.seeds}")
        seeds, ensemble = tuple(range(args.seeds)), True
    else:
        seed = 0 if args.seed is None else args.seed
        if seed < 0:
            raise ValueError(f"--seed must be >= 0, got {seed}")
        seeds, ensemble = (seed,), False
    if args.resume and args.force:
        raise ValueError("--resume and --force contradict each other (continue the run, or start afresh)")
    device = _device(args.device)
    rank, world = launcher_rank_and_world()
    if world > 1:  # torchrun: one model, its points split over the ranks (the Trainer sees the process group)
        device = _join_process_group(device, args.collective_timeout)
    log = _log if rank == 0 else None  # rank 0 speaks for the job; errors are printed by every rank
    cfg = RunConfig(problem=args.problem, scheme=args.scheme,
                    scheme_params=scheme_params_from_args([args.scheme], args, cli_defaults=True),
                    seeds=seeds, ensemble=ensemble,
                    epochs=args.epochs, lr=args.lr, device=device, dtype=args.dtype, backend=args.backend,
                    eval_every=args.eval_every, problem_kwargs=_sizes(args), compile=_compile_arg(args),
                    step_mode=args.step_mode, derivative_method=args.derivative_method,
                    reference_term=args.reference_term, resampling=resampling_from_args(args),
                    **_fidelity(args), **_training(args))
    options = _run_options(args)
    if args.resume and not args.out:
        raise ValueError("--resume needs --out (the directory of the run to continue)")
    name = Path(args.problem.rpartition(":")[0]).stem + "-" + args.problem.rpartition(":")[2] \
        if is_user_problem(args.problem) else args.problem
    out = Path(args.out) if args.out else directory.default_run_dir(name, args.scheme)
    cfg.validate()
    action = plan_run_dir(cfg, out, force=args.force, resume=True if args.resume else None)  # before any build
    prebuilt = build_trainer(cfg)  # every ValueError surfaces here, before anything is written
    if log is not None:
        ranks = f" x {world} ranks (data parallel)" if world > 1 else ""
        log(f"fastpinn train: {'resuming ' if action == 'resume' else ''}{args.problem} with {cfg.describe()}, "
            f"seeds {list(seeds)}, {cfg.total_epochs(prebuilt[0].epochs if cfg.epochs is None else cfg.epochs)} "
            f"epochs on {device}{ranks} -> {out}")
        one_term = nothing_to_balance(prebuilt[0], args.problem)
        if one_term and args.scheme != "pinn":
            log(f"note: {one_term}, so --scheme {args.scheme} trains it as --scheme pinn would, at more cost per step")
    m = train_run(cfg, out, force=args.force, resume=True if args.resume else None, progress=not args.no_progress,
                  figures=not args.no_figures, prebuilt=prebuilt, log=log, **options)
    err = _fmt_err(m.get("rel_l2_mean"), m.get("rel_l2_sem"), int(m.get("n_seeds", 1)))
    if m.get("status") == "diverged":
        _err(f"fastpinn train: {out} holds a run of this configuration that diverged: {m.get('error', '')}")
        return EXIT_DIVERGED
    if rank == 0:
        print(f"{args.problem}/{args.scheme}: rel. L2 = {err}{_fmt_coefficients(m.get('coefficients'))}; training "
              f"{m['train_seconds']:.1f} s ({m['ms_per_epoch']:.1f} ms/epoch, {m['epochs']} epochs); results in {out}",
              flush=True)
    return EXIT_OK


def _fmt_coefficients(coefficients: Optional[dict]) -> str:
    """``"; learned C1 = 9.98, C2 = ..."`` for an inverse problem (one value per seed, joined by "/"), else ""."""
    if not coefficients:
        return ""
    return "; learned " + ", ".join(f"{name} = " + " / ".join(f"{v:.4g}" for v in values)
                                    for name, values in coefficients.items())


def _join_process_group(device: str, timeout: float) -> str:
    """Join torchrun's process group (NCCL for a CUDA device, one GPU per local rank; gloo otherwise)
    and return this rank's device."""
    import datetime
    import os

    import torch
    import torch.distributed as dist

    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"--collective-timeout must be a number of seconds > 0, got {timeout}")
    if not dist.is_available():
        raise ValueError("this torch build has no torch.distributed: train in one process")
    cuda = torch.device(device).type == "cuda"
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0") or 0)
        if torch.device(device).index is None:
            device = f"cuda:{local}"
        torch.cuda.set_device(torch.device(device))
    if not dist.is_initialized():
        from .collectives import CollectiveError

        try:
            dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=timeout))
        except (RuntimeError, ValueError, dist.DistError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CollectiveError(f"cannot join the torchrun process group ({first}); launch with torchrun, "
                                  "which sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT") from exc
    return device


def _cmd_predict(args: argparse.Namespace) -> int:
    from .run import load_run, read_points, write_array

    cfg, problem, trainer = load_run(args.run_dir, device=args.device, problem=args.problem)
    points = read_points(args.points, len(problem.coords))
    pred = trainer.predict(points).double().cpu().numpy()
    if args.member is not None:
        if pred.ndim != 3 or not 0 <= args.member < pred.shape[0]:
            raise ValueError(f"--member must index an ensemble member of this run (it has "
                             f"{pred.shape[0] if pred.ndim == 3 else 'no'} members), got {args.member}")
        pred = pred[args.member]
    header = [f"u{i}" for i in range(pred.shape[-1])]
    write_array(args.out, pred, header)
    _log(f"fastpinn predict: {len(points)} points -> {args.out} (shape {list(pred.shape)}, epoch {trainer.epoch})")
    return EXIT_OK


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from . import _io
    from .run import evaluate_run, read_points

    points = values = None
    if args.points is not None or args.values is not None:
        if args.points is None or args.values is None:
            raise ValueError("--points and --values go together")
        points = read_points(args.points, 0)  # evaluate_run checks the width against the run's coordinates
        values = read_points(args.values, 0, "values")
    output = None
    if args.output is not None:
        try:
            output = [int(i) for i in args.output.split(",")]
        except ValueError:
            raise ValueError(f"--output must be output indices such as 0 or 0,1, got {args.output!r}") from None
    result = evaluate_run(args.run_dir, points, values, device=args.device, problem=args.problem, output=output)
    text = _io.json_text(result)  # standard JSON: a non-finite error is null, not Infinity
    print(text, flush=True)
    if args.out:
        _io.atomic_write_text(args.out, text + "\n")
    return EXIT_OK


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .run import reproduce

    if args.table == "demo":
        return _cmd_demo(args)
    if args.report_only:
        return _report_only(args)
    res = reproduce(args.table, seeds=args.seeds, epochs=args.epochs, device=_device(args.device), dtype=args.dtype,
                    backend=args.backend, out=args.out, problem=args.problem, problem_kwargs=_sizes(args),
                    lr=args.lr, eval_every=args.eval_every, compile=_compile_arg(args), step_mode=args.step_mode,
                    derivative_method=args.derivative_method, force=args.force,
                    progress=not args.no_progress,
                    figures=not args.no_figures, log=_log, fidelity=_fidelity(args), run_options=_run_options(args),
                    shard=args.shard, seeds_per_run=args.seeds_per_run)
    if res.missing:
        print(f"this shard is done; waiting for the other shards' runs: {', '.join(res.missing)}", flush=True)
        return 0
    print(res.markdown, flush=True)
    print(f"written: {res.out_dir / 'table.md'}, {res.out_dir / 'table.csv'}", flush=True)
    return 0


def _report_only(args: argparse.Namespace) -> int:
    from .run.sweeps import report

    # The device only enters a run's identity as its type: a CUDA sweep can be reported on a CPU machine.
    res = report(args.table, seeds=args.seeds, epochs=args.epochs, device=_device(args.device), dtype=args.dtype,
                 out=args.out, problem=args.problem, problem_kwargs=_sizes(args), lr=args.lr,
                 fidelity=_fidelity(args), seeds_per_run=args.seeds_per_run)
    print(res.markdown, end="", flush=True)
    if res.missing:
        _log(f"unfinished: {', '.join(res.missing)}; rerun without --report-only to train them")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from .run import COMPARE_DEFAULT, compare
    from .run.compare import parse_entry
    from .schemes import scheme_params_from_args

    if args.schemes is not None and not args.schemes:
        raise ValueError("--schemes must name at least one scheme (comma-separated), got none")
    names = args.schemes or COMPARE_DEFAULT
    bases = list(dict.fromkeys(parse_entry(n).scheme for n in names))  # dn+clamp: a remedy of dn
    res = compare(args.problem, names, seeds=args.seeds, epochs=args.epochs,
                  scheme_params=scheme_params_from_args(bases, args),
                  device=_device(args.device), dtype=args.dtype, backend=args.backend, out=args.out,
                  problem_kwargs=_sizes(args), eval_every=args.eval_every, lr=args.lr, force=args.force,
                  options={**_training(args), "init": args.init},
                  progress=not args.no_progress, figure=not args.no_figures, log=_log,
                  step_timing=not args.no_step_timing)
    table, _, winner = res.markdown.rstrip("\n").rpartition("\n")
    print(table, flush=True)
    print(f"written: {res.out_dir / 'compare.md'}, {res.out_dir / 'compare.csv'}, {res.out_dir / 'compare.json'}"
          + (f", {res.figure}" if res.figure else ""), flush=True)
    print(winner, flush=True)  # last: the best scheme and the command that trains it
    if res.winner is None and any(r["status"] == "diverged" for r in res.rows):
        return EXIT_DIVERGED  # every scheme diverged: no answer, as a lone diverged run reports it
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from .run import DEMO_DEFAULTS, demo

    def g(name: str, default: object = None) -> object:
        # `reproduce demo` has fewer options; a given 0 is passed on (demo() refuses it), not replaced by the default
        value = getattr(args, name, None)
        return DEMO_DEFAULTS.get(name, default) if value is None else value

    epochs, n_pde, n_bc, beta, seed = g("epochs"), g("n_pde"), g("n_bc"), g("beta"), g("seed")
    device = _device(args.device)
    t0 = time.perf_counter()
    res = demo(epochs=epochs, n_pde=n_pde, n_bc=n_bc, beta=beta, seed=seed, device=device, dtype=args.dtype,
               backend=args.backend, out=args.out, force=args.force, progress=not args.no_progress,
               figures=not args.no_figures, eval_every=g("eval_every", 250),
               compile=_compile_arg(args), step_mode=getattr(args, "step_mode", "eager"),
               derivative_method=getattr(args, "derivative_method", "auto"), log=_log)
    wall = time.perf_counter() - t0
    p, d = res["pinn"], res["dn"]
    print(f"\nPoisson 2D (u = cos 4πx sin 4πy on [0,1]²): {epochs} epochs, {n_pde} PDE + {n_bc} boundary points, "
          f"seed {seed}, {device}", flush=True)
    print(f"{'scheme':<22}{'rel. L2':>12}{'train (s)':>12}", flush=True)
    print(f"{'PINN':<22}{p['rel_l2']:>12.3e}{p['train_seconds']:>12.1f}", flush=True)
    print(f"{f'DN-PINN (β={beta:g})':<22}{d['rel_l2']:>12.3e}{d['train_seconds']:>12.1f}", flush=True)
    print(f"PINN error / DN-PINN error = {res['ratio']:.1f}x   (total {wall:.0f} s; runs in {res['out']})", flush=True)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``fastpinn`` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        _err(str(exc))
        return 2
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)
    import torch

    from .collectives import CollectiveError
    from .run import Interrupted, RunFailedError
    from .run.lock import RunDirBusyError
    from .data_parallel import launcher_rank_and_world
    from .trainer import CorruptCheckpointError, DeviceUnavailableError, NonFiniteError

    import os

    from .threads import ENV as THREADS_ENV
    from .threads import ThreadsEnvironmentError, environment_threads, oversubscription_warning

    # One line on stderr and the documented exit status, per kind of failure (the first match wins).
    exit_by_error = {CollectiveError: EXIT_PEER, RunDirBusyError: EXIT_BUSY, RunFailedError: EXIT_RUN_FAILED,
                      DeviceUnavailableError: EXIT_ENVIRONMENT, CorruptCheckpointError: EXIT_ENVIRONMENT,
                      ThreadsEnvironmentError: EXIT_ENVIRONMENT}

    threads = torch.get_num_threads()
    env_before = os.environ.get(THREADS_ENV)
    want = getattr(args, "threads", None)
    if hasattr(args, "threads"):  # a training command: $FASTPINN_THREADS is checked before anything is written
        try:
            fixed = environment_threads() if want is None else want
        except ThreadsEnvironmentError as exc:
            _err(f"fastpinn {args.command}: error: {exc}")
            return EXIT_ENVIRONMENT
        warning = oversubscription_warning(fixed, "--threads" if want else THREADS_ENV) if fixed else None
        if warning:
            _err(f"fastpinn {args.command}: {warning}")
    # One policy (fastpinn.threads): every trainer resolves threads="auto" at train() -- the idle cores
    # then, at least one -- unless --threads (or $FASTPINN_THREADS) fixes the count.
    if want is not None:
        os.environ[THREADS_ENV] = str(want if want > 0 else threads)
    # Reuse freed activation memory instead of page-faulting it in again every step (fastpinn.malloc).
    from .malloc import retain_freed_memory

    retain_freed_memory()

    prog = f"fastpinn {args.command}"
    try:
        rank, world = launcher_rank_and_world()
    except ValueError as exc:
        _err(f"{prog}: error: {exc}")
        return EXIT_USAGE
    if world > 1:
        prog = f"{prog} [rank {rank}/{world}]"
        if args.command not in ("train", "reproduce"):
            # every rank would do the whole job and write the same files: refuse instead of racing
            _err(f"{prog}: error: 'fastpinn {args.command}' runs in one process; under torchrun use 'fastpinn "
                 "train' (one run, its points split over the ranks) or 'fastpinn reproduce' (a sweep split "
                 "over the ranks)")
            return EXIT_USAGE
    commands = {"train": _cmd_train, "reproduce": _cmd_reproduce, "compare": _cmd_compare, "predict": _cmd_predict,
                "evaluate": _cmd_evaluate, "demo": _cmd_demo}
    try:
        with _weight_warnings_as_lines():
            return commands[args.command](args)
    except NonFiniteError as exc:
        where = f"; last good checkpoint: {exc.checkpoint}" if exc.checkpoint else ""
        _err(f"{prog}: {exc}{where}")
        return EXIT_DIVERGED
    except Interrupted as exc:
        _err(f"{prog}: {exc}")
        return EXIT_SIGTERM if exc.signum == signal.SIGTERM else EXIT_SIGINT
    except tuple(exit_by_error) as exc:  # before ValueError/OSError: some of these are ValueErrors
        _err(f"{prog}: error: {exc}")
        return next(code for kind, code in exit_by_error.items() if isinstance(exc, kind))
    except OSError as exc:
        _err(f"{prog}: error: {_os_error(exc)}")
        return EXIT_ENVIRONMENT
    except ValueError as exc:
        _err(f"{prog}: error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err(f"{prog}: interrupted")
        return EXIT_SIGINT
    finally:
        if world > 1 and args.command == "train":
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()
        torch.set_num_threads(threads)  # main() may be called in-process (tests, notebooks)
        if want is not None:
            if env_before is None:
                os.environ.pop(THREADS_ENV, None)
            else:
                os.environ[THREADS_ENV] = env_before


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
