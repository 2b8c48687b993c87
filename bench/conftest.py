"""pytest configuration of the benchmarks in bench/.

* CPU timings use one intra-op thread (``torch.set_num_threads(1)``), so a shared or loaded box gives
  stable numbers; ``FASTPINN_BENCH_THREADS=N`` overrides it. Setting ``OMP_NUM_THREADS=1`` as well
  also pins the OpenMP pool that is created before this file runs.
* The machine description from ``bench/_machine.py`` is added to pytest-benchmark's JSON
  (``machine_info["fastpinn"]``), so saved runs say where they were measured.
"""

from __future__ import annotations

import os
import sys

import torch

from fastpinn.malloc import retain_freed_memory

# Freed activation memory is reused, not page-faulted in again each step: what the fastpinn CLI does too.
ALLOCATOR_TUNED = retain_freed_memory()

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _machine  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

if DEVICE == "cpu":
    torch.set_num_threads(int(os.environ.get("FASTPINN_BENCH_THREADS", "1")))


def pytest_benchmark_update_machine_info(config, machine_info):  # pytest-benchmark hook
    machine_info["fastpinn"] = _machine.describe(DEVICE)


def pytest_report_header(config):
    info = _machine.describe(DEVICE)
    return [f"fastpinn bench: {info['device_name']}, torch {info['torch']}, triton {info['triton']}, "
            f"torch threads {info['torch_threads']}, load average {info['load_average']}"]
