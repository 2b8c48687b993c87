"""Sweeps: :func:`reproduce` trains a table's configurations (resumable, sharded, optionally in seed
chunks) and writes the table and its figures."""

from __future__ import annotations

import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Optional, Union

from .. import _io, paper_numbers
from ..trainer import NonFiniteError
from ..validation import check_choice, check_int
from . import directory, records
from .config import Log, RunConfig
from .directory import resumable_epoch
from .lock import RunDirBusyError, check_not_busy
from .loading import trainer_from_run
from .one_run import preflight_backend, train_run
from ..data_parallel import launcher_rank_and_world
from .tables import (IN_PROGRESS, NOT_STARTED, TABLES, Entry, Row, TableResult, finite_or_none, format_agrees,
                     format_mean_pm, format_seconds, format_table, table_entries, table_rows)

__all__ = ["sweep_shard", "SweepOptions", "reproduce", "report", "unit_state", "saves_of_run"]

#: What a sweep writes in its root (``fnmatch`` patterns): the table and its figures.
TABLE_FILES = ("table.md", "table.csv", "table.json", "summary.png", "gradients*.png", "bias_correction*.png")


def sweep_shard(shard: Union[str, tuple[int, int], None] = None) -> tuple[int, int]:
    """``(i, n)``: this job's share of a sweep -- configuration ``j`` is trained by shard ``j % n``.
    ``shard``: ``"i/n"`` (0 <= i < n, e.g. ``--shard 0/4`` of a cluster array job) or a pair; ``None``:
    the rank and world size ``torchrun`` puts in the environment (``RANK``/``WORLD_SIZE``), else ``(0, 1)``."""
    if shard is None:
        shard = launcher_rank_and_world()
    if isinstance(shard, str):
        try:
            i, n = (int(v) for v in shard.split("/"))
        except ValueError:
            raise ValueError(f"shard must be 'i/n' with integers 0 <= i < n (e.g. '0/2'), got {shard!r}") from None
    else:
        i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"shard must be 'i/n' with integers 0 <= i < n (e.g. '0/2'), got {i}/{n}")
    return i, n


@dataclass(frozen=True)
class SweepOptions:
    """How :func:`reproduce` runs a table: what every configuration trains with, where its runs go, what
    it reports. Any field can also be passed to :func:`reproduce` as a keyword argument."""

    # what each configuration trains with (its RunConfig beyond the table's scheme parameters)
    seeds: int = 10
    epochs: Optional[int] = None
    device: str = "cpu"
    dtype: str = "float32"
    backend: str = "auto"
    problem: Optional[str] = None
    problem_kwargs: Optional[dict] = None
    lr: float = 1e-3
    eval_every: int = 100
    compile: Union[bool, str] = False
    step_mode: str = "eager"
    derivative_method: str = "auto"
    #: :class:`RunConfig` fidelity options (``update_schedule``, ``init``, ``keep_best``, ``patience``).
    fidelity: Optional[dict] = None
    # where the runs go and which of them this job trains
    out: Union[str, Path, None] = None
    force: bool = False
    shard: Union[str, tuple[int, int], None] = None
    seeds_per_run: Optional[int] = None
    #: :func:`train_run` checkpoint options (``checkpoint_every``, ``checkpoint_seconds``).
    run_options: Optional[dict] = None
    # what it reports
    progress: bool = False
    figures: bool = True
    log: Optional[Log] = None

    def run_config(self, entry: Entry, *, check_device: bool = True) -> RunConfig:
        """The configuration of one table entry under these options (validated; without ``check_device``
        a CUDA device need not be present -- a report compares identities only, so a GPU sweep's runs can be
        tabled on a machine without one)."""
        if not check_device:
            on_cpu = replace(self, device="cpu", step_mode="eager").run_config(entry)
            return replace(on_cpu, device=self.device, step_mode=self.step_mode)
        cfg = RunConfig(problem=entry.problem, scheme=entry.scheme, beta=entry.beta, p=entry.p,
                        bias_correction=entry.bias_correction, seeds=tuple(range(self.seeds)), ensemble=True,
                        epochs=self.epochs if self.epochs is not None else entry.epochs, lr=self.lr,
                        device=self.device, dtype=self.dtype, backend=self.backend, eval_every=self.eval_every,
                        problem_kwargs=dict(self.problem_kwargs or {}), compile=self.compile,
                        step_mode=self.step_mode, derivative_method=self.derivative_method,
                        **dict(self.fidelity or {}))
        return cfg.validate()


def reproduce(table: str, options: Optional[SweepOptions] = None, **overrides: Any) -> TableResult:
    """Run every configuration of ``table`` (resumable) and write ``table.md``, ``table.csv``, figures.

    ``options``: a :class:`SweepOptions`; ``overrides``: any of its fields as keyword arguments
    (``reproduce("table1", seeds=3, epochs=100)``).

    ``seeds_per_run``: train each configuration's seeds in ensembles of at most this many (for an
    ensemble too large for one device, or more ranks than configurations): seeds ``a..b`` of configuration
    ``<key>`` go to ``out/<key>.seeds-a-b/``, each chunk is one unit of work (sharded, resumed and reused
    like a whole configuration), and a configuration's row is assembled from all its chunks' per-seed
    errors (training time: the sum of the chunks'). ``None`` (default): all seeds in ``out/<key>/``.
    A chunk's members train as in the one ensemble (their own points, initialisation, weights and
    optimizer state, and the one ensemble's mini-batch permutation, ``RunConfig.batch_seed``), so the
    per-seed errors are the one ensemble's: bit for bit for a member that is last neither in its chunk nor
    in the one ensemble, to rounding for the others (torch's CPU fused Adam updates the last few elements
    of the flat parameters, the last member's, in a scalar loop that rounds differently; see the README).
    With ``patience`` they differ: a run stops early when none of *its* members improves.

    ``shard``: train only this job's share of the configurations (:func:`sweep_shard`: ``"i/n"``, or
    under ``torchrun`` the rank's, one configuration per rank in turn); every job writes its own run
    directories under the shared ``out``, and the job that finds all of them finished writes the table
    (the others return with :attr:`TableResult.missing` set).

    Each configuration trains its ``seeds`` seeds (0..seeds-1) as one ensemble in ``out/<key>/``. A
    configuration whose directory already holds a finished run of the same configuration, every file of
    which checks out (:func:`fastpinn.run.directory.verify_run`), is reused; an unfinished one continues from its
    checkpoint; a damaged one is retrained, saying why; a finished run of a *different* configuration is
    only overwritten with ``force``. ``table4`` and ``fig12`` cover the paper's three problems;
    ``problem`` restricts them to one (or runs any table's grid on another problem, without the paper's
    numbers).
    """
    o = replace(options or SweepOptions(), **overrides)
    log = o.log or (lambda s: None)
    sweep = _Sweep.of(table, o, refuse_other=True)
    preflight_backend(next((c for _, c, _, _ in sweep.plan if c.scheme != "pinn"), sweep.plan[0][1]))
    plan, root = sweep.plan, sweep.root
    me, n_shards = sweep_shard(o.shard)  # a bad --shard is refused before anything is written
    root.mkdir(parents=True, exist_ok=True)
    directory.remove_run_temporaries(root, TABLE_FILES)  # of table files a killed sweep was writing
    # This shard's own units first, the others' after: a shard that checks another's units only once its
    # own are on disk cannot miss the last of them (whichever shard finishes last sees every run).
    order = sorted(range(len(plan)), key=lambda j: (j % n_shards != me, j))
    finished: dict[int, tuple] = {}
    missing = []
    for j in order:
        entry, cfg, d, reason = plan[j]
        label = sweep.label(j)
        if j % n_shards != me:  # another shard's: used if finished by now
            reason = directory.verify_run(d, cfg.identity(cfg.resolved_epochs())) if d.is_dir() else "absent"
            if reason is not None:
                missing.append(str(d.relative_to(root)))
                continue
        metrics = dict(_run_unit(cfg, d, reason, f"[{j + 1}/{len(plan)}] {label}", table, o, log))
        metrics.update(saves_of_run(d))
        if metrics.get("status", "ok") == "ok":
            err = format_mean_pm(finite_or_none(metrics.get("rel_l2_mean")), finite_or_none(metrics.get("rel_l2_sem")))
            log(f"    rel. L2 = {err}, {format_seconds(finite_or_none(metrics.get('train_seconds')))} s")
        finished[j] = (entry, label, metrics)
    if missing:
        log(f"shard {me}/{n_shards} done; the table is written when the other shards finish (missing: "
            f"{', '.join(missing)}); rerun any shard to assemble it")
        return TableResult(table, root, [], "", "", [], missing)
    rows, md, csv_text = sweep.render([finished[j] for j in sorted(finished)])
    for r in rows:
        if r.paper.rel_l2_mean is not None:
            log(f"{r.label}: ours {format_mean_pm(r.rel_l2_mean, r.rel_l2_sem)}, paper "
                f"{format_mean_pm(r.paper.rel_l2_mean, r.paper.rel_l2_sem)}, "
                f"agree within s.e.: {format_agrees(r.agrees)}; best at the authors' saves "
                f"{format_mean_pm(r.saves_rel_l2_mean, r.saves_rel_l2_sem)}, agree within s.e.: "
                f"{format_agrees(r.agrees_within(1.0, saves=True))}")
    _io.atomic_write_text(root / "table.md", md)
    _io.atomic_write_text(root / "table.csv", csv_text)
    records.write_json(root / "table.json", {
        "table": table, "problems": list(sweep.problems), "seeds": o.seeds, "epochs": o.epochs, "device": o.device,
        "rows": [dict(asdict(r), paper=asdict(r.paper), agrees=r.agrees, agrees_within_2se=r.agrees_within(2.0),
                      best_agrees=r.agrees_within(1.0, best=True),
                      best_agrees_within_2se=r.agrees_within(2.0, best=True),
                      saves_agrees=r.agrees_within(1.0, saves=True),
                      saves_agrees_within_2se=r.agrees_within(2.0, saves=True))
                 for r in rows]})
    fig_paths: list[Path] = []
    if o.figures:
        histories = {}
        for entry, _, d, _ in plan:
            if (d / directory.HISTORY).exists() and entry.key not in histories:  # chunked: the first chunk's
                histories[entry.key] = d / directory.HISTORY
        fig_paths = _table_figures(table, sweep.row_units(), rows, histories, root, sweep.title)
    return TableResult(table, root, rows, md, csv_text, fig_paths)


def report(table: str, options: Optional[SweepOptions] = None, **overrides: Any) -> TableResult:
    """The table of what ``out`` holds now for the sweep :func:`reproduce` would run with the same
    arguments, training nothing and writing nothing (safe beside running shards): finished units as
    :func:`reproduce` would reuse them (every file checked); an unfinished unit with a checkpoint of its
    configuration as "in progress, epoch E/N" with its errors and training time at that checkpoint; the
    others "not started" (or naming the other configuration their directory holds).
    :attr:`TableResult.missing` lists the unfinished units; nothing is written, so ``figures`` is empty.
    """
    o = replace(options or SweepOptions(), **overrides)
    sweep = _Sweep.of(table, o, refuse_other=False)
    units = [(entry, sweep.label(j), unit_state(cfg, d, reason))
             for j, (entry, cfg, d, reason) in enumerate(sweep.plan)]
    missing = [str(d.relative_to(sweep.root)) for (_, _, d, _), (_, _, m) in zip(sweep.plan, units)
               if m.get("status") not in ("ok", "diverged")]
    counts = Counter(m.get("status") for _, _, m in units)
    done, running = counts["ok"] + counts["diverged"], counts[IN_PROGRESS]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    partial = (f"Partial table, assembled from what {sweep.root} held at {when} (`--report-only`: nothing trained, "
               f"nothing written there): {done} of {len(units)} run(s) finished, {running} in progress (their "
               f"errors and times are those of their last checkpoint), {len(units) - done - running} not started."
               if missing else "")
    rows, md, csv_text = sweep.render(units, extra_note=partial)
    return TableResult(table, sweep.root, rows, md, csv_text, [], missing)


def unit_state(cfg: RunConfig, d: Path, reason: Optional[str]) -> dict:
    """What one unit's directory ``d`` holds for configuration ``cfg``, as metrics for :func:`table_rows`:
    its ``metrics.json`` when finished (``reason`` ``None``: every file checked); ``status``
    :data:`IN_PROGRESS` with ``epoch``/``epochs``, the per-seed errors at its last evaluation and the
    training time so far from a checkpoint of ``cfg`` (epoch 0 when it has started without one yet),
    ``running`` when a live process holds ``d``; else :data:`NOT_STARTED`, or the other configuration it holds."""
    if reason is None:
        return dict(directory.read_metrics(d) or {}, **saves_of_run(d))
    identity = cfg.identity(cfg.resolved_epochs())
    base = {"n_seeds": len(cfg.seeds), "epochs": cfg.resolved_epochs(), "running": _running(d)}
    if not d.is_dir():
        return dict(base, status=NOT_STARTED)
    if directory.checkpoint_problem(d / directory.CHECKPOINT, identity) is None:
        from ..trainer import History

        state = directory.read_checkpoint(d / directory.CHECKPOINT)
        hist = History.from_dict(state["extra"]["history"])
        per_seed = [float(v) for v in hist.final_rel_l2()] if hist.rel_l2.shape[0] else []
        return dict(base, status=IN_PROGRESS, epoch=int(state["epoch"]), rel_l2_per_seed=per_seed,
                    best_rel_l2_per_seed=list(hist.extra.get("best_rel_l2", [])), train_seconds=hist.train_seconds,
                    **_saves_of(hist))
    if (directory.read_config(d) or {}).get("identity") == identity:  # started, before its first checkpoint
        return dict(base, status=IN_PROGRESS, epoch=0)
    if directory.is_nonempty_dir(d) and records.json_status(d / directory.CONFIG) == "ok":
        return dict(base, status=f"{d.name}/ holds another configuration")
    return dict(base, status=NOT_STARTED)


def _saves_of(hist: Any) -> dict:
    """The best at the authors' saves of a :class:`~fastpinn.trainer.History` (:func:`records.best_at_saves`)."""
    return records.best_at_saves(hist.eval_epochs, hist.rel_l2, paper_numbers.AUTHORS_SAVE_EVERY)


def saves_of_run(d: Path) -> dict:
    """The best at the authors' saves from the ``history.npz`` of run directory ``d`` (none, saying so, when
    it has none that loads, e.g. a run that diverged before writing one)."""
    from ..trainer import History

    try:
        hist = History.load(str(d / directory.HISTORY))
    except (OSError, ValueError, KeyError) as exc:
        return {"saves_missing": f"no readable {directory.HISTORY} ({type(exc).__name__})"}
    return _saves_of(hist)


def _running(d: Path) -> bool:
    """Whether a live process holds the run directory ``d`` (probed, nothing written)."""
    try:
        check_not_busy(d)
    except RunDirBusyError:
        return True
    return False


@dataclass
class _Sweep:
    """A table's sweep under given options: its units of work and how its rows and table are written."""

    table: str
    options: SweepOptions
    own: bool  # the paper's problems: its numbers apply
    problems: tuple[str, ...]
    root: Path
    chunk: int
    plan: list  # (entry, config, run dir, why it cannot be reused or None) per unit

    @classmethod
    def of(cls, table: str, o: SweepOptions, *, refuse_other: bool) -> "_Sweep":
        check_choice("table", table, TABLES)
        check_int("seeds", o.seeds, minimum=1)
        spec = TABLES[table]
        default_root = Path("runs") / (table if o.problem is None else f"{table}-{o.problem}")
        root = Path(o.out) if o.out is not None else default_root
        configs = [(entry, o.run_config(entry, check_device=refuse_other)) for entry in table_entries(table, o.problem)]
        chunk = _seeds_per_run(o.seeds_per_run, o.seeds)
        return cls(table, o, o.problem is None or o.problem in spec.problems,
                   spec.problems if o.problem is None else (o.problem,), root, chunk,
                   _plan_units(configs, chunk, root, force=o.force or not refuse_other))

    def label(self, j: int) -> str:
        entry, cfg, _, _ = self.plan[j]
        label = cfg.describe(show_p=self.table == "table4")
        if len(self.problems) > 1:
            label = f"{entry.problem}: {label}"
        if len(cfg.seeds) < self.options.seeds:
            label = f"{label} [seeds {cfg.seeds[0]}-{cfg.seeds[-1]}]"
        return label

    def row_units(self) -> list:
        """The plan with one unit per configuration (a chunked configuration's first chunk)."""
        return [u for i, u in enumerate(self.plan) if i == 0 or u[0].key != self.plan[i - 1][0].key]

    @property
    def title(self) -> str:
        o, spec = self.options, TABLES[self.table]
        if not self.own or o.epochs or o.problem is not None:
            return f"{spec.title} ({', '.join(self.problems)}, {o.epochs or 'paper'} epochs)"
        return spec.title

    def render(self, results: list[tuple[Entry, str, dict]], extra_note: str = "") -> tuple[list[Row], str, str]:
        """``(rows, markdown, csv)`` from one ``(entry, label, metrics)`` per unit."""
        o, spec = self.options, TABLES[self.table]
        if self.chunk < o.seeds:  # one row per configuration, from all its chunks
            results = _merge_chunks(results)
        rows = table_rows(self.table if self.own else "", results)  # another problem: no paper numbers
        how = ("trained as one batched ensemble" if self.chunk >= o.seeds else
               f"trained in batched ensembles of at most {self.chunk} seeds (one run directory each)")
        machines = _machines(d for _, _, d, _ in self.plan)
        n_note = (f"{o.seeds} seed(s) per configuration, {how} on {o.device}; time = wall time of the training "
                  f"epochs of that batched run{'' if self.chunk >= o.seeds else ', summed over the chunks'}"
                  f"{', on ' + '; '.join(machines) if machines else ''}. Paper numbers: {paper_numbers.SOURCE} "
                  f"(10 runs, TensorFlow on one NVIDIA RTX A6000).")
        spec_note = spec.note if self.own else (
            f"Run on {o.problem} instead of the paper's {', '.join(spec.problems)}; the paper's numbers do not apply.")
        note = " ".join(s for s in (spec_note, n_note, extra_note) if s)
        md, csv_text = format_table(rows, title=self.title, note=note)
        return rows, md, csv_text


def _machines(dirs: Iterable[Path]) -> list[str]:
    """The machines the runs in ``dirs`` trained on, from their ``config.json`` (each named once)."""
    out: list[str] = []
    for d in dirs:
        env = (directory.read_config(d) or {}).get("environment") or {}
        if not env.get("device_name"):
            continue
        what = str(env["device_name"])
        if env.get("cuda_version") is None and env.get("cpu_count"):
            what += f" ({env['cpu_count']} CPUs, {env.get('torch_num_threads', '?')} torch thread(s))"
        what += f", torch {env.get('torch_version', '?')}"
        if what not in out:
            out.append(what)
    return out


def _plan_units(configs: list[tuple[Entry, RunConfig]], chunk: int, root: Path, *, force: bool) -> list[tuple]:
    """The units of work, ``(entry, config, run dir, why it cannot be reused or None)``: one per
    configuration, or per chunk of its seeds. Refuses (:class:`~fastpinn.run.directory.RunDirError`) before anything
    is trained when a finished run of another configuration is in the way (a damaged one is not "another
    configuration": it is retrained, saying why)."""
    plan = []
    for entry, cfg in configs:
        for part, suffix in _seed_chunks(cfg, chunk):
            d = root / (entry.key + suffix)
            identity = part.identity(part.resolved_epochs())
            reason = directory.verify_run(d, identity) if d.is_dir() else "absent"
            other = (reason == f"{directory.CONFIG} describes a different configuration"
                     and records.json_status(d / directory.METRICS) == "ok")
            if other and not force:
                raise directory.RunDirError(f"{str(d)!r} holds a finished run of a different configuration; "
                                            "pass --force to retrain it, or choose another --out")
            plan.append((entry, part, d, reason))
    return plan


def _run_unit(cfg: RunConfig, d: Path, reason: Optional[str], what: str, table: str, o: SweepOptions,
              log: Log) -> dict:
    """The metrics of one unit: reused when ``reason`` is ``None`` (every file checked), else trained
    (resumed from its checkpoint when it has one); a diverged run's metrics say so."""
    if reason is None:
        metrics = dict(directory.read_metrics(d) or {})
        metrics["_reused"] = True
        log(f"{what}: reusing {d} (every file checked)")
        return metrics
    start = resumable_epoch(d, cfg) if d.is_dir() else None
    if start is not None:
        why = "" if reason in ("absent", f"{directory.METRICS} is missing") else f" ({reason})"
        log(f"{what}: resuming {d} from its checkpoint at epoch {start}{why}")
    elif reason != "absent" and directory.is_nonempty_dir(d):
        log(f"{what}: retraining {d}: {reason}")
    else:
        log(f"{what}: training {len(cfg.seeds)} seed(s) -> {d}")
    try:
        return train_run(cfg, d, force=start is None, resume=start is not None, progress=o.progress,
                         figures=o.figures, command=f"reproduce {table}", log=log, **dict(o.run_options or {}))
    except NonFiniteError as exc:
        log(f"    diverged: {exc}")
        return directory.read_metrics(d) or {"status": "diverged"}


def _seeds_per_run(value: Optional[int], seeds: int) -> int:
    """``seeds_per_run`` checked: an integer >= 1 (``None``: all ``seeds`` in one run)."""
    if value is None:
        return seeds
    return min(check_int("seeds_per_run", value, minimum=1, hint=" (seeds per ensemble run)"), seeds)


def _seed_chunks(cfg: RunConfig, chunk: int) -> list[tuple[RunConfig, str]]:
    """``cfg`` split into configurations of at most ``chunk`` seeds, with their directory suffixes
    (``""`` when it is not split: today's ``out/<key>/``)."""
    if chunk >= len(cfg.seeds):
        return [(cfg, "")]
    parts = []
    for a in range(0, len(cfg.seeds), chunk):
        part = cfg.seeds[a:a + chunk]
        # The shuffling permutation is the one ensemble's (seeded by its first seed), not the chunk's.
        parts.append((replace(cfg, seeds=tuple(part), ensemble=True,
                              batch_seed=cfg.seeds[0] if cfg.batch_seed is None else cfg.batch_seed),
                      f".seeds-{part[0]}-{part[-1]}"))
    return parts


def _merge_chunks(results: list[tuple[Entry, str, dict]]) -> list[tuple[Entry, str, dict]]:
    """One ``(entry, label, metrics)`` per configuration from its chunks' (in seed order): per-seed
    errors concatenated, mean and s.e. over all of them, times summed; diverged if any chunk did."""
    merged: dict[str, tuple[Entry, str, list[dict]]] = {}
    for entry, label, m in results:
        merged.setdefault(entry.key, (entry, label.rsplit(" [seeds ", 1)[0], []))[2].append(m)
    out = []
    for entry, label, parts in merged.values():
        def cat(name: str) -> list:
            return [v for m in parts for v in (m.get(name) or [])]

        unfinished = [m for m in parts if m.get("status", "ok") not in ("ok", "diverged")]
        if unfinished:  # a partial table (report): the row is as far as its least advanced chunk
            started = [m for m in parts if m.get("status", "ok") in ("ok", "diverged", IN_PROGRESS)]
            epochs = unfinished[0].get("epochs")
            reached = [int(m["epoch"]) if m.get("status") == IN_PROGRESS else epochs if m in started else 0
                       for m in parts]
            n_seeds = sum(int(m.get("n_seeds") or len(m.get("rel_l2_per_seed") or [])) for m in parts)
            out.append((entry, label, {"status": IN_PROGRESS if started else unfinished[0]["status"],
                                       "epoch": min(reached), "epochs": epochs, "n_seeds": n_seeds}))
            continue
        per_seed, best = cat("rel_l2_per_seed"), cat("best_rel_l2_per_seed")
        # the save epochs are the chunks' common grid; a chunk without one leaves the row without a value
        saves_missing = next((m.get("saves_missing") or "a chunk without evaluations" for m in parts if not m.get("saves_epochs")), "")
        saves = {} if saves_missing else {"saves_rel_l2_per_seed": cat("saves_rel_l2_per_seed"),
                                          "saves_epochs": parts[0]["saves_epochs"]}
        mean, sem = records.mean_sem(per_seed)
        bad = [m for m in parts if m.get("status", "ok") != "ok"]
        times = [finite_or_none(m.get("train_seconds")) for m in parts]
        out.append((entry, label, {
            "status": bad[0]["status"] if bad else "ok", "rel_l2_per_seed": per_seed, "rel_l2_mean": mean,
            "rel_l2_sem": sem, "best_rel_l2_per_seed": best, "seeds": cat("seeds"), "n_seeds": len(per_seed),
            "train_seconds": sum(times) if None not in times else None, "chunks": len(parts),
            "_reused": all(m.get("_reused", False) for m in parts), "saves_missing": saves_missing, **saves}))
    return out


def _table_figures(table: str, plan: list, rows: list[Row], histories: dict, root: Path, title: str) -> list[Path]:
    from .. import plots
    from ..trainer import History

    paths = []
    try:
        paths.append(plots.plot_table_summary([r.label for r in rows], [r.rel_l2_mean for r in rows],
                                              [r.rel_l2_sem for r in rows], root / "summary.png",
                                              paper=[r.paper.rel_l2_mean for r in rows], title=title))
        problems = list(dict.fromkeys(e.problem for e, *_ in plan))
        if table == "fig12":
            for prob in problems:
                hist = {(e.beta, e.bias_correction): History.load(str(histories[e.key]))
                        for e, *_ in plan if e.problem == prob and e.key in histories}
                if hist:
                    name = "bias_correction.png" if len(problems) == 1 else f"bias_correction-{prob}.png"
                    paths.append(plots.plot_bias_correction(hist, root / name, title=f"{title}: {prob}"))
        # The paper's Figs. 3/6/9: every method's weighted back-propagated gradients side by side, per problem.
        for prob in problems:
            panels, names, ref = {}, None, 0
            for (e, cfg, d, _), r in zip(plan, rows):
                if e.problem == prob and r.status == "ok" and (d / directory.CHECKPOINT).exists():
                    trainer = trainer_from_run(d, cfg)
                    G = trainer.term_gradients(trainer.term_losses()).detach().cpu().numpy()
                    panels[r.label] = (G, trainer.weighter.weights().detach().cpu().numpy())
                    names, ref = trainer.problem.term_names, trainer.problem.reference_term
            if len(panels) > 1:
                name = "gradients.png" if len(problems) == 1 else f"gradients-{prob}.png"
                paths.append(plots.plot_gradients_side_by_side(panels, names, root / name, reference=ref,
                                                               title=f"{title}: {prob}"))
    except Exception as exc:
        warnings.warn(f"table figures were not written: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
    return paths
