"""Sweeps across ranks: a configuration's seeds split into chunks, and a torchrun sweep that loses a rank.

Chunks: the members of a batched ensemble share only the mini-batch permutation (one generator, seeded
by the ensemble's first seed; a chunk keeps the whole configuration's, ``RunConfig.batch_seed``); each
has its own points, parameters, weights and optimizer state. So seeds 0-1 and 2-3 trained as two
ensembles give the per-seed errors of one 4-member ensemble -- bit for bit, except for a member that is
the last of its chunk or of the one ensemble. Why: torch's CPU fused Adam updates the flat parameters
``[S * P]`` in vector lanes and the last ``S * P mod lanes`` elements (always the last member's) in a
scalar loop, and the two round ``exp_avg_sq`` differently (measured: 1 ulp in ~24 % of the remainder's
elements after two steps; the losses and ``G`` are equal bit for bit). One ulp of a few parameters per
step stays near rounding on these tiny smooth runs: float64, poisson1d, 200 epochs gave relative
differences of at most 1.2e-13 in a last member's error (2e-16 after 6). ``RTOL_LAST = 1e-10`` leaves a
margin of ~1000 over that and still fails on any real mistake: a chunk shuffling with its own first
seed moves the errors by 1e-4..1e-3, a wrong seed or member order by O(1).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist

from fastpinn import experiments

TINY = dict(seeds=4, epochs=6, problem="poisson1d", problem_kwargs={"n_pde": 16}, backend="torch", eval_every=3,
            figures=False, dtype="float64")


RTOL_LAST = 1e-10  # the last member of a run: see the module docstring


def _assert_one_ensemble(chunked: list[float], whole: list[float], last: set[int]) -> None:
    """Per-seed errors of chunks equal the one ensemble's: exactly, except members in ``last`` (the last
    of a chunk or of the whole ensemble), within ``RTOL_LAST``."""
    assert len(chunked) == len(whole)
    for s, (c, w) in enumerate(zip(chunked, whole)):
        if s in last:
            np.testing.assert_allclose(c, w, rtol=RTOL_LAST, err_msg=f"seed {s}")
        else:
            assert c == w, f"seed {s}: {c!r} != {w!r}"


def _per_seed(root: Path, key: str) -> list[float]:
    """The per-seed errors of configuration ``key`` (its directory, or its chunks in seed order)."""
    name = Path(key).name  # not a glob on the name alone: "ma-b0.9*" would also match "ma-b0.99.seeds-0-1"
    dirs = sorted((d for d in root.iterdir() if d.name == name or d.name.startswith(name + ".seeds-")),
                  key=lambda d: int(d.name.rsplit(".seeds-", 1)[1].split("-")[0]) if ".seeds-" in d.name else 0)
    return [v for d in dirs for v in json.loads((d / "metrics.json").read_text())["rel_l2_per_seed"]]


def test_chunked_seeds_give_the_one_ensemble_table(tmp_path):
    whole = experiments.reproduce("table4", out=tmp_path / "whole", **TINY)
    chunked = experiments.reproduce("table4", out=tmp_path / "chunked", seeds_per_run=3, **TINY)  # 0-2 and 3
    key = whole.rows[0].key
    assert sorted(p.name for p in (tmp_path / "chunked" / "poisson1d").iterdir())[:2] == \
        [f"{Path(key).name}.seeds-0-2", f"{Path(key).name}.seeds-3-3"]
    assert not (tmp_path / "chunked" / key).exists()
    for a, b in zip(whole.rows, chunked.rows):
        assert (a.key, a.label, a.n_seeds) == (b.key, b.label, b.n_seeds) == (a.key, a.label, 4)
        np.testing.assert_allclose([b.rel_l2_mean, b.rel_l2_sem], [a.rel_l2_mean, a.rel_l2_sem], rtol=RTOL_LAST)
    for r in whole.rows:  # chunks 0-2 and 3-3: seeds 2 and 3 are last of a run
        _assert_one_ensemble(_per_seed(tmp_path / "chunked" / "poisson1d", r.key),
                             _per_seed(tmp_path / "whole" / "poisson1d", r.key), last={2, 3})
    assert "in batched ensembles of at most 3 seeds" in chunked.markdown
    # chunks are the units a shard takes: shard 0 of 2 trains units 0, 2, 4, ... and waits for the rest
    out = tmp_path / "sharded"
    first = experiments.reproduce("table4", out=out, shard="0/2", seeds_per_run=2, **TINY)
    units = [f"{r.key}.seeds-{a}-{a + 1}" for r in whole.rows for a in (0, 2)]
    assert first.missing == units[1::2] and not (out / "table.md").exists()
    second = experiments.reproduce("table4", out=out, shard="1/2", seeds_per_run=2, **TINY)
    assert not second.missing and [r.rel_l2_mean for r in second.rows] == [r.rel_l2_mean for r in
                                                                           experiments.reproduce(
                                                                               "table4", out=out, seeds_per_run=2,
                                                                               **TINY).rows]
    np.testing.assert_allclose([r.rel_l2_mean for r in second.rows], [r.rel_l2_mean for r in whole.rows],
                               rtol=RTOL_LAST)


MINIBATCHED = '''
from dataclasses import replace
from fastpinn.problems import poisson1d

def make(seed=0, n_pde=24, epochs=6):
    """poisson1d with its PDE points in 3 mini-batches per epoch: the shuffling permutation matters."""
    p = poisson1d(seed, n_pde=n_pde, depth=2, width=8, epochs=epochs)
    return replace(p, terms=[replace(p.terms[0], batch_size=8), *p.terms[1:]])
'''


def test_chunks_of_a_minibatched_problem_draw_the_one_ensembles_batches(tmp_path):
    """Members of an ensemble share one mini-batch permutation, seeded by its first seed: chunk 2-3 must
    draw seed 0's batches, not seed 2's, to give the one ensemble's numbers."""
    (tmp_path / "mb.py").write_text(MINIBATCHED)
    kw = dict(TINY, problem=f"{tmp_path / 'mb.py'}:make", problem_kwargs={}, epochs=9)
    whole = experiments.reproduce("table2", out=tmp_path / "whole", **kw)
    chunked = experiments.reproduce("table2", out=tmp_path / "chunked", seeds_per_run=2, **kw)
    for r in whole.rows:  # chunks 0-1 and 2-3: seeds 1 and 3 are last of a run
        _assert_one_ensemble(_per_seed(tmp_path / "chunked", r.key), _per_seed(tmp_path / "whole", r.key),
                             last={1, 3})
    config = json.loads((tmp_path / "chunked" / "dn-b0.9.seeds-2-3" / "config.json").read_text())
    assert config["config"]["batch_seed"] == 0 and config["identity"]["batch_seed"] == 0
    first = json.loads((tmp_path / "chunked" / "dn-b0.9.seeds-0-1" / "config.json").read_text())
    assert "batch_seed" not in first["identity"]  # the default shuffling: the identity of any 2-seed run
    # The control: shuffled with its own first seed, the chunk's errors move far beyond RTOL_LAST.
    cfg = experiments.RunConfig.from_dict(config["config"])
    own = experiments.train_run(replace(cfg, batch_seed=None), tmp_path / "own", figures=False)
    ref = _per_seed(tmp_path / "whole", "dn-b0.9")[2:]
    assert np.max(np.abs(np.subtract(own["rel_l2_per_seed"], ref)) / ref) > 1e3 * RTOL_LAST


def test_bad_batch_seed():
    for bad in (-1, True, 1.5):
        with pytest.raises(ValueError, match="batch_seed must be None or an integer >= 0"):
            experiments.RunConfig(problem="poisson1d", batch_seed=bad).validate()


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_bad_seeds_per_run(tmp_path, bad):
    with pytest.raises(ValueError, match="seeds_per_run must be an integer >= 1"):
        experiments.reproduce("table4", out=tmp_path, seeds_per_run=bad, **TINY)


# --------------------------------------------------------------------- a torchrun sweep loses a rank
SWEEP = ["reproduce", "table4", "--problem", "poisson1d", "--seeds", "2", "--epochs", "300", "--n-pde", "16",
         "--eval-every", "100", "--backend", "torch", "--dtype", "float64", "--device", "cpu", "--no-progress",
         "--no-figures"]


def _torchrun(out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "fastpinn", *SWEEP, "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1", FASTPINN_THREADS="1")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _rank_pid(launcher: int, rank: int) -> int | None:
    for task in Path(f"/proc/{launcher}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                if f"RANK={rank}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                    return int(pid)
            except OSError:
                continue
    return None


@pytest.mark.skipif(not sys.platform.startswith("linux") or not dist.is_available(),
                    reason="torchrun, and the rank's process found through /proc")
def test_torchrun_sweep_that_loses_a_rank_fails_and_the_rerun_trains_only_what_is_missing(tmp_path):
    keys = [e.key for e in experiments.table_entries("table4", "poisson1d")]
    out = tmp_path / "t4"
    job = _torchrun(out)
    first = out / keys[1] / "metrics.json"  # rank 1's first configuration
    end = time.monotonic() + 120
    while not first.exists():
        assert job.poll() is None, job.communicate()[0]
        assert time.monotonic() < end
        time.sleep(0.02)
    os.kill(_rank_pid(job.pid, 1), signal.SIGKILL)
    output, _ = job.communicate(timeout=120)
    assert job.returncode != 0 and "SIGKILL" in output and "rank      : 1" in output, output
    assert not (out / "table.md").exists()
    done = {k: (out / k / "metrics.json").stat().st_mtime_ns for k in keys if (out / k / "metrics.json").exists()}
    assert keys[1] in done and len(done) < len(keys), done  # killed mid-sweep

    job = _torchrun(out)  # the same command again
    output, _ = job.communicate(timeout=300)
    assert job.returncode == 0, output
    assert (out / "table.md").exists() and "DN-PINN (β=0.99, p=∞)" in (out / "table.md").read_text()
    for k, mtime in done.items():  # finished runs are read, not retrained
        assert (out / k / "metrics.json").stat().st_mtime_ns == mtime, k
        assert f"reusing {out / k}" in output, output
    trained = [k for k in keys if k not in done]
    # trained afresh, resumed from a checkpoint, or retrained where the killed rank had started it (config.json
    # written before its first checkpoint): which one depends on how far rank 1 got before the kill
    assert all(f"-> {out / k}" in output or f"resuming {out / k}" in output or f"retraining {out / k}:" in output
               for k in trained), output
