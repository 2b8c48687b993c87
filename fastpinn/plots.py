"""Figures of the DN-PINN paper, from a run's data (matplotlib, Agg backend, PNG written atomically).

Per run (``fastpinn train``):

* :func:`plot_solution_maps` -- reference, prediction and |error| on the evaluation grid (paper Figs 2, 5, 8);
* :func:`plot_gradient_histograms` -- distributions of the back-propagated gradient of each loss term
  after training, weighted by its ``lambda_j`` as in the paper (or unweighted, ``log10 |g|``) (Figs 3, 6, 9);
* :func:`plot_training_curves` -- term losses and rel. L2 over epochs (Figs 4, 7, 10);
* :func:`plot_loss_trajectory` -- the ``L_PDE`` - ``L_j`` trajectory (Figs 4, 7, 10);
* :func:`plot_weights` -- the weights ``lambda_j`` over epochs.

Per table (``fastpinn reproduce``): :func:`plot_bias_correction` (Fig. 12), :func:`plot_gradients_side_by_side`
(every method's weighted gradients, Figs 3, 6, 9) and :func:`plot_table_summary`.

Every function takes plain arrays (or a :class:`~fastpinn.trainer.History`) and a path, writes one PNG
and returns the path. Nothing here trains or evaluates a network; :func:`run_figures` gathers the
inputs from a trained :class:`~fastpinn.trainer.Trainer`.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from . import _io

__all__ = [
    "plot_solution_maps", "plot_gradient_histograms", "plot_gradients_side_by_side", "plot_training_curves", "plot_loss_trajectory",
    "plot_weights", "plot_bias_correction", "plot_table_summary", "run_figures", "grid_shape", "save_figure",
]

PathLike = Union[str, os.PathLike]
DPI = 120  # resolution of every PNG (tests lower it to save time)


def _subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float],
              squeeze: bool = True) -> tuple[Figure, Any]:
    """A figure on its own Agg canvas: no pyplot, no global state, the user's backend is left alone."""
    fig = Figure(figsize=figsize, layout="constrained")  # room for colour bars and axis labels
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def save_figure(fig: Figure, path: PathLike) -> Path:
    """Render ``fig`` to PNG in memory (Agg) and write it atomically to ``path``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    _io.atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def grid_shape(X: np.ndarray) -> Optional[tuple[int, int]]:
    """``(n0, n1)`` if the points ``X[M, 2]`` form a tensor grid in row-major order (column 0 outer),
    else ``None``."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != 2:
        return None
    n1 = np.unique(X[:, 1]).size
    n0 = np.unique(X[:, 0]).size
    if n0 * n1 != X.shape[0] or n0 < 2 or n1 < 2:
        return None
    G = X.reshape(n0, n1, 2)
    if not (np.allclose(G[:, :1, 0], G[:, :, 0]) and np.allclose(G[:1, :, 1], G[:, :, 1])):
        return None
    return n0, n1


def _reference_columns(U: np.ndarray, m: int) -> np.ndarray:
    """Reference values ``[M, k]`` from ``[M]`` or ``[M, k]`` (``m = M`` evaluation points)."""
    U = np.asarray(U, dtype=np.float64)
    return U.reshape(m, -1) if U.ndim in (1, 2) and U.shape[0] == m else U.reshape(U.shape[0], -1)


def _member_columns(U: np.ndarray, member: int, m: int, k: int) -> np.ndarray:
    """One member's predictions ``[M, k]`` from ``[M]``, ``[M, k]``, ``[S, M]`` or ``[S, M, k]``."""
    U = np.asarray(U, dtype=np.float64)
    if U.ndim == 3 or (U.ndim == 2 and U.shape != (m, k)):  # a member axis first
        U = U[member]
    return U.reshape(U.shape[0], -1) if U.ndim else U.reshape(1, 1)


def _solution_row(fig: Any, axes: Any, X: np.ndarray, ref: np.ndarray, pred: np.ndarray, coords: Sequence[str],
                  name: str) -> None:
    """Draw one output's reference, prediction and ``|error|`` into one row of axes."""
    err = np.abs(pred - ref)
    if X.shape[1] == 1:
        order = np.argsort(X[:, 0])
        x = X[order, 0]
        a0, a1 = axes
        a0.plot(x, ref[order], "k-", lw=2, label="reference")
        a0.plot(x, pred[order], "r--", lw=1.5, label="prediction")
        a0.set_xlabel(coords[0])
        a0.set_ylabel(name)
        a0.legend()
        a1.semilogy(x, np.maximum(err[order], 1e-16), "b-")
        a1.set_xlabel(coords[0])
        a1.set_ylabel(f"|error| of {name}" if name != "u" else "|error|")
        return
    shape = grid_shape(X) if X.shape[1] == 2 else None
    vmin, vmax = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
    panels = [("reference", ref, "jet", vmin, vmax), ("prediction", pred, "jet", vmin, vmax),
              ("|error|", err, "viridis", 0.0, float(err.max()) or 1.0)]
    for ax, (title, val, cmap, lo, hi) in zip(axes, panels):
        if shape is not None:
            n0, n1 = shape
            c0 = X[:, 0].reshape(n0, n1)
            c1 = X[:, 1].reshape(n0, n1)
            im = ax.pcolormesh(c0, c1, val.reshape(n0, n1), cmap=cmap, vmin=lo, vmax=hi, shading="auto")
        else:
            im = ax.scatter(X[:, 0], X[:, 1], c=val, s=4, cmap=cmap, vmin=lo, vmax=hi)
        fig.colorbar(im, ax=ax)
        ax.set_title(title if name == "u" else f"{title}: {name}")
        ax.set_xlabel(coords[0])
        ax.set_ylabel(coords[1] if len(coords) > 1 else "")


# ---------------------------------------------------------------------------------- solution maps
def plot_solution_maps(X: np.ndarray, U_ref: np.ndarray, U_pred: np.ndarray, path: PathLike, *,
                       coords: Sequence[str] = ("t", "x"), title: str = "", member: int = 0) -> Path:
    """Reference, prediction and ``|error|`` on the evaluation points ``X[M, d]`` (paper Figs 2, 5, 8).

    ``U_ref``: ``[M]`` or ``[M, k]``; ``U_pred`` ``[M]``/``[M, k]``, or an ensemble's ``[S, M]``/``[S, M, k]``
    (member ``member`` is drawn). One row of panels per output (``u_0 .. u_{k-1}`` for ``k > 1``). A 2-D tensor
    grid is drawn as three colour maps (first coordinate on the horizontal axis, as in the paper's ``(t, x)``
    plots); 1-D points as curves; scattered 2-D points as scatter plots.
    """
    X = np.asarray(X, dtype=np.float64)
    m = X.shape[0]
    ref = _reference_columns(U_ref, m)
    pred = _member_columns(U_pred, member, m, ref.shape[1])
    if ref.shape != pred.shape or ref.shape[0] != m:
        raise ValueError(f"X {X.shape}, U_ref {ref.shape} and U_pred {pred.shape} do not match")
    rel = np.linalg.norm(pred - ref) / max(np.linalg.norm(ref), 1e-300)
    k = ref.shape[1]
    one_d = X.shape[1] == 1
    width, height = (10.0, 3.6) if one_d else (15.0, 4.2)
    fig, axes = _subplots(k, 2 if one_d else 3, figsize=(width, height * k), squeeze=False)
    for j in range(k):
        _solution_row(fig, axes[j], X, ref[:, j], pred[:, j], coords, "u" if k == 1 else f"u_{j}")
    fig.suptitle(f"{title}  rel. L2 = {rel:.3e}".strip())
    return save_figure(fig, path)


# ----------------------------------------------------------------------------- gradient histograms
def _gradient_panel(ax: Any, G: np.ndarray, term_names: Sequence[str], weights: Optional[np.ndarray],
                    bins: int, reference: int) -> None:
    """Draw one panel of gradient histograms: weighted ``lambda_j dL_j/dtheta`` on a linear gradient axis
    with the density on a symlog scale (``weights`` given), or unweighted ``log10 |dL_j/dtheta|``."""
    G = np.asarray(G, dtype=np.float64)
    if G.ndim == 2:
        G = G[None]
    if G.ndim != 3 or G.shape[1] != len(term_names):
        raise ValueError(f"G must be [K, P] or [S, K, P] with K = {len(term_names)} terms, got {G.shape}")
    K = G.shape[1]
    if weights is not None:
        w = np.broadcast_to(np.asarray(weights, dtype=np.float64).reshape(-1, K), (G.shape[0], K))
        vals = [(G[:, k] * w[:, k, None]).reshape(-1) for k in range(K)]
        hi = max(float(np.abs(v).max()) for v in vals)
        hi = hi if hi > 0 else 1.0
        edges = np.linspace(-hi, hi, bins + 1)
        peak = 0.0
        for k, (v, name) in enumerate(zip(vals, term_names)):
            label = f"∇θ L_{name}" if k == reference else f"λ_{name} ∇θ L_{name}"
            dens, _, patches = ax.hist(v, bins=edges, histtype="stepfilled", alpha=0.35, density=True, label=label)
            ax.hist(v, bins=edges, histtype="step", density=True, color=patches[0].get_facecolor()[:3])
            peak = max(peak, float(np.max(dens)))
        # symlog keeps the empty tails visible (linear below 1e-4 of the peak) and shows the wide core too.
        ax.set_yscale("symlog", linthresh=max(peak * 1e-4, 1e-300))
        ax.set_xlabel("weighted gradient λ_j ∂L_j / ∂θ")
        ax.legend(fontsize="small")
        return
    logs = []
    for k in range(K):
        a = np.abs(G[:, k].reshape(-1))
        nz = a[a > 0]
        logs.append((np.log10(nz) if nz.size else np.empty(0), a.size - nz.size))
    finite = [v for v, _ in logs if v.size]
    if finite:
        lo = min(float(v.min()) for v in finite)
        hi = max(float(v.max()) for v in finite)
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
        for (vals, zeros), name in zip(logs, term_names):
            label = f"∇θ L_{name} (unweighted)" + (f" ({zeros} zeros)" if zeros else "")
            if vals.size:
                ax.hist(vals, bins=edges, histtype="stepfilled", alpha=0.35, density=True, label=label)
                ax.hist(vals, bins=edges, histtype="step", density=True, color=ax.patches[-1].get_facecolor()[:3])
            else:
                ax.plot([], [], label=label + " (all zero)")
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "all gradients are zero", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("log10 |∂L_j / ∂θ| (unweighted)")


def plot_gradient_histograms(G: np.ndarray, term_names: Sequence[str], path: PathLike, *,
                             weights: Optional[np.ndarray] = None, weighted: bool = True, reference: int = 0,
                             title: str = "", bins: int = 60) -> Path:
    """Histograms of each term's back-propagated gradient after training (paper Figs 3, 6, 9).

    As in the paper (and the authors' plotting code): ``∇θ L_PDE`` beside the *weighted* ``λ_j ∇θ L_j`` --
    what the dynamic schemes equalise -- on a linear gradient axis, density on a symlog scale.
    ``weighted=False`` draws the unweighted ``log10 |∇θ L_j|`` instead (labelled so).

    ``G``: ``[K, P]`` or ``[S, K, P]`` (all members are pooled); ``weights``: the applied ``λ``, ``[K]`` or
    ``[S, K]`` (needed when ``weighted``); ``reference``: the unweighted reference term.
    """
    if weighted and weights is None:
        raise ValueError("weights (the applied λ, [K] or [S, K]) are needed for weighted=True")
    fig, ax = _subplots(figsize=(7, 4.2))
    _gradient_panel(ax, G, term_names, weights if weighted else None, bins, reference)
    ax.set_ylabel("density")
    ax.set_title(title or "back-propagated gradients after training")
    return save_figure(fig, path)


def plot_gradients_side_by_side(panels: Mapping[str, tuple[np.ndarray, np.ndarray]], term_names: Sequence[str],
                                path: PathLike, *, reference: int = 0, title: str = "", bins: int = 60) -> Path:
    """Every method's weighted gradients side by side, one panel each, on a shared gradient axis (paper
    Figs 3, 6, 9). ``panels``: label -> ``(G[S, K, P], weights[S, K])``."""
    if not panels:
        raise ValueError("panels must hold at least one method")
    n = len(panels)
    fig, axes = _subplots(1, n, figsize=(3.6 * n, 3.6), squeeze=False)
    for ax, (label, (G, w)) in zip(axes[0], panels.items()):
        _gradient_panel(ax, G, term_names, w, bins, reference)
        ax.set_title(label, fontsize="medium")
    axes[0][0].set_ylabel("density")
    fig.suptitle(title or "weighted back-propagated gradients after training")
    return save_figure(fig, path)


# ------------------------------------------------------------------------------- training curves
def _epochs_axis(n: int) -> np.ndarray:
    return np.arange(1, n + 1)


def plot_training_curves(history: Any, path: PathLike, *, title: str = "") -> Path:
    """Term losses (mean over seeds, band = min..max) and the rel. L2 error over epochs (Figs 4, 7, 10)."""
    losses = np.asarray(history.losses, dtype=np.float64)  # [E, S, K]
    ep = _epochs_axis(losses.shape[0])
    fig, (a0, a1) = _subplots(1, 2, figsize=(12, 4.2))
    for k, name in enumerate(history.term_names):
        v = losses[:, :, k]
        line, = a0.semilogy(ep, v.mean(axis=1), lw=1.2, label=f"L_{name}")
        if v.shape[1] > 1:
            a0.fill_between(ep, v.min(axis=1), v.max(axis=1), color=line.get_color(), alpha=0.2, lw=0)
    a0.set_xlabel("epoch")
    a0.set_ylabel("loss")
    a0.legend()
    a0.set_title("loss terms")
    rel = np.asarray(history.rel_l2, dtype=np.float64)
    ev = np.asarray(history.eval_epochs)
    if rel.size:
        for s in range(rel.shape[1]):
            a1.semilogy(ev, rel[:, s], color="0.7", lw=0.8)
        a1.semilogy(ev, rel.mean(axis=1), "k-", lw=1.8, label="mean over seeds" if rel.shape[1] > 1 else "rel. L2")
        a1.legend()
    else:
        a1.text(0.5, 0.5, "no reference solution", ha="center", va="center", transform=a1.transAxes)
    a1.set_xlabel("epoch")
    a1.set_ylabel("relative L2 error")
    a1.set_title("error")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_loss_trajectory(history: Any, path: PathLike, *, reference: int = 0, title: str = "") -> Path:
    """The trajectory of (``L_PDE``, ``L_j``) during training, log-log, one curve per other term."""
    losses = np.asarray(history.losses, dtype=np.float64).mean(axis=1)  # [E, K]
    names = list(history.term_names)
    fig, ax = _subplots(figsize=(6, 5))
    x = np.maximum(losses[:, reference], 1e-300)
    for k, name in enumerate(names):
        if k == reference:
            continue
        y = np.maximum(losses[:, k], 1e-300)
        line, = ax.loglog(x, y, lw=1.0, label=f"L_{name}")
        ax.plot(x[0], y[0], "o", color=line.get_color(), ms=6)
        ax.plot(x[-1], y[-1], "*", color=line.get_color(), ms=10)
    ax.set_xlabel(f"L_{names[reference]}")
    ax.set_ylabel("L_j")
    ax.legend(title="o start, * end")
    ax.set_title(title or "loss trajectory")
    return save_figure(fig, path)


def plot_weights(history: Any, path: PathLike, *, reference: int = 0, title: str = "") -> Path:
    """The applied weights ``lambda_j`` over epochs (mean over seeds; thin lines: each seed)."""
    w = np.asarray(history.weights, dtype=np.float64)  # [E, S, K]
    ep = _epochs_axis(w.shape[0])
    fig, ax = _subplots(figsize=(7, 4.2))
    for k, name in enumerate(history.term_names):
        if k == reference:
            continue
        line, = ax.plot(ep, w[:, :, k].mean(axis=1), lw=1.6, label=f"λ_{name}")
        if w.shape[1] > 1:
            ax.plot(ep, w[:, :, k], color=line.get_color(), lw=0.4, alpha=0.4)
    ax.set_xlabel("epoch")
    ax.set_ylabel("λ")
    if np.all(w > 0) and w.max() / max(w.min(), 1e-300) > 50:
        ax.set_yscale("log")
    ax.legend()
    ax.set_title(title or "loss weights")
    return save_figure(fig, path)


# ------------------------------------------------------------------------------------ table level
def plot_bias_correction(histories: Mapping[tuple[float, bool], Any], path: PathLike, *, term: Optional[int] = None,
                         title: str = "") -> Path:
    """Fig. 12: ``lambda_j`` over epochs with and without bias correction, one panel per beta.

    ``histories[(beta, bias_correction)]``: a History (or anything with ``weights[E, S, K]`` and
    ``term_names``). ``term``: the weight drawn (default: the first term whose weight moves).
    """
    betas = sorted({b for b, _ in histories})
    if not betas:
        raise ValueError("histories is empty")
    fig, axes = _subplots(1, len(betas), figsize=(5 * len(betas), 4.2), squeeze=False)
    for ax, beta in zip(axes[0], betas):
        for bc, style in ((False, "-"), (True, "--")):
            h = histories.get((beta, bc))
            if h is None:
                continue
            w = np.asarray(h.weights, dtype=np.float64)
            k = term
            if k is None:
                spread = w.max(axis=(0, 1)) - w.min(axis=(0, 1))
                k = int(np.argmax(spread))
            ep = _epochs_axis(w.shape[0])
            ax.plot(ep, w[:, :, k].mean(axis=1), style, lw=1.5,
                    label=f"λ_{h.term_names[k]} {'with' if bc else 'without'} bias corr.")
        ax.set_title(f"β = {beta:g}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("λ")
        ys = np.concatenate([ln.get_ydata() for ln in ax.get_lines()]) if ax.get_lines() else np.ones(1)
        if np.all(ys > 0) and ys.max() / ys.min() > 50:
            ax.set_yscale("log")
        ax.legend()
    fig.suptitle(title or "initialisation bias of the weights and its correction")
    return save_figure(fig, path)


def plot_table_summary(labels: Sequence[str], means: Sequence[Optional[float]], sems: Sequence[Optional[float]],
                       path: PathLike, *, paper: Optional[Sequence[Optional[float]]] = None, title: str = "") -> Path:
    """Bar chart of the mean rel. L2 (± s.e.) of every configuration of a table, log scale; the paper's
    values as black markers where known."""
    n = len(labels)
    m = np.array([np.nan if v is None else v for v in means], dtype=np.float64)
    e = np.array([0.0 if (v is None or not np.isfinite(v)) else v for v in sems], dtype=np.float64)
    fig, ax = _subplots(figsize=(max(6, 1.1 * n + 2), 4.5))
    x = np.arange(n)
    ax.bar(x, np.where(np.isfinite(m), m, 0.0), yerr=e, capsize=3, color="tab:blue", alpha=0.8, label="this run")
    if paper is not None:
        pv = np.array([np.nan if v is None else v for v in paper], dtype=np.float64)
        if np.isfinite(pv).any():
            ax.plot(x, pv, "k_", ms=20, mew=2, label="paper")
    if np.isfinite(m).any() and (m[np.isfinite(m)] > 0).all():
        ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30, ha="right")
    ax.set_ylabel("relative L2 error")
    ax.legend()
    ax.set_title(title)
    return save_figure(fig, path)


# ------------------------------------------------------------------------------- from a trainer
def run_figures(trainer: Any, history: Any, out_dir: PathLike, *, title: str = "") -> list[Path]:
    """Write every per-run figure of a trained ``trainer`` into ``out_dir``; returns the paths.

    Reads the trainer's network (prediction on the reference grid, per-term gradients of the final
    parameters) and ``history``; changes nothing in the trainer but its gradient buffer.
    """
    import torch

    out = Path(out_dir)
    problem = trainer.problem
    paths: list[Path] = []
    if problem.solution is not None:
        X, U = problem.reference()
        Xt = torch.as_tensor(np.asarray(X), dtype=trainer.dtype, device=trainer.device)
        pred = trainer.predict(Xt).to(torch.float64).cpu().numpy()
        paths.append(plot_solution_maps(np.asarray(X), np.asarray(U), pred, out / "solution.png",
                                        coords=problem.coords, title=title))
    G = trainer.term_gradients(trainer.term_losses()).detach().cpu().numpy()
    lam = trainer.weighter.weights().detach().cpu().numpy()
    paths.append(plot_gradient_histograms(G, problem.term_names, out / "gradients.png", weights=lam,
                                          reference=problem.reference_term, title=title))
    paths.append(plot_training_curves(history, out / "training.png", title=title))
    if len(problem.terms) > 1:
        paths.append(plot_loss_trajectory(history, out / "loss_trajectory.png", reference=problem.reference_term,
                                          title=title))
        paths.append(plot_weights(history, out / "weights.png", reference=problem.reference_term, title=title))
    return paths
