"""The run layer's shape: the old modules keep their names, facts live in one place (the CLI reads the
registries), no module of fastpinn.run takes another module's private names, and the README's exit
codes are the command line's."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import fastpinn
from fastpinn import cli, experiments, problems, runs
from fastpinn.run import RunConfig

RUN_PACKAGE = Path(fastpinn.__file__).parent / "run"
README = Path(fastpinn.__file__).parent.parent / "README.md"

OLD_EXPERIMENTS = ["PROBLEMS", "SCHEMES", "DTYPES", "SIZE_KEYS", "RunConfig", "Entry", "TableSpec", "TABLES", "Row",
                   "train_run", "plan_run_dir", "resumable_epoch", "is_complete", "Interrupted", "reproduce",
                   "format_table", "table_rows", "demo", "DEMO_DEFAULTS", "build_trainer", "is_user_problem",
                   "load_run", "read_points", "write_array", "evaluate_run", "compare", "COMPARE_DEFAULT",
                   "sweep_shard", "table_entries"]
OLD_RUNS = ["CONFIG", "METRICS", "HISTORY", "CHECKPOINT", "RUN_FILES", "RunDirError", "RunPathError",
            "default_run_dir", "prepare_run_dir", "is_nonempty_dir", "check_dir_path", "replace_previous_run",
            "verify_run", "checkpoint_problem", "write_json", "read_json", "json_status", "read_config",
            "read_metrics", "mean_sem", "metrics_from_history", "environment", "device_name"]


def test_the_old_modules_keep_their_public_names():
    assert set(OLD_EXPERIMENTS) - set(dir(experiments)) == set()
    assert set(OLD_RUNS) <= set(runs.__all__) and all(hasattr(runs, n) for n in OLD_RUNS)
    assert experiments.reproduce.__module__ == "fastpinn.run.sweeps"


def test_the_cli_reads_its_choices_from_the_registries(monkeypatch):
    from fastpinn import trainer

    monkeypatch.setattr(trainer, "derivative_method_choices", lambda: ("auto", "mine", "tune"))
    args = cli.build_parser().parse_args(["train", "poisson1d", "--derivative-method", "mine", "--backend", "torch"])
    assert args.derivative_method == "mine"
    from fastpinn import ops

    assert cli.build_parser().parse_args(["train", "poisson1d", "--backend", ops.BACKENDS[-1]]).backend


def test_one_problem_registry(monkeypatch):
    """problems.get, the run configuration and the CLI's train read fastpinn.problems.BUILTIN."""
    made = []

    def toy(seed=0, n_pde=8, epochs=3):
        made.append(seed)
        return problems.poisson1d(seed, n_pde=n_pde, epochs=epochs)

    monkeypatch.setitem(problems.BUILTIN, "toy", toy)
    assert problems.get("toy", 1).seeds == (1,)
    cfg = RunConfig(problem="toy", problem_kwargs={"n_pde": 8}).validate()
    assert cfg.resolved_epochs() == 3 and cfg.build_problem().seeds == (0,)
    assert tuple(problems.BUILTIN)[:6] == experiments.PROBLEMS[:6]


def test_readme_exit_codes_are_the_cli_ones():
    table = re.findall(r"^\| (\d+(?: / \d+)?) \|", README.read_text(), flags=re.M)
    documented = {int(c) for row in table for c in row.split(" / ")}
    codes = {v for k, v in vars(cli).items() if k.startswith("EXIT_") and isinstance(v, int)}
    assert documented == codes
    for code in codes - {130, 143}:
        assert re.search(rf"^    {code}  ", cli.__doc__, flags=re.M), code
