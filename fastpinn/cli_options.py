"""The ``fastpinn`` command line's arguments: the parser of every subcommand and the options they share.

Choices are read from the registries that declare them (problems, schemes, derivative methods, resampling,
optimizers), so an option never lists a value the library does not have. :mod:`fastpinn.cli` runs the
commands.
"""

from __future__ import annotations

import argparse

__all__ = ["build_parser", "UsageError", "PROBLEM_FILE_HELP", "MAX_INT_OPTION"]

#: fastpinn imports no code a run directory names: a run of a problem file is loaded with the file named here.
PROBLEM_FILE_HELP = ("for a run of your own problem file: that file and function, checked against the SHA-256 the "
                     "run recorded (fastpinn never imports a file named inside a run directory)")


class UsageError(Exception):
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
        raise UsageError(f"{self.prog}: error: {message} (see '{self.prog} --help')")


def _thread_count(text: str) -> int:
    from .threads import MAX_THREADS

    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if not 0 <= v <= MAX_THREADS:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, {MAX_THREADS}], got {v}")
    return v


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
                                   "min–max over seeds, the training runs' wall time, the step time over "
                                   "PINN's timed side by side, an inverse problem's learned coefficients; "
                                   "compare.json holds them too) and compare.png (rel. L2 vs epoch, "
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
    c.add_argument("--no-step-timing", action="store_true",
                   help="skip the paired step timing after training (the 'step time / PINN' column: each scheme's "
                        "epochs timed side by side with PINN's in interleaved rounds, a few seconds in all)")
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
    ev.add_argument("--output", default=None, metavar="I[,J]",
                    help="score only these network outputs (e.g. 0 for u of a network (u, k) whose k is not "
                         "observed); --values then hold those columns only")
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
