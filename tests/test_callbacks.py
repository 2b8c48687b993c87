"""Callbacks: how a user extends Trainer.train, and the built-in ones train()'s arguments are made of."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fastpinn
from fastpinn.callbacks import Callback, KeepBest, Patience, PeriodicCheckpoint, ProgressBar
from fastpinn.checkpoint import read_checkpoint
from fastpinn.problems import poisson1d
from fastpinn.trainer import Trainer


def _trainer(**kw):
    kw.setdefault("eval_every", 2)
    return Trainer(poisson1d(0, n_pde=12, depth=2, width=4), fastpinn.DN(tau=2), backend="torch",
                   dtype=torch.float64, **kw)


class Recorder(Callback):
    def __init__(self, stop_at=None):
        self.calls, self.stop_at = [], stop_at

    def on_train_begin(self, trainer, epochs):
        self.calls.append(("begin", trainer.epoch, epochs))

    def on_eval(self, trainer, epoch, info):
        self.calls.append(("eval", epoch, sorted(info), trainer.history_so_far().epochs))
        return epoch == self.stop_at

    def on_train_end(self, trainer, extra):
        self.calls.append(("end", trainer.epoch, None if extra is None else dict(extra)))


def test_callback_hooks_run_at_boundaries_and_can_stop_early():
    rec = Recorder(stop_at=4)
    t = _trainer()
    h = t.train(9, callbacks=[rec])
    assert rec.calls == [("begin", 0, 9),
                         ("eval", 2, ["losses", "rel_l2", "weights"], 2),
                         ("eval", 4, ["losses", "rel_l2", "weights"], 4),
                         ("end", 4, {"early_stopped": True})]
    assert h.epochs == 4 and h.extra["early_stopped"] is True and t.epoch == 4


def test_on_train_end_sees_none_when_train_raises():
    rec = Recorder()
    t = Trainer(poisson1d(0, n_pde=12, depth=2, width=4), fastpinn.PINN(), backend="torch", lr=1e30, eval_every=2)
    with pytest.raises(fastpinn.NonFiniteError):
        t.train(20, callbacks=[rec])
    assert rec.calls[-1][0] == "end" and rec.calls[-1][2] is None


def test_builtin_callbacks_equal_the_train_arguments():
    by_args, by_objects = _trainer(), _trainer()
    h1 = by_args.train(30, patience=4, keep_best=True)
    h2 = by_objects.train(30, callbacks=[Patience(4), KeepBest()])
    assert h1.epochs == h2.epochs
    np.testing.assert_array_equal(h1.losses, h2.losses)
    assert torch.equal(by_args.theta, by_objects.theta)
    assert h1.extra["kept_best"] and h2.extra["kept_best"]
    assert h1.extra.get("early_stopped") == h2.extra.get("early_stopped")


def test_function_callback_and_progress_bar_still_work(capsys):
    seen = []
    t = _trainer()
    h = t.train(5, progress=True, callback=lambda tr, epoch, info: seen.append(epoch))
    assert seen == [2, 4, 5] and h.epochs == 5
    assert ProgressBar().bar is None


def test_periodic_checkpoint_writes_at_boundaries(tmp_path):
    path = tmp_path / "ckpt.pt"
    epochs_seen = []

    class Watch(Callback):
        def on_eval(self, trainer, epoch, info):
            if path.exists():
                epochs_seen.append(read_checkpoint(str(path))["epoch"])

    t = _trainer()
    t.train(9, callbacks=[PeriodicCheckpoint(path, every_epochs=4), Watch()])
    assert epochs_seen == [4, 4, 8, 8]  # written at the first boundary >= 4 epochs after the last write
    state = read_checkpoint(str(path))
    assert state["extra"]["history"]["losses"].shape[0] == 8
    with pytest.raises(ValueError, match="every_epochs must be an integer >= 1"):
        PeriodicCheckpoint(path, every_epochs=0)
    with pytest.raises(ValueError, match="exactly one of path and save"):
        PeriodicCheckpoint(every_epochs=2)
