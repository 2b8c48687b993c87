"""The table's "best at the authors' saves" column: per seed the lowest rel. L2 at the evaluated epochs that
are multiples of 250 (the authors save their best weights every 250 epochs and report those), beside the
final and the best-seen errors, judged by the last agreement column."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from fastpinn import experiments, paper_numbers
from fastpinn.experiments import Entry
from fastpinn.history import History
from fastpinn.run import records, sweeps
from fastpinn.run.tables import IN_PROGRESS, format_agreement

#: Two seeds evaluated every 100 epochs up to 1,000 (units of 1e-3). Over all evaluations seed 0 is
#: lowest at 300 (0.8) and seed 1 at 700 (0.9); at the save epochs 500 and 1,000 their lows are 1.0 and
#: 1.2; the final (1,000) errors are 1.6 and 1.2.
EPOCHS = np.arange(100, 1001, 100)
ERRORS = 1e-3 * np.array([[3.0, 3.0], [2.0, 2.5], [0.8, 2.0], [1.5, 1.8], [1.0, 1.5],
                          [1.1, 1.4], [2.0, 0.9], [1.7, 1.3], [1.9, 1.25], [1.6, 1.2]])


def _history(epochs: np.ndarray, errors: np.ndarray) -> History:
    S = errors.shape[1]
    return History(["pde", "bc"], np.zeros((int(epochs[-1]), S, 2)), np.ones((int(epochs[-1]), S, 2)), epochs,
                   errors, np.zeros((S, 2), dtype=np.int64))


def test_save_epochs_are_the_positive_multiples_of_250():
    assert paper_numbers.AUTHORS_SAVE_EVERY == 250
    got = records.best_at_saves(EPOCHS, ERRORS, 250)
    assert got["saves_epochs"] == [500, 1000] and got["saves_missing"] == ""
    assert got["saves_rel_l2_per_seed"] == pytest.approx([1.0e-3, 1.2e-3])
    # epoch 0 (before any step) is no save; an evaluation at 250 is one
    assert records.best_at_saves([0, 250, 300], [[1e-4], [5e-3], [1e-3]], 250)["saves_rel_l2_per_seed"] == [5e-3]
    # a member whose error is never finite at a save epoch has none (NaN), the others keep theirs
    got = records.best_at_saves([250, 500], [[np.nan, 2.0], [np.nan, 1.0]], 250)
    assert np.isnan(got["saves_rel_l2_per_seed"][0]) and got["saves_rel_l2_per_seed"][1] == 1.0


def test_final_best_seen_and_saves_columns_differ_and_the_last_agreement_judges_the_saves(tmp_path):
    hist = _history(EPOCHS, ERRORS)
    hist.save(str(tmp_path / "history.npz"))
    metrics = {"status": "ok", "rel_l2_per_seed": list(hist.final_rel_l2()),
               "best_rel_l2_per_seed": list(hist.rel_l2.min(axis=0)), "train_seconds": 10.0,
               **sweeps.saves_of_run(tmp_path)}
    # final 1.4 ± 0.2, best seen 0.85 ± 0.05, saves 1.1 ± 0.1 (x 1e-3); paper 1.15 ± 0.05: combined s.e. with
    # the saves' 0.112 (|0.05|: yes), with the final's 0.206 (|0.25|: within 2x)
    paper = paper_numbers.PaperEntry(1.15e-3, 0.05e-3)
    (row,) = experiments.table_rows("", [(Entry("dn-b0.99", "dn", 0.99), "DN", metrics)])
    row.paper = paper
    assert (row.rel_l2_mean, row.rel_l2_sem) == (pytest.approx(1.4e-3), pytest.approx(0.2e-3))
    assert (row.best_rel_l2_mean, row.best_rel_l2_sem) == (pytest.approx(0.85e-3), pytest.approx(0.05e-3))
    assert (row.saves_rel_l2_mean, row.saves_rel_l2_sem) == (pytest.approx(1.1e-3), pytest.approx(0.1e-3))
    assert row.saves_epochs == (500, 1000)
    assert format_agreement(row) == "within 2×" and format_agreement(row, saves=True) == "yes"
    assert format_agreement(row, best=True) == "no"  # |0.30| > 2 * hypot(0.05, 0.05): best seen would say no
    md, csv_text = experiments.format_table([row])
    line = next(x for x in md.splitlines() if x.startswith("| DN"))
    assert line == ("| DN | 2 | 1.40e-03 ± 2.0e-04 | 1.15e-03 ± 5.0e-05 | 8.50e-04 ± 5.0e-05 | 1.10e-03 ± 1.0e-04 | "
                    "10.0 | n/a | n/a | n/a | within 2× | yes |")
    assert "Epochs used: multiples of 500, up to 1,000 (DN): only 1 in 2 of the authors' save epochs" in md
    assert "upper bound" in md
    (r,) = csv.DictReader(io.StringIO(csv_text))
    assert float(r["saves_rel_l2_mean"]) == pytest.approx(1.1e-3)
    assert (r["saves_agrees_within_sem"], r["saves_agrees_within_2sem"]) == ("yes", "yes")
    assert (r["best_agrees_within_sem"], r["best_agrees_within_2sem"]) == ("no", "no")
    with pytest.raises(ValueError, match="at most one of best and saves"):
        row.agrees_within(1.0, best=True, saves=True)


def test_every_save_epoch_evaluated_is_all_of_the_authors_grid():
    epochs = np.arange(250, 1001, 250)
    metrics = {"status": "ok", "rel_l2_per_seed": [1e-3], **records.best_at_saves(epochs, np.ones((4, 1)), 250)}
    (row,) = experiments.table_rows("", [(Entry("pinn", "pinn"), "PINN", metrics)])
    md, _ = experiments.format_table([row])
    assert "Epochs used: multiples of 250, up to 1,000 (PINN): all of the authors' saves." in md


def test_no_evaluation_at_a_save_epoch_is_na_and_the_note_says_why(tmp_path):
    """Evaluated every 300 epochs for 900: no multiple of 250, and no fall-back to another grid."""
    _history(np.array([300, 600, 900]), 1e-3 * np.array([[2.0], [1.0], [1.3]])).save(str(tmp_path / "history.npz"))
    metrics = {"status": "ok", "rel_l2_per_seed": [1.3e-3], "best_rel_l2_per_seed": [1.0e-3],
               **sweeps.saves_of_run(tmp_path)}
    (row,) = experiments.table_rows("table2", [(Entry("dn-b0.99", "dn", 0.99), "DN", metrics)])
    assert row.saves_rel_l2_mean is None and row.saves_epochs == ()
    assert format_agreement(row, saves=True) == "n/a" and format_agreement(row) == "within 2×"
    md, csv_text = experiments.format_table([row])
    assert next(x for x in md.splitlines() if x.startswith("| DN")).endswith("| within 2× | n/a |")
    assert ("n/a (no other grid of epochs is used instead) for: DN (evaluated at epochs 300, 600, 900: none a "
            "multiple of 250).") in md
    (r,) = csv.DictReader(io.StringIO(csv_text))
    assert (r["saves_rel_l2_mean"], r["saves_agrees_within_sem"]) == ("n/a", "n/a")
    # a directory without a readable history says so
    assert sweeps.saves_of_run(tmp_path / "absent")["saves_missing"].startswith("no readable history.npz")


def test_in_progress_row_shows_its_saves_so_far_without_judging_them():
    metrics = {"status": IN_PROGRESS, "epoch": 700, "epochs": 30000, "rel_l2_per_seed": [0.9e-3, 1.3e-3],
               **records.best_at_saves(EPOCHS[:7], ERRORS[:7], 250)}
    (row,) = experiments.table_rows("table2", [(Entry("dn-b0.99", "dn", 0.99), "DN", metrics)])
    assert row.saves_rel_l2_mean == pytest.approx(1.25e-3) and row.saves_epochs == (500,)  # 1.0 and 1.5
    assert row.agrees_within(1.0, saves=True) is None  # |1.25 - 1.11| is within s.e., but unfinished
    line = next(x for x in experiments.format_table([row])[0].splitlines() if x.startswith("| DN"))
    assert "| 1.25e-03 ± 2.5e-04 |" in line and line.endswith("| n/a | n/a |")


def test_a_chunked_configuration_takes_its_saves_from_every_chunks_history(tmp_path):
    """PINN's two seeds trained as two one-seed chunks (shards 0 and 1 of 14 units): its row's best at the
    authors' saves is the mean over both chunks' minima at epochs 250 and 500."""
    out = tmp_path / "t1"
    kw = dict(seeds=2, epochs=500, problem="poisson1d", problem_kwargs={"n_pde": 8}, backend="torch",
              eval_every=250, figures=False, seeds_per_run=1)
    for shard in ("0/14", "1/14"):
        experiments.reproduce("table1", out=out, shard=shard, **kw)
    pinn = sweeps.report("table1", out=out, **kw).rows[0]
    lows = []
    for chunk in ("pinn.seeds-0-0", "pinn.seeds-1-1"):
        hist = History.load(str(out / chunk / "history.npz"))
        assert list(hist.eval_epochs) == [250, 500]
        lows.append(float(hist.rel_l2.min()))
    assert pinn.status == "ok" and pinn.saves_epochs == (250, 500)
    assert (pinn.saves_rel_l2_mean, pinn.saves_rel_l2_sem) == tuple(pytest.approx(v) for v in records.mean_sem(lows))
