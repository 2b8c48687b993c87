"""The few-minute CPU demo (PINN vs DN-PINN on Poisson) and ``compare``: weighting schemes side by side."""

from __future__ import annotations

import csv
import io
import math
import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from . import directory, records
from .config import SCHEMES, TRAINING_OPTIONS, Log, RunConfig, is_user_problem, problem_takes_seed
from .one_run import nothing_to_balance, preflight_backend, train_run
from . import step_timing as timing
from .compare_summary import constant_fit_error, rank_key, summary_markdown, timing_legend, untrained_line
from .compare_terms import final_terms
from ..validation import check_int
from .tables import finite_or_none

__all__ = ["DEMO_DEFAULTS", "demo", "COMPARE_DEFAULT", "COMPARE_SEEDS", "REMEDIES", "Entry", "parse_entry",
           "CompareResult", "compare", "compare_name", "train_command", "trains_ensembles"]


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
#: What ``fastpinn compare`` trains by default: the schemes the Trainer runs today, DN at the paper's β = 0.9 and
#: at ``train``'s 0.99, and DN with the remedies of docs/weights.md (bounds, warm-up).
COMPARE_DEFAULT = ("pinn", "dn", "dn+beta=0.99", "dn+clamp", "dn+warmup", "id", "ma", "lra", "gradnorm-w")
#: Seeds per scheme by default (one for a user's function without a ``seed`` argument).
COMPARE_SEEDS = 3


#: Named remedies an entry ``SCHEME+REMEDY`` adds to its scheme (docs/weights.md): ``clamp`` bounds the weights
#: to [0.01, 100]; ``warmup`` holds them at 1 for the first third of the epochs; ``bias`` corrects the EMA's bias.
REMEDIES = {"clamp": {"weight_min": 0.01, "weight_max": 100.0}, "warmup": {}, "bias": {"bias_correction": True}}


@dataclass(frozen=True)
class Entry:
    """One row of a comparison: ``scheme`` with ``params`` (``(key, value)`` pairs over the scheme's defaults),
    ``warmup`` (hold the weights for a third of the epochs) and ``reference_term`` (``None``: the problem's).
    ``text`` is how the user wrote it (``dn+clamp``), the row's name and run directory."""

    text: str
    scheme: str
    params: tuple = ()
    warmup: bool = False
    reference_term: Optional[str] = None


def _parse_value(spec: Any, key: str, text: str) -> Any:
    """``text`` as a value of the declared parameter ``spec`` (one number, integer, flag or word)."""
    try:
        if spec.kind == "bool":
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        if spec.kind == "int":
            return int(text)
        if spec.kind == "float":
            return float(text)
        if spec.kind == "str":
            return text
    except ValueError:
        pass
    raise ValueError(f"schemes: {key}={text!r} is not a {spec.kind} value")


def parse_entry(text: str) -> Entry:
    """``SCHEME[+PART...]``, each part a remedy of :data:`REMEDIES`, ``KEY=VALUE`` (a parameter the scheme
    declares, e.g. ``beta=0.99``, ``weight_max=100``) or ``ref=TERM`` (the reference term); ``ValueError``
    (one line) naming what is not allowed."""
    from ..schemes import scheme_class

    scheme, *parts = str(text).strip().split("+")
    if scheme not in SCHEMES:
        raise ValueError(f"schemes must be among {', '.join(SCHEMES)} (each optionally +REMEDY or +KEY=VALUE), "
                         f"got {text!r}")
    declared = scheme_class(scheme).declared()
    params: dict[str, Any] = {}
    warmup, reference = False, None
    for part in parts:
        key, eq, value = part.partition("=")
        if not eq and key in REMEDIES:
            needs = (*REMEDIES[key], *(("weight_warmup",) if key == "warmup" else ()))
            missing = [k for k in needs if k not in declared]
            if missing:
                raise ValueError(f"schemes: {text!r}: scheme {scheme!r} has no remedy {key!r} (it declares no "
                                 f"{missing[0]}; the remedies apply to ma, id, dn, lra, gradnorm-w, ntk)")
            params.update(REMEDIES[key])
            warmup = warmup or key == "warmup"
        elif eq and key == "ref" and value:
            reference = value
        elif eq and key in declared:
            params[key] = _parse_value(declared[key], key, value)
        else:
            raise ValueError(f"schemes: {text!r}: {part!r} must be one of the remedies {', '.join(REMEDIES)}, "
                             f"ref=TERM, or KEY=VALUE with KEY a parameter of {scheme!r} "
                             f"({', '.join(declared) or 'none'})")
    return Entry(str(text).strip(), scheme, tuple(params.items()), warmup, reference)


@dataclass
class CompareResult:
    """What :func:`compare` wrote. ``rows``: one per scheme in training order (PINN first), each with its
    ``rank`` (1: lowest mean rel. L2; failed runs last); ``winner``: the best row's scheme, ``None`` when no
    run finished or the problem has one loss term (then PINN alone is trained: compare.json's ``not_trained``); ``train_command``: the ``fastpinn train`` command line of the winner's configuration;
    ``untrained``: even the best row did not train (:func:`~fastpinn.run.compare_summary.untrained_line`): the
    winner is then no recommendation."""

    out_dir: Path
    markdown: str
    rows: list[dict]
    figure: Optional[Path]
    winner: Optional[str] = None
    train_command: Optional[str] = None
    untrained: bool = False


def compare_name(problem: str) -> str:
    """A directory-safe name of ``problem``: itself for a built-in, ``file-function`` for ``file.py:function``."""
    if is_user_problem(problem):
        file, _, func = str(problem).rpartition(":")
        return f"{Path(file).stem}-{func}"
    return str(problem)


def _seeds_for(problem: str, seeds: Optional[int]) -> tuple[tuple[int, ...], bool]:
    """The seeds of each scheme's run and whether they train as an ensemble: ``seeds`` (default
    :data:`COMPARE_SEEDS`) as one ensemble, or seed 0 alone for a function without a ``seed`` argument."""
    takes_seed = problem_takes_seed(problem)  # ValueError naming an unknown problem or a bad file
    if seeds is None:
        seeds = COMPARE_SEEDS if takes_seed else 1
    check_int("seeds", seeds, minimum=1)
    if not takes_seed:
        if seeds > 1:
            raise ValueError(f"seeds must be 1 for problem {problem!r}: its function takes no seed argument, so every "
                             f"seed would train the same network (got {seeds}; add seed=0 to its arguments to compare "
                             "over seeds)")
        return (0,), False
    return tuple(range(seeds)), True


def _option_tokens(key: str, value: Any, kind: str) -> list[str]:
    """``--key value`` as ``fastpinn train`` parses it (:func:`fastpinn.schemes.add_scheme_options`)."""
    from ..schemes.options import option_name

    name = option_name(key)
    if kind == "bool":
        return [name if value else "--no-" + name[2:]]

    def text(v: Any) -> str:
        if v is None:
            return "none"
        if isinstance(v, float):
            return "inf" if v == math.inf else ("-inf" if v == -math.inf else repr(v))
        return str(v)

    return [name, ",".join(text(v) for v in value) if isinstance(value, tuple) else text(value)]


def train_command(problem: str, cfg: RunConfig) -> str:
    """The ``fastpinn train`` command line that trains ``cfg`` (``problem`` as the user wrote it): the scheme's
    parameters where they differ from ``train``'s defaults, the seeds, epochs, sizes and training options."""
    from ..schemes import scheme_class

    words = ["fastpinn", "train", str(problem), "--scheme", cfg.scheme]
    if cfg.reference_term is not None:
        words += ["--reference-term", cfg.reference_term]
    for key, spec in scheme_class(cfg.scheme).declared().items():
        value = cfg.scheme_params.get(key, spec.default)
        train_default = spec.default if spec.cli_default is None else spec.cli_default
        if value != train_default:
            words += _option_tokens(key, value, spec.kind)
    if cfg.ensemble:
        words += ["--seeds", str(len(cfg.seeds))]
    elif cfg.seeds != (0,):
        words += ["--seed", str(cfg.seeds[0])]
    if cfg.epochs is not None:
        words += ["--epochs", str(cfg.epochs)]
    for key, value in sorted(cfg.problem_kwargs.items()):
        words += _option_tokens(key, value, "int")
    defaults = RunConfig(problem=cfg.problem)
    for key in ("lr", "dtype", *TRAINING_OPTIONS):
        value = getattr(cfg, key)
        if value == getattr(defaults, key) or (key == "lbfgs_iters" and cfg.optimizer == "adam"):
            continue
        words += ["--no-input-scaling"] if key == "input_scaling" else _option_tokens(key, value, "str")
    return shlex.join(words)


def _not_reused_because(run_dir: Path, cfg: RunConfig) -> Optional[str]:
    """Why the run in ``run_dir`` cannot stand for ``cfg`` (``None``: it can); an edited problem file is named."""
    identity = cfg.identity(cfg.resolved_epochs())
    reason = directory.verify_run(run_dir, identity)
    old = (directory.read_config(run_dir) or {}).get("identity") or {}
    digest = identity.get("problem_file_sha256")
    if reason is not None and digest and old.get("problem_file_sha256") not in (None, digest):
        return f"the problem file changed since it was trained (SHA-256 {old['problem_file_sha256'][:12]}... " \
               f"now {digest[:12]}...)"
    return reason


def compare(problem: str, schemes: Sequence[str] = COMPARE_DEFAULT, *, seeds: Optional[int] = None,
            epochs: Optional[int] = None, device: str = "cpu", dtype: str = "float32", backend: str = "auto",
            out: Union[str, Path, None] = None, problem_kwargs: Optional[dict] = None, eval_every: int = 100,
            lr: float = 1e-3, force: bool = False, progress: bool = False, figure: bool = True,
            log: Callable[[str], None] = lambda s: None, scheme_params: Optional[dict] = None,
            options: Optional[dict] = None, step_timing: bool = True) -> CompareResult:
    """Train ``schemes`` side by side on ``problem`` -- a built-in name or ``FILE.py:FUNCTION`` -- each over
    ``seeds`` seeds (default :data:`COMPARE_SEEDS`; one network, seed 0, for a function without a ``seed``
    argument), as one ensemble where the network allows, default parameters but for ``scheme_params``, each
    given to the schemes that declare it.

    Writes ``compare.md`` (the schemes ranked by mean rel. L2, best first: mean ± s.e. and min–max over seeds,
    the training run's wall time, the paired step time over PINN's; then a line for each scheme that ended far
    worse than PINN, naming the loss term it left behind (:mod:`~fastpinn.run.compare_terms`) -- or, when even
    the best row's error is that of no trained network, that no scheme trained --
    and the winner and the ``fastpinn train`` command that trains it: :mod:`~fastpinn.run.compare_summary`),
    ``compare.csv`` and ``compare.json`` (the same numbers, one row per scheme in
    training order, with its ``rank``; the JSON also ``untrained`` and ``constant_fit_rel_l2``, the error of the
    best constant function) and ``compare.png`` (rel. L2 vs epoch per scheme: mean over seeds, band
    from min to max). PINN is added when missing (the time baseline). The step time (``step_time_over_pinn``,
    ``epoch_seconds``) is measured side by side after training, reused runs included
    (:func:`~fastpinn.run.step_timing.paired_step_timing`: every scheme's trainer built afresh, bursts of epochs
    in interleaved rounds, the median of the per-round ratios; a comparison that trains nothing keeps the timing
    ``compare.json`` holds for the same configurations); ``step_timing=False`` skips it. The runs' own
    wall times (``train_seconds``, and their ratio ``time_over_pinn``) come from runs trained one after
    another, so the machine's load changes between them show in them. Each run is a run directory
    ``<out>/<scheme>`` -- or, for a problem whose
    network trains one seed at a time (:func:`trains_ensembles` false: ``ModifiedMLP``,
    ``MultiScaleFourierFeatureMLP``), one single-network run per seed ``<out>/<scheme>/seed-<k>``, aggregated
    into the same row (time: their sum) and curve, the winner's command then training seed 0; a finished one
    of the same
    configuration -- for a user's file, the same file contents (its SHA-256 is in the run identity) -- is
    reused, any other is retrained and the reason logged. ``options``: more :class:`RunConfig` fields for every
    run, among :data:`~fastpinn.run.config.TRAINING_OPTIONS` (optimizer, schedule, network). A problem of one
    loss term (every condition a hard constraint) has no weights to balance: PINN alone is trained and the
    summary says that no scheme can do better (:func:`~fastpinn.run.compare_summary.one_term_line`)."""
    entries = {e.text: e for e in map(parse_entry, ["pinn", *schemes])}  # PINN first, each entry once
    unknown = sorted(set(options or {}) - set(TRAINING_OPTIONS))
    if unknown:
        raise ValueError(f"options must be among {', '.join(TRAINING_OPTIONS)}, got {unknown[0]!r}")
    seed_list, ensemble = _seeds_for(problem, seeds)
    cfgs = {name: _entry_config(entry, problem=problem, scheme_params=dict(scheme_params or {}), seeds=seed_list,
                                ensemble=ensemble, epochs=epochs, lr=lr, device=device, dtype=dtype, backend=backend,
                                eval_every=eval_every, problem_kwargs=dict(problem_kwargs or {}), **dict(options or {}))
            for name, entry in entries.items()}
    root = Path(out) if out is not None else Path("runs") / f"compare-{compare_name(problem)}"
    built = _one_seed(cfgs["pinn"], seed_list[0]).build_problem()
    one_term = nothing_to_balance(built, problem)
    # one loss term: every scheme's runs would equal PINN's (the user trial's wave, 9 schemes in 2 equal rows
    # ranked by noise), at more cost per step, and some refuse one term (DCGD): PINN alone answers the question
    not_trained = [_label(c) for n, c in cfgs.items() if n != "pinn"] if one_term else []
    if one_term:
        cfgs = {"pinn": cfgs["pinn"]}
        log(f"compare: {one_term}: every weighting scheme trains it as PINN does; training PINN only")
    preflight_backend(next((c for n, c in cfgs.items() if n != "pinn"), cfgs["pinn"]))

    # a network that trains one seed at a time (ModifiedMLP, MultiScaleFourierFeatureMLP): one run per seed
    one_run_per_seed = ensemble and not trains_ensembles(cfgs["pinn"])
    if one_run_per_seed:
        log(f"compare: {problem}'s network trains one seed at a time: one run per seed in <scheme>/seed-<k>")
    rows, curves, learned, reused, terms = [], {}, {}, [], {}
    for name, cfg in cfgs.items():
        if one_run_per_seed:
            runs = {root / name / f"seed-{s}": _one_seed(cfg, s) for s in seed_list}
            seed_runs = [_finished_run(f"{name} seed {c.seeds[0]}", c, d, force=force, progress=progress, log=log)
                         for d, c in runs.items()]
            reused += [bool(x.get("_reused")) for x in seed_runs]
            m = _seed_metrics(seed_runs)
        else:
            runs = {root / name: cfg}
            m = _finished_run(name, cfg, root / name, force=force, progress=progress, log=log)
            reused.append(bool(m.get("_reused")))
        curves[name] = _error_curve(list(runs))
        terms[name] = final_terms(list(runs))  # what its terms ended at, to say which one a scheme left behind
        learned[name] = {c: records.mean_sem(list(v))[0] for c, v in (m.get("coefficients") or {}).items() if v}
        per_seed = [v for v in (finite_or_none(x) for x in m.get("rel_l2_per_seed", [])) if v is not None]
        rows.append({"scheme": name, "label": _label(cfg), "status": m.get("status", "ok"),
                     "seeds": len(seed_list), "rel_l2_mean": finite_or_none(m.get("rel_l2_mean")),
                     "rel_l2_sem": finite_or_none(m.get("rel_l2_sem")),
                     "train_seconds": finite_or_none(m.get("train_seconds")), "time_over_pinn": None,
                     "epoch_seconds": None, "step_time_over_pinn": None,
                     "rel_l2_min": min(per_seed) if per_seed else None,
                     "rel_l2_max": max(per_seed) if per_seed else None,
                     "weight_warnings": len(m.get("weight_warnings") or []), "rank": None})
    # an inverse problem: the learned coefficients (mean over seeds), one column each, in the CSV and the table
    coefficient_names = list(dict.fromkeys(c for values in learned.values() for c in values))
    for r in rows:
        r.update({f"coef_{c}": learned[r["scheme"]].get(c) for c in coefficient_names})
    base = rows[0]["train_seconds"]
    for r in rows:
        r["time_over_pinn"] = (r["train_seconds"] / base) if base and r["train_seconds"] is not None else None
    timed_as = None
    if step_timing:
        timing_cfgs = {n: timing.timed_config(_one_seed(c, seed_list[0]) if one_run_per_seed else c)
                       for n, c in cfgs.items()}
        timed_as = timing.timing_key(timing_cfgs)
        timings = timing.earlier_timing(records.read_json(root / "compare.json"), timed_as) if all(reused) else None
        if timings is None:
            log(f"compare: timing the schemes' epochs side by side ({timing.STEP_TIMING_ROUNDS} interleaved rounds)")
            timings = {n: None if t is None else [t.epoch_seconds, t.over_baseline]
                       for n, t in timing.paired_step_timing(timing_cfgs).items()}
        else:
            log("compare: every run reused: the step timing of the comparison that trained them is kept")
        for r in rows:
            r["epoch_seconds"], r["step_time_over_pinn"] = timings[r["scheme"]] or (None, None)
    ranked = sorted(rows, key=rank_key)
    for k, r in enumerate(ranked, 1):
        r["rank"] = k
    best = ranked[0] if rank_key(ranked[0])[0] == 0 else None
    constant_error = constant_fit_error(built) if best else None
    untrained = best is not None and untrained_line(best, constant_error) is not None
    winner_cfg = None if best is None else cfgs[best["scheme"]]
    if winner_cfg is not None and one_run_per_seed:
        winner_cfg = _one_seed(winner_cfg, seed_list[0])
    command = train_command(problem, winner_cfg) if winner_cfg is not None else None
    md = summary_markdown(ranked, best, command, coefficient_names, step_timing=step_timing,
                          constant_error=constant_error, one_term=one_term, not_trained=not_trained, terms=terms,
                          betas={n: getattr(c.scheme_object(), "beta", None) for n, c in cfgs.items()})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    from .._io import atomic_write_text

    atomic_write_text(root / "compare.md", md)
    atomic_write_text(root / "compare.csv", buf.getvalue())
    winner = best["scheme"] if best and not one_term else None  # one loss term: no scheme wins
    records.write_json(root / "compare.json", {"rows": rows, "winner": winner, "untrained": untrained,
                                               "one_loss_term": one_term is not None, "not_trained": not_trained,
                                               "constant_fit_rel_l2": constant_error,
                                               "train_command": command, "step_timing": timing_legend(step_timing),
                                               "step_timing_of": timed_as})
    fig_path = None
    if figure and any(c is not None for c in curves.values()):
        labels = {name: _label(cfg) for name, cfg in cfgs.items()}
        fig_path = _figure(root / "compare.png", curves, labels, title=f"{compare_name(problem)}: weighting schemes",
                           seeds=len(seed_list))
    return CompareResult(root, md, rows, fig_path, winner, command, untrained)


def _entry_config(entry: Entry, **fields: Any) -> RunConfig:
    """The validated :class:`RunConfig` of one entry: its parameters over the shared ``scheme_params``, a warm-up
    of a third of the (resolved) epochs, its reference term."""
    params = {**fields.pop("scheme_params"), **dict(entry.params)}
    cfg = RunConfig(scheme=entry.scheme, scheme_params=params, reference_term=entry.reference_term, **fields)
    if entry.warmup:
        cfg = RunConfig(scheme=entry.scheme, reference_term=entry.reference_term, **fields,
                        scheme_params={**params, "weight_warmup": max(1, cfg.resolved_epochs() // 3)})
    return cfg.validate()


def _label(cfg: RunConfig) -> str:
    """The scheme's description, with a reference term other than the problem's."""
    return cfg.describe() + ("" if cfg.reference_term is None else f", reference term {cfg.reference_term}")


def _finished_run(name: str, cfg: RunConfig, run_dir: Path, *, force: bool, progress: bool, log: Log) -> dict:
    """The metrics of ``cfg``'s run in ``run_dir``: reused when it is finished and of this configuration,
    trained otherwise (a diverged run is a row of the table, not the end of the comparison)."""
    from ..trainer import NonFiniteError

    if not force and run_dir.exists():
        reason = _not_reused_because(run_dir, cfg)
        if reason is None:
            log(f"compare: {name}: reusing {run_dir}")
            return dict(records.read_json(run_dir / directory.METRICS) or {}, _reused=True)
        if directory.is_nonempty_dir(run_dir):
            log(f"compare: {name}: not reusing {run_dir}: {reason}")
    log(f"compare: training {cfg.describe()} ({len(cfg.seeds)} seed{'s' * (len(cfg.seeds) > 1)}) -> {run_dir}")
    try:
        return train_run(cfg, run_dir, force=True, progress=progress, figures=False, command="compare")
    except NonFiniteError as exc:
        log(f"compare: {name}: diverged ({exc})")
        return records.read_json(run_dir / directory.METRICS) or {"status": "diverged"}


def trains_ensembles(cfg: RunConfig) -> bool:
    """Whether the network of ``cfg``'s problem trains several seeds as one ensemble: the default MLP does; a
    declared ``architecture`` does when it builds for two seeds (a single-network one raises, as
    ``MultiScaleFourierFeatureMLP`` does, or takes no ``ensemble`` argument, as ``ModifiedMLP``)."""
    from ..problem import stack

    problem = _one_seed(cfg, 0).build_problem()
    if problem.architecture is None:
        return True
    try:  # the two-member ensemble of seed 0's points: cheap, and a network built as compare would build it
        stack([problem, replace(problem, seeds=(1,))]).network(**cfg.network_options())
    except (TypeError, ValueError):
        return False
    return True


def _one_seed(cfg: RunConfig, seed: int) -> RunConfig:
    """``cfg`` training the single network of ``seed``."""
    return replace(cfg, seeds=(seed,), ensemble=False).validate()


def _seed_metrics(runs: list[dict]) -> dict:
    """The metrics of single-seed runs as one ensemble's would read: rel. L2 per seed, its mean and s.e., the
    summed training time, the first status that is not ``ok``, all weight warnings."""
    per_seed = [x for m in runs for x in m.get("rel_l2_per_seed", [m.get("rel_l2", float("nan"))])]
    finite = [v for v in (finite_or_none(x) for x in per_seed) if v is not None]
    mean, sem = records.mean_sem(finite) if len(finite) == len(per_seed) else (float("nan"), float("nan"))
    seconds = [finite_or_none(m.get("train_seconds")) for m in runs]
    return {"status": next((m["status"] for m in runs if m.get("status", "ok") != "ok"), "ok"),
            "rel_l2_per_seed": per_seed, "rel_l2_mean": mean, "rel_l2_sem": sem,
            "train_seconds": None if None in seconds else sum(seconds),
            "weight_warnings": [w for m in runs for w in (m.get("weight_warnings") or [])],
            "coefficients": {c: [v for m in runs for v in (m.get("coefficients") or {}).get(c, [])]
                             for c in dict.fromkeys(c for m in runs for c in (m.get("coefficients") or {}))}}


def _error_curve(run_dirs: list[Path]) -> Optional[tuple]:
    """``(epochs [M], mean [M], min [M], max [M])`` of the rel. L2 over the seeds of ``run_dirs`` (one ensemble
    run, or one run per seed: their common evaluations), ``None`` without any."""
    import numpy as np

    from ..trainer import History

    histories = [History.load(str(d / directory.HISTORY)) for d in run_dirs]
    m = min(h.rel_l2.shape[0] for h in histories)
    if not m:
        return None
    err = np.concatenate([np.asarray(h.rel_l2, dtype=float)[:m].reshape(m, -1) for h in histories], axis=1)
    return histories[0].eval_epochs[:m], err.mean(axis=1), err.min(axis=1), err.max(axis=1)


def _figure(path: Path, curves: dict, labels: dict, *, title: str, seeds: int) -> Path:
    from matplotlib.figure import Figure

    from ..plots import save_figure

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for name, curve in curves.items():
        if curve is None:
            continue
        ep, mean, lo, hi = curve
        (line,) = ax.plot(ep, mean, label=labels[name])
        if seeds > 1:
            ax.fill_between(ep, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    band = f"mean over {seeds} seeds, band: min – max" if seeds > 1 else "one seed"
    ax.set_ylabel(f"relative L2 error ({band})")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
