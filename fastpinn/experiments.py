"""The paper's experiments (kept for compatibility: the code lives in :mod:`fastpinn.run`).

One run (:func:`train_run`), the tables' configurations (:data:`TABLES`), the resumable sweep that
reproduces a table (:func:`reproduce`), the table writer (:func:`format_table`) and the few-minute CPU demo
(:func:`demo`); see :mod:`fastpinn.run` for the modules.
"""

from __future__ import annotations

from .run import (BACKENDS, CHECKPOINT_SECONDS, COMPARE_DEFAULT, DEMO_DEFAULTS, DTYPES, FIG12_EPOCHS, PROBLEMS,
                  SCHEMES, SIZE_KEYS, TABLES, USER_PROBLEM_FORM, CompareResult, Entry, Interrupted, Log, Row,
                  RunConfig, RunFailedError, TableResult, TableSpec, build_trainer, compare, demo, evaluate_run,
                  format_table, is_complete, is_user_problem, load_run, plan_run_dir, preflight_backend,
                  read_points, reproduce, resumable_epoch, SweepOptions, sweep_shard, table_entries, table_rows,
                  train_run, write_array)

__all__ = [
    "PROBLEMS", "SCHEMES", "DTYPES", "SIZE_KEYS", "RunConfig", "Entry", "TableSpec", "TABLES", "Row",
    "train_run", "plan_run_dir", "resumable_epoch", "is_complete", "Interrupted", "reproduce", "format_table", "table_rows", "demo", "DEMO_DEFAULTS",
    "USER_PROBLEM_FORM", "BACKENDS", "Log", "is_user_problem", "preflight_backend", "build_trainer",
    "CHECKPOINT_SECONDS", "FIG12_EPOCHS", "table_entries", "TableResult", "sweep_shard", "COMPARE_DEFAULT",
    "CompareResult", "compare", "SweepOptions", "RunFailedError", "load_run", "evaluate_run", "read_points", "write_array",
]
