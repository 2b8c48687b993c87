"""The few-minute CPU demo (PINN vs DN-PINN on Poisson) and ``compare``: weighting schemes side by side."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from . import directory, records
from .config import SCHEMES, Log, RunConfig
from .directory import is_complete
from .one_run import preflight_backend, train_run
from ..validation import check_int
from .tables import finite_or_none, format_mean_pm, format_seconds

__all__ = ["DEMO_DEFAULTS", "demo", "COMPARE_DEFAULT", "CompareResult", "compare"]


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
    root = Path(out) if out is not None else directory.default_run_dir("poisson", "demo")
    kwargs = {"n_pde": n_pde, "n_bc": n_bc}
    cfgs = {name: RunConfig(problem="poisson", scheme=name, beta=beta, seeds=(seed,), epochs=epochs, device=device,
                            dtype=dtype, backend=backend, eval_every=eval_every, problem_kwargs=kwargs,
                            compile=compile, step_mode=step_mode, derivative_method=derivative_method).validate()
            for name in ("pinn", "dn")}
    for cfg in cfgs.values():
        preflight_backend(cfg)
    if not force:
        for name in cfgs:
            if directory.is_nonempty_dir(root / name):
                raise directory.RunDirError(f"output directory {str(root / name)!r} is not empty; "
                                            "pass --force to overwrite it")
    result: dict[str, Any] = {"out": str(root)}
    for name, cfg in cfgs.items():
        log(f"training {cfg.describe()} on Poisson: {epochs} epochs, {n_pde} PDE points ...")
        result[name] = train_run(cfg, root / name, force=force, progress=progress, figures=figures, command="demo")
    e_pinn, e_dn = result["pinn"]["rel_l2"], result["dn"]["rel_l2"]
    result["ratio"] = e_pinn / e_dn if e_dn else float("inf")
    records.write_json(root / "demo.json", {"pinn": result["pinn"], "dn": result["dn"], "ratio": result["ratio"],
                                            "epochs": epochs, "n_pde": n_pde, "n_bc": n_bc, "beta": beta,
                                            "seed": seed})
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
            log: Callable[[str], None] = lambda s: None, scheme_params: Optional[dict] = None,
            options: Optional[dict] = None) -> CompareResult:
    """Train ``schemes`` side by side on ``problem`` (each one ensemble of ``seeds`` seeds, default
    parameters but for ``scheme_params``, each given to the schemes that declare it) and write
    ``compare.md`` / ``compare.csv`` (rel. L2 mean ± s.e., training time, time over
    PINN; PINN is added when missing) and ``compare.png`` (rel. L2 vs epoch, mean over seeds, per scheme).
    Each run is a run directory ``<out>/<scheme>``; finished ones are reused (:func:`is_complete`).
    ``options``: more :class:`RunConfig` fields for every run, among
    :data:`~fastpinn.run.config.TRAINING_OPTIONS` (optimizer, schedule, network)."""
    names = list(dict.fromkeys(["pinn", *schemes]))
    check_int("seeds", seeds, minimum=1)
    from .config import TRAINING_OPTIONS

    unknown = sorted(set(options or {}) - set(TRAINING_OPTIONS))
    if unknown:
        raise ValueError(f"options must be among {', '.join(TRAINING_OPTIONS)}, got {unknown[0]!r}")
    cfgs = {}
    for name in names:
        if name not in SCHEMES:
            raise ValueError(f"schemes must be among {', '.join(SCHEMES)}, got {name!r}")
        cfgs[name] = RunConfig(problem=problem, scheme=name, scheme_params=dict(scheme_params or {}),
                               seeds=tuple(range(seeds)), ensemble=True, epochs=epochs,
                               lr=lr, device=device, dtype=dtype, backend=backend, eval_every=eval_every,
                               problem_kwargs=dict(problem_kwargs or {}), **dict(options or {})).validate()
    root = Path(out) if out is not None else Path("runs") / f"compare-{problem}"
    preflight_backend(next((c for n, c in cfgs.items() if n != "pinn"), cfgs["pinn"]))
    from ..trainer import History

    rows, curves = [], {}
    for name, cfg in cfgs.items():
        run_dir = root / name
        if not force and is_complete(run_dir, cfg):
            log(f"compare: {name}: reusing {run_dir}")
            m = records.read_json(run_dir / directory.METRICS)
        else:
            log(f"compare: training {cfg.describe()} ({seeds} seeds) -> {run_dir}")
            m = train_run(cfg, run_dir, force=True, progress=progress, figures=False, command="compare")
        h = History.load(str(run_dir / directory.HISTORY))
        if h.rel_l2.shape[0]:
            curves[name] = (h.eval_epochs, h.rel_l2.mean(axis=1))
        rows.append({"scheme": name, "label": cfg.describe(), "status": m.get("status", "ok"),
                     "seeds": seeds, "rel_l2_mean": finite_or_none(m.get("rel_l2_mean")),
                     "rel_l2_sem": finite_or_none(m.get("rel_l2_sem")), "train_seconds": finite_or_none(m.get("train_seconds"))})
    base = rows[0]["train_seconds"]
    for r in rows:
        r["time_over_pinn"] = (r["train_seconds"] / base) if base and r["train_seconds"] is not None else None
    lines = ["| scheme | seeds | rel. L2 (mean ± s.e.) | time (s) | time / PINN |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        err = format_mean_pm(r["rel_l2_mean"], r["rel_l2_sem"]) if r["status"] == "ok" else r["status"]
        ratio = "n/a" if r["time_over_pinn"] is None else f"{r['time_over_pinn']:.2f}"
        lines.append(f"| {r['label']} | {r['seeds']} | {err} | {format_seconds(r['train_seconds'])} | {ratio} |")
    md = "\n".join(lines) + "\n"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    from .._io import atomic_write_text

    atomic_write_text(root / "compare.md", md)
    atomic_write_text(root / "compare.csv", buf.getvalue())
    fig_path = None
    if figure and curves:
        from matplotlib.figure import Figure

        from ..plots import save_figure

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
