"""What a training run recorded (:class:`History`) and the error measure it records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

from . import _io

__all__ = ["History", "rel_l2_error"]


@dataclass
class History:
    """What a training run recorded.

    Attributes (``S`` = ensemble members, 1 for a single network; ``K`` = loss terms):
        term_names: ``[K]``.
        losses: ``[E, S, K]`` unweighted term losses of every epoch (mean over its mini-batches).
        weights: ``[E, S, K]`` the weights applied in every epoch.
        eval_epochs: ``[M]`` epochs (counted after the step) at which ``rel_l2`` was measured.
        rel_l2: ``[M, S]`` relative L2 error against the reference solution (empty without one).
        skipped: ``[S, K]`` weight updates in which a term kept its weight (zero/non-finite statistic).
        train_seconds: wall time of the training epochs alone (no evaluation, no warm-up).
        warmup_seconds: one-off compilation / graph-capture time.
        ensemble: ``None`` for one network, else ``S``.
        coefficient_names: ``[C]`` the problem's trainable coefficients (inverse problems; empty otherwise).
        coefficients: ``[E, S, C]`` their values after every epoch.
    """

    term_names: list[str]
    losses: np.ndarray
    weights: np.ndarray
    eval_epochs: np.ndarray
    rel_l2: np.ndarray
    skipped: np.ndarray
    train_seconds: float = 0.0
    warmup_seconds: float = 0.0
    ensemble: Optional[int] = None
    extra: dict = field(default_factory=dict)
    coefficient_names: list[str] = field(default_factory=list)
    coefficients: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, 0)))

    @property
    def epochs(self) -> int:
        return int(self.losses.shape[0])

    def final_rel_l2(self) -> np.ndarray:
        """``[S]`` last measured relative L2 errors (NaN when never measured)."""
        if self.rel_l2.shape[0] == 0:
            return np.full(self.losses.shape[1], np.nan)
        return self.rel_l2[-1]

    def save(self, path: str) -> None:
        """Write an ``.npz`` atomically."""
        _io.atomic_save_npz(
            path, term_names=np.array(self.term_names), losses=self.losses, weights=self.weights,
            eval_epochs=self.eval_epochs, rel_l2=self.rel_l2, skipped=self.skipped,
            train_seconds=np.array(self.train_seconds), warmup_seconds=np.array(self.warmup_seconds),
            ensemble=np.array(-1 if self.ensemble is None else self.ensemble),
            coefficient_names=np.array(self.coefficient_names, dtype=str), coefficients=self.coefficients)

    def to_dict(self) -> dict[str, Any]:
        """Plain arrays and numbers (for embedding in a checkpoint); :meth:`from_dict` inverts it."""
        return {"term_names": list(self.term_names), "losses": self.losses, "weights": self.weights,
                "eval_epochs": self.eval_epochs, "rel_l2": self.rel_l2, "skipped": self.skipped,
                "train_seconds": self.train_seconds, "warmup_seconds": self.warmup_seconds,
                "ensemble": self.ensemble, "extra": dict(self.extra),
                "coefficient_names": list(self.coefficient_names), "coefficients": self.coefficients}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "History":
        """Inverse of :meth:`to_dict`; arrays may come back as tensors (a checkpoint stores them so)."""
        losses = _array(d["losses"])
        coefficients = (_array(d["coefficients"]) if "coefficients" in d
                        else np.zeros((losses.shape[0], losses.shape[1] if losses.ndim == 3 else 1, 0)))
        return cls(list(d["term_names"]), losses, _array(d["weights"]),
                   _array(d["eval_epochs"]).astype(np.int64), _array(d["rel_l2"]), _array(d["skipped"]),
                   float(d["train_seconds"]), float(d["warmup_seconds"]), d["ensemble"], dict(d.get("extra", {})),
                   coefficient_names=list(d.get("coefficient_names", [])), coefficients=coefficients)

    def concat(self, later: "History") -> "History":
        """This history followed by ``later`` (the next :meth:`Trainer.train` call, e.g. after a resume):
        epochs, evaluations and coefficient values appended, ``skipped`` and ``extra`` from ``later``,
        times summed."""
        if (list(later.term_names) != list(self.term_names) or later.ensemble != self.ensemble
                or list(later.coefficient_names) != list(self.coefficient_names)):
            raise ValueError(f"cannot append a history of terms {later.term_names} (ensemble {later.ensemble}, "
                             f"coefficients {later.coefficient_names}) to one of {self.term_names} (ensemble "
                             f"{self.ensemble}, coefficients {self.coefficient_names})")
        S = self.losses.shape[1] if self.losses.ndim == 3 else later.losses.shape[1]
        C = len(self.coefficient_names)
        return History(
            list(self.term_names), np.concatenate([self.losses, later.losses]),
            np.concatenate([self.weights, later.weights]), np.concatenate([self.eval_epochs, later.eval_epochs]),
            np.concatenate([self.rel_l2.reshape(-1, S), later.rel_l2.reshape(-1, S)]), later.skipped,
            self.train_seconds + later.train_seconds, self.warmup_seconds + later.warmup_seconds, self.ensemble,
            _merged_extra(self.extra, later.extra), coefficient_names=list(self.coefficient_names),
            coefficients=np.concatenate([self.coefficients.reshape(self.epochs, S, C),
                                          later.coefficients.reshape(later.epochs, S, C)]))

    @classmethod
    def load(cls, path: str) -> "History":
        with np.load(path) as z:
            ens = int(z["ensemble"])
            names = [str(s) for s in z["coefficient_names"]] if "coefficient_names" in z else []
            coefs = z["coefficients"] if "coefficients" in z else np.zeros((z["losses"].shape[0], z["losses"].shape[1], 0))
            return cls([str(s) for s in z["term_names"]], z["losses"], z["weights"], z["eval_epochs"],
                       z["rel_l2"], z["skipped"], float(z["train_seconds"]), float(z["warmup_seconds"]),
                       None if ens < 0 else ens, coefficient_names=names, coefficients=coefs)


def _merged_extra(first: dict, later: dict) -> dict:
    """``later``'s extra over ``first``'s; the weight watcher's reports of both calls, in order."""
    out = {**first, **later}
    if "weight_warnings" in first or "weight_warnings" in later:
        out["weight_warnings"] = list(first.get("weight_warnings", [])) + list(later.get("weight_warnings", []))
    return out


def _array(value: Any) -> np.ndarray:
    """A NumPy array from an array, a list or a tensor (on any device)."""
    return value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)


def rel_l2_error(pred: Tensor, exact: Tensor) -> Tensor:
    """``||pred - exact||_2 / ||exact||_2`` over the last axis: ``[..., M] -> [...]``."""
    return torch.linalg.vector_norm(pred - exact, dim=-1) / torch.linalg.vector_norm(exact, dim=-1)


class TrainingLog:
    """What one :meth:`Trainer.train <fastpinn.Trainer.train>` call records as it goes: per-epoch device
    buffers (read back only at evaluations) and the host-side evaluations and times.

    ``losses``/``weights`` ``[E, S, K]``, ``coefficients`` ``[E, S, C]`` for the ``E`` epochs of the call;
    ``done``: epochs recorded up to the last evaluation boundary.
    """

    def __init__(self, epochs: int, members: int, n_terms: int, n_coefficients: int, dtype: torch.dtype,
                 device: torch.device, warmup_seconds: float = 0.0) -> None:
        self.losses = torch.zeros(epochs, members, n_terms, dtype=dtype, device=device)
        self.weights = torch.zeros(epochs, members, n_terms, dtype=dtype, device=device)
        self.coefficients = torch.zeros(epochs, members, n_coefficients, dtype=dtype, device=device)
        self.eval_epochs: list[int] = []
        self.errors: list[np.ndarray] = []
        self.done = 0
        self.train_seconds = 0.0
        self.warmup_seconds = warmup_seconds

    def record_evaluation(self, epoch: int, rel_l2: np.ndarray) -> None:
        self.eval_epochs.append(epoch)
        self.errors.append(rel_l2)

    def history(self, n: int, *, term_names: list[str], skipped: np.ndarray, ensemble: Optional[int],
                coefficient_names: list[str], extra: dict[str, Any]) -> History:
        """The :class:`History` of the first ``n`` epochs."""
        S = self.losses.shape[1]
        return History(
            term_names=list(term_names),
            losses=self.losses[:n].cpu().numpy(),
            weights=self.weights[:n].cpu().numpy(),
            eval_epochs=np.array(self.eval_epochs, dtype=np.int64),
            rel_l2=np.array(self.errors, dtype=np.float64).reshape(len(self.errors), S),
            skipped=skipped,
            train_seconds=self.train_seconds,
            warmup_seconds=self.warmup_seconds,
            ensemble=ensemble,
            extra=extra,
            coefficient_names=list(coefficient_names),
            coefficients=self.coefficients[:n].cpu().numpy(),
        )
