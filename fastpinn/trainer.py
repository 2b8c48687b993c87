"""The training loop: points -> network -> derivatives -> loss terms -> G[S, K, P] -> statistics -> weights
-> weighted gradient -> optimizer step.

For a dynamic scheme every step runs one backward per loss term into the rows of ``G``; the optimizer's
gradient is ``sum_j lam_j G_j``. An epoch that updates the weights therefore costs no extra backward pass:
it only adds the fused statistics and the EMA update, both on the device. Per-epoch losses and weights
are written into device buffers and read back only every ``eval_every`` epochs.
"""

from __future__ import annotations

import io
import itertools
import math
import time
import types
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from . import _io
from .derivatives import MethodChoice, fastest_method
from .network import MLP
from .problem import Problem
from .schemes import DN, PINN, Scheme
from .weighter import Weighter

__all__ = ["Trainer", "History", "NonFiniteError", "rel_l2_error"]


class NonFiniteError(FloatingPointError):
    """A loss or the parameters became NaN/Inf during training."""


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
            ensemble=np.array(-1 if self.ensemble is None else self.ensemble))

    @classmethod
    def load(cls, path: str) -> "History":
        with np.load(path) as z:
            ens = int(z["ensemble"])
            return cls([str(s) for s in z["term_names"]], z["losses"], z["weights"], z["eval_epochs"],
                       z["rel_l2"], z["skipped"], float(z["train_seconds"]), float(z["warmup_seconds"]),
                       None if ens < 0 else ens)


def rel_l2_error(pred: Tensor, exact: Tensor) -> Tensor:
    """``||pred - exact||_2 / ||exact||_2`` over the last axis: ``[..., M] -> [...]``."""
    return torch.linalg.vector_norm(pred - exact, dim=-1) / torch.linalg.vector_norm(exact, dim=-1)


_COMPILED_IDS = itertools.count()

STEP_MODES = ("eager", "device", "cuda_graph")
# compile="auto": eager epochs timed before deciding; the smallest compiled speed-up measured on the paper's
# problems (CPU, bench/results: 1.2-1.6x); a cold torch.compile of a problem's terms (40-60 s measured on a
# 2-core CPU, rounded up). Compiling pays when the remaining epochs save more than the warm-up costs.
AUTO_COMPILE_PROBE_EPOCHS = 20
AUTO_COMPILE_MIN_SPEEDUP = 1.2
AUTO_COMPILE_WARMUP_SECONDS = 60.0
DERIVATIVE_METHODS = ("auto", "jet", "fused", "func", "autograd", "tune")
_TUNED: dict[tuple, MethodChoice] = {}  # derivative-method choices, shared by the trainers of one process


def _batch_key(indices: Sequence[Optional[Tensor]]) -> tuple:
    """Mini-batch sizes of one step (``None``: the term's full point set): one compiled/captured graph each."""
    return tuple(None if i is None else i.numel() for i in indices)

OptimizerFactory = Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]


class Trainer:
    """Train a :class:`~fastpinn.problem.Problem` with any weighting scheme.

    Args:
        problem: the problem (points ``[N, d]``, or ``[S, N, d]`` for an ensemble of ``S`` seeds).
        scheme: ``PINN()``, ``MA(...)``, ``ID(...)`` or ``DN(...)`` (default ``DN()``).
        network: optional network (default ``problem.network(...)``); an ensemble must match the problem.
        optimizer: a ``torch.optim.Optimizer`` factory taking the parameter list, or an optimizer already
            built on ``network.parameters()`` (default Adam, ``lr``).
        lr: learning rate of the default Adam.
        device, dtype: where and in which precision to train (float32 like the paper, or float64).
        derivative_method: ``"auto"``, ``"jet"``, ``"func"``, ``"autograd"`` (see
            :func:`fastpinn.derivatives.derivatives`), or ``"tune"``: time every applicable method on each
            term's own points on this device (:func:`fastpinn.derivatives.fastest_method`, which also
            checks they agree) and use the fastest per term. The choice is cached per network shape,
            device, dtype, term and batch size, its cost is reported in ``History.warmup_seconds``, and
            :attr:`derivative_methods` says what was picked.
        eval_every: epochs between evaluations, finiteness checks and log reads (the only host syncs).
        backend: op backend for the statistics and the weight update.
        batch_seed: seed of the mini-batch shuffling (default: the problem's first seed).
        compile: ``True``: compile each term's loss (derivatives + residual, forward and backward) with
            ``torch.compile``; one graph per term so each backward runs only its own term. The one-off
            compilation happens in a warm-up before the first epoch and is reported apart
            (``History.warmup_seconds``). Results equal the eager step's to rounding. ``"auto"``: train
            the first ``AUTO_COMPILE_PROBE_EPOCHS`` epochs of each :meth:`train` call eagerly, then compile
            only if the remaining epochs, at the measured eager rate and the smallest measured compiled
            speed-up (``AUTO_COMPILE_MIN_SPEEDUP``), would save more than a cold compilation costs
            (``AUTO_COMPILE_WARMUP_SECONDS``); :attr:`compile_decision` records the numbers.
        step_mode: how a training step runs (results agree to rounding in every mode):

            - ``"eager"``: the weight-update decision comes from the host's epoch counter (a plain int,
              so it needs no sync); statistics and EMA run only at update epochs.
            - ``"device"``: the capturable step, run eagerly. The decision ``step % (tau * steps_per_epoch)
              == 0`` is made on the device from a step counter tensor; statistics run every step and the
              EMA is masked off between updates. No Python branch depends on training state.
            - ``"cuda_graph"``: the ``"device"`` step captured once per mini-batch shape in a CUDA graph
              and replayed (CUDA only; the optimizer must be capturable, the default Adam is). Capture
              happens in the warm-up (``History.warmup_seconds``), which leaves the training state as it
              found it.
    """

    def __init__(
        self,
        problem: Problem,
        scheme: Optional[Scheme] = None,
        *,
        network: Optional[MLP] = None,
        optimizer: Union[OptimizerFactory, torch.optim.Optimizer, None] = None,
        lr: float = 1e-3,
        device: Union[str, torch.device, None] = None,
        dtype: torch.dtype = torch.float32,
        derivative_method: str = "auto",
        eval_every: int = 100,
        backend: str = "auto",
        batch_seed: Optional[int] = None,
        compile: bool = False,
        step_mode: str = "eager",
    ) -> None:
        if not isinstance(problem, Problem):
            raise ValueError(f"problem must be a fastpinn Problem, got {type(problem).__name__}")
        if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 1:
            raise ValueError(f"eval_every must be an integer >= 1, got {eval_every!r}")
        if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        if step_mode not in STEP_MODES:
            raise ValueError(f"step_mode must be one of {STEP_MODES}, got {step_mode!r}")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        if step_mode == "cuda_graph" and self.device.type != "cuda":
            raise ValueError(f"step_mode='cuda_graph' needs a CUDA device, got device={str(self.device)!r}; "
                             "use step_mode='device' or 'eager' elsewhere")
        self.step_mode = step_mode
        self.dtype = dtype
        self.problem = problem.to(self.device, dtype)
        self.scheme = DN() if scheme is None else scheme
        self.net = network if network is not None else self.problem.network(dtype=dtype, device=self.device)
        if self.net.ensemble != problem.ensemble:
            raise ValueError(f"network ensemble={self.net.ensemble} does not match problem ensemble={problem.ensemble}")
        self.net.to(device=self.device, dtype=dtype)
        if derivative_method not in DERIVATIVE_METHODS:
            raise ValueError(f"derivative_method must be one of {DERIVATIVE_METHODS}, got {derivative_method!r}")
        self.method = derivative_method
        self.eval_every = eval_every
        self.members = 1 if problem.ensemble is None else problem.ensemble
        k = len(problem.terms)
        self.weighter = Weighter(self.scheme, n_terms=k, reference=problem.reference_term,
                                 adaptive=problem.adaptive, backend=backend)
        self.weighter.reset(self.members, dtype, self.device)
        if isinstance(optimizer, torch.optim.Optimizer):
            self.optimizer = optimizer
        elif optimizer is None:
            # Fused Adam: one kernel over the flat theta (elementwise, so ensemble members stay independent).
            # Capturable keeps its step count on the device, which a CUDA graph needs.
            self.optimizer = torch.optim.Adam([self.net.theta], lr=lr, fused=True,
                                              capturable=step_mode == "cuda_graph")
        else:
            self.optimizer = optimizer([self.net.theta])
        if step_mode == "cuda_graph" and not all(g.get("capturable", False) for g in self.optimizer.param_groups):
            raise ValueError("optimizer must be built with capturable=True for step_mode='cuda_graph' "
                             "(e.g. torch.optim.Adam(params, fused=True, capturable=True))")
        self.epoch = 0
        self._G = torch.zeros(self.members, k, self.net.n_params, dtype=dtype, device=self.device)
        # The shuffling generator lives on the training device so a mini-batch permutation needs no host copy.
        self._batch_gen = torch.Generator(device=self.device).manual_seed(
            problem.seeds[0] if batch_seed is None else batch_seed)
        self._reference: Optional[tuple[Tensor, Tensor]] = None
        self.backward_passes = 0  # counted per autograd call, for tests and diagnostics
        if not (isinstance(compile, bool) or compile == "auto"):
            raise ValueError(f"compile must be True, False or 'auto', got {compile!r}")
        self.compile_policy: Union[bool, str] = compile
        self.compiled = compile is True
        #: What ``compile="auto"`` measured and decided in the last :meth:`train` call (``None`` otherwise).
        self.compile_decision: Optional[dict[str, Any]] = None
        tick = time.perf_counter()
        #: term name -> derivative method its loss uses.
        self.derivative_methods: dict[str, str] = self._choose_derivative_methods()
        self._pending_warmup = time.perf_counter() - tick if derivative_method == "tune" else 0.0
        # Device-side step state ("device" and "cuda_graph" modes): the global step counter the update
        # decision reads, and fixed output buffers a captured graph writes into.
        self.steps_per_epoch = max(t.n_batches for t in self.problem.terms)
        self._step_counter = torch.zeros((), dtype=torch.int64, device=self.device)
        self._step_losses = torch.zeros(self.members, k, dtype=dtype, device=self.device)
        self._graphs: dict[tuple, "_CapturedStep"] = {}
        self._build_loss_fns()

    # ------------------------------------------------------------------------------------- one step
    @property
    def theta(self) -> Tensor:
        return self.net.theta

    def _choose_derivative_methods(self) -> dict[str, str]:
        if self.method != "tune":
            return {t.name: self.method for t in self.problem.terms}
        first_batch = self._epoch_batches(advance=False)[0]
        chosen = {}
        for term, index in zip(self.problem.terms, first_batch):
            key = (self.net.extra_repr(), str(self.device), self.dtype, term.requests, len(term.points),
                   term.n_points if index is None else index.numel())
            if key not in _TUNED:
                def loss(method: str, term=term, index=index) -> Tensor:
                    return term.loss(self.net, self.problem.coords, index, method=method, theta=self.net.theta)

                _TUNED[key] = fastest_method(loss, self.net.theta)
            chosen[term.name] = _TUNED[key].method
        return chosen

    def _make_loss_fn(self, term, method: str) -> Callable[[Tensor, Optional[Tensor]], Tensor]:
        coords, net = self.problem.coords, self.net

        def loss_fn(theta: Tensor, index: Optional[Tensor]) -> Tensor:
            return term.loss(net, coords, index, method=method, theta=theta).reshape(-1)

        if not self.compiled:
            return loss_fn
        # torch.compile keeps its graphs on the function's code object, at most a few per object: with one
        # shared code object, a sweep that builds many trainers would silently fall back to eager once
        # that limit is hit. A fresh code object per (trainer, term) gives each term its own cache.
        code = loss_fn.__code__.replace(co_name=f"loss_{term.name}_{next(_COMPILED_IDS)}")
        fresh = types.FunctionType(code, loss_fn.__globals__, code.co_name, loss_fn.__defaults__,
                                   loss_fn.__closure__)
        return torch.compile(fresh, dynamic=False)

    def _build_loss_fns(self) -> None:
        """Each term's loss function for the current ``compiled`` setting."""
        self._loss_fns = [self._make_loss_fn(t, self.derivative_methods[t.name]) for t in self.problem.terms]
        self._drop_graphs()

    def _drop_graphs(self) -> None:
        """Forget captured graphs; the next :meth:`warmup` compiles/captures what training will use."""
        self._graphs.clear()
        self._warm = not self.compiled and self.step_mode != "cuda_graph"

    def _try_compile(self) -> float:
        """Compile for ``compile="auto"``; if compilation fails (e.g. no C++ compiler for inductor), warn and
        go on eagerly -- "auto" promises speed, not compilation. Returns the seconds spent."""
        tick = time.perf_counter()
        try:
            self.compiled = True
            self._build_loss_fns()
            return self.warmup()
        except Exception as exc:  # noqa: BLE001 - any compiler failure: the eager path is still correct
            self.compiled = False
            self._build_loss_fns()
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            if self.compile_decision is not None:
                self.compile_decision.update(compiled=False, failed=reason)
            warnings.warn(f"compile='auto': torch.compile failed ({reason}); training continues eagerly",
                          RuntimeWarning, stacklevel=3)
            return time.perf_counter() - tick

    def _decide_compile(self, probe_epochs: int, probe_seconds: float, remaining: int) -> bool:
        ms = 1e3 * probe_seconds / probe_epochs
        saving = remaining * probe_seconds / probe_epochs * (1.0 - 1.0 / AUTO_COMPILE_MIN_SPEEDUP)
        compile_now = saving > AUTO_COMPILE_WARMUP_SECONDS
        self.compile_decision = {
            "probe_epochs": probe_epochs, "eager_ms_per_epoch": ms, "remaining_epochs": remaining,
            "expected_saving_seconds": saving, "assumed_warmup_seconds": AUTO_COMPILE_WARMUP_SECONDS,
            "assumed_speedup": AUTO_COMPILE_MIN_SPEEDUP, "compiled": compile_now}
        return compile_now

    def term_losses(self, indices: Optional[Sequence[Optional[Tensor]]] = None) -> list[Tensor]:
        """Unweighted losses of every term, each ``[S]`` (``[1]`` for a single network)."""
        theta = self.net.theta
        return [fn(theta, None if indices is None else indices[k]) for k, fn in enumerate(self._loss_fns)]

    def warmup(self) -> float:
        """Compile (when ``compile=True``) and capture (``step_mode="cuda_graph"``) every graph training
        will use, outside the timed epochs: one per distinct mini-batch size. Returns the seconds spent."""
        pending, self._pending_warmup = self._pending_warmup, 0.0  # tuning done at construction
        if self._warm:
            return pending
        tick = time.perf_counter() - pending
        shapes = {}
        for idx in self._epoch_batches(advance=False):
            shapes.setdefault(_batch_key(idx), idx)
        for idx in shapes.values():
            if self.step_mode == "cuda_graph":
                self._graph_for(idx)  # capturing runs (and so compiles) every graph first
                continue
            losses = self.term_losses(idx)
            for loss in losses:
                torch.autograd.grad(loss.sum(), self.net.theta, allow_unused=True, materialize_grads=True)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self._warm = True
        return time.perf_counter() - tick

    def term_gradients(self, losses: Sequence[Tensor], out: Optional[Tensor] = None) -> Tensor:
        """One backward per term: ``G[S, K, P]`` with row ``(s, k)`` = grad of member ``s``'s term ``k``.

        A term that does not depend on some parameters gives zeros there."""
        G = self._G if out is None else out
        theta = self.net.theta
        for k, loss in enumerate(losses):
            (g,) = torch.autograd.grad(loss.sum(), theta, allow_unused=True, materialize_grads=True)
            self.backward_passes += 1
            G[:, k].copy_(g.reshape(self.members, -1))
        return G

    def step(self, indices: Optional[Sequence[Optional[Tensor]]] = None, update_weights: bool = False) -> Tensor:
        """One optimizer step; returns the detached term losses ``[S, K]``.

        ``update_weights``: run the weight update (statistics + EMA) before the step, from this
        step's per-term gradients."""
        losses = self.term_losses(indices)
        theta = self.net.theta
        w = self.weighter
        if w.dynamic:
            G = self.term_gradients(losses)
            if update_weights:
                w.update_from_stats(w.statistics(G), G.shape[-1])
            grad = Weighter.combine(G, w.lam_applied)
        else:
            total = (torch.stack(losses, dim=-1) * w.lam_applied).sum()
            (grad,) = torch.autograd.grad(total, theta, allow_unused=True, materialize_grads=True)
            self.backward_passes += 1
        theta.grad = grad.reshape(theta.shape)
        self.optimizer.step()
        return torch.stack([l.detach() for l in losses], dim=-1)

    def device_step(self, indices: Optional[Sequence[Optional[Tensor]]] = None) -> Tensor:
        """One optimizer step whose weight-update decision is made on the device; returns the term
        losses ``[S, K]`` in a buffer that the next call overwrites.

        The weights update when the device step counter is a multiple of ``tau * steps_per_epoch`` (the
        first step of every ``tau``-th epoch, as in :meth:`train`'s eager mode); the counter advances by
        one. Every tensor this reads or writes keeps its address across calls, so a CUDA graph can
        capture it."""
        losses = self.term_losses(indices)
        theta = self.net.theta
        w = self.weighter
        if w.dynamic:
            G = self.term_gradients(losses)
            period = w.scheme.tau * self.steps_per_epoch
            active = torch.remainder(self._step_counter, period) == 0
            w.update_from_stats(w.statistics(G), G.shape[-1], active=active)
            grad = Weighter.combine(G, w.lam_applied)
        else:
            total = (torch.stack(losses, dim=-1) * w.lam_applied).sum()
            (grad,) = torch.autograd.grad(total, theta, allow_unused=True, materialize_grads=True)
            self.backward_passes += 1
        if theta.grad is None or theta.grad.shape != theta.shape:
            theta.grad = torch.zeros_like(theta)
        theta.grad.copy_(grad.reshape(theta.shape))
        self.optimizer.step()
        self._step_counter += 1
        self._step_losses.copy_(torch.stack([l.detach() for l in losses], dim=-1))
        return self._step_losses

    def _run_step(self, indices: list[Optional[Tensor]], update: bool) -> Tensor:
        """One step of :meth:`train` in this trainer's ``step_mode``."""
        if self.step_mode == "eager":
            return self.step(indices, update_weights=update)
        if self.step_mode == "device":
            return self.device_step(indices)
        return self._graph_for(indices).replay(indices)

    def _graph_for(self, indices: Sequence[Optional[Tensor]]) -> "_CapturedStep":
        key = _batch_key(indices)
        if key not in self._graphs:
            self._graphs[key] = _CapturedStep(self, indices)
        return self._graphs[key]

    # ---------------------------------------------------------------------------------- evaluation
    def _reference_tensors(self) -> tuple[Tensor, Tensor]:
        if self._reference is None:
            X, U = self.problem.reference()
            Xt = torch.as_tensor(np.asarray(X), dtype=self.dtype, device=self.device)
            Ut = torch.as_tensor(np.asarray(U), dtype=torch.float64, device=self.device)
            self._reference = (Xt, Ut.reshape(Ut.shape[0], -1))
        return self._reference

    @torch.no_grad()
    def predict(self, X: Tensor, chunk: int = 65536) -> Tensor:
        """Network output on points ``X[M, d]``: ``[M, out]`` (ensemble: ``[S, M, out]``)."""
        parts = [self.net(X[i:i + chunk]) for i in range(0, X.shape[0], chunk)]
        return torch.cat(parts, dim=-2)

    def evaluate(self) -> Tensor:
        """Relative L2 error ``[S]`` on the problem's reference grid (float64)."""
        X, U = self._reference_tensors()
        pred = self.predict(X).to(torch.float64)
        if pred.dim() == 2:
            pred = pred.unsqueeze(0)
        # [S, M*out] vs [M*out]: flatten outputs so a vector solution counts every component.
        return rel_l2_error(pred.reshape(pred.shape[0], -1), U.reshape(-1))

    # ------------------------------------------------------------------------------------- training
    def _epoch_batches(self, advance: bool = True) -> list[list[Optional[Tensor]]]:
        """Per step of the coming epoch, the point indices of each term (``None``: all points).

        ``advance=False`` leaves the shuffling generator untouched (for the warm-up)."""
        terms = self.problem.terms
        n_steps = max(t.n_batches for t in terms)
        gen = self._batch_gen
        if not advance:
            gen = torch.Generator(device=self.device).manual_seed(0)
        perms = [None if t.n_batches == 1 else torch.randperm(t.n_points, generator=gen, device=self.device)
                 for t in terms]
        steps = []
        for b in range(n_steps):
            idx = []
            for t, perm in zip(terms, perms):
                if perm is None:
                    idx.append(None)
                else:
                    j = b % t.n_batches
                    idx.append(perm[j * t.batch_size:(j + 1) * t.batch_size])
            steps.append(idx)
        return steps

    def _check_finite(self, losses: Tensor, first_epoch: int) -> None:
        bad = ~torch.isfinite(losses)
        if bool(bad.any()) or not bool(torch.isfinite(self.net.theta).all()):
            if bool(bad.any()):
                e, s, k = (int(v) for v in bad.nonzero()[0])
                where = f"loss {self.problem.terms[k].name!r} of member {s} at epoch {first_epoch + e}"
            else:
                where = "the network parameters"
            raise NonFiniteError(
                f"training diverged: {where} is not finite (scheme {self.scheme!r}); "
                "lower the learning rate or check the problem's terms")

    def train(
        self,
        epochs: Optional[int] = None,
        *,
        progress: bool = False,
        callback: Optional[Callable[["Trainer", int, dict[str, Any]], None]] = None,
    ) -> History:
        """Train for ``epochs`` (default: the problem's) and return the :class:`History` of this call.

        Every ``eval_every`` epochs and at the end: losses and parameters are checked for NaN/Inf
        (raising :class:`NonFiniteError`), the relative L2 error is measured when the problem has a
        reference, skipped weight updates are reported as warnings, and ``callback(trainer, epoch,
        info)`` is called.
        """
        epochs = self.problem.epochs if epochs is None else epochs
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
        S, K = self.members, len(self.problem.terms)
        warmup_seconds = self.warmup()
        loss_log = torch.zeros(epochs, S, K, dtype=self.dtype, device=self.device)
        weight_log = torch.zeros(epochs, S, K, dtype=self.dtype, device=self.device)
        eval_epochs: list[int] = []
        errors: list[np.ndarray] = []
        has_reference = self.problem.solution is not None
        reported_skips = self.weighter.skipped.clone()
        # The device counter follows the host epoch (fill_ from a host int: no sync), e.g. after a resume.
        self._step_counter.fill_(self.epoch * self.steps_per_epoch)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=epochs, desc=f"{self.problem.name}/{getattr(self.scheme, 'name', 'scheme')}",
                       unit="ep", dynamic_ncols=True)
        train_seconds = 0.0
        first = 0
        probe = AUTO_COMPILE_PROBE_EPOCHS if self.compile_policy == "auto" and not self.compiled else 0
        self.compile_decision = None
        tick = time.perf_counter()
        for i in range(epochs):
            if probe and i == probe:  # compile="auto": the eager rate of the probe decides
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                train_seconds += time.perf_counter() - tick
                if self._decide_compile(probe, train_seconds, epochs - i):
                    warmup_seconds += self._try_compile()
                tick = time.perf_counter()
            epoch = self.epoch
            update = self.weighter.should_update(epoch)
            batches = self._epoch_batches()
            for b, idx in enumerate(batches):
                step_losses = self._run_step(idx, update and b == 0)
                loss_log[i] += step_losses
                if b == 0:
                    weight_log[i].copy_(self.weighter.lam_applied)
            if len(batches) > 1:
                loss_log[i] /= len(batches)
            self.epoch += 1
            if (i + 1) % self.eval_every == 0 or i + 1 == epochs:
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                train_seconds += time.perf_counter() - tick
                self._check_finite(loss_log[first:i + 1], self.epoch - (i + 1 - first))
                info: dict[str, Any] = {"losses": loss_log[i].cpu().numpy(), "weights": weight_log[i].cpu().numpy()}
                if has_reference:
                    err = self.evaluate().cpu().numpy()
                    eval_epochs.append(self.epoch)
                    errors.append(err)
                    info["rel_l2"] = err
                new_skips = self.weighter.skipped - reported_skips
                if bool((new_skips > 0).any()):
                    for k in range(K):
                        n = int(new_skips[:, k].sum())
                        if n:
                            warnings.warn(
                                f"term {self.problem.terms[k].name!r}: {n} weight update(s) kept the previous weight "
                                "because a gradient statistic was zero or not finite", RuntimeWarning, stacklevel=2)
                    reported_skips = self.weighter.skipped.clone()
                if bar is not None:
                    bar.update(i + 1 - first)
                    bar.set_postfix_str(self._postfix(info, train_seconds, i + 1))
                if callback is not None:
                    callback(self, self.epoch, info)
                first = i + 1
                tick = time.perf_counter()
        if bar is not None:
            bar.close()
        return History(
            term_names=self.problem.term_names,
            losses=loss_log.cpu().numpy(),
            weights=weight_log.cpu().numpy(),
            eval_epochs=np.array(eval_epochs, dtype=np.int64),
            rel_l2=np.array(errors, dtype=np.float64).reshape(len(errors), S),
            skipped=self.weighter.skipped.cpu().numpy(),
            train_seconds=train_seconds,
            warmup_seconds=warmup_seconds,
            ensemble=self.problem.ensemble,
            extra={"compiled": self.compiled, "compile_decision": self.compile_decision},
        )

    def _postfix(self, info: dict[str, Any], seconds: float, done: int) -> str:
        names = self.problem.term_names
        parts = [f"L_{n}={v:.2e}" for n, v in zip(names, info["losses"].mean(0))]
        parts += [f"λ_{n}={v:.3g}" for n, v in zip(names, info["weights"].mean(0)) if n != names[self.problem.reference_term]]
        if "rel_l2" in info:
            parts.append(f"relL2={float(np.mean(info['rel_l2'])):.2e}")
        parts.append(f"{done / max(seconds, 1e-9):.0f} ep/s")
        return " ".join(parts)

    # ---------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "theta": self.net.theta.detach().clone(),
            "optimizer": self.optimizer.state_dict(),
            "weighter": self.weighter.state_dict(),
            "batch_generator": self._batch_gen.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.net.theta.copy_(state["theta"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.weighter.load_state_dict(state["weighter"])
        self._batch_gen.set_state(state["batch_generator"])
        self.epoch = int(state["epoch"])
        # The optimizer and weighter replaced their state tensors: captured graphs point at the old ones.
        self._drop_graphs()

    def save_checkpoint(self, path: str) -> None:
        """``torch.save`` of :meth:`state_dict`, written atomically."""
        buf = io.BytesIO()
        torch.save(self.state_dict(), buf)
        _io.atomic_write_bytes(path, buf.getvalue())

    def load_checkpoint(self, path: str) -> None:
        self.load_state_dict(torch.load(path, map_location=self.device, weights_only=False))


class _CapturedStep:
    """:meth:`Trainer.device_step` for one mini-batch shape, captured in a CUDA graph.

    Capture follows PyTorch's recipe: a few eager warm-up steps on a side stream (they allocate the
    optimizer state and fix cuBLAS/Triton workspaces), then one captured step. Those steps train, so
    every piece of state is snapshotted first and written back in place afterwards (state that did not
    exist yet, e.g. a fresh Adam's moments and step, is zeroed: its initial value). Replays read the
    batch indices from fixed buffers that :meth:`replay` fills.
    """

    WARMUP_STEPS = 3

    def __init__(self, trainer: Trainer, indices: Sequence[Optional[Tensor]]) -> None:
        self.trainer = trainer
        self.indices = [None if i is None else i.clone() for i in indices]
        theta = trainer.net.theta
        if theta.grad is None:
            theta.grad = torch.zeros_like(theta)
        saved = self._snapshot()
        side = torch.cuda.Stream(device=trainer.device)
        side.wait_stream(torch.cuda.current_stream(trainer.device))
        with torch.cuda.stream(side):
            for _ in range(self.WARMUP_STEPS):
                trainer.device_step(self.indices)
        torch.cuda.current_stream(trainer.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.losses = trainer.device_step(self.indices)
        self._restore(saved)

    def _state_tensors(self) -> list[Tensor]:
        t = self.trainer
        w = t.weighter
        out = [t.net.theta, t._step_counter, w.lam, w.lam_applied, w.n_updates, w.skipped]
        for st in t.optimizer.state.values():
            out.extend(v for v in st.values() if isinstance(v, Tensor))
        return out

    def _snapshot(self) -> dict[int, tuple[Tensor, Tensor]]:
        with torch.no_grad():
            return {id(x): (x, x.detach().clone()) for x in self._state_tensors()}

    def _restore(self, saved: dict[int, tuple[Tensor, Tensor]]) -> None:
        with torch.no_grad():
            for x in self._state_tensors():
                if id(x) in saved:
                    x.copy_(saved[id(x)][1])
                else:
                    x.zero_()
        torch.cuda.synchronize(self.trainer.device)

    def replay(self, indices: Sequence[Optional[Tensor]]) -> Tensor:
        """Run the captured step on these batch indices; returns the term losses ``[S, K]`` (overwritten
        by the next replay)."""
        for buf, idx in zip(self.indices, indices):
            if buf is not None:
                buf.copy_(idx)
        self.graph.replay()
        return self.losses
