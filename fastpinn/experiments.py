"""The paper's experiments: one run (:func:`train_run`), the tables' configurations (:data:`TABLES`), the
resumable sweep that reproduces a table (:func:`reproduce`), the table writer (:func:`format_table`) and
the few-minute CPU demo (:func:`demo`).

A *configuration* (:class:`RunConfig`) is everything that decides a run's numbers: problem and its sizes,
scheme and its parameters, seeds, epochs, learning rate, dtype and device type. All seeds of a
configuration train as one ensemble (``problems.get(name, seed=[0, 1, ...])``) in one batched step.

Tables (configurations as in the paper; tau = 10, no bias correction unless stated):

* ``table1`` Burgers, ``table2`` Poisson, ``table3`` Allen-Cahn: PINN; MA-, ID- and DN-PINN at
  beta = 0.9 and 0.99.
* ``table4``: DN-PINN with p = 1, 2 and inf. ASSUMPTION: on Burgers with beta = 0.99. The paper's text
  could not be consulted here; the authors' code offers the L^p choice in its Burgers DN-PINN, whose
  default beta is 0.99. Use ``problem=`` to run it on another problem.
* ``fig12``: DN-PINN with and without bias correction at beta = 0.9, 0.99, 0.999 (ASSUMPTION: Burgers;
  the authors' code has bias-corrected DN-PINN for Burgers and Poisson).
"""

from __future__ import annotations

import csv
import inspect
import io
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import torch

from . import paper_numbers, runs
from .problem import Problem
from .schemes import SCHEME_NAMES, LossScheme, Scheme, scheme_from_name

__all__ = [
    "PROBLEMS", "SCHEMES", "DTYPES", "SIZE_KEYS", "RunConfig", "Entry", "TableSpec", "TABLES", "Row",
    "train_run", "is_complete", "reproduce", "format_table", "table_rows", "demo", "DEMO_DEFAULTS",
]

PROBLEMS = ("burgers", "poisson", "allen_cahn", "poisson1d")
SCHEMES = SCHEME_NAMES
DTYPES = {"float32": torch.float32, "float64": torch.float64}
BACKENDS = ("auto", "cpp", "triton", "torch")
#: Problem-size keyword arguments the command line may override (only those a problem takes).
SIZE_KEYS = ("n_pde", "n_bc", "n_ic", "batch_size")

Log = Callable[[str], None]


def _p_to_json(p: float) -> Union[float, str]:
    return "inf" if math.isinf(p) else float(p)


def _p_from_json(p: Union[float, str]) -> float:
    return math.inf if p in ("inf", "Infinity") else float(p)


def _problem_factory(name: str) -> Callable[..., Problem]:
    from .problems import paper, poisson1d

    factories = dict(paper.PROBLEMS, poisson1d=poisson1d)
    if name not in factories:
        raise ValueError(f"problem must be one of {', '.join(PROBLEMS)}, got {name!r}")
    return factories[name]


# ------------------------------------------------------------------------------------ one configuration
@dataclass
class RunConfig:
    """One training configuration (what ``fastpinn train`` runs, and one row of a table).

    ``seeds``: the seeds trained; ``ensemble``: train them as an ensemble problem (always for more than
    one seed; ``fastpinn train --seeds 1`` gives a one-member ensemble, ``--seed 0`` a single network).
    ``epochs``: ``None`` for the problem's own (the paper's protocol).
    """

    problem: str
    scheme: str = "dn"
    beta: float = 0.9
    tau: int = 10
    p: float = 2.0
    bias_correction: bool = False
    ma_form: str = "paper"
    alpha: Optional[float] = None  # LRA / GradNormW: their papers' EMA parameter (None: 0.9)
    reduce: str = "sum"  # GradNormW: "sum" (the paper) or "mean"
    temperature: float = 0.1  # SoftAdapt / ReLoBRaLo softmax temperature
    seeds: tuple[int, ...] = (0,)
    ensemble: bool = False
    epochs: Optional[int] = None
    lr: float = 1e-3
    device: str = "cpu"
    dtype: str = "float32"
    backend: str = "auto"
    eval_every: int = 100
    problem_kwargs: dict = field(default_factory=dict)
    compile: Union[bool, str] = False
    step_mode: str = "eager"
    derivative_method: str = "auto"

    def __post_init__(self) -> None:
        self.seeds = tuple(int(s) for s in self.seeds)
        self.problem_kwargs = {k: v for k, v in dict(self.problem_kwargs).items() if v is not None}
        if len(self.seeds) > 1:
            self.ensemble = True

    # ------------------------------------------------------------------------------- validation
    def validate(self) -> "RunConfig":
        """Raise ``ValueError`` (one line, naming the bad value) for anything a run would reject."""
        if self.problem not in PROBLEMS:
            raise ValueError(f"problem must be one of {', '.join(PROBLEMS)}, got {self.problem!r}")
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {self.scheme!r}")
        sch = self.scheme_object()  # beta, tau, p, ma_form, alpha, ...: the library's own checks
        reads = "losses" if isinstance(sch, LossScheme) else getattr(sch, "reads", "stats")  # GradNorm too
        if reads in ("losses", "traces"):
            # The Trainer's step computes per-term gradients; these schemes run in the weighted backward.
            entry = {"losses": "update_from_losses", "traces": "update_from_traces"}[reads]
            if sch.name == "gradnorm":
                entry = "update_from_stats(..., losses=...)"
            raise ValueError(f"scheme {self.scheme!r} reads the term {reads} and is not yet supported by the "
                             f"Trainer; use fastpinn.Weighter(...).{entry} in your own step")
        if not self.seeds:
            raise ValueError("at least one seed is needed")
        if any(s < 0 for s in self.seeds):
            raise ValueError(f"seeds must be >= 0, got {list(self.seeds)}")
        if self.epochs is not None and (isinstance(self.epochs, bool) or not isinstance(self.epochs, int)
                                        or self.epochs < 1):
            raise ValueError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if isinstance(self.eval_every, bool) or not isinstance(self.eval_every, int) or self.eval_every < 1:
            raise ValueError(f"eval_every must be an integer >= 1, got {self.eval_every!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        from .trainer import DERIVATIVE_METHODS, STEP_MODES

        if not (isinstance(self.compile, bool) or self.compile == "auto"):
            raise ValueError(f"compile must be true, false or 'auto', got {self.compile!r}")
        if self.step_mode not in STEP_MODES:
            raise ValueError(f"step_mode must be one of {', '.join(STEP_MODES)}, got {self.step_mode!r}")
        if self.derivative_method not in DERIVATIVE_METHODS:
            raise ValueError(f"derivative_method must be one of {', '.join(DERIVATIVE_METHODS)}, "
                             f"got {self.derivative_method!r}")
        try:
            dev = torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}") from exc
        if dev.type not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        if dev.type == "cuda" and not torch.cuda.is_available():
            why = "a CPU-only build" if torch.version.cuda is None else "no GPU found"
            raise ValueError(f"device 'cuda' was requested but CUDA is not available "
                             f"(torch {torch.__version__}, {why})")
        if self.step_mode == "cuda_graph" and dev.type != "cuda":
            raise ValueError(f"step_mode 'cuda_graph' needs a CUDA device, got device {self.device!r}")
        accepted = inspect.signature(_problem_factory(self.problem)).parameters
        for key, value in self.problem_kwargs.items():
            if key not in accepted:
                raise ValueError(f"problem {self.problem!r} has no size {key!r} (option --{key.replace('_', '-')})")
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {value!r}")
        return self

    def scheme_object(self) -> Scheme:
        return scheme_from_name(self.scheme, beta=self.beta, tau=self.tau, p=self.p,
                                bias_correction=self.bias_correction, ma_form=self.ma_form, alpha=self.alpha,
                                reduce=self.reduce, temperature=self.temperature)

    # ------------------------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict:
        d = asdict(self)
        d["p"] = _p_to_json(self.p)
        d["seeds"] = list(self.seeds)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        names = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in names}
        if "p" in kw:
            kw["p"] = _p_from_json(kw["p"])
        if "seeds" in kw:
            kw["seeds"] = tuple(kw["seeds"])
        return cls(**kw)

    def identity(self, epochs: Optional[int] = None) -> dict:
        """What decides the numbers of a run; two runs with equal identities are interchangeable.

        The backend, evaluation cadence and exact device index are left out (same numbers up to
        rounding); scheme parameters the scheme does not read are left out too.
        """
        d: dict[str, Any] = {
            "problem": self.problem, "problem_kwargs": dict(sorted(self.problem_kwargs.items())),
            "scheme": self.scheme, "seeds": list(self.seeds), "ensemble": bool(self.ensemble),
            "epochs": self.resolved_epochs() if epochs is None else int(epochs),
            "lr": float(self.lr), "dtype": self.dtype,
            "device_type": torch.device(self.device).type,
        }
        if self.scheme in ("lra", "gradnorm-w"):  # alpha replaces beta
            sch = self.scheme_object()
            d.update(alpha=float(sch.alpha), tau=int(self.tau), bias_correction=bool(self.bias_correction))
            if self.scheme == "gradnorm-w":
                d["reduce"] = self.reduce
        elif self.scheme != "pinn":
            d.update(beta=float(self.beta), tau=int(self.tau), bias_correction=bool(self.bias_correction))
        if self.scheme == "dn":
            d["p"] = _p_to_json(self.p)
        if self.scheme == "ma":
            d["ma_form"] = self.ma_form
        return d

    def resolved_epochs(self) -> int:
        """``epochs``, or the problem's default (the paper's protocol) when it is ``None``."""
        if self.epochs is not None:
            return int(self.epochs)
        return int(inspect.signature(_problem_factory(self.problem)).parameters["epochs"].default)

    # --------------------------------------------------------------------------------- building
    def build_problem(self) -> Problem:
        seed: Union[int, list[int]] = list(self.seeds) if self.ensemble else self.seeds[0]
        from .problems import get

        return get(self.problem, seed=seed, **self.problem_kwargs)

    def describe(self, *, show_p: bool = False) -> str:
        """Short human-readable name, e.g. ``DN-PINN (β=0.99, p=1)`` (``p`` shown when not 2, or always
        with ``show_p``)."""
        if self.scheme == "pinn":
            return "PINN"
        if self.scheme in ("lra", "gradnorm-w"):
            sch = self.scheme_object()
            extra = ", mean" if self.scheme == "gradnorm-w" and self.reduce == "mean" else ""
            return f"{repr(sch).split('(')[0]} (α={sch.alpha:g}, τ={self.tau}{extra})"
        parts = [f"β={self.beta:g}"]
        if self.scheme == "dn" and (self.p != 2.0 or show_p):
            parts.append(f"p={'∞' if math.isinf(self.p) else f'{self.p:g}'}")
        if self.tau != 10:
            parts.append(f"τ={self.tau}")
        if self.bias_correction:
            parts.append("bias corr.")
        if self.scheme == "ma" and self.ma_form != "paper":
            parts.append(f"form={self.ma_form}")
        return f"{self.scheme.upper()}-PINN ({', '.join(parts)})"


def preflight_backend(cfg: RunConfig) -> None:
    """Fail early (``ValueError``, one line) when a dynamic scheme needs a compiled op that is missing."""
    if cfg.scheme == "pinn" or cfg.backend == "torch":
        return
    try:
        from .ops import _ext

        _ext.load()
    except Exception as exc:  # RuntimeError with a rebuild hint, or an import problem
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"backend {cfg.backend!r} needs the compiled extension fastpinn._C, which is not "
                         f"usable ({first}); pass --backend torch for the pure-PyTorch ops") from exc
    if cfg.backend == "triton":
        try:
            import triton  # noqa: F401
        except ImportError as exc:
            raise ValueError("backend 'triton' needs the triton package; pass --backend torch or auto") from exc


def build_trainer(cfg: RunConfig) -> tuple[Problem, Any]:
    """Validate ``cfg`` and build its problem and :class:`~fastpinn.trainer.Trainer` (``ValueError`` on bad
    input, before anything is trained or written)."""
    from .trainer import Trainer

    cfg.validate()
    preflight_backend(cfg)
    problem = cfg.build_problem()
    trainer = Trainer(problem, cfg.scheme_object(), lr=cfg.lr, device=cfg.device, dtype=DTYPES[cfg.dtype],
                      eval_every=cfg.eval_every, backend=cfg.backend, compile=cfg.compile,
                      step_mode=cfg.step_mode, derivative_method=cfg.derivative_method)
    return problem, trainer


# -------------------------------------------------------------------------------------- one run
def is_complete(run_dir: Union[str, Path], cfg: RunConfig) -> bool:
    """Whether ``run_dir`` holds a finished run (``metrics.json`` written) of the same configuration."""
    metrics = runs.read_metrics(run_dir)
    config = runs.read_config(run_dir)
    if metrics is None or config is None or "identity" not in config:
        return False
    return config["identity"] == cfg.identity(cfg.resolved_epochs())


def train_run(cfg: RunConfig, out_dir: Union[str, Path], *, force: bool = False, progress: bool = False,
              figures: bool = True, prebuilt: Optional[tuple[Problem, Any]] = None, command: str = "train") -> dict:
    """Train one configuration and write its run directory; returns the metrics.

    Order of writes: ``config.json`` first, then ``history.npz``, ``checkpoint.pt``, the figures and
    last ``metrics.json`` -- the marker of a finished run that :func:`is_complete` looks for. A run
    that diverges (:class:`~fastpinn.trainer.NonFiniteError`) still gets a ``metrics.json`` with
    ``status: "diverged"`` and NaN errors, then the error is raised again.

    Bad configurations raise ``ValueError`` before anything is written; a ``ValueError`` raised *during*
    training is a failure of the run, not of its arguments, and comes out as ``RuntimeError``.
    """
    from .trainer import NonFiniteError

    problem, trainer = prebuilt if prebuilt is not None else build_trainer(cfg)
    out = runs.prepare_run_dir(out_dir, force=force)
    epochs = problem.epochs if cfg.epochs is None else cfg.epochs
    config = {
        "config": cfg.to_dict(),
        "identity": cfg.identity(epochs),
        "resolved": {
            "epochs": epochs, "scheme_repr": repr(trainer.scheme), "term_names": problem.term_names,
            "n_params": int(trainer.net.n_params), "depth": problem.depth, "width": problem.width,
            "ensemble": problem.ensemble, "seeds": list(problem.seeds),
            "n_points": {t.name: t.n_points for t in problem.terms},
            "batch_size": {t.name: t.batch_size for t in problem.terms},
            "derivative_methods": dict(trainer.derivative_methods),
        },
        "environment": runs.environment(cfg.device),
        "command": command,
    }
    runs.write_json(out / runs.CONFIG, config)
    wall0 = time.perf_counter()
    try:
        history = trainer.train(epochs, progress=progress)
    except NonFiniteError as exc:
        n = len(cfg.seeds)
        runs.write_json(out / runs.METRICS, {
            "status": "diverged", "error": str(exc), "rel_l2": float("nan"), "rel_l2_mean": float("nan"),
            "rel_l2_sem": float("nan"), "rel_l2_per_seed": [float("nan")] * n, "seeds": list(cfg.seeds),
            "n_seeds": n, "train_seconds": float("nan"), "warmup_seconds": float("nan"), "epochs": epochs,
            "ms_per_epoch": float("nan"), "scheme": cfg.scheme, "device": cfg.device})
        raise
    except ValueError as exc:
        raise RuntimeError(f"training failed: {exc}") from exc
    wall = time.perf_counter() - wall0
    history.save(str(out / runs.HISTORY))
    trainer.save_checkpoint(str(out / runs.CHECKPOINT))
    figure_files: list[str] = []
    if figures:
        try:
            from . import plots

            figure_files = [p.name for p in plots.run_figures(trainer, history, out, title=cfg.describe())]
        except Exception as exc:  # a plotting problem must not lose a finished training run
            warnings.warn(f"figures were not written: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
    metrics = runs.metrics_from_history(history, scheme=cfg.scheme, device=cfg.device, seeds=cfg.seeds, extra={
        "status": "ok", "problem": cfg.problem, "label": cfg.describe(), "wall_seconds": wall,
        "device_name": config["environment"]["device_name"], "figures": figure_files,
        "derivative_methods": dict(trainer.derivative_methods), "step_mode": cfg.step_mode,
        "compiled": bool(history.extra.get("compiled", False)),
        "compile_decision": history.extra.get("compile_decision"),
    })
    runs.write_json(out / runs.METRICS, metrics)
    return metrics


# ------------------------------------------------------------------------------------------ tables
@dataclass(frozen=True)
class Entry:
    """One configuration of a table: ``key`` names its subdirectory and its paper entry."""

    key: str
    scheme: str
    beta: float = 0.9
    p: float = 2.0
    bias_correction: bool = False


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    problem: str
    entries: tuple[Entry, ...]
    note: str = ""


def _main_entries() -> tuple[Entry, ...]:
    out = [Entry("pinn", "pinn")]
    for scheme in ("ma", "id", "dn"):
        for beta in (0.9, 0.99):
            out.append(Entry(f"{scheme}-b{beta:g}", scheme, beta))
    return tuple(out)


TABLES: dict[str, TableSpec] = {
    "table1": TableSpec("table1", "Table 1: Burgers", "burgers", _main_entries()),
    "table2": TableSpec("table2", "Table 2: Poisson", "poisson", _main_entries()),
    "table3": TableSpec("table3", "Table 3: Allen-Cahn", "allen_cahn", _main_entries()),
    "table4": TableSpec(
        "table4", "Table 4: DN-PINN with L^p norms", "burgers",
        (Entry("dn-p1", "dn", 0.99, 1.0), Entry("dn-p2", "dn", 0.99, 2.0), Entry("dn-pinf", "dn", 0.99, math.inf)),
        note="Assumed protocol (the paper's text was not available): Burgers, β = 0.99, τ = 10."),
    "fig12": TableSpec(
        "fig12", "Fig. 12: bias correction of DN-PINN", "burgers",
        tuple(Entry(f"dn-b{b:g}{'-bc' if bc else ''}", "dn", b, 2.0, bc)
              for b in (0.9, 0.99, 0.999) for bc in (False, True)),
        note="Assumed problem (the paper's text was not available): Burgers."),
}


@dataclass
class Row:
    """One line of a reproduced table."""

    key: str
    label: str
    n_seeds: int
    rel_l2_mean: Optional[float]
    rel_l2_sem: Optional[float]
    train_seconds: Optional[float]
    status: str = "ok"
    reused: bool = False
    overhead_pct: Optional[float] = None
    paper: paper_numbers.PaperEntry = field(default_factory=paper_numbers.PaperEntry)


def _finite(v: Any) -> Optional[float]:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def table_rows(table: str, entries: Sequence[tuple[Entry, str, dict]]) -> list[Row]:
    """Rows from ``(entry, label, metrics)``; the time overhead is relative to the table's PINN row."""
    rows = []
    for entry, label, m in entries:
        per_seed = m.get("rel_l2_per_seed") or []
        vals = [v for v in (_finite(x) for x in per_seed) if v is not None]
        if vals and len(vals) == len(per_seed):
            mean, sem = runs.mean_sem(vals)
        else:
            mean, sem = _finite(m.get("rel_l2_mean")), _finite(m.get("rel_l2_sem"))
        rows.append(Row(entry.key, label, len(per_seed), _finite(mean), _finite(sem), _finite(m.get("train_seconds")),
                        status=str(m.get("status", "ok")), reused=bool(m.get("_reused", False)),
                        paper=paper_numbers.lookup(table, entry.key)))
    base = next((r.train_seconds for r in rows if r.key == "pinn" and r.train_seconds), None)
    for r in rows:
        if base and r.train_seconds is not None:
            r.overhead_pct = 100.0 * (r.train_seconds - base) / base
    return rows


def _sci(v: Optional[float], digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}e}"


def _mean_pm(mean: Optional[float], sem: Optional[float]) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.2e} ± {_sci(sem, 1)}"


def _secs(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def _pct(v: Optional[float], is_base: bool = False) -> str:
    if is_base:
        return "—"
    return "n/a" if v is None else f"{v:+.1f}"


def format_table(rows: Sequence[Row], *, title: str = "", note: str = "") -> tuple[str, str]:
    """``(markdown, csv)`` of a reproduced table beside the paper's numbers ("n/a" where unknown).

    Columns: configuration; rel. L2 mean ± standard error over seeds; training time (s); time over PINN
    (%); the same three from the paper.
    """
    head = ["Configuration", "seeds", "rel. L2 (mean ± s.e.)", "time (s)", "time vs PINN (%)",
            "paper rel. L2 (mean ± s.e.)", "paper time (s)", "paper vs PINN (%)"]
    lines = []
    if title:
        lines += [f"### {title}", ""]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    for r in rows:
        ours = _mean_pm(r.rel_l2_mean, r.rel_l2_sem) if r.status == "ok" else r.status
        cells = [r.label + (" (reused)" if r.reused else ""), str(r.n_seeds), ours, _secs(r.train_seconds),
                 _pct(r.overhead_pct, r.key == "pinn"), _mean_pm(r.paper.rel_l2_mean, r.paper.rel_l2_sem),
                 _secs(r.paper.time_s), _pct(r.paper.overhead_pct, r.key == "pinn")]
        lines.append("| " + " | ".join(cells) + " |")
    if note:
        lines += ["", note]
    md = "\n".join(lines) + "\n"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["key", "configuration", "status", "n_seeds", "rel_l2_mean", "rel_l2_sem", "train_seconds",
                "time_vs_pinn_pct", "paper_rel_l2_mean", "paper_rel_l2_sem", "paper_time_s", "paper_time_vs_pinn_pct"])

    def c(v: Optional[float]) -> str:
        return "n/a" if v is None else repr(float(v))

    for r in rows:
        w.writerow([r.key, r.label, r.status, r.n_seeds, c(r.rel_l2_mean), c(r.rel_l2_sem), c(r.train_seconds),
                    c(r.overhead_pct), c(r.paper.rel_l2_mean), c(r.paper.rel_l2_sem), c(r.paper.time_s),
                    c(r.paper.overhead_pct)])
    return md, buf.getvalue()


@dataclass
class TableResult:
    table: str
    out_dir: Path
    rows: list[Row]
    markdown: str
    csv: str
    figures: list[Path]


def reproduce(
    table: str,
    *,
    seeds: int = 10,
    epochs: Optional[int] = None,
    device: str = "cpu",
    dtype: str = "float32",
    backend: str = "auto",
    out: Union[str, Path, None] = None,
    problem: Optional[str] = None,
    problem_kwargs: Optional[dict] = None,
    lr: float = 1e-3,
    eval_every: int = 100,
    compile: Union[bool, str] = False,
    step_mode: str = "eager",
    derivative_method: str = "auto",
    force: bool = False,
    progress: bool = False,
    figures: bool = True,
    log: Optional[Log] = None,
) -> TableResult:
    """Run every configuration of ``table`` (resumable) and write ``table.md``, ``table.csv``, figures.

    Each configuration trains its ``seeds`` seeds (0..seeds-1) as one ensemble in ``out/<key>/``. A
    configuration whose directory already holds a finished run of the same configuration is reused, not
    retrained; an unfinished one (no ``metrics.json``) is retrained; a finished run of a *different*
    configuration is only overwritten with ``force``.
    """
    log = log or (lambda s: None)
    if table not in TABLES:
        raise ValueError(f"table must be one of {', '.join(TABLES)}, got {table!r}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be an integer >= 1, got {seeds!r}")
    spec = TABLES[table]
    prob = problem or spec.problem
    root = Path(out) if out is not None else Path("runs") / f"{table}-{prob}"
    configs = []
    for entry in spec.entries:
        cfg = RunConfig(problem=prob, scheme=entry.scheme, beta=entry.beta, p=entry.p,
                        bias_correction=entry.bias_correction, seeds=tuple(range(seeds)), ensemble=True,
                        epochs=epochs, lr=lr, device=device, dtype=dtype, backend=backend, eval_every=eval_every,
                        problem_kwargs=dict(problem_kwargs or {}), compile=compile, step_mode=step_mode,
                        derivative_method=derivative_method)
        cfg.validate()
        configs.append((entry, cfg))
    preflight_backend(next((c for _, c in configs if c.scheme != "pinn"), configs[0][1]))
    # Refuse before training anything if a finished run of another configuration is in the way.
    if not force:
        for entry, cfg in configs:
            d = root / entry.key
            if runs.read_metrics(d) is not None and not is_complete(d, cfg):
                raise runs.RunDirError(f"{str(d)!r} holds a finished run of a different configuration; "
                                       "pass --force to retrain it, or choose another --out")
    root.mkdir(parents=True, exist_ok=True)
    results = []
    histories = {}
    for i, (entry, cfg) in enumerate(configs, 1):
        d = root / entry.key
        label = cfg.describe(show_p=table == "table4")
        if is_complete(d, cfg):
            metrics = dict(runs.read_metrics(d) or {})
            metrics["_reused"] = True
            log(f"[{i}/{len(configs)}] {label}: reusing {d}")
        else:
            log(f"[{i}/{len(configs)}] {label}: training {len(cfg.seeds)} seed(s) -> {d}")
            try:
                metrics = train_run(cfg, d, force=True, progress=progress, figures=figures,
                                    command=f"reproduce {table}")
            except Exception as exc:
                from .trainer import NonFiniteError

                if not isinstance(exc, NonFiniteError):
                    raise
                log(f"    diverged: {exc}")
                metrics = runs.read_metrics(d) or {"status": "diverged"}
        if metrics.get("status", "ok") == "ok":
            log(f"    rel. L2 = {_mean_pm(_finite(metrics.get('rel_l2_mean')), _finite(metrics.get('rel_l2_sem')))}"
                f", {_secs(_finite(metrics.get('train_seconds')))} s")
        results.append((entry, label, metrics))
        if (d / runs.HISTORY).exists():
            histories[entry.key] = d / runs.HISTORY
    rows = table_rows(table if prob == spec.problem else "", results)  # another problem: no paper numbers
    n_note = (f"{seeds} seed(s) per configuration, trained as one batched ensemble on {device}; time = wall "
              f"time of the training epochs of that batched run. Paper numbers: {paper_numbers.SOURCE}.")
    spec_note = spec.note if prob == spec.problem else (
        f"Run on {prob} instead of the paper's {spec.problem}; the paper's numbers do not apply.")
    note = " ".join(s for s in (spec_note, n_note) if s)
    title = spec.title
    if prob != spec.problem or epochs:
        title = f"{spec.title} ({prob}, {epochs or 'paper'} epochs)"
    md, csv_text = format_table(rows, title=title, note=note)
    from . import _io

    _io.atomic_write_text(root / "table.md", md)
    _io.atomic_write_text(root / "table.csv", csv_text)
    runs.write_json(root / "table.json", {
        "table": table, "problem": prob, "seeds": seeds, "epochs": epochs, "device": device,
        "rows": [dict(asdict(r), paper=asdict(r.paper)) for r in rows]})
    fig_paths: list[Path] = []
    if figures:
        fig_paths = _table_figures(table, spec, rows, histories, root, title)
    return TableResult(table, root, rows, md, csv_text, fig_paths)


def _table_figures(table: str, spec: TableSpec, rows: list[Row], histories: dict, root: Path, title: str) -> list[Path]:
    from . import plots
    from .trainer import History

    paths = []
    try:
        paths.append(plots.plot_table_summary([r.label for r in rows], [r.rel_l2_mean for r in rows],
                                              [r.rel_l2_sem for r in rows], root / "summary.png",
                                              paper=[r.paper.rel_l2_mean for r in rows], title=title))
        if table == "fig12":
            hist = {}
            for e in spec.entries:
                if e.key in histories:
                    hist[(e.beta, e.bias_correction)] = History.load(str(histories[e.key]))
            if hist:
                paths.append(plots.plot_bias_correction(hist, root / "bias_correction.png", title=title))
    except Exception as exc:
        warnings.warn(f"table figures were not written: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
    return paths


# -------------------------------------------------------------------------------------------- demo
#: The demo's defaults, chosen from CPU measurements (see the README): Poisson on [0, 1]^2 as in the
#: paper, with fewer epochs and collocation points so that both runs fit in a few minutes on 2 cores.
DEMO_DEFAULTS = {"epochs": 3000, "n_pde": 1000, "n_bc": 400, "beta": 0.9, "seed": 0}


def demo(*, epochs: int = DEMO_DEFAULTS["epochs"], n_pde: int = DEMO_DEFAULTS["n_pde"],
         n_bc: int = DEMO_DEFAULTS["n_bc"], beta: float = DEMO_DEFAULTS["beta"], seed: int = DEMO_DEFAULTS["seed"],
         device: str = "cpu", dtype: str = "float32", backend: str = "auto", out: Union[str, Path, None] = None,
         force: bool = False, progress: bool = False, figures: bool = True, eval_every: int = 250,
         compile: Union[bool, str] = False, step_mode: str = "eager", derivative_method: str = "auto",
         log: Optional[Log] = None) -> dict:
    """Train the paper's Poisson problem with PINN and with DN-PINN at a CPU-sized budget; returns
    ``{"pinn": metrics, "dn": metrics, "ratio": pinn/dn, "out": dir}``."""
    log = log or (lambda s: None)
    root = Path(out) if out is not None else runs.default_run_dir("poisson", "demo")
    kwargs = {"n_pde": n_pde, "n_bc": n_bc}
    cfgs = {name: RunConfig(problem="poisson", scheme=name, beta=beta, seeds=(seed,), epochs=epochs, device=device,
                            dtype=dtype, backend=backend, eval_every=eval_every, problem_kwargs=kwargs,
                            compile=compile, step_mode=step_mode, derivative_method=derivative_method).validate()
            for name in ("pinn", "dn")}
    for cfg in cfgs.values():
        preflight_backend(cfg)
    if not force:
        for name in cfgs:
            if runs.is_nonempty_dir(root / name):
                raise runs.RunDirError(f"output directory {str(root / name)!r} is not empty; "
                                       "pass --force to overwrite it")
    result: dict[str, Any] = {"out": str(root)}
    for name, cfg in cfgs.items():
        log(f"training {cfg.describe()} on Poisson: {epochs} epochs, {n_pde} PDE points ...")
        result[name] = train_run(cfg, root / name, force=force, progress=progress, figures=figures, command="demo")
    e_pinn, e_dn = result["pinn"]["rel_l2"], result["dn"]["rel_l2"]
    result["ratio"] = e_pinn / e_dn if e_dn else float("inf")
    runs.write_json(root / "demo.json", {"pinn": result["pinn"], "dn": result["dn"], "ratio": result["ratio"],
                                          "epochs": epochs, "n_pde": n_pde, "n_bc": n_bc, "beta": beta, "seed": seed})
    return result


# ----------------------------------------------------------------------------------------- compare
#: Schemes ``fastpinn compare`` trains by default: those the Trainer runs today.
COMPARE_DEFAULT = ("pinn", "dn", "id", "ma", "lra", "gradnorm-w")


@dataclass
class CompareResult:
    out_dir: Path
    markdown: str
    rows: list[dict]
    figure: Optional[Path]


def compare(problem: str, schemes: Sequence[str] = COMPARE_DEFAULT, *, seeds: int = 3,
            epochs: Optional[int] = None, device: str = "cpu", dtype: str = "float32", backend: str = "auto",
            out: Union[str, Path, None] = None, problem_kwargs: Optional[dict] = None, eval_every: int = 100,
            lr: float = 1e-3, force: bool = False, progress: bool = False, figure: bool = True,
            log: Callable[[str], None] = lambda s: None) -> CompareResult:
    """Train ``schemes`` side by side on ``problem`` (each one ensemble of ``seeds`` seeds, default
    parameters) and write ``compare.md`` / ``compare.csv`` (rel. L2 mean ± s.e., training time, time over
    PINN; PINN is added when missing) and ``compare.png`` (rel. L2 vs epoch, mean over seeds, per scheme).
    Each run is a run directory ``<out>/<scheme>``; finished ones are reused (:func:`is_complete`)."""
    names = list(dict.fromkeys(["pinn", *schemes]))
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be an integer >= 1, got {seeds!r}")
    cfgs = {}
    for name in names:
        if name not in SCHEMES:
            raise ValueError(f"schemes must be among {', '.join(SCHEMES)}, got {name!r}")
        cfgs[name] = RunConfig(problem=problem, scheme=name, seeds=tuple(range(seeds)), ensemble=True, epochs=epochs,
                               lr=lr, device=device, dtype=dtype, backend=backend, eval_every=eval_every,
                               problem_kwargs=dict(problem_kwargs or {})).validate()
    root = Path(out) if out is not None else Path("runs") / f"compare-{problem}"
    preflight_backend(next((c for n, c in cfgs.items() if n != "pinn"), cfgs["pinn"]))
    from .trainer import History

    rows, curves = [], {}
    for name, cfg in cfgs.items():
        run_dir = root / name
        if not force and is_complete(run_dir, cfg):
            log(f"compare: {name}: reusing {run_dir}")
            m = runs.read_json(run_dir / runs.METRICS)
        else:
            log(f"compare: training {cfg.describe()} ({seeds} seeds) -> {run_dir}")
            m = train_run(cfg, run_dir, force=True, progress=progress, figures=False, command="compare")
        h = History.load(str(run_dir / runs.HISTORY))
        if h.rel_l2.shape[0]:
            curves[name] = (h.eval_epochs, h.rel_l2.mean(axis=1))
        rows.append({"scheme": name, "label": cfg.describe(), "status": m.get("status", "ok"),
                     "seeds": seeds, "rel_l2_mean": _finite(m.get("rel_l2_mean")),
                     "rel_l2_sem": _finite(m.get("rel_l2_sem")), "train_seconds": _finite(m.get("train_seconds"))})
    base = rows[0]["train_seconds"]
    for r in rows:
        r["time_over_pinn"] = (r["train_seconds"] / base) if base and r["train_seconds"] is not None else None
    lines = [f"| scheme | seeds | rel. L2 (mean ± s.e.) | time (s) | time / PINN |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        err = _mean_pm(r["rel_l2_mean"], r["rel_l2_sem"]) if r["status"] == "ok" else r["status"]
        ratio = "n/a" if r["time_over_pinn"] is None else f"{r['time_over_pinn']:.2f}"
        lines.append(f"| {r['label']} | {r['seeds']} | {err} | {_secs(r['train_seconds'])} | {ratio} |")
    md = "\n".join(lines) + "\n"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    from ._io import atomic_write_text

    atomic_write_text(root / "compare.md", md)
    atomic_write_text(root / "compare.csv", buf.getvalue())
    fig_path = None
    if figure and curves:
        from matplotlib.figure import Figure

        from .plots import save_figure

        fig = Figure(figsize=(7, 4.5), layout="constrained")
        ax = fig.add_subplot()
        for name, (ep, err) in curves.items():
            ax.plot(ep, err, label=cfgs[name].describe())
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"relative L2 error (mean over {seeds} seeds)")
        ax.set_title(f"{problem}: weighting schemes")
        ax.legend(fontsize=8)
        fig_path = save_figure(fig, root / "compare.png")
    return CompareResult(root, md, rows, fig_path)
