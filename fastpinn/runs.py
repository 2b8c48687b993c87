"""Run directories and run records (kept for compatibility: the code lives in :mod:`fastpinn.run.directory`
and :mod:`fastpinn.run.records`)."""

from __future__ import annotations

from .run.directory import (CHECKPOINT, CONFIG, HISTORY, METRICS, RUN_FILES, RunDirError, RunPathError,
                            check_dir_path, checkpoint_problem, default_run_dir, is_nonempty_dir, prepare_run_dir,
                            read_config, read_metrics, replace_previous_run, verify_run)
from .run.records import (device_name, environment, json_status, mean_sem, metrics_from_history, read_json,
                          write_json)

__all__ = [
    "CONFIG", "METRICS", "HISTORY", "CHECKPOINT", "RUN_FILES",
    "RunDirError", "RunPathError", "default_run_dir", "prepare_run_dir", "is_nonempty_dir", "check_dir_path",
    "replace_previous_run", "verify_run", "checkpoint_problem",
    "write_json", "read_json", "json_status", "read_config", "read_metrics",
    "mean_sem", "metrics_from_history", "environment", "device_name",
]
