"""What ``fastpinn compare`` says under its table: the ranking, the winner (or that nothing trained), and the
schemes that ended far worse than PINN.

The rows are those of :func:`fastpinn.run.compare.compare` (``scheme``, ``label``, ``status``, ``seeds``,
``rel_l2_mean``, ``rel_l2_sem``, ``weight_warnings``, ...). Every judgement here is on the final rel. L2 errors
over seeds that compare already has, and the final term losses and weights it read from the runs' histories
(:mod:`~fastpinn.run.compare_terms`): nothing is trained or read from disk here.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ..weight_advice import SLOW_BETA
from . import step_timing as timing
from .compare_terms import FinalTerms, left_behind
from .tables import format_mean_pm, format_seconds

__all__ = ["UNTRAINED", "WORSE_THAN_PINN", "rank_key", "constant_fit_error", "untrained_line", "worse_than_pinn",
           "winner_line", "one_term_line", "tie_note", "timing_legend",
           "summary_markdown"]

#: A best mean rel. L2 at or above this is no usable solution, whatever the problem: the error is half the
#: solution's size (u = 0 scores 1). The user trial's NLS rows (0.90 - 1.09) are above it, its Poisson-Robin
#: rows that trained (2.9e-3 - 1.3e-1) far below.
UNTRAINED = 0.5
#: A scheme whose mean rel. L2 is this many times PINN's, beyond the combined standard error, is named under the
#: table (user trial 1's MA-PINN on Poisson-Robin: 10x, with no weight report). 3 missed user trial 3's elastic
#: plate, DN beta 0.9 at 3.3x with 6 of 7 members unreported (0.478 +- 0.032 against 0.146, 2 seeds); at 2 it is
#: named at 2,000 and 3,000 epochs and nothing else in that trial is (bench/results/user-trial-3-*.md).
WORSE_THAN_PINN = 2.0


def rank_key(row: dict) -> tuple:
    """Finished runs by mean rel. L2, then the rest (diverged, no reference solution) in training order."""
    ok = row["status"] == "ok" and row["rel_l2_mean"] is not None
    return (0, row["rel_l2_mean"]) if ok else (1, 0.0)


def constant_fit_error(problem: Any) -> Optional[float]:
    """The rel. L2 error of the best constant function (each output's mean over the reference grid) against
    ``problem``'s reference solution ``U[M, out]``, measured as the runs' errors are (all outputs flattened);
    ``None`` without a reference solution. A network no better than this has learned nothing of the solution's
    shape: the user trial's Lorenz rows (0.42 - 0.45) against its constant fit 0.18."""
    try:
        _, U = problem.reference()
    except ValueError:
        return None
    U = np.asarray(U, dtype=np.float64)
    U = U.reshape(U.shape[0], -1)
    norm = float(np.linalg.norm(U))
    if not norm or not math.isfinite(norm):
        return None
    return float(np.linalg.norm(U - U.mean(axis=0)) / norm)


def untrained_line(best: dict, constant_error: Optional[float]) -> Optional[str]:
    """The summary's last line when even the best row did not train (``None`` when it did): its mean rel. L2 is
    at least :data:`UNTRAINED`, or at least that of the best constant function ``constant_error``."""
    mean = best["rel_l2_mean"]
    no_better = constant_error is not None and mean >= constant_error
    if mean < UNTRAINED and not no_better:
        return None
    why = (f"no better than the best constant function (rel. L2 {constant_error:.2e})" if no_better else
           f"at or above {UNTRAINED:g}, half the solution's size (u = 0 scores 1)")
    return (f"No scheme trained: the lowest mean rel. L2, {best['label']}'s "
            f"{format_mean_pm(best['rel_l2_mean'], best['rel_l2_sem'])}, is {why}, so the ranking recommends "
            "nothing. Check the problem (residual, boundary values, scaling) and the budget (--epochs, "
            "--optimizer adam+lbfgs) before choosing a scheme.")


def worse_than_pinn(rows: Sequence[dict], terms: Optional[Mapping[str, Optional[FinalTerms]]] = None,
                    betas: Optional[Mapping[str, Optional[float]]] = None) -> list[str]:
    """One line per finished scheme whose mean rel. L2 is at least :data:`WORSE_THAN_PINN` times PINN's and
    further above that than the combined standard error of the two means (``mean - 2 m_pinn > hypot(se,
    2 se_pinn)``; a missing s.e. -- one seed -- counts as 0 and is said). Nothing without a finished PINN row.
    ``terms`` (by row ``scheme``: what its runs' loss terms ended with) adds the term the scheme left behind
    against PINN's (:func:`~fastpinn.run.compare_terms.left_behind`) where both rows have them. ``betas`` (by row
    ``scheme``: its EMA decay, ``None`` for a scheme without one) adds a slower EMA to what to try where a row's
    is below 0.99."""
    pinn = next((r for r in rows if r["scheme"] == "pinn"), None)
    if pinn is None or rank_key(pinn)[0] or not pinn["rel_l2_mean"] > 0:
        return []
    out = []
    for r in rows:
        if r is pinn or rank_key(r)[0]:
            continue
        se, se_pinn = (v if v is not None and math.isfinite(v) else 0.0
                       for v in (r["rel_l2_sem"], pinn["rel_l2_sem"]))
        margin = r["rel_l2_mean"] - WORSE_THAN_PINN * pinn["rel_l2_mean"]
        if margin <= math.hypot(se, WORSE_THAN_PINN * se_pinn):
            continue
        spread = ("beyond their combined standard error" if se and se_pinn else
                  "one seed: no spread to weigh it against")
        bounded = _has_weight_bounds(r["scheme"].split("+")[0])  # the entry's scheme: dn+clamp -> dn
        said = (f"its {r['weight_warnings']} weight warning(s) are in its run's metrics.json" if r["weight_warnings"]
                else "the weight watcher reported nothing for it" + (
                    " (large weights that never run away, e.g. on terms of one point, can starve the PDE "
                    "residual)" if bounded else ""))
        # Poisson-Robin, 3 seeds x 2,000 epochs: weight_max=10 brought MA (3.9e-2), DN beta 0.9 (1.1e-1), ID
        # (1.3e-1) and LRA (1.0) to PINN's 3.8e-3 (3.9e-3 - 5.9e-3); a bound of 100 only halved MA's error, and a
        # warm-up helped MA and DN but not LRA (9.0e-2) or ID fully (1.4e-2)
        base = r["scheme"].split("+")[0]
        hint = (f"Try a tighter upper bound on the weights ({base}+weight_max=10 in --schemes, "
                "--weight-max 10 in train), or PINN." if bounded else "Use PINN or another scheme for this problem.")
        beta = (betas or {}).get(r["scheme"])
        if bounded and beta is not None and beta < SLOW_BETA:
            # user trial 3's elastic plate: DN beta 0.9 0.478, beta 0.99 0.015 (PINN 0.146); user trial 2's
            # Klein-Gordon: DN beta 0.9 0.981, beta 0.99 0.032 (PINN 0.031)
            hint = (f"Try a slower EMA ({base}+beta={SLOW_BETA:g} in --schemes, --beta {SLOW_BETA:g} in train), "
                    f"a tighter upper bound on the weights ({base}+weight_max=10, --weight-max 10), or PINN.")
        term = _term_note(terms, r["scheme"], pinn["scheme"])
        out.append(f"Worse than PINN: {r['label']} ended {r['rel_l2_mean'] / pinn['rel_l2_mean']:.3g}x PINN's "
                   f"rel. L2 ({format_mean_pm(r['rel_l2_mean'], r['rel_l2_sem'])} against "
                   f"{format_mean_pm(pinn['rel_l2_mean'], pinn['rel_l2_sem'])}, {spread}); {term}{said}. {hint}")
    return out


def _term_note(terms: Optional[Mapping[str, Optional[FinalTerms]]], scheme: str, pinn: str) -> str:
    """``"<the term left behind>; "`` from ``terms``, or empty where either row's terms are missing."""
    mine, theirs = (None, None) if terms is None else (terms.get(scheme), terms.get(pinn))
    note = left_behind(mine, theirs) if mine is not None and theirs is not None else None
    return f"{note}; " if note else ""


def _has_weight_bounds(scheme: str) -> bool:
    """Whether the registered ``scheme`` declares weight bounds (the EMA schemes; not PINN or the aggregators)."""
    from ..schemes import scheme_class

    return "weight_max" in scheme_class(scheme).declared()


def winner_line(best: Optional[dict], command: Optional[str], runner_up: Optional[dict] = None, *,
                untrained: bool = False) -> str:
    """``Best: ...; train it with: COMMAND`` (``untrained``: said to be no recommendation), or that no scheme
    finished."""
    if best is None:
        return "No scheme finished with a rel. L2 error (diverged, or the problem has no reference solution)."
    error = (f"Best: {best['label']} (rel. L2 {format_mean_pm(best['rel_l2_mean'], best['rel_l2_sem'])})"
             f"{tie_note(best, runner_up)}")
    if untrained:
        return (f"{error}; but none of these runs trained (above): not a recommendation; to rerun it anyway, "
                f"train it with: {command}")
    return f"{error}; train it with: {command}"


def one_term_line(note: str, best: Optional[dict], command: Optional[str], not_trained: Sequence[str]) -> str:
    """The summary's last line for a problem of one loss term (``note``:
    :func:`~fastpinn.run.one_run.nothing_to_balance`): every weighting scheme trains as PINN does, so compare
    trained PINN alone (``not_trained``: the labels of the others) and names no best scheme; the command
    that trains PINN stays the last clause."""
    skipped = f" (not trained: {', '.join(not_trained)})" if not_trained else ""
    line = (f"{note}, so every weighting scheme trains it as PINN does, at more cost per step: only PINN was "
            f"trained{skipped}, and no scheme can do better than another.")
    if best is None:
        return f"{line} PINN finished with no rel. L2 error (diverged, or the problem has no reference solution)."
    return (f"{line} PINN: rel. L2 {format_mean_pm(best['rel_l2_mean'], best['rel_l2_sem'])}; "
            f"train it with: {command}")


def tie_note(best: dict, runner_up: Optional[dict]) -> str:
    """Says when the runner-up's mean is within the two rows' combined standard error of the best's: a ranking
    of a few seeds with a wide spread (the user trial's Poisson-Robin: 1.03e-1 ± 9.8e-2 against 1.16e-1 ±
    1.1e-1) names a winner that more seeds may not confirm."""
    if runner_up is None:
        return ""
    se = [r["rel_l2_sem"] for r in (best, runner_up)]
    if any(v is None or not math.isfinite(v) for v in se):
        return ""
    if runner_up["rel_l2_mean"] - best["rel_l2_mean"] > math.hypot(*se):
        return ""
    return (f", not distinguishable from {runner_up['label']} "
            f"({format_mean_pm(runner_up['rel_l2_mean'], runner_up['rel_l2_sem'])}): their difference is within "
            f"the combined standard error over {best['seeds']} seeds; more seeds (--seeds) would tell them apart")


def timing_legend(step_timing: bool) -> str:
    """What the table's two time columns measure."""
    paired = (f"median over {timing.STEP_TIMING_ROUNDS} interleaved rounds (rotating order, after a warm-up) of a "
              "scheme's seconds per epoch over PINN's in the same round, each timing about "
              f"{timing.STEP_TIMING_SECONDS:g} s of epochs of a freshly built trainer after training (a weight "
              "warm-up left out)" if step_timing else "not measured (--no-step-timing)")
    return (f"step time / PINN (paired): {paired}. Training wall time: the training run's own time (the runs "
            "train one after another, so the machine's load changes between them show in it).")


def summary_markdown(ranked: list[dict], best: Optional[dict], command: Optional[str],
                     coefficient_names: Sequence[str] = (), *, step_timing: bool = True,
                     constant_error: Optional[float] = None, one_term: Optional[str] = None,
                     not_trained: Sequence[str] = (),
                     terms: Optional[Mapping[str, Optional[FinalTerms]]] = None,
                     betas: Optional[Mapping[str, Optional[float]]] = None) -> str:
    """``compare.md``: the table of ``ranked`` rows, the timing legend, the schemes far worse than PINN -- or,
    when even the best did not train (:func:`untrained_line`), that no scheme trained -- and as the last line
    the winner with its ``fastpinn train`` command (the command stays the last clause: it is what a user
    copies) -- or, for a problem of one loss term (``one_term``, PINN's row alone), :func:`one_term_line`.
    ``terms``: each row's final term losses and weights, ``betas`` each row's EMA decay, for
    :func:`worse_than_pinn`."""
    learned = "".join(f" {c} (mean) |" for c in coefficient_names)
    lines = ["| rank | scheme | seeds | rel. L2 (mean ± s.e.) | rel. L2 min – max | training wall time (s) "
             "| step time / PINN (paired) | weight warnings |" + learned,
             "|---:|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(coefficient_names)]
    for r in ranked:
        ok = r["status"] == "ok"
        err = format_mean_pm(r["rel_l2_mean"], r["rel_l2_sem"]) if ok else r["status"]
        spread = f"{r['rel_l2_min']:.2e} – {r['rel_l2_max']:.2e}" if ok and r["rel_l2_min"] is not None else "n/a"
        ratio = "n/a" if r["step_time_over_pinn"] is None else f"{r['step_time_over_pinn']:.2f}"
        lines.append(f"| {r['rank']} | {r['label']} | {r['seeds']} | {err} | {spread} | "
                     f"{format_seconds(r['train_seconds'])} | {ratio} | {r['weight_warnings']} |"
                     + "".join(" n/a |" if r[f"coef_{c}"] is None else f" {r[f'coef_{c}']:.4g} |"
                               for c in coefficient_names))
    lines += ["", timing_legend(step_timing), ""]
    untrained = None if best is None else untrained_line(best, constant_error)
    # when nothing trained, PINN is no yardstick either
    said = [untrained] if untrained else worse_than_pinn(ranked, terms, betas)
    lines += [*said, *([""] if said else [])]
    if one_term is not None:
        lines.append(one_term_line(one_term, best, command, not_trained))
        return "\n".join(lines) + "\n"
    runner_up = ranked[1] if len(ranked) > 1 and rank_key(ranked[1])[0] == 0 else None
    lines.append(winner_line(best, command, runner_up, untrained=untrained is not None))
    return "\n".join(lines) + "\n"
