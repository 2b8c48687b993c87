"""bench/authors_tf_summary.py: the table that puts the authors' TensorFlow PINN runs beside fastpinn's
(the TensorFlow driver itself needs TensorFlow and the authors' checkout; only its argument check runs here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SUMMARY = REPO / "bench" / "authors_tf_summary.py"
DRIVER = REPO / "bench" / "authors_tf_poisson_pinn.py"


def _seed_file(folder: Path, seed: int, epochs: list[int], errors: list[float]) -> None:
    (folder / f"seed{seed}.json").write_text(json.dumps(
        {"seed": seed, "evaluated_epochs": epochs, "rel_l2": errors, "losses": [0.0] * len(epochs)}))


def test_summary_averages_the_seeds_that_finished_and_takes_the_best_save(tmp_path):
    authors = tmp_path / "authors"
    authors.mkdir()
    grid = [250, 500, 750, 1000]
    _seed_file(authors, 0, grid, [0.9, 0.5, 0.4, 0.45])   # best save 0.4 (epoch 750)
    _seed_file(authors, 1, grid, [0.8, 0.7, 0.6, 0.3])    # best save 0.3 (epoch 1000)
    _seed_file(authors, 2, grid[:2], [0.1, 0.1])          # killed at epoch 500: left out
    ours_epochs = np.arange(100, 1001, 100)
    ours = np.stack([np.linspace(1.0, 0.2, 10), np.linspace(1.0, 0.4, 10)], axis=1)  # [M, S]
    np.savez(tmp_path / "history.npz", eval_epochs=ours_epochs, rel_l2=ours)

    out = subprocess.run([sys.executable, str(SUMMARY), "--authors", str(authors), "--ours",
                          str(tmp_path / "history.npz"), "--epochs", "1000", "--every", "500"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "authors' code (2 seeds)" in lines[0] and "fastpinn (2 seeds)" in lines[0]
    row_500 = next(line for line in lines if line.startswith("| 500 |"))
    assert "6.000e-01" in row_500                         # (0.5 + 0.7) / 2; seed 2's 0.1 is not in it
    ours_500 = (ours[4, 0] + ours[4, 1]) / 2
    assert f"{ours_500:.3e}" in row_500
    saves = next(line for line in lines if line.startswith("- authors' code:"))
    assert saves.startswith("- authors' code: 3.500e-01 ± 5.0e-02")   # mean of 0.4 and 0.3, s.e. 0.05


def test_summary_refuses_a_folder_where_no_seed_reached_the_epochs(tmp_path):
    _seed_file(tmp_path, 0, [250], [0.5])
    np.savez(tmp_path / "history.npz", eval_epochs=np.array([100]), rel_l2=np.ones((1, 1)))
    out = subprocess.run([sys.executable, str(SUMMARY), "--authors", str(tmp_path), "--ours",
                          str(tmp_path / "history.npz"), "--epochs", "30000"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "no seed*.json reached epoch 30000" in out.stderr


def test_driver_names_the_missing_checkout_before_importing_tensorflow(tmp_path):
    out = subprocess.run([sys.executable, str(DRIVER), "--code", str(tmp_path), "--seed", "0", "--out",
                          str(tmp_path / "s.json")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "no pinn.py there" in out.stderr
