"""The run layer: what ``fastpinn train``/``reproduce``/``compare``/``predict`` do with configurations and
run directories.

* :mod:`.config`: the problem registry and :class:`RunConfig` (everything that decides a run's numbers);
* :mod:`.one_run`: :func:`train_run`, one configuration trained in its run directory;
* :mod:`.directory`: the run directory's files, what a directory holds, and what a run does with it;
* :mod:`.lock`: one writer per run directory; :mod:`.ranks`: the torchrun layout, rank 0 deciding for all;
* :mod:`.records`: strict JSON, a finished run's metrics, the environment it ran in;
* :mod:`.tables`: the paper's tables and their text; :mod:`.sweeps`: :func:`reproduce`;
* :mod:`.compare`: the demo and ``compare``; :mod:`.loading`: trained runs read back;
  :mod:`.arrays`: points and predictions in and out.
"""

from .arrays import read_points, write_array
from .compare import COMPARE_DEFAULT, DEMO_DEFAULTS, CompareResult, compare, demo
from .config import (BACKENDS, DTYPES, PROBLEMS, SCHEMES, SIZE_KEYS, USER_PROBLEM_FORM, Log, RunConfig,
                     is_user_problem)
from .directory import is_complete, plan_run_dir, resumable_epoch
from .loading import evaluate_run, load_run
from .one_run import (CHECKPOINT_SECONDS, Interrupted, RunFailedError, build_trainer, nothing_to_balance,
                      preflight_backend, train_run)
from .sweeps import SweepOptions, reproduce, sweep_shard
from .tables import FIG12_EPOCHS, TABLES, Entry, Row, TableResult, TableSpec, format_table, table_entries, table_rows

__all__ = [
    "PROBLEMS", "USER_PROBLEM_FORM", "SCHEMES", "DTYPES", "BACKENDS", "SIZE_KEYS", "Log", "RunConfig", "is_user_problem",
    "preflight_backend", "build_trainer", "nothing_to_balance", "CHECKPOINT_SECONDS", "Interrupted", "RunFailedError", "train_run",
    "is_complete", "resumable_epoch", "plan_run_dir",
    "Entry", "TableSpec", "TABLES", "FIG12_EPOCHS", "table_entries", "Row", "table_rows", "format_table", "TableResult",
    "sweep_shard", "SweepOptions", "reproduce", "DEMO_DEFAULTS", "demo", "COMPARE_DEFAULT", "CompareResult", "compare",
    "load_run", "evaluate_run", "read_points", "write_array",
]
