"""The ``fastpinn`` command line.

    fastpinn train poisson --scheme dn --epochs 3000 --device cpu
    fastpinn train burgers --scheme ma --beta 0.99 --seeds 10 --out runs/burgers-ma
    fastpinn reproduce table2 --seeds 10
    fastpinn demo

Exit status: 0 on success; 2 for a bad argument (one line on stderr, no traceback); 1 if training
diverged (NaN/Inf); 130 when interrupted.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["main", "build_parser"]


class _UsageError(Exception):
    """A bad command line: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: error: {message} (see '{self.prog} --help')")


def _parse_p(text: str) -> float:
    t = text.strip().lower()
    if t in ("inf", "infinity", "+inf", "∞"):
        return math.inf
    try:
        return float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: a number >= 1 or 'inf'") from None


def _nonnegative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {v}")
    return v


def _compile_arg(args: argparse.Namespace) -> "bool | str":
    """``--compile`` [on|off|auto] as the Trainer's ``compile`` argument."""
    value = getattr(args, "compile", "auto")
    return "auto" if value == "auto" else value == "on"


def _add_common(p: argparse.ArgumentParser, *, sizes: bool = True) -> None:
    """Options shared by train, reproduce and demo."""
    p.add_argument("--device", default=None,
                   help="cpu or cuda[:N] (default: cuda if available, else cpu)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="precision (default float32)")
    p.add_argument("--backend", choices=("auto", "cpp", "triton", "torch"), default="auto",
                   help="op backend for the weight statistics (default auto: the compiled ops)")
    p.add_argument("--out", default=None, help="output directory")
    p.add_argument("--force", action="store_true", help="overwrite an existing non-empty output directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-figures", action="store_true", help="write no PNG figures")
    p.add_argument("--compile", nargs="?", const="on", default="auto", choices=("on", "off", "auto"),
                   help="compile each loss term with torch.compile (one-off warm-up reported as warmup_seconds): "
                        "on (also plain --compile), off, or auto (default): time the first 20 epochs eagerly and "
                        "compile only if the rest of the run would save more than the warm-up costs")
    p.add_argument("--step-mode", choices=("eager", "device", "cuda_graph"), default="eager",
                   help="eager (default): weight-update decision from the host epoch counter; device: decision on "
                        "the device, statistics every step; cuda_graph: the device step captured in a CUDA graph "
                        "and replayed (CUDA only)")
    p.add_argument("--derivative-method", choices=("auto", "jet", "fused", "func", "autograd", "tune"), default="auto",
                   help="how input derivatives are computed: auto (forward jets for the MLP), jet, fused (the jets as "
                        "one compiled op), func, autograd, "
                        "or tune (time each on this device, check they agree, use the fastest per loss term)")
    p.add_argument("--threads", type=_nonnegative_int, default=None,
                   help="torch CPU threads; 0 keeps torch's default (default: 1 on a CPU device: these networks "
                        "are small, and extra OpenMP threads slow them down badly on a shared machine)")
    if sizes:
        p.add_argument("--n-pde", type=int, default=None, help="number of PDE collocation points")
        p.add_argument("--n-bc", type=int, default=None, help="number of boundary points")
        p.add_argument("--n-ic", type=int, default=None, help="number of initial-condition points")
        p.add_argument("--batch-size", type=int, default=None, help="PDE mini-batch size (Allen-Cahn)")
        p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
        p.add_argument("--eval-every", type=int, default=100,
                       help="epochs between rel. L2 evaluations / finiteness checks (default 100)")


def build_parser() -> argparse.ArgumentParser:
    from .experiments import PROBLEMS, SCHEMES, TABLES

    parser = _Parser(prog="fastpinn", description="Physics-informed neural networks with dynamic loss weights "
                                                  "(Deguchi & Asai 2023: PINN, MA-, ID-, DN-PINN).")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"fastpinn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{train,reproduce,demo}")
    sub.required = True

    t = sub.add_parser("train", help="train one problem with one scheme",
                       description="Train one problem with one weighting scheme and write a run directory "
                                   "(config.json, metrics.json, history.npz, checkpoint.pt, figures).")
    t.add_argument("problem", choices=PROBLEMS)
    t.add_argument("--scheme", choices=SCHEMES, default="dn", help="weighting scheme (default dn)")
    t.add_argument("--beta", type=float, default=0.9, help="EMA decay of the weights, in [0, 1) (default 0.9)")
    t.add_argument("--tau", type=int, default=10, help="epochs between weight updates (default 10)")
    t.add_argument("--p", type=_parse_p, default=2.0, help="DN-PINN norm exponent, >= 1 or 'inf' (default 2)")
    t.add_argument("--bias-correction", action="store_true", help="bias-corrected weights lambda/(1-beta^n)")
    t.add_argument("--ma-form", choices=("paper", "wang"), default="paper",
                   help="MA-PINN: eq. 15 of the paper (default) or Wang et al.'s code")
    t.add_argument("--epochs", type=int, default=None, help="epochs (default: the problem's, as in the paper)")
    seeds = t.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=None, help="train one network with this seed (default 0)")
    seeds.add_argument("--seeds", type=int, default=None, help="train seeds 0..N-1 as one batched ensemble")
    _add_common(t)

    r = sub.add_parser("reproduce", help="reproduce a table or figure of the paper (resumable sweep)",
                       description="Run every configuration of a table of the paper, each as one ensemble of "
                                   "seeds, and write table.md / table.csv beside the paper's numbers. Finished "
                                   "configurations in --out are reused.")
    r.add_argument("table", choices=tuple(TABLES) + ("demo",))
    r.add_argument("--seeds", type=int, default=10, help="seeds per configuration (default 10, the paper's)")
    r.add_argument("--epochs", type=int, default=None, help="epochs (default: the problem's, as in the paper)")
    r.add_argument("--problem", choices=PROBLEMS, default=None, help="run the table on another problem")
    _add_common(r)

    d = sub.add_parser("demo", help="a few-minute CPU demo: Poisson with PINN vs DN-PINN",
                       description="Train the paper's 2-D Poisson problem with PINN and with DN-PINN at a "
                                   "CPU-sized budget and print both errors side by side.")
    _add_demo_args(d)
    return parser


def _add_demo_args(d: argparse.ArgumentParser) -> None:
    from .experiments import DEMO_DEFAULTS

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
def _cmd_train(args: argparse.Namespace) -> int:
    from . import runs
    from .experiments import RunConfig, build_trainer, train_run

    if args.seeds is not None:
        if args.seeds < 1:
            raise ValueError(f"--seeds must be an integer >= 1, got {args.seeds}")
        seeds, ensemble = tuple(range(args.seeds)), True
    else:
        seed = 0 if args.seed is None else args.seed
        if seed < 0:
            raise ValueError(f"--seed must be >= 0, got {seed}")
        seeds, ensemble = (seed,), False
    device = _device(args.device)
    cfg = RunConfig(problem=args.problem, scheme=args.scheme, beta=args.beta, tau=args.tau, p=args.p,
                    bias_correction=args.bias_correction, ma_form=args.ma_form, seeds=seeds, ensemble=ensemble,
                    epochs=args.epochs, lr=args.lr, device=device, dtype=args.dtype, backend=args.backend,
                    eval_every=args.eval_every, problem_kwargs=_sizes(args), compile=_compile_arg(args),
                    step_mode=args.step_mode, derivative_method=args.derivative_method)
    out = Path(args.out) if args.out else runs.default_run_dir(args.problem, args.scheme)
    if runs.is_nonempty_dir(out) and not args.force:
        raise runs.RunDirError(f"output directory {str(out)!r} is not empty; pass --force to overwrite it")
    if out.exists() and not out.is_dir():
        raise runs.RunDirError(f"output path {str(out)!r} exists and is not a directory")
    prebuilt = build_trainer(cfg)  # every ValueError surfaces here, before anything is written
    _log(f"fastpinn train: {args.problem} with {cfg.describe()}, seeds {list(seeds)}, "
         f"{prebuilt[0].epochs if cfg.epochs is None else cfg.epochs} epochs on {device} -> {out}")
    m = train_run(cfg, out, force=args.force, progress=not args.no_progress, figures=not args.no_figures,
                  prebuilt=prebuilt)
    err = _fmt_err(m.get("rel_l2_mean"), m.get("rel_l2_sem"), int(m.get("n_seeds", 1)))
    print(f"{args.problem}/{args.scheme}: rel. L2 = {err}; training {m['train_seconds']:.1f} s "
          f"({m['ms_per_epoch']:.1f} ms/epoch, {m['epochs']} epochs); results in {out}", flush=True)
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .experiments import reproduce

    if args.table == "demo":
        return _cmd_demo(args)
    res = reproduce(args.table, seeds=args.seeds, epochs=args.epochs, device=_device(args.device), dtype=args.dtype,
                    backend=args.backend, out=args.out, problem=args.problem, problem_kwargs=_sizes(args),
                    lr=args.lr, eval_every=args.eval_every, compile=_compile_arg(args), step_mode=args.step_mode,
                    derivative_method=args.derivative_method, force=args.force,
                    progress=not args.no_progress,
                    figures=not args.no_figures, log=_log)
    print(res.markdown, flush=True)
    print(f"written: {res.out_dir / 'table.md'}, {res.out_dir / 'table.csv'}", flush=True)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .experiments import DEMO_DEFAULTS, demo

    g = lambda name: getattr(args, name, None)  # noqa: E731  (reproduce demo has fewer options)
    epochs = g("epochs") or DEMO_DEFAULTS["epochs"]
    n_pde = g("n_pde") or DEMO_DEFAULTS["n_pde"]
    n_bc = g("n_bc") or DEMO_DEFAULTS["n_bc"]
    beta = DEMO_DEFAULTS["beta"] if g("beta") is None else g("beta")
    seed = DEMO_DEFAULTS["seed"] if g("seed") is None else g("seed")
    device = _device(args.device)
    t0 = time.perf_counter()
    res = demo(epochs=epochs, n_pde=n_pde, n_bc=n_bc, beta=beta, seed=seed, device=device, dtype=args.dtype,
               backend=args.backend, out=args.out, force=args.force, progress=not args.no_progress,
               figures=not args.no_figures, eval_every=g("eval_every") or 250,
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

    from .trainer import NonFiniteError

    threads = torch.get_num_threads()
    want = getattr(args, "threads", None)
    if want is None:
        # The paper's networks are small (20-128 neurons): per op there is little work to share, and on a
        # busy machine OpenMP threads wait on each other -- measured on 2 shared cores, Poisson with 1000
        # points: 19 ms/epoch with one thread, 407 ms/epoch with two. So one thread on a CPU device.
        want = 0 if str(_device(getattr(args, "device", None))).startswith("cuda") else 1
    if want:
        torch.set_num_threads(want)
    # Reuse freed activation memory instead of page-faulting it in again every step (fastpinn.malloc).
    from .malloc import retain_freed_memory

    retain_freed_memory()

    prog = f"fastpinn {args.command}"
    try:
        if args.command == "train":
            return _cmd_train(args)
        if args.command == "reproduce":
            return _cmd_reproduce(args)
        return _cmd_demo(args)
    except NonFiniteError as exc:
        _err(f"{prog}: {exc}")
        return 1
    except (ValueError, FileExistsError, NotADirectoryError) as exc:
        _err(f"{prog}: error: {exc}")
        return 2
    except KeyboardInterrupt:
        _err(f"{prog}: interrupted")
        return 130
    finally:
        torch.set_num_threads(threads)  # main() may be called in-process (tests, notebooks)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
