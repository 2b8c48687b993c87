"""Does TensorFloat-32 make the paper's Poisson PINN (Table 2, PINN row) train worse?

The authors ran TensorFlow 2.5 on an RTX A6000 (Ampere). Since TF 2.4, TensorFlow runs float32 matrix products on
Ampere in TF32 by default: each operand is rounded to a 10-bit mantissa (8-bit exponent kept), products are
accumulated in float32. That holds in the forward pass, in the GradientTape derivatives the PDE needs and in the
backward. fastpinn's runs are true float32. This script emulates TF32 on the CPU and trains the paper's PINN with
it, on the library's own points, initial parameters and Adam, so that the only difference is the rounding.

What is emulated (``rounding="nearest_even"``): every matrix product of the network -- forward, the derivative streams and
the backward -- is ``round_tf32(A) @ round_tf32(B)`` in float32 (:class:`RoundedMatmul`). Elementwise work (tanh,
its derivatives, the bias, the loss) stays float32, as on the GPU. The derivatives ``u_xx``, ``u_yy`` come from
forward propagation of the value, first- and second-derivative streams through each layer (exact, like the
library's fused method; TensorFlow's nested tapes reach the same values through other products, each of them
TF32 too). ``rounding=None`` is the same code in true float32 (the check against the library).

    python bench/tf32_emulation.py validate                 # rounding off: step-0 losses and gradients vs the
                                                            # library, 200 epochs against its finished run
    nohup nice -n 5 python bench/tf32_emulation.py train --arm tf32 --epochs 30000 &   # resumes from its checkpoint
    ... train --arm tf32 --continued --epochs 5000          # from the finished float32 run's epoch 30,000
    python bench/tf32_emulation.py report                   # the table from the checkpoints (markdown)
    python bench/tf32_emulation.py noise                    # TF32's change of residuals and gradient, fixed theta

Checkpoints: ``/work/scratch/tf32/<arm>[-continued].pt`` (``--dir``), written atomically every ``--checkpoint-seconds``;
loaded with ``weights_only=True``. The error is the library's (``Trainer.evaluate``: float32 prediction on the
201 x 201 reference grid, relative L2 in float64), i.e. the metric itself is not rounded.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "PoissonSetup",
    "RoundedMatmul",
    "build_setup",
    "network_values",
    "poisson_streams",
    "report",
    "round_to_tf32",
    "rounded_matmul",
    "term_losses",
    "train",
]

TF32_DROPPED_BITS = 13  # float32 has 23 mantissa bits, TF32 keeps 10
_LOW_MASK = (1 << TF32_DROPPED_BITS) - 1  # 0x1FFF
_HALF = 1 << (TF32_DROPPED_BITS - 1)  # 0x1000
_EXPONENT = 0x7F800000
ROUNDINGS = ("nearest_even", "truncate")


def round_to_tf32(x: Tensor, mode: str = "nearest_even") -> Tensor:
    """``x`` (float32, any shape) with its low 13 mantissa bits rounded off: the nearest TF32 value as a float32.

    ``mode="nearest_even"``: round to nearest, ties to even, on the bit pattern (a carry into the exponent is
    the correct rounding up to the next binade, and to inf past the largest finite TF32 value).
    ``"truncate"``: towards zero. inf and nan are returned unchanged (their exponent is all ones).
    """
    if x.dtype != torch.float32:
        raise ValueError(f"round_to_tf32 takes float32, got {x.dtype}")
    if mode not in ROUNDINGS:
        raise ValueError(f"mode must be one of {ROUNDINGS}, got {mode!r}")
    bits = x.view(torch.int32)
    if mode == "truncate":
        rounded = bits & ~_LOW_MASK
    else:
        # Adding half an ulp minus one, plus the kept lsb, carries exactly when the dropped bits exceed half
        # (or equal it with an odd kept lsb). The sign bit is never reached: |bits| <= 0x7F7FFFFF here.
        rounded = (bits + ((bits >> TF32_DROPPED_BITS) & 1) + (_HALF - 1)) & ~_LOW_MASK
    special = (bits & _EXPONENT) == _EXPONENT
    return torch.where(special, bits, rounded).view(torch.float32)


class RoundedMatmul(torch.autograd.Function):
    """``round(A) @ round(B)`` (batched, float32) whose backward rounds its operands too:
    ``dA = round(dY) @ round(B)^T``, ``dB = round(A)^T @ round(dY)``, as a TF32 GEMM computes them."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, mode: str) -> Tensor:  # type: ignore[override]
        ar, br = round_to_tf32(a, mode), round_to_tf32(b, mode)
        ctx.save_for_backward(ar, br)
        ctx.mode = mode
        return torch.matmul(ar, br)

    @staticmethod
    def backward(ctx: Any, dy: Tensor) -> tuple[Tensor | None, Tensor | None, None]:  # type: ignore[override]
        ar, br = ctx.saved_tensors
        dyr = round_to_tf32(dy.contiguous(), ctx.mode)
        da = torch.matmul(dyr, br.transpose(-1, -2)) if ctx.needs_input_grad[0] else None
        db = torch.matmul(ar.transpose(-1, -2), dyr) if ctx.needs_input_grad[1] else None
        return da, db, None


def rounded_matmul(a: Tensor, b: Tensor, rounding: str | None) -> Tensor:
    """``a @ b`` (``[S, M, K] @ [S, K, N]``): TF32-emulated when ``rounding`` names a mode, plain float32 if ``None``."""
    if rounding is None:
        return torch.matmul(a, b)
    return RoundedMatmul.apply(a, b, rounding)


def network_values(layers: Sequence[tuple[Tensor, Tensor]], xi: Tensor, rounding: str | None) -> Tensor:
    """The tanh MLP's output ``[S, N, out]`` at scaled inputs ``xi[S, N, d]``; ``layers``: ``(W[S, out, in], b[S, out])``."""
    h = xi
    for i, (w, b) in enumerate(layers):
        h = rounded_matmul(h, w.transpose(-1, -2), rounding) + b.unsqueeze(-2)
        if i < len(layers) - 1:
            h = torch.tanh(h)
    return h


def poisson_streams(layers: Sequence[tuple[Tensor, Tensor]], xi: Tensor, scale: Tensor,
                    rounding: str | None) -> tuple[Tensor, Tensor, Tensor]:
    """``u``, ``u_xx``, ``u_yy`` (each ``[S, N, out]``) of the tanh MLP at scaled inputs ``xi[S, N, 2]``, where
    ``xi = scale * x + shift``; derivatives are with respect to ``x``.

    Forward propagation of five streams (value, d/dx, d/dy, d2/dx2, d2/dy2), every layer's product one rounded
    matmul of the stacked streams. ``tanh``: ``a' = 1 - a^2``, ``a'' = -2 a a'``, so a hidden stream
    ``h_xx = a'' z_x^2 + a' z_xx``.
    """
    S, N, d = xi.shape
    # Layer 0: the first-derivative streams of xi are the constant rows scale_k * e_k (second derivatives 0).
    seeds = torch.diag(scale).to(xi.dtype).expand(S, d, d)
    w0, b0 = layers[0]
    z = rounded_matmul(torch.cat([xi, seeds], dim=1), w0.transpose(-1, -2), rounding)
    z_val = z[:, :N] + b0.unsqueeze(-2)
    z_x, z_y = z[:, N:N + 1], z[:, N + 1:N + 2]  # [S, 1, width], the same at every point
    z_xx = z_yy = None
    for i, (w, b) in enumerate(layers[1:], start=1):
        a = torch.tanh(z_val)
        da = 1.0 - a * a
        dda = -2.0 * a * da
        h_x, h_y = da * z_x, da * z_y
        h_xx = dda * z_x * z_x + (0.0 if z_xx is None else da * z_xx)
        h_yy = dda * z_y * z_y + (0.0 if z_yy is None else da * z_yy)
        z = rounded_matmul(torch.cat([a, h_x, h_y, h_xx, h_yy], dim=1), w.transpose(-1, -2), rounding)
        z_val = z[:, :N] + b.unsqueeze(-2)
        z_x, z_y, z_xx, z_yy = z[:, N:2 * N], z[:, 2 * N:3 * N], z[:, 3 * N:4 * N], z[:, 4 * N:]
    return z_val, z_xx, z_yy


# ----------------------------------------------------------------------------------- the paper's Poisson PINN
class PoissonSetup:
    """The library's run of Table 2's PINN row for ``seeds``, built by ``build_trainer``: its trainer (for the
    initial parameters, the term points and targets, the residual and the evaluation) and our own view of it."""

    def __init__(self, seeds: Sequence[int], problem_kwargs: dict | None = None) -> None:
        from fastpinn.run.config import RunConfig
        from fastpinn.run.one_run import build_trainer

        self.seeds = [int(s) for s in seeds]
        cfg = RunConfig(problem="poisson", scheme="pinn", seeds=self.seeds, derivative_method="fused", device="cpu",
                        problem_kwargs=dict(problem_kwargs or {}))
        self.problem, self.trainer = build_trainer(cfg)
        net = self.trainer.net
        self.net = net
        self.coords = tuple(self.trainer.problem.coords)
        self.pde, self.bc = self.trainer.problem.terms
        if (self.pde.name, self.bc.name) != ("pde", "bc"):
            raise RuntimeError(f"expected the terms pde and bc, got {self.pde.name}, {self.bc.name}")
        self.x_pde = self.pde.points[0]  # [S, 2500, 2] float32
        self.x_bc = self.bc.points[0]  # [S, 400, 2]
        self.scale, self.shift = net.input_scale, net.input_shift
        self._theta0 = net.theta.detach().clone()  # evaluate() overwrites the trainer's parameters

    def initial_theta(self) -> Tensor:
        """The library's initial parameters ``[S, P]`` (a copy)."""
        return self._theta0.clone()

    def evaluate(self, theta: Tensor) -> Tensor:
        """The library's relative L2 error ``[S]`` (float64) of ``theta`` on the 201 x 201 grid (float32 prediction)."""
        with torch.no_grad():
            self.trainer.net.theta.copy_(theta)
        return self.trainer.evaluate()


def build_setup(seeds: Sequence[int], **problem_kwargs: Any) -> PoissonSetup:
    """:class:`PoissonSetup` of ``seeds`` (``problem_kwargs``: e.g. fewer points for a test; none for the paper's)."""
    return PoissonSetup(seeds, problem_kwargs)


def term_losses(setup: PoissonSetup, theta: Tensor, rounding: str | None) -> tuple[Tensor, Tensor]:
    """The unweighted PDE and BC losses ``[S]`` each, as the library defines them (its residual functions on
    our fields), with every matmul TF32-emulated when ``rounding`` is a mode."""
    from fastpinn.requests import Fields, parse_request

    layers = setup.net.layers(theta)
    xi = setup.x_pde * setup.scale + setup.shift
    _, u_xx, u_yy = poisson_streams(layers, xi, setup.scale, rounding)
    fields = Fields({parse_request(k, setup.coords): v for k, v in (("u_xx", u_xx), ("u_yy", u_yy))},
                    setup.coords, setup.x_pde)
    r_pde = setup.pde.residual_of([fields])
    u_bc = network_values(layers, setup.x_bc * setup.scale + setup.shift, rounding)
    r_bc = setup.bc.residual_of([Fields({parse_request("u", setup.coords): u_bc}, setup.coords, setup.x_bc)])
    return setup.pde.mean_square(r_pde, True), setup.bc.mean_square(r_bc, True)


# ------------------------------------------------------------------------------------------- training
def loss_function(setup: PoissonSetup, rounding: str | None, compile: bool) -> Any:
    """``theta[S, P] -> (pde loss [S], bc loss [S])``, compiled with ``torch.compile`` when ``compile``."""
    def losses(theta: Tensor) -> tuple[Tensor, Tensor]:
        return term_losses(setup, theta, rounding)

    return torch.compile(losses) if compile else losses


def _atomic_save(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(path: Path) -> dict:
    """A checkpoint of :func:`train` (tensors, numbers and strings only)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def train(arm: str, seeds: Sequence[int], epochs: int, *, out_dir: Path, eval_every: int = 500,
          checkpoint_seconds: float = 180.0, rounding_mode: str = "nearest_even", compile: bool = True,
          continued: bool = False, setup: PoissonSetup | None = None, log=print) -> dict:
    """Train the ``arm`` (``"tf32"``: rounded matmuls; ``"fp32"``: plain float32) to ``epochs`` full-batch Adam
    steps (lr 1e-3, the library's optimizer settings) from the library's initial parameters, resuming from
    ``out_dir/<arm>.pt``. Evaluates at epoch 0 and every ``eval_every`` epochs. Returns the checkpoint dict.
    ``compile``: run the losses and their backward through ``torch.compile`` (2-2.5x faster on the CPU; the
    rounding is the same bit operations, fused). ``continued``: start instead from the library's finished run
    (its parameters and Adam state at epoch 30,000, :data:`LIBRARY_RUN`), checkpointing to
    ``out_dir/<arm>-continued.pt``; ``epochs`` then counts the steps after it. ``setup``: a
    :func:`build_setup` of ``seeds`` to reuse (its trainer's parameters are overwritten by each evaluation)."""
    if arm not in ("tf32", "fp32"):
        raise ValueError(f"arm must be 'tf32' or 'fp32', got {arm!r}")
    rounding = rounding_mode if arm == "tf32" else None
    setup = build_setup(seeds) if setup is None else setup
    if setup.seeds != [int(x) for x in seeds]:
        raise ValueError(f"setup is of seeds {setup.seeds}, not {list(seeds)}")
    path = Path(out_dir) / (f"{arm}-continued.pt" if continued else f"{arm}.pt")
    theta = torch.nn.Parameter(setup.initial_theta())
    lib_opt = setup.trainer.optimizer.param_groups[0]
    opt = torch.optim.Adam([theta], lr=lib_opt["lr"], betas=lib_opt["betas"], eps=lib_opt["eps"])
    state = {"arm": arm, "rounding": "none" if rounding is None else rounding, "seeds": list(setup.seeds),
             "epoch": 0, "eval_epochs": [], "rel_l2": [], "losses": [], "train_seconds": 0.0}
    if continued and not path.exists():
        from fastpinn.checkpoint import read_checkpoint

        finished = read_checkpoint(str(LIBRARY_RUN / "checkpoint.pt"))
        n = len(setup.seeds)
        adam = finished["optimizer"]["state"][0]
        with torch.no_grad():
            theta.copy_(finished["theta"][:n])
        opt.state[theta] = {"step": adam["step"].clone(), "exp_avg": adam["exp_avg"][:n].clone(),
                            "exp_avg_sq": adam["exp_avg_sq"][:n].clone()}
        state["epoch"] = int(finished["epoch"])
        state["eval_epochs"].append(state["epoch"])
        state["rel_l2"].append(setup.evaluate(theta.detach()).tolist())
    if path.exists():
        ck = load_checkpoint(path)
        if ck["seeds"] != state["seeds"] or ck["rounding"] != state["rounding"]:
            raise ValueError(f"{path} holds seeds {ck['seeds']} rounding {ck['rounding']}, not {state['seeds']} "
                             f"{state['rounding']}")
        with torch.no_grad():
            theta.copy_(ck["theta"])
        opt.load_state_dict(ck["optimizer"])
        state.update({k: ck[k] for k in ("epoch", "eval_epochs", "rel_l2", "losses", "train_seconds")})
        log(f"[{path.stem}] resumed at epoch {state['epoch']}")
    if state["epoch"] == 0 and not state["eval_epochs"]:
        state["eval_epochs"].append(0)
        state["rel_l2"].append(setup.evaluate(theta.detach()).tolist())
    start = state["eval_epochs"][0]  # 0, or the finished run's last epoch when continued
    epochs += start if continued else 0
    name = f"{arm}-continued" if continued else arm

    def save() -> None:
        _atomic_save(dict(state, theta=theta.detach().clone(), optimizer=opt.state_dict()), path)

    losses = loss_function(setup, rounding, compile)
    last_save = time.monotonic()
    while state["epoch"] < epochs:
        t0 = time.perf_counter()
        l_pde, l_bc = losses(theta)
        opt.zero_grad(set_to_none=True)
        (l_pde.sum() + l_bc.sum()).backward()  # members are independent: the sum's gradient is each one's
        opt.step()
        state["train_seconds"] += time.perf_counter() - t0
        state["epoch"] += 1
        e = state["epoch"]
        if e % eval_every == 0 or e == epochs:
            err = setup.evaluate(theta.detach())
            state["eval_epochs"].append(e)
            state["rel_l2"].append(err.tolist())
            state["losses"].append([e, l_pde.detach().tolist(), l_bc.detach().tolist()])
            log(f"[{name}] epoch {e}: rel L2 mean {err.mean().item():.4e} s.e. {_sem(err.numpy()):.2e}, "
                f"{1e3 * state['train_seconds'] / (e - start):.0f} ms/epoch")
        if not math.isfinite(l_pde.detach().sum().item()):
            raise RuntimeError(f"[{name}] non-finite loss at epoch {e}")
        if time.monotonic() - last_save > checkpoint_seconds or e == epochs:
            save()
            last_save = time.monotonic()
    return dict(state)


def _sem(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))


# -------------------------------------------------------------------------------------------- report
LIBRARY_RUN = Path("/work/runs/table2/pinn")
PAPER_PINN = (2.32e-1, 1.9e-2)


def _arm_rows(out_dir: Path, suffix: str = "") -> dict[str, dict]:
    """Per arm found in ``out_dir`` (files ``<arm><suffix>.pt``): its evaluations ``{epoch: rel L2 [S]}`` and progress."""
    arms = {}
    for arm in ("tf32", "fp32"):
        p = Path(out_dir) / f"{arm}{suffix}.pt"
        if p.exists():
            ck = load_checkpoint(p)
            arms[arm] = {"rows": {int(e): np.asarray(r) for e, r in zip(ck["eval_epochs"], ck["rel_l2"])},
                         "epoch": int(ck["epoch"]), "seconds": float(ck["train_seconds"])}
    return arms


def _window_means(rows: dict[int, np.ndarray], end: int, width: int) -> np.ndarray | None:
    """Per seed, the mean of the evaluations in ``(end - width, end]`` (``None`` unless all of them exist)."""
    wanted = [e for e in range(end - width + 1, end + 1) if e % 100 == 0]
    if end < width or not all(e in rows for e in wanted):
        return None
    return np.mean([rows[e] for e in wanted], axis=0)


def report(out_dir: Path, library_run: Path = LIBRARY_RUN, every: int = 1000) -> str:
    """Markdown: per epoch that is a multiple of ``every`` (and the last one reached), the 10-seed mean +- s.e. of
    each arm in ``out_dir`` beside the library's finished float32 run and each arm's difference from it in
    combined standard errors; first at the epoch itself, then averaged per seed over the last ``every`` epochs'
    evaluations (every 100 epochs), which damps the evaluation-to-evaluation swings of single members."""
    hist = np.load(library_run / "history.npz", allow_pickle=False)
    lib = {int(e): row for e, row in zip(hist["eval_epochs"], hist["rel_l2"])}
    arms = _arm_rows(out_dir)
    names = list(arms)
    last = {e for a in arms.values() for e in [max(a["rows"])]}
    epochs = sorted({e for a in arms.values() for e in a["rows"] if e % every == 0} | last)

    def cell(row: np.ndarray | None) -> str:
        return "–" if row is None else f"{row.mean():.4f} ± {_sem(row):.4f}"

    def diff(row: np.ndarray | None, ref: np.ndarray | None) -> str:
        if row is None or ref is None:
            return "–"
        d = row.mean() - ref.mean()
        return f"{d:+.4f} ({d / math.hypot(_sem(row), _sem(ref)):+.1f})"

    out = []
    for title, pick in (("Rel. L2 at the epoch (10 seeds, mean ± s.e.)", lambda rows, e: rows.get(e)),
                        (f"Rel. L2 averaged per seed over the evaluations of the last {every} epochs",
                         lambda rows, e: _window_means(rows, e, every))):
        out += [f"**{title}**", "",
                "| epoch | library fp32 (finished run) | " + " | ".join(f"{n} arm" for n in names) + " | "
                + " | ".join(f"{n} − library (combined s.e.)" for n in names) + " |",
                "|" + "---|" * (2 + 2 * len(names))]
        for e in epochs:
            ref = pick(lib, e)
            got = [pick(arms[n]["rows"], e) for n in names]
            if all(g is None for g in got):
                continue
            out.append(f"| {e} | {cell(ref)} | " + " | ".join(cell(g) for g in got) + " | "
                       + " | ".join(diff(g, ref) for g in got) + " |")
        out.append("")
    cont = _arm_rows(out_dir, suffix="-continued")
    if len(cont) == 2:
        t, f = cont["tf32"]["rows"], cont["fp32"]["rows"]
        start = min(t)
        out += [(f"**Continued from the library's finished run (epoch {start}, same parameters and Adam state per "
                 "seed): TF32 against float32, paired by seed**"), "",
                "| epoch | fp32 continued | tf32 continued | tf32 − fp32, paired mean ± s.e. (in s.e.) |",
                "|---|---|---|---|"]
        for e in sorted(set(t) & set(f)):
            if (e - start) % (every // 2) and e != max(set(t) & set(f)):
                continue
            d = t[e] - f[e]
            z = "" if not _sem(d) else f" ({d.mean() / _sem(d):+.1f})"
            out.append(f"| {e} | {cell(f[e])} | {cell(t[e])} | {d.mean():+.4f} ± {_sem(d):.4f}{z} |")
        common = sorted(set(t) & set(f))
        window = [e for e in common if e > common[-1] - every // 2 and e > start]
        if window:  # per seed, averaged over the last evaluations: damps single-evaluation swings
            d = np.mean([t[e] - f[e] for e in window], axis=0)
            drop = f[start] - np.mean([f[e] for e in window], axis=0)
            out += ["", (f"Averaged per seed over epochs {window[0]}-{window[-1]}: tf32 − fp32 = {d.mean():+.5f} ± "
                         f"{_sem(d):.5f}; fp32's fall since {start}: {drop.mean():.5f} ± {_sem(drop):.5f}, so TF32 "
                         f"kept {100 * (1 - d.mean() / drop.mean()):.0f} % ± {100 * _sem(d) / drop.mean():.0f} % of "
                         "float32's descent.")]
        out.append("")
    for n, a in list(arms.items()) + [(f"{k}-continued", v) for k, v in cont.items()]:
        steps = a["epoch"] - min(a["rows"])
        out.append(f"- {n} arm: epoch {a['epoch']} reached, {a['seconds'] / 3600:.2f} h of training, "
                   f"{1e3 * a['seconds'] / max(steps, 1):.0f} ms/epoch (10 seeds, one thread, shared machine)")
    out.append(f"- paper (TF 2.5, RTX A6000), epoch 30,000: {PAPER_PINN[0]:.3f} ± {PAPER_PINN[1]:.3f}")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ CLI
def validate(seeds: Sequence[int], epochs: int) -> None:
    """Rounding off: our step-0 losses against the library's; the compiled gradients against the eager ones
    (rounding on and off); then ``epochs`` steps of our compiled fp32 loop against the library's finished run
    at every 100 epochs (per seed)."""
    setup = build_setup(seeds)
    theta0 = setup.initial_theta()
    lib = [t.detach() for t in setup.trainer.term_losses()]
    for rounding in (None, "nearest_even"):
        ours = [t.detach() for t in term_losses(setup, theta0, rounding)]
        for name, a, b in zip(("pde", "bc"), ours, lib):
            rel = ((a.double() - b.double()).abs() / b.double().abs()).max().item()
            print(f"step 0, rounding {rounding}: {name} loss, max over seeds of |ours - library| / library = {rel:.2e}")
    grads = {}
    for rounding in (None, "nearest_even"):
        for compiled in (False, True):
            theta = theta0.clone().requires_grad_(True)
            l1, l2 = loss_function(setup, rounding, compiled)(theta)
            (l1.sum() + l2.sum()).backward()
            grads[(rounding, compiled)] = theta.grad.double()

    def rel(a: Any, b: Any) -> float:
        return ((grads[a] - grads[b]).norm() / grads[b].norm()).item()

    print(f"step 0 gradient, relative distance: compiled fp32 vs eager fp32 {rel((None, True), (None, False)):.2e}; "
          f"compiled tf32 vs eager tf32 {rel(('nearest_even', True), ('nearest_even', False)):.2e}; "
          f"eager tf32 vs eager fp32 {rel(('nearest_even', False), (None, False)):.2e}")
    if epochs > 0:
        with tempfile.TemporaryDirectory() as tmp:
            st = train("fp32", seeds, epochs, out_dir=Path(tmp), eval_every=100, log=print)
        hist = np.load(LIBRARY_RUN / "history.npz", allow_pickle=False)
        lib_err = {int(e): row[: len(seeds)] for e, row in zip(hist["eval_epochs"], hist["rel_l2"])}
        for e, row in zip(st["eval_epochs"], st["rel_l2"]):
            if e in lib_err:
                print(f"epoch {e}: ours {np.round(row, 5).tolist()}\n      library {np.round(lib_err[e], 5).tolist()}")


def pde_residuals(setup: PoissonSetup, theta: Tensor, rounding: str | None) -> tuple[Tensor, Tensor]:
    """The PDE and BC residuals ``[S, N]`` at ``theta`` (no gradient)."""
    from fastpinn.requests import Fields, parse_request

    with torch.no_grad():
        layers = setup.net.layers(theta)
        _, u_xx, u_yy = poisson_streams(layers, setup.x_pde * setup.scale + setup.shift, setup.scale, rounding)
        f = Fields({parse_request(k, setup.coords): v for k, v in (("u_xx", u_xx), ("u_yy", u_yy))}, setup.coords,
                   setup.x_pde)
        u_bc = network_values(layers, setup.x_bc * setup.scale + setup.shift, rounding)
        g = Fields({parse_request("u", setup.coords): u_bc}, setup.coords, setup.x_bc)
        return setup.pde.residual_of([f]).reshape(len(setup.seeds), -1), setup.bc.residual_of([g]).reshape(
            len(setup.seeds), -1)


def noise(seeds: Sequence[int], library_run: Path = LIBRARY_RUN) -> None:
    """How large TF32's perturbation is at the initial and at the finished float32 run's parameters: RMS of
    the residual change against the residual, and the relative change and cosine of the loss gradient."""
    from fastpinn.checkpoint import read_checkpoint

    setup = build_setup(seeds)
    final = read_checkpoint(str(library_run / "checkpoint.pt"))
    for label, theta in (("initial", setup.initial_theta()),
                         (f"epoch {final['epoch']}", final["theta"][: len(seeds)].float())):
        rows = []
        for k, name in enumerate(("pde", "bc")):
            r32 = pde_residuals(setup, theta, None)[k].double()
            rtf = pde_residuals(setup, theta, "nearest_even")[k].double()
            rms = r32.pow(2).mean(1).sqrt()
            drms = (rtf - r32).pow(2).mean(1).sqrt()
            rows.append(f"{name}: RMS residual {rms.mean():.3e}, RMS change {drms.mean():.3e} "
                        f"(ratio {(drms / rms).mean():.2e}), loss fp32 {rms.pow(2).mean():.4e} tf32 "
                        f"{rtf.pow(2).mean(1).mean():.4e}")
        grads = []
        for rounding in (None, "nearest_even"):
            th = theta.clone().requires_grad_(True)
            l1, l2 = term_losses(setup, th, rounding)
            (l1.sum() + l2.sum()).backward()
            grads.append(th.grad.double())
        rel = ((grads[1] - grads[0]).norm(dim=1) / grads[0].norm(dim=1)).mean().item()
        cos = torch.nn.functional.cosine_similarity(grads[1], grads[0], dim=1).mean().item()
        print(f"{label} (mean over {len(seeds)} seeds): " + "; ".join(rows)
              + f"; gradient: |g_tf32 - g_fp32| / |g_fp32| {rel:.2e}, cosine {cos:.6f}")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=("validate", "train", "report", "noise"))
    ap.add_argument("--arm", choices=("tf32", "fp32"), default="tf32")
    ap.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1")
    ap.add_argument("--epochs", type=int, default=30_000)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--checkpoint-seconds", type=float, default=180.0)
    ap.add_argument("--rounding", choices=ROUNDINGS, default="nearest_even")
    ap.add_argument("--dir", type=Path, default=Path("/work/scratch/tf32"))
    ap.add_argument("--continued", action="store_true",
                    help="start from the library's finished run (epoch 30,000); --epochs counts the extra steps")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    if args.command == "validate":
        validate(seeds, args.epochs if args.epochs < 30_000 else 200)
    elif args.command == "train":
        train(args.arm, seeds, args.epochs, out_dir=args.dir, eval_every=args.eval_every,
              checkpoint_seconds=args.checkpoint_seconds, rounding_mode=args.rounding, continued=args.continued,
              log=lambda msg: print(time.strftime("%H:%M:%S"), msg, flush=True))
    elif args.command == "noise":
        noise(seeds)
    else:
        print(report(args.dir))


if __name__ == "__main__":
    main(sys.argv[1:])
