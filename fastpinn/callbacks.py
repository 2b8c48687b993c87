"""How a user extends :meth:`Trainer.train <fastpinn.Trainer.train>`: callbacks called at evaluation boundaries.

The loop calls, for each callback in order: :meth:`Callback.on_train_begin` once before the first epoch,
:meth:`Callback.on_eval` at every evaluation boundary (every ``eval_every`` epochs and at the end, after
the finiteness check and the evaluation), and :meth:`Callback.on_train_end` once at the end. An
``on_eval`` that returns ``True`` ends the run there, as an early stop (``History.extra["early_stopped"]``:
the run is over, nothing is left to resume); :meth:`Trainer.request_stop` is the other way out, an
interruption a resume continues from.

``Trainer.train(keep_best=, patience=, progress=, callback=)`` builds the callbacks of this module.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

import numpy as np

from .validation import check_int, check_number

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["Callback", "FunctionCallback", "KeepBest", "Patience", "ProgressBar", "PeriodicCheckpoint",
           "train_callbacks"]


class Callback:
    """Base class: override the hooks you need (each does nothing by default)."""

    def on_train_begin(self, trainer: "Trainer", epochs: int) -> None:
        """Before the first epoch of a :meth:`~fastpinn.Trainer.train` call of ``epochs`` epochs."""

    def on_eval(self, trainer: "Trainer", epoch: int, info: dict[str, Any]) -> Optional[bool]:
        """At an evaluation boundary, ``epoch`` epochs trained in all. ``info``: ``"losses"`` and
        ``"weights"`` ``[S, K]`` of the last epoch, ``"rel_l2"`` ``[S]`` when the problem has a reference;
        :meth:`~fastpinn.Trainer.history_so_far` gives the history of the call up to here. Return ``True``
        to stop early."""
        return None

    def on_train_end(self, trainer: "Trainer", extra: Optional[dict[str, Any]]) -> None:
        """After the last epoch. ``extra``: the ``History.extra`` of the call about to be returned (a
        callback may add to it); ``None`` when ``train`` is raising (release resources only)."""


class FunctionCallback(Callback):
    """A plain function ``fn(trainer, epoch, info)`` called at every evaluation boundary (what
    ``Trainer.train(callback=fn)`` takes)."""

    def __init__(self, fn: Callable[["Trainer", int, dict[str, Any]], None]) -> None:
        self.fn = fn

    def on_eval(self, trainer: "Trainer", epoch: int, info: dict[str, Any]) -> Optional[bool]:
        self.fn(trainer, epoch, info)
        return None


class KeepBest(Callback):
    """At the end, put back the parameters with the lowest relative L2 error seen per member (the
    authors' protocol; the trainer tracks them at every evaluation, see :attr:`Trainer.best`)."""

    def on_train_end(self, trainer: "Trainer", extra: Optional[dict[str, Any]]) -> None:
        if extra is None:
            return
        if trainer.best is not None:
            trainer.restore_best()
        extra["kept_best"] = True


class Patience(Callback):
    """Stop early when no member's error has improved for ``patience`` epochs (checked at evaluations;
    counted from the last improvement the trainer has seen, also in an earlier call or before a resume,
    so a resumed run stops where the uninterrupted one does)."""

    def __init__(self, patience: int) -> None:
        self.patience = check_int("patience", patience, minimum=1, hint=" (epochs)")
        self._floor = 0

    def on_train_begin(self, trainer: "Trainer", epochs: int) -> None:
        # Without any evaluation yet, the count starts at this call's first epoch.
        self._floor = trainer.epoch if trainer.best is None else 0

    def on_eval(self, trainer: "Trainer", epoch: int, info: dict[str, Any]) -> Optional[bool]:
        best = trainer.best
        last_improved = self._floor if best is None else max(int(best["epoch"].max()), self._floor)
        return epoch - last_improved >= self.patience


class ProgressBar(Callback):
    """A tqdm bar over the epochs of the call, with the last losses, weights, error and speed."""

    def __init__(self) -> None:
        self.bar: Any = None
        self._shown = 0

    def on_train_begin(self, trainer: "Trainer", epochs: int) -> None:
        from tqdm.auto import tqdm

        name = getattr(trainer.scheme, "name", "scheme")
        self.bar = tqdm(total=epochs, desc=f"{trainer.problem.name}/{name}", unit="ep", dynamic_ncols=True)
        self._shown, self._first_epoch = 0, trainer.epoch

    def on_eval(self, trainer: "Trainer", epoch: int, info: dict[str, Any]) -> Optional[bool]:
        done = epoch - self._first_epoch
        self.bar.update(done - self._shown)
        self._shown = done
        self.bar.set_postfix_str(self._postfix(trainer, info, trainer.running_log.train_seconds, done))
        return None

    def on_train_end(self, trainer: "Trainer", extra: Optional[dict[str, Any]]) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    @staticmethod
    def _postfix(trainer: "Trainer", info: dict[str, Any], seconds: float, done: int) -> str:
        problem = trainer.problem
        names = problem.term_names
        parts = [f"L_{n}={v:.2e}" for n, v in zip(names, info["losses"].mean(0))]
        parts += [f"λ_{n}={v:.3g}" for n, v in zip(names, info["weights"].mean(0))
                  if n != names[problem.reference_term]]
        if "rel_l2" in info:
            parts.append(f"relL2={float(np.mean(info['rel_l2'])):.2e}")
        parts.append(f"{done / max(seconds, 1e-9):.0f} ep/s")
        return " ".join(parts)


class PeriodicCheckpoint(Callback):
    """Write a checkpoint at the first evaluation boundary after every ``every_epochs`` epochs or
    ``every_seconds`` seconds (either or both) since the last one (or the start of the call).

    ``save(trainer)`` writes it (default: :meth:`Trainer.save_checkpoint` to ``path`` with the history of
    the call so far as ``extra["history"]``). Distributed: the ranks agree on the decision (one small
    all-reduce), so every rank joins the checkpoint barrier together.
    """

    def __init__(self, path: Union[str, Path, None] = None, *, every_epochs: Optional[int] = None,
                 every_seconds: Optional[float] = None, save: Optional[Callable[["Trainer"], None]] = None) -> None:
        if (path is None) == (save is None):
            raise ValueError("PeriodicCheckpoint needs exactly one of path and save")
        if every_epochs is None and every_seconds is None:
            raise ValueError("PeriodicCheckpoint needs every_epochs, every_seconds or both")
        self.every_epochs = None if every_epochs is None else check_int("every_epochs", every_epochs, minimum=1)
        self.every_seconds = (None if every_seconds is None else
                              check_number("every_seconds", every_seconds, minimum=0, low_open=True))
        self.path = None if path is None else str(path)
        self.save = save if save is not None else self._save_to_path
        self._last_epoch, self._last_time = 0, 0.0

    def _save_to_path(self, trainer: "Trainer") -> None:
        trainer.save_checkpoint(self.path, extra={"history": trainer.history_so_far().to_dict()})

    def on_train_begin(self, trainer: "Trainer", epochs: int) -> None:
        self._last_epoch, self._last_time = trainer.epoch, time.monotonic()

    def on_eval(self, trainer: "Trainer", epoch: int, info: dict[str, Any]) -> Optional[bool]:
        due = ((self.every_epochs is not None and epoch - self._last_epoch >= self.every_epochs)
               or (self.every_seconds is not None and time.monotonic() - self._last_time >= self.every_seconds))
        if trainer.world_size > 1:
            from .collectives import agree

            (due,) = agree([due], "the periodic checkpoint decision")
        if due:
            self.save(trainer)
            self._last_epoch, self._last_time = epoch, time.monotonic()
        return None


def train_callbacks(*, progress: bool, watch: Optional[Callback],
                    callback: Optional[Callable[["Trainer", int, dict[str, Any]], None]], callbacks: Sequence[Callback],
                    patience: Optional[int], keep_best: bool) -> list[Callback]:
    """The callbacks of one ``Trainer.train`` call, in the order they run: the progress bar, the weight
    watcher (``watch``), ``callback``, the user's ``callbacks``, then :class:`Patience` and :class:`KeepBest`."""
    chain: list[Callback] = [ProgressBar()] if progress else []
    if watch is not None:
        chain.append(watch)
    chain += [FunctionCallback(callback)] if callback is not None else []
    chain += list(callbacks)
    chain += [Patience(patience)] if patience is not None else []
    chain += [KeepBest()] if keep_best else []
    return chain
