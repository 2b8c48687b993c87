"""The paper's tables: their configurations (:data:`TABLES`), the rows of a reproduced table and
their markdown/CSV text beside the paper's numbers."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Sequence

from .. import paper_numbers
from . import records

__all__ = ["Entry", "TableSpec", "TABLES", "FIG12_EPOCHS", "table_entries", "Row", "table_rows", "format_table",
           "TableResult", "finite_or_none", "format_mean_pm", "format_seconds", "format_agrees", "format_agreement",
           "saves_note", "AGREEMENT_LEGEND", "IN_PROGRESS", "NOT_STARTED"]


@dataclass(frozen=True)
class Entry:
    """One configuration of a table: ``key`` names its subdirectory and its paper entry; ``problem`` the
    problem it trains; ``epochs`` a table-specific length (``None``: the problem's)."""

    key: str
    scheme: str
    beta: float = 0.9
    p: float = 2.0
    bias_correction: bool = False
    problem: str = ""
    epochs: Optional[int] = None


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    problems: tuple[str, ...]
    entries: tuple[Entry, ...]
    note: str = ""

    @property
    def problem(self) -> str:
        """The (first) problem of the table."""
        return self.problems[0]


def _main_entries(problem: str) -> tuple[Entry, ...]:
    out = [Entry("pinn", "pinn", problem=problem)]
    for scheme in ("ma", "id", "dn"):
        for beta in (0.9, 0.99):
            out.append(Entry(f"{scheme}-b{beta:g}", scheme, beta, problem=problem))
    return tuple(out)


_PAPER_PROBLEMS = ("burgers", "poisson", "allen_cahn")
_P_NAME = {1.0: "1", 2.0: "2", math.inf: "inf"}
#: Fig. 12 trains Poisson for 5,000 epochs; Burgers and Allen-Cahn as in their tables.
FIG12_EPOCHS = {"poisson": 5000}

TABLES: dict[str, TableSpec] = {
    "table1": TableSpec("table1", "Table 1: Burgers", ("burgers",), _main_entries("burgers")),
    "table2": TableSpec("table2", "Table 2: Poisson", ("poisson",), _main_entries("poisson")),
    "table3": TableSpec("table3", "Table 3: Allen-Cahn", ("allen_cahn",), _main_entries("allen_cahn")),
    "table4": TableSpec(
        "table4", "Table 4: DN-PINN with L^p norms", _PAPER_PROBLEMS,
        tuple(Entry(f"{prob}/dn-b{b:g}-p{_P_NAME[p]}", "dn", b, p, problem=prob)
              for prob in _PAPER_PROBLEMS for b in (0.9, 0.99) for p in (1.0, 2.0, math.inf)),
        note="As in the paper: DN-PINN, β = 0.9 and 0.99, p = 1, 2, ∞, τ = 10, on the three problems."),
    "fig12": TableSpec(
        "fig12", "Fig. 12: bias correction of DN-PINN", _PAPER_PROBLEMS,
        tuple(Entry(f"{prob}/dn-b{b:g}{'-bc' if bc else ''}", "dn", b, 2.0, bc, problem=prob,
                    epochs=FIG12_EPOCHS.get(prob))
              for prob in _PAPER_PROBLEMS for b in (0.9, 0.99, 0.999) for bc in (False, True)),
        note="As in the paper: DN-PINN with and without bias correction, β = 0.9, 0.99, 0.999, on the three "
             "problems (Poisson for 5,000 epochs). The paper shows this as curves, not numbers."),
}


def table_entries(table: str, problem: Optional[str] = None) -> list[Entry]:
    """The entries :func:`reproduce` runs: all of ``table``'s, only ``problem``'s when it is one of the
    table's problems, or the first problem's entries moved to ``problem`` (keys then name it, and the
    table-specific epochs are dropped) when it is another one."""
    spec = TABLES[table]
    if problem is None:
        return list(spec.entries)
    if problem in spec.problems:
        return [e for e in spec.entries if e.problem == problem]
    first = [e for e in spec.entries if e.problem == spec.problems[0]]
    multi = len(spec.problems) > 1
    return [replace(e, problem=problem, epochs=None,
                    key=f"{problem}/{e.key.split('/', 1)[1]}" if multi else e.key) for e in first]


#: Row statuses besides a finished run's (``"ok"``, ``"diverged"``): a unit with a checkpoint of its
#: configuration but no ``metrics.json`` yet, and one with nothing of its configuration on disk.
IN_PROGRESS = "in progress"
NOT_STARTED = "not started"


@dataclass
class Row:
    """One line of a reproduced table. An unfinished configuration (``status`` :data:`IN_PROGRESS`) has
    the epoch its checkpoint reached (``epoch`` of ``epochs``), the errors at its last evaluation and its
    training time so far."""

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
    best_rel_l2_mean: Optional[float] = None
    best_rel_l2_sem: Optional[float] = None
    epoch: Optional[int] = None
    epochs: Optional[int] = None
    #: An unfinished row whose run directory a live process holds now (it is training).
    running: bool = False
    #: Best at the authors' saves (:data:`~fastpinn.paper_numbers.AUTHORS_SAVE_EVERY`): mean and s.e. over
    #: seeds of each seed's lowest error at the evaluated epochs that are multiples of it, those epochs, and
    #: why there is no value (``""``: there is one, or nothing was known of the run's evaluations).
    saves_rel_l2_mean: Optional[float] = None
    saves_rel_l2_sem: Optional[float] = None
    saves_epochs: tuple[int, ...] = ()
    saves_missing: str = ""

    @property
    def agrees(self) -> Optional[bool]:
        """Our mean within the combined standard errors of the paper's (``None``: nothing to compare)."""
        return self.agrees_within(1.0)

    def agrees_within(self, factor: float, *, best: bool = False, saves: bool = False) -> Optional[bool]:
        """Our final mean (``best``: our best-seen mean; ``saves``: our best at the authors' saves) within
        ``factor`` combined standard errors of the paper's (``None``: nothing to compare, or not finished)."""
        if best and saves:
            raise ValueError("agrees_within: pass at most one of best and saves")
        if self.status != "ok":
            return None
        if best:
            return paper_numbers.agrees(self.best_rel_l2_mean, self.best_rel_l2_sem, self.paper, factor)
        if saves:
            return paper_numbers.agrees(self.saves_rel_l2_mean, self.saves_rel_l2_sem, self.paper, factor)
        return paper_numbers.agrees(self.rel_l2_mean, self.rel_l2_sem, self.paper, factor)


def finite_or_none(v: Any) -> Optional[float]:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _int_or_none(v: Any) -> Optional[int]:
    return None if v is None else int(v)


def _finite_mean_sem(values: Any) -> tuple[Optional[float], Optional[float]]:
    """Mean and s.e. of the finite ``values`` (``None`` for none)."""
    vals = [v for v in (finite_or_none(x) for x in values or []) if v is not None]
    mean, sem = records.mean_sem(vals) if vals else (None, None)
    return finite_or_none(mean), finite_or_none(sem)


def table_rows(table: str, entries: Sequence[tuple[Entry, str, dict]]) -> list[Row]:
    """Rows from ``(entry, label, metrics)``; the time overhead is relative to the table's PINN row (both
    finished). ``metrics`` of an unfinished unit: ``status`` :data:`IN_PROGRESS` with ``epoch`` and
    ``epochs``, or :data:`NOT_STARTED`. The best-seen and best-at-the-authors'-saves errors come from
    ``best_rel_l2_per_seed`` and ``saves_rel_l2_per_seed`` / ``saves_epochs`` / ``saves_missing``
    (:func:`fastpinn.run.records.best_at_saves`)."""
    rows = []
    for entry, label, m in entries:
        per_seed = m.get("rel_l2_per_seed") or []
        vals = [v for v in (finite_or_none(x) for x in per_seed) if v is not None]
        if vals and len(vals) == len(per_seed):
            mean, sem = records.mean_sem(vals)
        else:
            mean, sem = finite_or_none(m.get("rel_l2_mean")), finite_or_none(m.get("rel_l2_sem"))
        best_mean, best_sem = _finite_mean_sem(m.get("best_rel_l2_per_seed"))
        saves_mean, saves_sem = _finite_mean_sem(m.get("saves_rel_l2_per_seed"))
        status = str(m.get("status", "ok"))
        rows.append(Row(entry.key, label, len(per_seed) or int(m.get("n_seeds") or 0), finite_or_none(mean),
                        finite_or_none(sem), finite_or_none(m.get("train_seconds")), status=status,
                        reused=bool(m.get("_reused", False)), paper=paper_numbers.lookup(table, entry.key),
                        best_rel_l2_mean=best_mean, best_rel_l2_sem=best_sem,
                        saves_rel_l2_mean=saves_mean, saves_rel_l2_sem=saves_sem,
                        saves_epochs=tuple(int(e) for e in m.get("saves_epochs") or ()),
                        saves_missing=str(m.get("saves_missing") or ""),
                        epoch=_int_or_none(m.get("epoch")) if status == IN_PROGRESS else None,
                        epochs=_int_or_none(m.get("epochs")) if status == IN_PROGRESS else None,
                        running=bool(m.get("running", False))))
    base = next((r.train_seconds for r in rows if r.key == "pinn" and r.status == "ok" and r.train_seconds), None)
    for r in rows:
        if base and r.train_seconds is not None and r.status == "ok":
            r.overhead_pct = 100.0 * (r.train_seconds - base) / base
    return rows


def format_agrees(v: Optional[bool]) -> str:
    return "n/a" if v is None else ("yes" if v else "no")


def format_agreement(row: Row, *, best: bool = False, saves: bool = False) -> str:
    """The agreement cell of the final errors (``best``: of the best-seen ones; ``saves``: of the best at
    the authors' saves): ``yes`` within 1x the combined s.e., ``within 2×`` within 2x but not 1x, ``no``
    beyond 2x, ``n/a`` when there is nothing to compare (:data:`AGREEMENT_LEGEND`)."""
    one, two = row.agrees_within(1.0, best=best, saves=saves), row.agrees_within(2.0, best=best, saves=saves)
    if one is None:
        return "n/a"
    return "yes" if one else ("within 2×" if two else "no")


#: What the agreement column means, printed under every table.
AGREEMENT_LEGEND = (
    "Agreement: *yes* when |ours − paper| ≤ √(s.e._ours² + s.e._paper²) (our final mean within one combined "
    "standard error of the paper's); *within 2×* when only |ours − paper| ≤ 2·√(s.e._ours² + s.e._paper²); "
    "*no* beyond that; *n/a* when a side is missing or the row has not finished. One combined s.e. is a "
    "strict test: two ensembles drawn from the same distribution differ by more than that about a third of "
    "the time (normal means), more often with 3 seeds, whose s.e. is itself uncertain; the 2× band holds "
    "about 95 % of such differences, so a *no* is the row to look at. The last column applies the same test "
    "to our best errors at the authors' saves, the paper's protocol: the authors' code saves the weights "
    f"every {paper_numbers.AUTHORS_SAVE_EVERY} epochs when their error is the lowest saved so far and reports those, and at lr 1e-3 the "
    "final error moves by tens of percent between evaluations. Best seen (the lowest error at any of our "
    "evaluations, per seed) is shown for information; it is not the paper's protocol.")


def format_sci(v: Optional[float], digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}e}"


def format_mean_pm(mean: Optional[float], sem: Optional[float]) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.2e} ± {format_sci(sem, 1)}"


def format_seconds(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def format_pct(v: Optional[float], is_base: bool = False) -> str:
    if is_base:
        return "—"
    return "n/a" if v is None else f"{v:+.1f}"


def format_ours(row: Row) -> str:
    """Our rel. L2 cell: mean ± s.e. of a finished row; an unfinished one says how far it is (and whether
    a process is training it now), with its errors at that checkpoint."""
    if row.status == "ok":
        return format_mean_pm(row.rel_l2_mean, row.rel_l2_sem)
    if row.status == IN_PROGRESS:
        at = f"in progress, epoch {row.epoch if row.epoch is not None else '?'}/{row.epochs or '?'}"
        at += ", training" if row.running else ""
        return at if row.rel_l2_mean is None else f"{at} (now {format_mean_pm(row.rel_l2_mean, row.rel_l2_sem)})"
    return row.status


def _time_to_go(row: Row) -> str:
    """``", ~X h to go"``: an unfinished row's remaining training time at its rate so far."""
    if not (row.epoch and row.epochs and row.train_seconds):
        return ""
    left = row.train_seconds * (row.epochs - row.epoch) / row.epoch
    return f", ~{left / 3600:.1f} h to go" if left >= 360 else f", ~{left / 60:.0f} min to go"


def _grid_step(epochs: tuple[int, ...]) -> Optional[int]:
    """``s`` when ``epochs`` are ``s, 2s, ..., ks``; else ``None``."""
    return epochs[0] if epochs == tuple(range(epochs[0], epochs[-1] + 1, epochs[0])) else None


def saves_note(rows: Sequence[Row]) -> str:
    """The paragraph under a table saying which epochs the best at the authors' saves was taken over
    (grouped by grid, the rows named), how they sit in the authors' grid, and why a row has none."""
    every = paper_numbers.AUTHORS_SAVE_EVERY
    parts = [f"Best at the authors' saves: per seed, the lowest rel. L2 at our evaluations at positive multiples "
             f"of {every} epochs (the authors save the weights every {every} epochs when their error is the lowest "
             f"saved so far, and report those), mean ± s.e. over seeds; the last column judges it."]
    grids: dict[Optional[int], dict[int, list[str]]] = {}
    for r in rows:
        if r.saves_epochs:
            step = _grid_step(r.saves_epochs)
            grids.setdefault(step, {}).setdefault(r.saves_epochs[-1], []).append(r.label)
    for step, by_last in grids.items():
        upto = "; ".join(f"up to {last:,} ({', '.join(labels)})" for last, labels in by_last.items())
        if step is None:
            parts.append(f"Epochs used: some of the authors' save epochs, {upto}: a subset of their grid, so each "
                         f"value is an upper bound of what their protocol reports on the same trajectory.")
        elif step == every:
            parts.append(f"Epochs used: multiples of {step:,}, {upto}: all of the authors' saves.")
        else:
            parts.append(f"Epochs used: multiples of {step:,}, {upto}: only 1 in {step // every} of the authors' "
                         f"save epochs (we evaluate less often), a subset of their grid, so each value is an upper "
                         f"bound of what their protocol reports on the same trajectory.")
    missing = [f"{r.label} ({r.saves_missing})" for r in rows if not r.saves_epochs and r.saves_missing]
    if missing:
        parts.append(f"n/a (no other grid of epochs is used instead) for: {'; '.join(missing)}.")
    return " ".join(parts)


def format_table(rows: Sequence[Row], *, title: str = "", note: str = "") -> tuple[str, str]:
    """``(markdown, csv)`` of a reproduced table beside the paper's numbers ("n/a" where unknown).

    Columns: configuration; seeds; our final rel. L2 mean ± standard error over seeds, the paper's beside
    it; our best-seen one (lowest error at any evaluation, per seed; for information); our best at the
    authors' saves (per seed the lowest error at the evaluated epochs that are multiples of
    :data:`~fastpinn.paper_numbers.AUTHORS_SAVE_EVERY` -- the paper's protocol); our training time (s; so
    far, for an unfinished row) beside the paper's; time over PINN (%), ours and the paper's; agreement of
    the final errors and of the best at the authors' saves (:data:`AGREEMENT_LEGEND` and
    :func:`saves_note`, printed under the table).
    """
    head = ["Configuration", "seeds", "rel. L2 (mean ± s.e.)", "paper rel. L2 (mean ± s.e.)",
            "best seen (mean ± s.e.)", "best at the authors' saves (mean ± s.e.)", "time (s)", "paper time (s)",
            "time vs PINN (%)", "paper vs PINN (%)", "agrees (1× / 2× combined s.e.)",
            "agrees at the authors' saves"]
    lines = []
    if title:
        lines += [f"### {title}", ""]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    for r in rows:
        secs = format_seconds(r.train_seconds)
        if r.status == IN_PROGRESS and r.train_seconds is not None:
            secs += " so far" + _time_to_go(r)
        cells = [r.label + (" (reused)" if r.reused else ""), str(r.n_seeds), format_ours(r),
                 format_mean_pm(r.paper.rel_l2_mean, r.paper.rel_l2_sem),
                 format_mean_pm(r.best_rel_l2_mean, r.best_rel_l2_sem),
                 format_mean_pm(r.saves_rel_l2_mean, r.saves_rel_l2_sem), secs, format_seconds(r.paper.time_s),
                 format_pct(r.overhead_pct, r.key == "pinn"), format_pct(r.paper.overhead_pct, r.key == "pinn"),
                 format_agreement(r), format_agreement(r, saves=True)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", AGREEMENT_LEGEND, "", saves_note(rows)]
    if note:
        lines += ["", note]
    md = "\n".join(lines) + "\n"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["key", "configuration", "status", "epoch", "epochs", "n_seeds", "rel_l2_mean", "rel_l2_sem",
                "best_rel_l2_mean", "best_rel_l2_sem", "saves_rel_l2_mean", "saves_rel_l2_sem", "train_seconds",
                "time_vs_pinn_pct", "paper_rel_l2_mean", "paper_rel_l2_sem", "paper_time_s", "paper_time_vs_pinn_pct",
                "agrees_within_sem", "agrees_within_2sem", "best_agrees_within_sem", "best_agrees_within_2sem",
                "saves_agrees_within_sem", "saves_agrees_within_2sem"])

    def c(v: Optional[float]) -> str:
        return "n/a" if v is None else repr(float(v))

    for r in rows:
        w.writerow([r.key, r.label, r.status, "n/a" if r.epoch is None else r.epoch,
                    "n/a" if r.epochs is None else r.epochs, r.n_seeds, c(r.rel_l2_mean), c(r.rel_l2_sem),
                    c(r.best_rel_l2_mean), c(r.best_rel_l2_sem), c(r.saves_rel_l2_mean), c(r.saves_rel_l2_sem),
                    c(r.train_seconds), c(r.overhead_pct),
                    c(r.paper.rel_l2_mean), c(r.paper.rel_l2_sem), c(r.paper.time_s), c(r.paper.overhead_pct),
                    format_agrees(r.agrees), format_agrees(r.agrees_within(2.0)),
                    format_agrees(r.agrees_within(1.0, best=True)), format_agrees(r.agrees_within(2.0, best=True)),
                    format_agrees(r.agrees_within(1.0, saves=True)), format_agrees(r.agrees_within(2.0, saves=True))])
    return md, buf.getvalue()


@dataclass
class TableResult:
    table: str
    out_dir: Path
    rows: list[Row]
    markdown: str
    csv: str
    figures: list[Path]
    #: Keys of configurations other shards have not finished yet (the table is written once none are).
    missing: list[str] = field(default_factory=list)
