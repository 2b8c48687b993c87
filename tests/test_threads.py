"""The CPU thread policy: idle cores now, at least one; the Trainer applies it only inside train()."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import fastpinn
from fastpinn import threads
from fastpinn.problems import poisson1d


def test_idle_cores_is_measured_and_bounded():
    idle = threads.idle_cores(0.05)
    if idle is None:
        pytest.skip("no /proc/stat on this system")
    assert 0.0 <= idle <= (__import__("os").cpu_count() or 1) + 1e-9
    n = threads.threads_for_now(0.05)
    assert 1 <= n <= threads.available_cores()


def test_a_busy_core_is_seen_as_busy():
    # One process spinning on each core leaves nothing idle: the policy must fall back to one thread.
    cores = threads.available_cores()
    spin = "import time\nt=time.time()\nwhile time.time()-t<3: pass"
    procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(cores)]
    try:
        import time

        time.sleep(0.5)
        assert threads.threads_for_now(0.3) == 1
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_resolution_and_environment_override(monkeypatch):
    monkeypatch.setenv(threads.ENV, "3")
    assert threads.resolve_threads("auto") == 3
    assert threads.resolve_threads(2) == 2 and threads.resolve_threads(None) is None
    monkeypatch.setenv(threads.ENV, "lots")
    with pytest.raises(ValueError, match="FASTPINN_THREADS must be 'auto' or an integer >= 1, got 'lots'"):
        threads.resolve_threads("auto")
    with pytest.raises(ValueError, match="threads must be 'auto', None or an integer >= 1, got 0"):
        threads.resolve_threads(0)


def test_trainer_applies_the_setting_only_inside_train():
    before = torch.get_num_threads()
    seen = []
    trainer = fastpinn.Trainer(poisson1d(0, n_pde=16, depth=2, width=4), fastpinn.DN(), threads=2, eval_every=5)
    h = trainer.train(5, callback=lambda t, e, info: seen.append(torch.get_num_threads()))
    assert seen == [2] and h.extra["threads"] == 2
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be"):
        fastpinn.Trainer(poisson1d(0, n_pde=16, depth=2, width=4), fastpinn.DN(), threads=-1)


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1.5", "²", str(threads.MAX_THREADS + 1), str(2**63)])
def test_bad_environment_variable_is_an_environment_error(monkeypatch, value):
    monkeypatch.setenv(threads.ENV, value)
    with pytest.raises(threads.ThreadsEnvironmentError, match=r"^FASTPINN_THREADS must be 'auto' or an integer >= 1"):
        threads.environment_threads()
    with pytest.raises(ValueError):  # still a ValueError for callers of resolve_threads
        threads.resolve_threads("auto")


@pytest.mark.parametrize("value,count", [("", None), ("auto", None), (" 3 ", 3), (str(threads.MAX_THREADS),
                                                                                  threads.MAX_THREADS)])
def test_environment_threads_accepts(monkeypatch, value, count):
    monkeypatch.setenv(threads.ENV, value)
    assert threads.environment_threads() == count


def test_thread_counts_beyond_the_maximum_are_refused():
    with pytest.raises(ValueError, match=f"at most {threads.MAX_THREADS}"):
        threads.resolve_threads(2**63)


def test_oversubscription_warning_names_the_setting_and_the_cores(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    assert threads.oversubscription_warning(2) is None
    assert threads.oversubscription_warning(1000, "--threads") == (
        "warning: --threads 1000 exceeds the 2 cores available to this process; training will be much slower "
        "than with 2 (omit it to use the idle cores)")
