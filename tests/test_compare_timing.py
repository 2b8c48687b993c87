"""``fastpinn compare``'s step time column: measured side by side after training (interleaved rounds of short
bursts of every scheme's epochs, the median of the per-round ratios to PINN's), not as the ratio of the wall
times of runs trained one after another (a user trial's NLS compare: 0.43x and 1.50x for the same cost per step)."""

from __future__ import annotations

import csv
import json
import time

import pytest

from fastpinn import cli
from fastpinn.run import step_timing
from fastpinn.run.step_timing import paired_ratios
from fastpinn.trainer import Trainer

ARGV = ["compare", "poisson1d", "--schemes", "dn", "--seeds", "1", "--epochs", "4", "--n-pde", "16",
        "--eval-every", "2", "--threads", "1", "--no-progress", "--no-figures", "--compile", "off",
        "--backend", "torch"]


def _rows(out):
    with open(out / "compare.csv", newline="") as f:
        return {r["scheme"]: r for r in csv.DictReader(f)}


class _Machine:
    """Fake bursts: ``cost`` seconds per epoch per scheme times the machine's load at that call."""

    def __init__(self, cost, load):
        self.cost, self.load, self.calls = cost, load, []

    def bursts(self):
        def burst(name):
            def run(epochs):
                self.calls.append((name, epochs))
                return epochs * self.cost[name] * self.load(len(self.calls) - 1)
            return run
        return {name: burst(name) for name in self.cost}


def test_the_ratio_is_paired_per_round_so_load_between_rounds_cancels():
    # calls 0-5: warm-up and calibration, 6-8 round 0, 9-11 round 1 (5x load), 12-14 round 2
    machine = _Machine({"pinn": 1e-3, "dn": 2e-3, "ma": 1.5e-3}, lambda call: 5.0 if 9 <= call < 12 else 1.0)
    result = paired_ratios(machine.bursts(), rounds=3, seconds=0.3)
    assert result["dn"].over_baseline == pytest.approx(2.0) and result["ma"].over_baseline == pytest.approx(1.5)
    assert result["pinn"].over_baseline == 1.0 and result["dn"].epoch_seconds == pytest.approx(2e-3)
    rounds = [name for name, _ in machine.calls[6:]]
    assert rounds == ["pinn", "dn", "ma", "dn", "ma", "pinn", "ma", "pinn", "dn"]  # the order rotates
    assert [e for _, e in machine.calls[:6]] == [1, 2] * 3  # warm-up, then calibration
    assert dict(machine.calls[6:9]) == {"pinn": 300, "dn": 150, "ma": 200}  # about 0.3 s per burst


def test_a_load_spike_on_one_burst_is_dropped_by_the_median():
    machine = _Machine({"pinn": 1e-3, "dn": 2e-3}, lambda call: 10.0 if call == 7 else 1.0)  # round 0's dn
    assert paired_ratios(machine.bursts(), rounds=3, seconds=0.1)["dn"].over_baseline == pytest.approx(2.0)


def test_a_failed_burst_gives_no_timing_and_a_failed_baseline_none_at_all():
    ok = {"pinn": lambda n: n * 1e-3, "dn": lambda n: None}
    assert paired_ratios(ok, rounds=2, seconds=0.01)["dn"] is None
    assert paired_ratios(ok, rounds=2, seconds=0.01)["pinn"].over_baseline == 1.0
    assert paired_ratios({"pinn": lambda n: None, "dn": lambda n: n * 1e-3}, rounds=2, seconds=0.01) == \
        {"pinn": None, "dn": None}


def test_reused_runs_get_the_timing_and_an_extra_sleep_in_dns_step_shows_in_the_ratio(tmp_path, monkeypatch,
                                                                                         capsys):
    out = tmp_path / "cmp"
    assert cli.main([*ARGV, "--out", str(out), "--no-step-timing"]) == 0  # runs trained without a timing
    mtime = (out / "dn" / "metrics.json").stat().st_mtime_ns
    step, extra = Trainer.step, 0.02  # well above a loaded 2-core machine's scheduling delays (a few ms)

    def slow_dn_step(self, *args, **kwargs):
        if type(self.scheme).__name__ == "DN":
            time.sleep(extra)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "step", slow_dn_step)
    monkeypatch.setattr(step_timing, "STEP_TIMING_SECONDS", 0.1)
    assert cli.main([*ARGV, "--out", str(out)]) == 0
    assert "reusing" in capsys.readouterr().err and (out / "dn" / "metrics.json").stat().st_mtime_ns == mtime
    rows = _rows(out)
    pinn, dn = (float(rows[n]["epoch_seconds"]) for n in ("pinn", "dn"))
    ratio = float(rows["dn"]["step_time_over_pinn"])
    # One step per epoch here. time.sleep never returns early and DN's step does at least PINN's work, so DN's
    # epoch is >= 20 ms longer (0.9: the medians come from different rounds); scheduling delays of a loaded
    # 2-core machine may add a few ms more (the upper bound allows 10).
    assert 0.9 * extra <= dn - pinn <= extra + 0.01
    # PINN's epoch on this problem is ~1 ms, so the ratio is ~20; under 3 PINN's epoch would be 10 ms
    assert ratio > 3 and ratio == pytest.approx(dn / pinn, rel=0.35)  # median of ratios ~ ratio of medians
    assert float(rows["pinn"]["step_time_over_pinn"]) == 1.0
    assert json.loads((out / "compare.json").read_text())["rows"][1]["step_time_over_pinn"] == ratio
    # a comparison that trains nothing keeps the timing of the one before (the same configurations)
    monkeypatch.setattr(Trainer, "step", step)
    assert cli.main([*ARGV, "--out", str(out)]) == 0
    assert "the step timing of the comparison that trained them is kept" in capsys.readouterr().err
    assert _rows(out) == rows
    assert cli.main([*ARGV, "--out", str(out), "--backend", "cpp"]) == 0  # another backend: timed again
    assert "timing the schemes' epochs side by side" in capsys.readouterr().err
    assert float(_rows(out)["dn"]["step_time_over_pinn"]) < ratio / 3  # without the sleep: ~1, not ~20


def test_no_step_timing_skips_it_and_the_legend_names_what_each_time_column_measures(tmp_path, monkeypatch,
                                                                                      capsys):
    out = tmp_path / "cmp"
    assert cli.main([*ARGV, "--out", str(out)]) == 0
    md = (out / "compare.md").read_text()
    header = md.splitlines()[0]
    assert "| training wall time (s) | step time / PINN (paired) |" in header
    assert ("step time / PINN (paired): median over 3 interleaved rounds (rotating order, after a warm-up) of a "
            "scheme's seconds per epoch over PINN's in the same round") in md
    assert "Training wall time: the training run's own time (the runs train one after another" in md
    assert "step time / PINN (paired): median over 3" in capsys.readouterr().out  # the CLI prints the legend

    def refuse(*args, **kwargs):
        raise AssertionError("--no-step-timing must not time the schemes")

    monkeypatch.setattr(step_timing, "paired_step_timing", refuse)
    assert cli.main([*ARGV, "--out", str(out), "--no-step-timing"]) == 0
    rows = _rows(out)
    assert all(r["step_time_over_pinn"] == "" and r["epoch_seconds"] == "" for r in rows.values())
    assert float(rows["pinn"]["train_seconds"]) > 0 and rows["pinn"]["time_over_pinn"] == "1.0"  # wall time kept
    md = (out / "compare.md").read_text()
    assert "step time / PINN (paired): not measured (--no-step-timing)" in md
    table = [line for line in md.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert all(line.split(" | ")[6] == "n/a" for line in table)


def test_a_warm_up_entry_is_timed_after_its_warm_up(tmp_path, capsys):
    # its first third of epochs skips the weight updates: bursts of them would time a cheaper step than it trains
    out = tmp_path / "cmp"
    assert cli.main([*ARGV[:3], "dn+warmup", *ARGV[4:], "--out", str(out)]) == 0
    timed = json.loads((out / "compare.json").read_text())["step_timing_of"]["configs"]
    trained = json.loads((out / "dn+warmup" / "config.json").read_text())["config"]
    assert trained["weight_warmup"] == 1  # 0 is the default, which config dicts leave out
    assert timed["dn+warmup"] == {k: v for k, v in trained.items() if k != "weight_warmup"}
    assert float(_rows(out)["dn+warmup"]["step_time_over_pinn"]) > 0
