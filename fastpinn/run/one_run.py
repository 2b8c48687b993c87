"""One run: build the trainer of a configuration and train it in its run directory, checkpointing
periodically and on SIGINT/SIGTERM, with rank 0 of a data-parallel run deciding for all ranks."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any, Optional, Union

from ..problem import Problem
from . import directory, records
from .config import DTYPES, Log, RunConfig
from .directory import plan_run_dir, resumable_epoch
from .lock import RunDirLock
from .ranks import RunRanks

__all__ = ["preflight_backend", "build_trainer", "nothing_to_balance", "CHECKPOINT_SECONDS", "Interrupted",
           "RunFailedError", "train_run"]


def preflight_backend(cfg: RunConfig) -> None:
    """Fail early (``ValueError``, one line) when a dynamic scheme needs a compiled op that is missing."""
    if cfg.scheme == "pinn" or cfg.backend == "torch":
        return
    try:
        from ..ops import load_extension

        load_extension()
    except Exception as exc:  # RuntimeError with a rebuild hint, or an import problem
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"backend {cfg.backend!r} needs the compiled extension fastpinn._C, which is not "
                         f"usable ({first}); pass --backend torch for the pure-PyTorch ops") from exc
    if cfg.backend == "triton":
        try:
            import triton  # noqa: F401
        except ImportError as exc:
            raise ValueError("backend 'triton' needs the triton package; pass --backend torch or auto") from exc


def nothing_to_balance(problem: Problem, label: str) -> Optional[str]:
    """``"LABEL has one loss term ('pde'): loss weights have nothing to balance"`` for a problem of one loss term
    (every condition a hard constraint, docs/networks.md: the user trial's wave), ``None`` otherwise. Every
    weighting scheme then trains as PINN does: ``train`` and ``compare`` say so from this one sentence."""
    if len(problem.terms) != 1:
        return None
    return f"{label} has one loss term ({problem.terms[0].name!r}): loss weights have nothing to balance"


def build_trainer(cfg: RunConfig) -> tuple[Problem, Any]:
    """Validate ``cfg`` and build its problem and :class:`~fastpinn.trainer.Trainer` (``ValueError`` on bad
    input, before anything is trained or written)."""
    from ..trainer import Trainer

    cfg.validate()
    preflight_backend(cfg)
    problem = cfg.build_problem()
    network = problem.network(dtype=DTYPES[cfg.dtype], device=cfg.device, **cfg.network_options())
    trainer = Trainer(problem, cfg.scheme_object(), network=network, lr=cfg.lr, device=cfg.device,
                      **cfg.trainer_options(problem.epochs if cfg.epochs is None else cfg.epochs),
                      batch_seed=cfg.batch_seed,
                      dtype=DTYPES[cfg.dtype], eval_every=cfg.eval_every, backend=cfg.backend, compile=cfg.compile,
                      step_mode=cfg.step_mode, derivative_method=cfg.derivative_method,
                      update_schedule=cfg.update_schedule, attention=_attention(cfg, problem))
    return problem, trainer


def _attention(cfg: RunConfig, problem: Problem) -> Any:
    """The run's :class:`~fastpinn.rba.ResidualAttention` on the reference term, or ``None``."""
    if cfg.attention is None:
        return None
    from ..rba import ResidualAttention

    extra = set(cfg.attention) - {"gamma", "eta"}
    if extra:
        raise ValueError(f"attention takes gamma and eta, got {sorted(extra)}")
    return ResidualAttention([t.n_points for t in problem.terms], terms=(problem.reference_term,), **cfg.attention)


# -------------------------------------------------------------------------------------- one run
#: Default seconds of training between periodic checkpoints (at most this much work is lost to a kill -9).
CHECKPOINT_SECONDS = 120.0


class RunFailedError(RuntimeError):
    """Training failed for another reason than divergence (a ``ValueError`` raised while training, e.g. by
    the problem's own code); the directory keeps what was committed, and the same command starts again."""


class Interrupted(Exception):
    """A run stopped by SIGINT/SIGTERM after writing its checkpoint (``signum``, ``checkpoint``, ``epoch``)."""

    def __init__(self, signum: int, checkpoint: Path, epoch: int) -> None:
        import signal

        super().__init__(f"interrupted by {signal.Signals(signum).name} at epoch {epoch}; checkpoint written to "
                         f"{str(checkpoint)!r} (rerun the same command, or add --resume, to continue)")
        self.signum, self.checkpoint, self.epoch = signum, checkpoint, epoch


class _StopOnSignals:
    """While active, SIGINT and SIGTERM ask the trainer to stop after its current epoch (so the run can
    write a checkpoint at an epoch boundary); a second signal interrupts at once. Main thread only."""

    def __init__(self, trainer: Any) -> None:
        self.trainer, self.signum, self._old = trainer, None, {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.signum is not None:  # second signal: the user insists
            raise KeyboardInterrupt
        self.signum = signum
        self.trainer.request_stop()

    def __enter__(self) -> "_StopOnSignals":
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        import signal

        for sig, old in self._old.items():
            signal.signal(sig, old)


def train_run(cfg: RunConfig, out_dir: Union[str, Path], *, force: bool = False, resume: Optional[bool] = None,
              progress: bool = False, figures: bool = True, prebuilt: Optional[tuple[Problem, Any]] = None,
              command: str = "train", checkpoint_every: Optional[int] = None,
              checkpoint_seconds: Optional[float] = CHECKPOINT_SECONDS, log: Optional[Log] = None) -> dict:
    """Train one configuration in ``out_dir`` (continuing an interrupted run of it) and return the metrics.

    ``resume``: ``None`` (default) continues from a checkpoint of the same configuration if there is one;
    ``True`` requires one (``ValueError`` otherwise); ``False`` starts afresh (needs ``force`` if the
    directory is not empty). A directory that already holds the finished run of this configuration is
    returned as is (``metrics["_reused"]``) unless ``force``.

    Checkpoints (``checkpoint.pt``: trainer state, the run's identity and its history so far) are written
    at the first ``eval_every`` boundary after every ``checkpoint_every`` epochs or ``checkpoint_seconds``
    of training, when SIGINT/SIGTERM arrive (then :class:`Interrupted` is raised), at the last finite
    state of a diverged run, and at the end. Each checkpoint also rewrites ``history.npz`` (just before
    it), so a killed run leaves a consistent pair, or, killed between the two writes, ``history.npz`` one
    checkpoint ahead (the checkpoint embeds its own history, which a resume uses). With ``force`` an earlier run's files stay until the first checkpoint
    of the new one replaces them. ``metrics.json`` comes last: the marker of a finished run. A diverged
    run (:class:`~fastpinn.trainer.NonFiniteError`, re-raised with its ``checkpoint`` set) gets a
    ``metrics.json`` with ``status: "diverged"``, the term, member and epoch, and the checkpoint path.

    One process writes a run directory at a time: rank 0 holds its lock (:mod:`fastpinn.run.lock`) for
    the whole call, and another live writer makes :class:`~fastpinn.run.lock.RunDirBusyError`. A run that
    stopped before its first checkpoint (killed, or a failed start) is started again from epoch 0.

    Bad configurations raise ``ValueError`` before anything is written; a ``ValueError`` raised *during*
    training is a failure of the run, not of its arguments, and comes out as :class:`RunFailedError` (a
    ``RuntimeError``).
    """
    log = log or (lambda s: None)
    ranks = RunRanks()
    lock = RunDirLock(out_dir, log=log) if ranks.lead else None

    def take_lock() -> None:
        directory.check_dir_path(out_dir)  # a file in the way: RunPathError, not a failed mkdir
        lock.acquire()

    # Rank 0 locks the directory for the whole run; its refusal (busy, a file in the way) reaches every rank.
    ranks.decide(take_lock)
    try:
        return _train_locked(cfg, Path(out_dir), ranks, force=force, resume=resume, progress=progress,
                             figures=figures, prebuilt=prebuilt, command=command, checkpoint_every=checkpoint_every,
                             checkpoint_seconds=checkpoint_seconds, log=log)
    finally:
        if lock is not None:
            lock.release()


def _train_locked(cfg: RunConfig, out: Path, ranks: RunRanks, *, force: bool, resume: Optional[bool],
                  progress: bool, figures: bool, prebuilt: Optional[tuple[Problem, Any]], command: str,
                  checkpoint_every: Optional[int], checkpoint_seconds: Optional[float], log: Log) -> dict:
    """:func:`train_run` in a directory this process has locked (rank 0) or whose lock rank 0 holds."""
    from ..trainer import History, NonFiniteError

    identity = cfg.identity(cfg.resolved_epochs())
    # Rank 0 looks at the directory and decides; the others take its decision (and its error, if any).
    action, start, metrics = ranks.decide(lambda: _plan_and_peek(cfg, out, force=force, resume=resume))
    if action == "reuse":
        log(f"{out}: already holds this finished run; reusing it (--force retrains)")
        return dict(metrics, _reused=True)
    if action == "restart":
        log(f"{out}: the run there stopped before its first checkpoint; starting it again")
        ranks.decide(lambda: directory.clear_unstarted_run(out))
    problem, trainer = prebuilt if prebuilt is not None else build_trainer(cfg)  # bad input: before any write
    if ranks.world_size != trainer.world_size:
        raise ValueError(f"the trainer trains on {trainer.world_size} rank(s) but the process group has "
                         f"{ranks.world_size}: build it under the same torch.distributed setup")
    out = ranks.decide(lambda: directory.prepare_run_dir(out, force=force or start is not None))
    ranks.barrier("the run directory barrier")  # the directory exists before any rank reads from it
    epochs = cfg.total_epochs(problem.epochs if cfg.epochs is None else cfg.epochs)  # Adam's, then L-BFGS's
    previous = None  # the history before this process (resume)
    if start is not None:
        extra = trainer.load_checkpoint(str(out / directory.CHECKPOINT), max_epoch=epochs)
        previous = History.from_dict(extra["history"])
        if trainer.watch is not None:  # what the interrupted process reported is not reported again
            trainer.watch.already_reported(previous.extra.get("weight_warnings", []))
        if previous.epochs != trainer.epoch:
            raise directory.RunDirError(f"{str(out / directory.CHECKPOINT)!r} holds {previous.epochs} epochs of "
                                        f"history at epoch {trainer.epoch}; pass --force to start over")
        _resume_compile_decision(trainer, extra)
        log(f"{out}: resuming from the checkpoint at epoch {trainer.epoch} of {epochs}")
    config = {
        "config": cfg.to_dict(),
        "identity": identity,
        "resolved": {
            "epochs": epochs, "scheme_repr": repr(trainer.scheme), "term_names": problem.term_names,
            "n_params": int(trainer.theta.shape[-1]),  # any network: the flat parameters the optimizer steps
            "depth": problem.depth, "width": problem.width,
            "ensemble": problem.ensemble, "seeds": list(problem.seeds),
            "n_points": {t.name: t.n_points for t in problem.terms},
            "batch_size": {t.name: t.batch_size for t in problem.terms},
            "derivative_methods": dict(trainer.derivative_methods),
            "first_update_epoch": trainer.weighter.first_update,
            "ranks": trainer.world_size,  # data-parallel ranks of the process that wrote this file
        },
        "environment": records.environment(cfg.device),
        "command": command,
    }
    # A fresh run over an earlier one (--force) leaves the old files until its first checkpoint.
    replacing = ranks.decide(lambda: start is None and directory.is_nonempty_dir(out))
    if not replacing and ranks.lead:
        records.write_json(out / directory.CONFIG, config)
    state = {"replacing": replacing, "last_epoch": trainer.epoch, "last_time": time.monotonic()}
    ckpt_path = out / directory.CHECKPOINT

    def full(history: Any) -> Any:
        return history if previous is None else previous.concat(history)

    def commit(history: Any) -> None:
        """Checkpoint + history.npz of the run so far (``history``: all epochs up to the trainer's)."""
        # history.npz first: the checkpoint is the commit point, so whoever sees a checkpoint also sees its
        # history (a kill between the two writes leaves history.npz one commit ahead; a resume reads the
        # history embedded in the checkpoint and rewrites history.npz from it).
        if ranks.lead:
            history.save(str(out / directory.HISTORY))
        # Distributed: rank 0 writes, every rank waits on the checkpoint barrier.
        trainer.save_checkpoint(str(ckpt_path), extra={"identity": identity, "history": history.to_dict(),
                                                       "compiled": bool(trainer.compiled)})
        if state["replacing"]:
            if ranks.lead:
                records.write_json(out / directory.CONFIG, config)
                directory.replace_previous_run(out, keep=(directory.CHECKPOINT, directory.HISTORY, directory.CONFIG))
            state["replacing"] = False
        state["last_epoch"], state["last_time"] = trainer.epoch, time.monotonic()

    def periodic(tr: Any, epoch: int, info: dict) -> None:
        due_epochs = checkpoint_every is not None and epoch - state["last_epoch"] >= checkpoint_every
        due_time = checkpoint_seconds is not None and time.monotonic() - state["last_time"] >= checkpoint_seconds
        if epoch < epochs and ranks.agree(due_epochs or due_time, "the checkpoint decision"):
            commit(full(tr.history_so_far()))

    remaining = epochs - trainer.epoch
    this_call = None  # the history of this process's train() call (its "stopped" is about this process)
    wall0 = time.perf_counter()
    try:
        with _StopOnSignals(trainer) as signals:
            if remaining > 0 and not (previous is not None and previous.extra.get("early_stopped")):
                this_call = trainer.train(remaining, progress=progress and ranks.lead, callback=periodic,
                                          keep_best=cfg.keep_best, patience=cfg.patience)
                history = full(this_call)
            else:  # killed after the last checkpoint (of the end or an early stop), before metrics.json
                history = previous
    except NonFiniteError as exc:
        good = full(exc.history)
        commit(good)
        exc.checkpoint = str(ckpt_path)
        n = len(cfg.seeds)
        diverged = {
            "status": "diverged", "error": str(exc), "diverged_term": exc.term, "diverged_member": exc.member,
            "diverged_epoch": exc.epoch, "last_good_epoch": exc.last_good_epoch, "checkpoint": str(ckpt_path),
            "rel_l2": float("nan"), "rel_l2_mean": float("nan"),
            "rel_l2_sem": float("nan"), "rel_l2_per_seed": [float("nan")] * n, "seeds": list(cfg.seeds),
            "n_seeds": n, "train_seconds": good.train_seconds, "warmup_seconds": good.warmup_seconds,
            "epochs": epochs, "ms_per_epoch": float("nan"), "scheme": cfg.scheme, "device": cfg.device}
        if ranks.lead:
            records.write_json(out / directory.METRICS, diverged)
        ranks.barrier("the diverged-run barrier")
        raise
    except ValueError as exc:
        raise RunFailedError(f"training failed: {exc}") from exc
    wall = time.perf_counter() - wall0
    if this_call is not None and this_call.extra.get("stopped") and trainer.epoch < epochs:
        commit(history)
        raise Interrupted(signals.signum or 2, ckpt_path, trainer.epoch)
    commit(history)
    figure_files: list[str] = []
    if figures and ranks.lead:  # gradients.png of a data-parallel run: rank 0's shard of the points
        try:
            from .. import plots

            figure_files = [p.name for p in plots.run_figures(trainer, history, out, title=cfg.describe())]
        except Exception as exc:  # a plotting problem must not lose a finished training run
            warnings.warn(f"figures were not written: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
    best = [float(v) for v in history.extra.get("best_rel_l2", [])]
    best_mean, best_sem = records.mean_sem(best) if best else (float("nan"), float("nan"))
    metrics = records.metrics_from_history(history, scheme=cfg.scheme, device=cfg.device, seeds=cfg.seeds, extra={
        "status": "ok", "problem": cfg.problem, "label": cfg.describe(), "wall_seconds": wall,
        "device_name": config["environment"]["device_name"], "figures": figure_files,
        "derivative_methods": dict(trainer.derivative_methods), "step_mode": cfg.step_mode,
        "compiled": bool(history.extra.get("compiled", False)),
        "compile_decision": history.extra.get("compile_decision"),
        "best_rel_l2_per_seed": best, "best_rel_l2_mean": best_mean, "best_rel_l2_sem": best_sem,
        "best_epoch_per_seed": history.extra.get("best_epoch", []),
        "kept_best": bool(cfg.keep_best), "early_stopped": bool(history.extra.get("early_stopped", False)),
        "resumed_from_epoch": start, "update_schedule": cfg.update_schedule, "init": cfg.init,
        # trainable PDE coefficients (inverse problems): final value per seed
        "coefficients": {n: [float(v) for v in vals] for n, vals in
                         ((n, trainer.coefficient_values()[n].cpu().numpy()) for n in trainer.coefficient_names)},
        "threads": history.extra.get("threads"), "ranks": trainer.world_size,
        # what the weight watcher found (fastpinn.weight_watch): one entry per term and kind
        "weight_warnings": list(history.extra.get("weight_warnings", [])),
    })
    if cfg.keep_best and best:
        # The network now holds the best-seen parameters: its error is the best-seen one, per seed.
        metrics.update(rel_l2_per_seed=best, rel_l2=best_mean, rel_l2_mean=best_mean, rel_l2_sem=best_sem)
    if ranks.lead:
        records.write_json(out / directory.METRICS, metrics)
    ranks.barrier("the end-of-run barrier")  # every rank returns once the run is finished on disk
    return metrics


def _plan_and_peek(cfg: RunConfig, out: Path, *, force: bool, resume: Optional[bool]) -> tuple:
    """``(action, start epoch or None, finished metrics or {})`` of :func:`plan_run_dir` in ``out``."""
    action = plan_run_dir(cfg, out, force=force, resume=resume)
    if action == "reuse":
        return action, None, dict(directory.read_metrics(out) or {})
    return action, resumable_epoch(out, cfg) if action == "resume" else None, {}


def _resume_compile_decision(trainer: Any, extra: dict) -> None:
    """Continue with the compile decision the interrupted run made (compiled and eager steps round
    differently, so re-deciding could break bit-identity with an uninterrupted run)."""
    from ..trainer import AUTO_COMPILE_PROBE_EPOCHS

    if trainer.compile_policy != "auto":
        return
    if extra.get("compiled"):
        trainer.try_compile()
        trainer.compile_policy = True
    elif trainer.epoch >= AUTO_COMPILE_PROBE_EPOCHS:
        trainer.compile_policy = False  # the probe already said: stay eager
