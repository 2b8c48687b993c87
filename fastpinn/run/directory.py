"""Run directories: where a training run's files live and how they are read and written.

One run directory holds::

    config.json      everything needed to rerun (problem, scheme, seeds, sizes, device, versions)
    metrics.json     final relative L2 per seed, mean and standard error, timings
    history.npz      the :class:`~fastpinn.trainer.History` (losses, weights, rel. L2 over epochs)
    checkpoint.pt    :meth:`~fastpinn.trainer.Trainer.save_checkpoint`: written every few minutes of training
                     (``--checkpoint-every``), on SIGTERM/SIGINT, at the last finite state of a diverged run
                     and at the end; it also holds the run's identity and its history so far (resume)
    *.png            figures (:data:`RUN_FIGURES`, see :mod:`fastpinn.plots`)
    .fastpinn.lock   held while a process writes the directory (:mod:`fastpinn.run.lock`)

Every file is written atomically (:mod:`fastpinn._io`): a reader sees a complete old file or a complete
new one, so an interrupted run never leaves a half-written ``metrics.json`` that a resumed sweep would
mistake for a finished configuration.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional, Union

from .. import _io
from .lock import LOCK_FILE, check_not_busy
from .records import json_status, read_json

if TYPE_CHECKING:
    from .config import RunConfig

__all__ = [
    "CONFIG", "METRICS", "HISTORY", "CHECKPOINT", "RUN_FILES",
    "RunDirError", "RunPathError", "default_run_dir", "prepare_run_dir", "is_nonempty_dir", "check_dir_path",
    "replace_previous_run", "verify_run", "checkpoint_problem", "read_config", "read_metrics",
    "RUN_FIGURES", "WRITTEN_FILES", "remove_run_temporaries", "read_checkpoint", "never_checkpointed", "clear_unstarted_run",
    "is_complete", "resumable_epoch", "plan_run_dir",
]

CONFIG = "config.json"
METRICS = "metrics.json"
HISTORY = "history.npz"
CHECKPOINT = "checkpoint.pt"
#: Files a run writes besides its figures (``*.png``).
RUN_FILES = (CONFIG, METRICS, HISTORY, CHECKPOINT)
#: The figures a run writes (:func:`fastpinn.plots.run_figures`).
RUN_FIGURES = ("solution.png", "gradients.png", "training.png", "loss_trajectory.png", "weights.png")
#: The probe file that checks a directory is writable before training.
WRITE_PROBE = ".fastpinn-write-test"
#: Every file the run layer writes in a run directory: all that ``--force`` ever removes (with the
#: temporaries of their atomic writes); a user's own files stay.
WRITTEN_FILES = RUN_FILES + RUN_FIGURES + (WRITE_PROBE,)

PathLike = Union[str, os.PathLike]


class RunDirError(ValueError):
    """The output directory cannot be used for this run (it holds other files or another configuration)."""


class RunPathError(NotADirectoryError):
    """The output path is not a usable directory (it is a file); an ``OSError``, like the other filesystem
    faults (read-only, disk full), which the command line reports with their own exit status."""


def default_run_dir(problem: str, scheme: str, root: PathLike = "runs", *, now: Optional[float] = None) -> Path:
    """``<root>/<problem>-<scheme>-<YYYYmmdd-HHMMSS>``, with ``-2``, ``-3``, ... appended if taken."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    base = Path(root) / f"{problem}-{scheme}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def is_nonempty_dir(path: PathLike) -> bool:
    """Whether ``path`` is a directory holding anything besides a run lock file."""
    p = Path(path)
    return p.is_dir() and any(q.name != LOCK_FILE for q in p.iterdir())


def remove_run_temporaries(path: PathLike, names: Iterable[str] = WRITTEN_FILES) -> None:
    """Delete the temporaries that an atomic write of one of ``names`` (file names, or ``fnmatch`` patterns
    of them) killed mid-write left in ``path`` (``.<name>.<random>.tmp``); other hidden ``*.tmp`` files are
    the user's and stay."""
    p = Path(path)
    if not p.is_dir():
        return
    for name in names:
        for tmp in p.glob(f".{name}.*{_io.TMP_SUFFIX}"):
            tmp.unlink(missing_ok=True)


def check_dir_path(path: PathLike) -> Path:
    """``path`` as a ``Path``; :class:`RunPathError` if it (or a parent) exists and is not a directory."""
    p = Path(path)
    for q in (p, *p.parents):
        if q.exists():
            if not q.is_dir():
                raise RunPathError(errno.ENOTDIR, "exists and is not a directory", str(q))
            break
    return p


def prepare_run_dir(path: PathLike, *, force: bool = False) -> Path:
    """Create ``path`` for a run and check that files can be written in it.

    Raises :class:`RunPathError` if ``path`` is a file, :class:`RunDirError` if it is a non-empty directory
    and ``force`` is false, and the ``OSError`` of a failed write (read-only filesystem, permissions, disk
    full) naming the path. Nothing is deleted here: with ``force`` an earlier run's files stay until the new
    run replaces them (:func:`replace_previous_run`), so an interrupted ``--force`` loses nothing.
    """
    p = check_dir_path(path)
    if is_nonempty_dir(p) and not force:
        raise RunDirError(f"output directory {str(p)!r} is not empty; pass --force to overwrite it")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror, str(p)) from None
    remove_run_temporaries(p)
    # Fail now, not after hours of training: write (atomically) and remove a probe file.
    probe = p / WRITE_PROBE
    _io.atomic_write_bytes(probe, b"")
    probe.unlink()
    return p


def replace_previous_run(path: PathLike, keep: Iterable[str] = ()) -> None:
    """Remove what an earlier run left in ``path`` that the new one has not rewritten yet (its metrics,
    figures, ...), once the new run has written its own checkpoint; ``keep``: names already rewritten."""
    p = Path(path)
    keep = set(keep)
    for name in RUN_FILES + RUN_FIGURES:  # only what a run writes: a user's own files stay
        if name not in keep:
            (p / name).unlink(missing_ok=True)


# ------------------------------------------------------------------------------------ verification
def verify_run(run_dir: PathLike, identity: dict) -> Optional[str]:
    """Why the finished run in ``run_dir`` cannot be reused for a configuration of ``identity``, or
    ``None`` if every file checks out: ``config.json`` (valid, same identity), ``metrics.json`` (valid,
    finished), ``history.npz`` (loadable, as many epochs as the run reached) and ``checkpoint.pt``
    (loadable, at that epoch, written by this configuration)."""
    d = Path(run_dir)
    status = json_status(d / CONFIG)
    if status != "ok":
        return f"{CONFIG} is {status}"
    config = read_config(d) or {}
    if config.get("identity") != identity:
        return f"{CONFIG} describes a different configuration"
    status = json_status(d / METRICS)
    if status != "ok":
        return f"{METRICS} is {status}"
    metrics = read_metrics(d) or {}
    reached = identity.get("epochs")
    if metrics.get("status") == "diverged":
        reached = metrics.get("last_good_epoch")
    elif metrics.get("early_stopped"):  # patience ended it before its length
        reached = metrics.get("epochs")
    try:
        from ..trainer import History

        epochs = History.load(str(d / HISTORY)).epochs
    except FileNotFoundError:
        return f"{HISTORY} is missing"
    except Exception as exc:  # noqa: BLE001 - any failure to read it means the file is damaged
        return f"{HISTORY} is corrupt ({type(exc).__name__})"
    if reached is not None and epochs != reached:
        return f"{HISTORY} holds {epochs} epochs, the run reached {reached}"
    reason = checkpoint_problem(d / CHECKPOINT, identity, reached)
    return None if reason is None else reason


def read_checkpoint(path: PathLike) -> dict:
    """The content of the checkpoint ``path`` (:meth:`~fastpinn.trainer.Trainer.read_checkpoint`: the one
    way the run layer reads a checkpoint). ``FileNotFoundError`` when missing;
    :class:`~fastpinn.trainer.CheckpointError` when it cannot be read."""
    from ..trainer import Trainer

    return Trainer.read_checkpoint(str(path))


def checkpoint_problem(path: PathLike, identity: dict, epoch: Optional[int] = None) -> Optional[str]:
    """Why ``path`` is not a checkpoint of a run of ``identity`` (at ``epoch``), or ``None``."""
    from ..trainer import CheckpointError

    try:
        state = read_checkpoint(path)
    except FileNotFoundError:
        return f"{Path(path).name} is missing"
    except CheckpointError:
        return f"{Path(path).name} is truncated or corrupt"
    extra = state.get("extra") or {}
    if extra.get("identity") != identity:
        return f"{Path(path).name} was written by a different configuration"
    if epoch is not None and state.get("epoch") != epoch:
        return f"{Path(path).name} is at epoch {state.get('epoch')}, the run reached {epoch}"
    return None



def read_config(run_dir: PathLike) -> Optional[dict]:
    """The run's ``config.json``, or ``None`` when it is missing, not JSON, or holds no ``config`` object."""
    config = read_json(Path(run_dir) / CONFIG)
    return config if config is not None and isinstance(config.get("config"), dict) else None


def read_metrics(run_dir: PathLike) -> Optional[dict]:
    return read_json(Path(run_dir) / METRICS)



# ------------------------------------------------------------------------------------- plan
def is_complete(run_dir: Union[str, Path], cfg: RunConfig) -> bool:
    """Whether ``run_dir`` holds a finished run (``metrics.json`` written, finished or diverged) of the same
    configuration whose files all check out (:func:`verify_run`)."""
    return verify_run(run_dir, cfg.identity(cfg.resolved_epochs())) is None


def resumable_epoch(run_dir: Union[str, Path], cfg: RunConfig) -> Optional[int]:
    """The epoch of a valid checkpoint of this configuration in ``run_dir`` (an unfinished run to
    continue), else ``None``."""
    path = Path(run_dir) / CHECKPOINT
    if checkpoint_problem(path, cfg.identity(cfg.resolved_epochs())) is not None:
        return None
    return int(read_checkpoint(path)["epoch"])


def never_checkpointed(run_dir: PathLike) -> bool:
    """Whether ``run_dir`` holds a run that stopped before its first checkpoint (killed, or a failed
    start): the ``config.json`` a run writes first, perhaps the ``history.npz`` written just before a
    checkpoint, and nothing else -- no training state, so nothing is lost by starting it again."""
    d = Path(run_dir)
    names = {q.name for q in d.iterdir()} if d.is_dir() else set()
    ours = {CONFIG, HISTORY, LOCK_FILE}
    leftovers = {n for n in names - ours if not (n.startswith(".") and n.endswith(_io.TMP_SUFFIX)
                                                 and any(n.startswith(f".{w}.") for w in WRITTEN_FILES))}
    config = read_json(d / CONFIG) or {}
    return CONFIG in names and not leftovers and "identity" in config and "command" in config


def clear_unstarted_run(run_dir: PathLike) -> None:
    """Remove what a run that never reached its first checkpoint left (:func:`never_checkpointed`)."""
    d = Path(run_dir)
    for name in (CONFIG, HISTORY):
        (d / name).unlink(missing_ok=True)
    remove_run_temporaries(d)


def plan_run_dir(cfg: RunConfig, out_dir: Union[str, Path], *, force: bool = False,
                 resume: Optional[bool] = None) -> str:
    """What :func:`train_run` will do in ``out_dir``: ``"reuse"`` (it holds this finished run, every file
    checked), ``"resume"`` (a checkpoint of this configuration), ``"restart"`` (a run that stopped before
    its first checkpoint, :func:`never_checkpointed`: started again from epoch 0) or ``"fresh"``. Raises
    :class:`~fastpinn.run.lock.RunDirBusyError` when another live process writes the directory,
    :class:`RunPathError` for a file in the way, :class:`RunDirError` for a
    non-empty directory holding something else (without ``force``), ``ValueError`` when ``resume=True``
    finds nothing to resume."""
    out = check_dir_path(out_dir)
    check_not_busy(out)
    identity = cfg.identity(cfg.resolved_epochs())
    if force or resume is False or not out.is_dir():
        if resume:
            raise ValueError(f"cannot resume in {str(out)!r}: it does not exist")
        return "fresh"
    if verify_run(out, identity) is None:
        return "reuse"
    if resumable_epoch(out, cfg) is not None:
        return "resume"
    ckpt = out / CHECKPOINT
    if ckpt.exists():
        from ..trainer import CorruptCheckpointError

        try:
            read_checkpoint(ckpt)
        except CorruptCheckpointError as exc:
            raise CorruptCheckpointError(f"{exc}; pass --force to start afresh") from None
    if never_checkpointed(out):
        if resume and (read_config(out) or {}).get("identity") != identity:
            raise ValueError(f"cannot resume in {str(out)!r}: it holds a run of a different configuration that "
                             "never reached its first checkpoint; drop --resume to start this one there")
        return "restart"
    if resume:
        why = checkpoint_problem(out / CHECKPOINT, identity)
        raise ValueError(f"cannot resume in {str(out)!r}: {why}")
    if is_nonempty_dir(out):
        status = json_status(out / CONFIG)
        what = (f"its {CONFIG} is corrupt" if status == "corrupt" else
                "it holds a run of a different configuration" if status == "ok" else "it is not empty")
        raise RunDirError(f"output directory {str(out)!r} cannot be used: {what}; pass --force to start "
                          "afresh (the old files are replaced once the new run has a checkpoint)")
    return "fresh"
