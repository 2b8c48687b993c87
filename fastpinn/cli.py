"""The ``fastpinn`` command line.

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
import math
import signal
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_DIVERGED", "EXIT_USAGE", "EXIT_ENVIRONMENT", "EXIT_SIGINT",
           "EXIT_SIGTERM", "EXIT_PEER"]

EXIT_OK, EXIT_DIVERGED, EXIT_USAGE, EXIT_ENVIRONMENT, EXIT_PEER, EXIT_BUSY, EXIT_RUN_FAILED = 0, 1, 2, 3, 4, 5, 6
#: fastpinn imports no code a run directory names: a run of a problem file is loaded with the file named here.
PROBLEM_FILE_HELP = ("for a run of your own problem file: that file and function, checked against the SHA-256 the "
                     "run recorded (fastpinn never imports a file named inside a run directory)")
EXIT_SIGINT, EXIT_SIGTERM = 128 + signal.SIGINT, 128 + signal.SIGTERM  # 130, 143: the shell's convention


class _UsageError(Exception):
    """A bad command line: printed as one line, exit status 2."""


#: Largest magnitude an integer option takes (a C int): far beyond any run, where 2**63 used to overflow a
#: torch size deep inside training, with a traceback.
MAX_INT_OPTION = 2**31 - 1


def _bounded_int(text: str) -> int:
    value = int(text)  # a ValueError is argparse's "invalid int value"
    if abs(value) > MAX_INT_OPTION:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_INT_OPTION} in magnitude, got {text}")
    return value


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        # Every `type=int` option (of each subcommand, which is a _Parser too) parses with _bounded_int, so an
        # option added later is bounded as well.
        self.register("type", int, _bounded_int)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: error: {message} (see '{self.prog} --help')")


def _thread_count(text: str) -> int:
    from .threads import MAX_THREADS

    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if not 0 <= v <= MAX_THREADS:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, {MAX_THREADS}], got {v}")
    return v


def _compile_arg(args: argparse.Namespace) -> "bool | str":
    """``--compile`` [on|off|auto] as the Trainer's ``compile`` argument."""
    value = getattr(args, "compile", "auto")
    return "auto" if value == "auto" else value == "on"


def _add_common(p: argparse.ArgumentParser, *, sizes: bool = True) -> None:
    """Options shared by train, reproduce and demo (their choices read from the registries that hold them)."""
    from .network import INITS
    from .run import BACKENDS, DTYPES
    from .trainer import STEP_MODES, derivative_method_choices
    from .weighter import UPDATE_SCHEDULES

    methods = derivative_method_choices()
    p.add_argument("--device", default=None,
                   help="cpu or cuda[:N] (default: cuda if available, else cpu)")
    p.add_argument("--dtype", choices=tuple(DTYPES), default="float32", help="precision (default float32)")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="op backend for the weight statistics (default auto: the compiled ops)")
    p.add_argument("--out", default=None, help="output directory")
    p.add_argument("--force", action="store_true",
                   help="start afresh in a non-empty output directory (the old run's files are replaced only once "
                        "the new run has written its first checkpoint)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-figures", action="store_true", help="write no PNG figures")
    p.add_argument("--compile", nargs="?", const="on", default="auto", choices=("on", "off", "auto"),
                   help="compile each loss term with torch.compile (one-off warm-up reported as warmup_seconds): "
                        "on (also plain --compile), off, or auto (default): time the first 20 epochs eagerly and "
                        "compile only if the rest of the run would save more than the warm-up costs")
    p.add_argument("--step-mode", choices=STEP_MODES, default="eager",
                   help="eager (default): weight-update decision from the host epoch counter; device: decision on "
                        "the device, statistics every step; cuda_graph: the device step captured in a CUDA graph "
                        "and replayed (CUDA only)")
    p.add_argument("--derivative-method", choices=methods, default="auto",
                   help="how input derivatives are computed: auto (the fastest that applies to the network), one of "
                        f"the registered methods ({', '.join(m for m in methods if m not in ('auto', 'tune'))}), "
                        "or tune (time each on this device, check they agree, use the fastest per loss term)")
    p.add_argument("--threads", type=_thread_count, default=None,
                   help="torch CPU threads; 0 keeps torch's default (default: as many as there are idle cores when "
                        "training starts, at least 1 -- fast on an idle machine, no collapse on a busy one; "
                        "see fastpinn.threads; $FASTPINN_THREADS overrides)")
    if sizes:
        p.add_argument("--n-pde", type=int, default=None, help="number of PDE collocation points")
        p.add_argument("--n-bc", type=int, default=None, help="number of boundary points")
        p.add_argument("--n-ic", type=int, default=None, help="number of initial-condition points")
        p.add_argument("--batch-size", type=int, default=None, help="PDE mini-batch size (Allen-Cahn)")
        p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
        p.add_argument("--eval-every", type=int, default=100,
                       help="epochs between rel. L2 evaluations / finiteness checks (default 100)")
        p.add_argument("--checkpoint-every", type=int, default=None, metavar="EPOCHS",
                       help="also write checkpoint.pt every EPOCHS epochs (at the next --eval-every boundary)")
        p.add_argument("--checkpoint-seconds", type=float, default=120.0, metavar="S",
                       help="write checkpoint.pt after every S seconds of training (default 120; 0: only by "
                            "--checkpoint-every, on SIGINT/SIGTERM and at the end)")
        f = p.add_argument_group("fidelity options (comparing with the authors' TensorFlow code)")
        f.add_argument("--update-schedule", choices=UPDATE_SCHEDULES, default="fastpinn",
                       help="fastpinn (default): weights update at epochs 0, tau, 2tau, ...; authors: at 1-based "
                            "epochs tau, 2tau, ... (0-based tau-1, 2tau-1, ...) without bias correction, as their "
                            "scripts do")
        f.add_argument("--init", choices=INITS, default="glorot_normal",
                       help="weight initialisation: glorot_normal (default) or truncated_normal (the authors': "
                            "the same std, redrawn beyond 2 std, so 0.88x narrower)")
        f.add_argument("--keep-best", action="store_true",
                       help="end with the parameters of the lowest rel. L2 error seen (the authors' protocol)")
        a = p.add_argument_group("pointwise weights")
        a.add_argument("--rba", action="store_true",
                       help="residual-based attention (pointwise weights, Anagnostopoulos et al. 2024) on the PDE "
                            "term, with any --scheme")
        a.add_argument("--rba-gamma", type=float, default=0.999, help="--rba memory gamma in [0, 1) (default 0.999)")
        a.add_argument("--rba-eta", type=float, default=0.01, help="--rba learning rate eta > 0 (default 0.01)")
        f.add_argument("--patience", type=int, default=None, metavar="EPOCHS",
                       help="stop early when no seed's rel. L2 error improved for EPOCHS epochs (the authors: "
                            "100, with --eval-every 1)")


def _add_training_options(p: argparse.ArgumentParser) -> None:
    """The optimizer, schedule and network options of train and compare (each in config.json and the run
    identity; --init is among the fidelity options)."""
    from .optim import LR_SCHEDULE_FORMS, OPTIMIZER_CHOICES
    from .run.config import activation_choices

    o = p.add_argument_group("optimizer and network")
    o.add_argument("--optimizer", choices=OPTIMIZER_CHOICES, default="adam",
                   help="adam (default: --epochs of Adam), lbfgs (--lbfgs-iters L-BFGS iterations) or adam+lbfgs "
                        "(Adam, then L-BFGS: DeepXDE's usual recipe); an L-BFGS iteration is one epoch of the run")
    o.add_argument("--lbfgs-iters", type=int, default=1000, metavar="M",
                   help="L-BFGS iterations of --optimizer lbfgs / adam+lbfgs (default 1000; strong-Wolfe line search)")
    o.add_argument("--lr-schedule", default="none", metavar="SCHEDULE",
                   help=f"Adam's learning-rate schedule, stepped once per epoch: {', '.join(LR_SCHEDULE_FORMS)} "
                        "(exp:0.999 multiplies the rate by 0.999 per epoch; step:1000:0.5 halves it every 1000 "
                        "epochs; cosine anneals it to 0 over the Adam epochs; default none)")
    o.add_argument("--depth", type=int, default=None, help="weight layers of the network (default: the problem's)")
    o.add_argument("--width", type=int, default=None, help="neurons per hidden layer (default: the problem's)")
    o.add_argument("--activation", choices=activation_choices(), default="tanh",
                   help="hidden activation (default tanh)")
    o.add_argument("--no-input-scaling", action="store_true",
                   help="feed the raw coordinates to the network (default: min-max scaled from the domain box onto "
                        "[-1, 1])")


def _training(args: argparse.Namespace) -> dict:
    """The RunConfig fields of :func:`_add_training_options`."""
    return {"optimizer": args.optimizer, "lbfgs_iters": args.lbfgs_iters, "lr_schedule": args.lr_schedule,
            "depth": args.depth, "width": args.width, "activation": args.activation,
            "input_scaling": not args.no_input_scaling}


def build_parser() -> argparse.ArgumentParser:
    from .resampling import add_resampling_options
    from .run import COMPARE_DEFAULT, PROBLEMS, SCHEMES, TABLES
    from .schemes import add_scheme_options

    parser = _Parser(prog="fastpinn", description="Physics-informed neural networks with dynamic loss weights "
                                                  "(Deguchi & Asai 2023: PINN, MA-, ID-, DN-PINN).")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"fastpinn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{train,reproduce,demo,compare,predict,evaluate}")
    sub.required = True

    t = sub.add_parser("train", help="train one problem with one scheme",
                       description="Train one problem with one weighting scheme and write a run directory "
                                   "(config.json, metrics.json, history.npz, checkpoint.pt, figures).")
    t.add_argument("problem", metavar="PROBLEM",
                   help=f"a built-in problem ({', '.join(PROBLEMS)}) or FILE.py:FUNCTION, a function of your own "
                        "file returning a fastpinn.Problem (it may take seed= and size keywords such as n_pde=)")
    t.add_argument("--scheme", choices=SCHEMES, default="dn", help="weighting scheme (default dn)")
    add_scheme_options(t)  # --beta, --tau, --p, --temperature, ...: generated from the schemes' declarations
    t.add_argument("--reference-term", default=None, metavar="NAME",
                   help="the term whose gradient the dynamic weights are measured against, weight fixed at 1 "
                        "(default: the problem's, the PDE residual); see docs/weights.md")
    t.add_argument("--epochs", type=int, default=None, help="epochs (default: the problem's, as in the paper)")
    seeds = t.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=None, help="train one network with this seed (default 0)")
    seeds.add_argument("--seeds", type=int, default=None, help="train seeds 0..N-1 as one batched ensemble")
    t.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --out from its checkpoint (error if there is none; "
                        "rerunning the same command on the same directory resumes too)")
    _add_training_options(t)
    add_resampling_options(t)  # --resample, --resample-every, ...: generated from fastpinn.resampling.OPTIONS
    t.add_argument("--collective-timeout", type=float, default=300.0, metavar="S",
                   help="under torchrun (data parallelism over the points): seconds a rank waits in a "
                        "collective before the job fails, e.g. after a peer died (default 300)")
    _add_common(t)

    r = sub.add_parser("reproduce", help="reproduce a table or figure of the paper (resumable sweep)",
                       description="Run every configuration of a table of the paper, each as one ensemble of "
                                   "seeds, and write table.md / table.csv beside the paper's numbers. Finished "
                                   "configurations in --out are checked and reused, interrupted ones resume "
                                   "from their checkpoint, damaged ones are retrained.")
    r.add_argument("table", choices=tuple(TABLES) + ("demo",))
    r.add_argument("--seeds", type=int, default=10, help="seeds per configuration (default 10, the paper's)")
    r.add_argument("--epochs", type=int, default=None, help="epochs (default: the problem's, as in the paper)")
    r.add_argument("--problem", choices=PROBLEMS, default=None,
                   help="table4/fig12: only this problem's rows; other tables: run the grid on another problem")
    r.add_argument("--shard", default=None, metavar="I/N",
                   help="train only configurations j with j %% N == I (0 <= I < N; independent jobs sharing --out); "
                        "default under torchrun: RANK/WORLD_SIZE. The last shard to finish writes the table")
    r.add_argument("--seeds-per-run", type=int, default=None, metavar="M",
                   help="train each configuration's seeds in ensembles of at most M (OUT/<key>.seeds-a-b/, "
                        "each a unit of work for --shard): for an ensemble too large for one device, or more "
                        "ranks than configurations (default: all seeds in one run, OUT/<key>/)")
    r.add_argument("--report-only", action="store_true",
                   help="train nothing and write nothing: print the table of what --out holds now for this "
                        "sweep (give the options it trains with): finished configurations, the unfinished ones "
                        "'in progress, epoch E/N' with their errors at their last checkpoint, the rest 'not "
                        "started'; safe while shards are training")
    _add_common(r)

    # fastpinn compare: the weighting schemes side by side (fastpinn.run.compare).
    c = sub.add_parser("compare", help="train several weighting schemes side by side and tabulate them",
                       description="Train each scheme (its default parameters, but for the scheme options "
                                   "given: each goes to the schemes that read it) as one ensemble of seeds and write "
                                   "compare.md / compare.csv (the schemes ranked by rel. L2: mean ± s.e. and "
                                   "min–max over seeds, time, time over PINN) and compare.png (rel. L2 vs epoch, "
                                   "mean and band over seeds); the last line names the best scheme and the "
                                   "'fastpinn train' command that trains it. Finished runs of the same "
                                   "configuration (and problem file contents) in --out are reused.")
    c.add_argument("problem", metavar="PROBLEM",
                   help=f"a built-in problem ({', '.join(PROBLEMS)}) or FILE.py:FUNCTION, a function of your own "
                        "file returning a fastpinn.Problem (as for 'fastpinn train')")
    c.add_argument("--schemes", type=lambda v: tuple(x.strip() for x in v.split(",") if x.strip()),
                   default=None, help="comma-separated scheme names, each optionally with remedies: SCHEME+clamp (weights in "
                        "[0.01, 100]), +warmup (weights 1 for a third of the epochs), +bias (bias correction), "
                        "+KEY=VALUE (a parameter, e.g. dn+beta=0.99), +ref=TERM (the reference term) "
                        f"(default {','.join(COMPARE_DEFAULT)})")
    c.add_argument("--seeds", type=int, default=None,
                   help="seeds per scheme, trained as one ensemble, or one run per seed for a network that trains "
                        "one seed at a time (default 3; 1 for a FUNCTION without a seed argument)")
    c.add_argument("--epochs", type=int, default=None, help="epochs (default: the problem's, as in the paper)")
    add_scheme_options(c)
    _add_common(c)
    _add_training_options(c)

    pr = sub.add_parser("predict", help="a trained run's network on your points",
                        description="Load RUN_DIR's checkpoint and write the network's output at the points of "
                                    "--points (.npy or .csv, one column per coordinate) to --out (.npy or .csv).")
    pr.add_argument("run_dir", metavar="RUN_DIR")
    pr.add_argument("--points", required=True, help="points [M, d]: .npy, or .csv with one header row allowed")
    pr.add_argument("--out", required=True, help="predictions [M, out] (an ensemble: [S, M, out] in .npy)")
    pr.add_argument("--member", type=int, default=None, help="an ensemble's member to write (default: all)")
    pr.add_argument("--device", default=None, help="cpu or cuda[:N] (default: the run's, if available)")
    pr.add_argument("--problem", default=None, metavar="FILE.py:FUNCTION", help=PROBLEM_FILE_HELP)

    ev = sub.add_parser("evaluate", help="a trained run's relative L2 error",
                        description="Load RUN_DIR's checkpoint and print (as JSON) the relative L2 error per seed: "
                                    "on the problem's reference grid, or against --values at --points.")
    ev.add_argument("run_dir", metavar="RUN_DIR")
    ev.add_argument("--points", default=None, help="points [M, d] (.npy/.csv); needs --values")
    ev.add_argument("--values", default=None, help="the solution at --points, [M] or [M, out] (.npy/.csv)")
    ev.add_argument("--out", default=None, help="also write the JSON here (atomically)")
    ev.add_argument("--device", default=None, help="cpu or cuda[:N] (default: the run's, if available)")
    ev.add_argument("--problem", default=None, metavar="FILE.py:FUNCTION", help=PROBLEM_FILE_HELP)

    d = sub.add_parser("demo", help="a few-minute CPU demo: Poisson with PINN vs DN-PINN",
                       description="Train the paper's 2-D Poisson problem with PINN and with DN-PINN at a "
                                   "CPU-sized budget and print both errors side by side.")
    _add_demo_args(d)
    return parser


def _add_demo_args(d: argparse.ArgumentParser) -> None:
    from .run import DEMO_DEFAULTS

    d.add_argument("--epochs", type=int, default=DEMO_DEFAULTS["epochs"],
                   help=f"epochs per run (default {DEMO_DEFAULTS['epochs']})")
    d.add_argument("--n-pde", type=int, default=DEMO_DEFAULTS["n_pde"],
                   help=f"PDE collocation points (default {DEMO_DEFAULTS['n_pde']}; the paper: 2500)")
    d.add_argument("--n-bc", type=int, default=DEMO_DEFAULTS["n_bc"],
                   help=f"boundary points (default {DEMO_DEFAULTS['n_bc']}, as in the paper)")
    d.add_argument("--beta", type=float, default=DEMO_DEFAULTS["beta"],
                   help=f"DN-PINN beta (default {DEMO_DEFAULTS['beta']})")
    d.add_argument("--seed", type=int, default=DEMO_DEFAULTS["seed"], help="seed (default 0)")
    d.add_argument("--eval-every", type=int, default=250, help="epochs between evaluations (default 250)")
    _add_common(d, sizes=False)


# ----------------------------------------------------------------------------------------- helpers
def _err(msg: str) -> None:
    print(msg.strip().splitlines()[0] if msg.strip() else "fastpinn: error", file=sys.stderr, flush=True)


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
    from .run import RunConfig, build_trainer, directory, is_user_problem, plan_run_dir, train_run
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
    m = train_run(cfg, out, force=args.force, resume=True if args.resume else None, progress=not args.no_progress,
                  figures=not args.no_figures, prebuilt=prebuilt, log=log, **options)
    err = _fmt_err(m.get("rel_l2_mean"), m.get("rel_l2_sem"), int(m.get("n_seeds", 1)))
    if m.get("status") == "diverged":
        _err(f"fastpinn train: {out} holds a run of this configuration that diverged: {m.get('error', '')}")
        return EXIT_DIVERGED
    if rank == 0:
        print(f"{args.problem}/{args.scheme}: rel. L2 = {err}; training {m['train_seconds']:.1f} s "
              f"({m['ms_per_epoch']:.1f} ms/epoch, {m['epochs']} epochs); results in {out}", flush=True)
    return EXIT_OK


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
    result = evaluate_run(args.run_dir, points, values, device=args.device, problem=args.problem)
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
                  progress=not args.no_progress, figure=not args.no_figures, log=_log)
    table, _, winner = res.markdown.rstrip("\n").rpartition("\n")
    print(table, flush=True)
    print(f"written: {res.out_dir / 'compare.md'}, {res.out_dir / 'compare.csv'}"
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
    except _UsageError as exc:
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
