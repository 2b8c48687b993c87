"""``fastpinn compare`` on a problem whose network trains one seed at a time (``ModifiedMLP``): one run per seed
under ``<scheme>/seed-<k>``, aggregated into the same ranked rows as an ensemble, reused on the next call."""

from __future__ import annotations

import csv
import shlex

from fastpinn import cli
from fastpinn.run import RunConfig
from fastpinn.run.compare import trains_ensembles
from user_problem import PROBLEM_FILE

FAST = ["--epochs", "6", "--eval-every", "3", "--n-pde", "16", "--no-progress", "--compile", "off", "--threads", "1",
        "--backend", "torch"]

# the user's problem, declaring the modified MLP (a plain nn.Module: single networks only)
MODIFIED_MLP_FILE = PROBLEM_FILE.replace("import math, torch", "import math, torch\nfrom fastpinn.networks import "
                                         "ModifiedMLP").replace("seeds=(seed,))", "seeds=(seed,), "
                                                                "architecture=ModifiedMLP)")


def _csv(out):
    with open(out / "compare.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_compare_trains_one_run_per_seed_for_a_single_network_architecture_and_reuses_them(tmp_path, capsys):
    path = tmp_path / "modified.py"
    path.write_text(MODIFIED_MLP_FILE)
    problem, out = f"{path}:make_problem", tmp_path / "cmp"
    assert not trains_ensembles(RunConfig(problem=problem, seeds=(0, 1)))
    (tmp_path / "plain.py").write_text(PROBLEM_FILE)
    assert trains_ensembles(RunConfig(problem=f"{tmp_path / 'plain.py'}:make_problem", seeds=(0, 1)))  # the MLP
    (tmp_path / "wrapped.py").write_text(PROBLEM_FILE.replace("import math, torch", "import math, torch, functools\n"
                                                              "from fastpinn import MLP").replace(
        "seeds=(seed,))", "seeds=(seed,), architecture=functools.partial(MLP, init='glorot_uniform'))"))
    assert trains_ensembles(RunConfig(problem=f"{tmp_path / 'wrapped.py'}:make_problem", seeds=(0, 1)))

    args = ["compare", problem, "--schemes", "dn", "--seeds", "2", "--out", str(out), *FAST]
    assert cli.main(args) == 0
    stdout = capsys.readouterr()
    rows = _csv(out)
    assert [r["scheme"] for r in rows] == ["pinn", "dn"]
    for r in rows:  # two seeds per row, each its own single-network run
        assert r["seeds"] == "2" and r["status"] == "ok"
        assert float(r["rel_l2_min"]) <= float(r["rel_l2_mean"]) <= float(r["rel_l2_max"])
        assert float(r["rel_l2_min"]) < float(r["rel_l2_max"])
        for k in (0, 1):
            assert (out / r["scheme"] / f"seed-{k}" / "metrics.json").is_file()
    assert sorted(int(r["rank"]) for r in rows) == [1, 2]
    assert (out / "compare.png").stat().st_size > 0

    # the winner's command trains one network (no --seeds: the architecture has no ensemble) and it runs
    command = stdout.out.strip().splitlines()[-1].split("train it with: ")[1]
    words = shlex.split(command)
    assert "--seeds" not in words
    assert cli.main(words[1:] + ["--out", str(tmp_path / "winner"), "--no-figures", "--compile", "off",
                                 "--backend", "torch", "--no-progress"]) == 0
    capsys.readouterr()

    assert cli.main(args) == 0  # the second call trains nothing
    captured = capsys.readouterr()
    log = captured.err + captured.out
    assert "compare: training" not in log
    assert all(f"reusing {out / s / f'seed-{k}'}" in log for s in ("pinn", "dn") for k in (0, 1))
    assert _csv(out) == rows
