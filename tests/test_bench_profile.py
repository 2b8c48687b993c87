"""bench/bench_training.py's profile_step (the phase split that run_all.py reports) runs: on 5838b7e it read
``Trainer._G``, which no Trainer has (AttributeError). A subprocess, because importing the bench module tunes the
allocator of the whole process."""

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"

SCRIPT = """
import json
import fastpinn
import bench_training as bt
from fastpinn.problems import poisson1d

problem = poisson1d(0, n_pde=16, depth=2, width=4)
print(json.dumps(bt.profile_step(problem, fastpinn.DN(tau=1), steps=2, warm=1)))
"""


def test_profile_step_runs_and_reports_every_phase():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(BENCH.parent), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=BENCH, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    phases = json.loads(done.stdout.strip().splitlines()[-1])
    for name in ("forward", "backward_k", "backward_1", "stats", "ema", "combine", "adam", "backward_extra"):
        assert phases[name] == phases[name] and (name == "backward_extra" or phases[name] > 0), (name, phases)
