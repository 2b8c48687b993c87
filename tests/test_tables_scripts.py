"""The table scripts of bench/: the commands they issue (with a stand-in python that records them), and
(slow) the GPU script on a reduced protocol on the CPU, the CPU script's report on an empty root."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GPU = REPO / "bench" / "reproduce_gpu.sh"
CPU = REPO / "bench" / "reproduce_cpu_tables.sh"


def _fake_python(tmp_path: Path, fail_on: str = "", code: int = 143) -> tuple[Path, Path]:
    """A stand-in for python that records its arguments, one call a line, and exits ``code`` when they
    contain ``fail_on``."""
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "python"
    fake.write_text(f"""#!/usr/bin/env bash
echo "$*" >> {shlex.quote(str(calls))}
case "$*" in *--report-only*) echo "### a table of $4"; echo; echo "Partial table, assembled ..." ;; esac
case "$*" in *{shlex.quote(fail_on or "@@never@@")}*) exit {code} ;; esac
exit 0
""")
    fake.chmod(0o755)
    return fake, calls


def _run(script: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=60)


def test_gpu_script_trains_table1_then_table3_as_10_seed_ensembles_then_reports(tmp_path):
    fake, calls = _fake_python(tmp_path)
    root = tmp_path / "root"
    res = _run(GPU, str(root), env={"PYTHON": str(fake)})
    assert res.returncode == 0, res.stderr
    lines = calls.read_text().splitlines()
    sweep = "--seeds 10 --device cuda --out {root}/{t}-10seeds"
    assert lines == [
        f"-m fastpinn reproduce table1 {sweep.format(root=root, t='table1')} --derivative-method fused "
        "--step-mode eager --checkpoint-seconds 60 --no-progress",
        f"-m fastpinn reproduce table3 {sweep.format(root=root, t='table3')} --derivative-method fused "
        "--step-mode eager --checkpoint-seconds 60 --no-progress",
        f"-m fastpinn reproduce table1 {sweep.format(root=root, t='table1')} --report-only",
        f"-m fastpinn reproduce table3 {sweep.format(root=root, t='table3')} --report-only",
    ]


@pytest.mark.parametrize("code", [124, 143])  # timeout's status when it sent the SIGTERM; the run's own
def test_gpu_script_stopped_by_its_budget_still_reports_and_says_so(tmp_path, code):
    fake, calls = _fake_python(tmp_path, fail_on="reproduce table1 --seeds 2 --epochs 5 --device cpu", code=code)
    res = _run(GPU, str(tmp_path / "root"),
               env={"PYTHON": str(fake), "BUDGET_S": "100", "DEVICE": "cpu", "SEEDS": "2", "EPOCHS": "5",
                    "EXTRA": "--n-pde 64 --no-figures"})
    assert res.returncode == 143 and "stopped by BUDGET_S after writing its checkpoint; rerun to resume" in res.stdout
    lines = calls.read_text().splitlines()
    assert len(lines) == 3 and "--n-pde 64 --no-figures" in lines[0]  # table3 not started; both reported
    assert all(line.endswith("--n-pde 64 --no-figures --report-only") for line in lines[1:])


def test_gpu_script_names_a_failed_table_and_its_log(tmp_path):
    fake, calls = _fake_python(tmp_path, fail_on="reproduce table3 --seeds 10 --device cuda", code=1)
    res = _run(GPU, str(tmp_path / "root"), env={"PYTHON": str(fake)})
    assert res.returncode == 1 and f"table3 failed with exit 1 (see {tmp_path / 'root' / 'table3.log'})" in res.stdout
    assert len(calls.read_text().splitlines()) == 4  # both trained, both reported


def test_cpu_script_trains_the_background_jobs_sweeps_and_reports_them(tmp_path):
    fake, calls = _fake_python(tmp_path)
    root = tmp_path / "runs"
    assert _run(CPU, str(root), env={"PYTHON": str(fake)}).returncode == 0
    common = "--derivative-method fused --device cpu --no-progress --checkpoint-seconds 120"
    t1 = f"-m fastpinn reproduce table1 --seeds 3 --out {root}/table1-3seeds {common}"
    t2 = f"-m fastpinn reproduce table2 --seeds 10 --out {root}/table2 {common}"
    shards = [f"{t2} --shard {i}/7" for i in (6, 0, 5, 4, 3, 2, 1)]  # DN b=0.99 and PINN first
    assert calls.read_text().splitlines() == [f"{t1} --shard 0/6"] + shards
    calls.unlink()
    assert _run(CPU, str(root), "report", env={"PYTHON": str(fake)}).returncode == 0
    assert calls.read_text().splitlines() == [f"{t1} --report-only", f"{t2} --report-only"]
    assert _run(CPU, str(root), "bogus", env={"PYTHON": str(fake)}).returncode == 2


def test_cpu_script_writes_the_reports_as_results_files_naming_machine_and_commands(tmp_path):
    fake, calls = _fake_python(tmp_path)
    res = _run(CPU, str(tmp_path / "runs"), "results", str(tmp_path / "results"), env={"PYTHON": str(fake)})
    assert res.returncode == 0, res.stderr
    files = sorted((tmp_path / "results").iterdir())
    cores = os.cpu_count()  # the machine's, not OMP_NUM_THREADS's (which the script sets to 1)
    assert [f.name.split("-cpu-")[0] for f in files] == ["reproduce-table1-3seeds", "reproduce-table2-10seeds"]
    assert all(f.name.endswith(f"-{cores}c-partial.md") for f in files)
    t1 = files[0].read_text()
    model = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in model.splitlines() if line.startswith("Model name")), "")
    assert t1.startswith("# Table 1 (Burgers), PINN and DN-PINN β = 0.99 rows") and t1.rstrip().endswith(
        "Partial table, assembled ...")
    assert f"Machine: {model} (`lscpu`), {cores} cores" in t1 and "### a table of table1" in t1
    assert ("`python -m fastpinn reproduce table1 --seeds 3 --out ROOT/table1-3seeds --derivative-method fused "
            "--device cpu --no-progress --checkpoint-seconds 120 --shard 0/6`") in t1
    assert "`nice -n 19 bash bench/reproduce_cpu_tables.sh ROOT >>ROOT/log.txt 2>&1 &`" in t1


@pytest.mark.slow  # four fastpinn processes (~30 s each on a loaded 2-core box)
def test_gpu_script_on_a_reduced_protocol_on_the_cpu(tmp_path):
    root = tmp_path / "root"
    res = subprocess.run(["bash", str(GPU), str(root)], capture_output=True, text=True, timeout=900, env={
        **os.environ, "PYTHON": sys.executable, "DEVICE": "cpu", "SEEDS": "2", "EPOCHS": "2",
        "EXTRA": "--n-pde 64 --n-ic 16 --n-bc 16 --no-figures --eval-every 1 --compile off"})
    assert res.returncode == 0, res.stdout + res.stderr
    for t, title in (("table1", "Table 1: Burgers"), ("table3", "Table 3: Allen-Cahn")):
        md = (root / f"{t}-2seeds" / "table.md").read_text()
        assert f"### {title} " in md and sum(line.startswith("| ") for line in md.splitlines()) == 8
        assert "in progress" not in md and "not started" not in md
        assert md in res.stdout  # the report at the end is the table the sweep wrote


@pytest.mark.slow  # two fastpinn processes
def test_cpu_script_report_on_an_empty_root(tmp_path):
    res = subprocess.run(["bash", str(CPU), str(tmp_path), "report"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHON": sys.executable})
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("| not started |") == 14 and "### Table 2: Poisson" in res.stdout
    assert not any(tmp_path.iterdir())  # a report writes nothing
