"""The table and figure of bench/results/weights-burgers-*.md from the run directories under RUNS_DIR.

    for cfg in "pinn:--scheme pinn" "dn09w:--beta 0.9" "dn099:--beta 0.99" "dn09_min01:--beta 0.9 --weight-min 0.1" \
               "dn09_warm1000:--beta 0.9 --weight-warmup 1000" "dn09_bc:--beta 0.9 --bias-correction" \
               "dn099_max100:--beta 0.99 --weight-max 100"; do
      fastpinn train burgers --epochs 3000 --seeds 2 ${cfg#*:} --derivative-method fused --no-figures \
          --out RUNS_DIR/${cfg%%:*}
    done   # and dn09_s2, dn099_s2, pinn_s2 with --seed 2 instead of --seeds 2
    python bench/weights_burgers_report.py RUNS_DIR figure.png > table.md
"""
import json, os, sys
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from fastpinn.history import History
from types import SimpleNamespace
import torch, fastpinn
from fastpinn.weight_watch import WeightWatch


def replay(h):
    """The watcher's reports (final rules) on a finished run's history, boundaries every 100 epochs."""
    E, S, K = h.weights.shape
    log = SimpleNamespace(weights=torch.tensor(h.weights), losses=torch.tensor(h.losses))
    weighter = SimpleNamespace(adaptive_mask=(False,) + (True,) * (K - 1), lam_applied=torch.ones(S, K),
                               skipped=torch.zeros(S, K, dtype=torch.int64))
    tr = SimpleNamespace(epoch=0, weighter=weighter, running_log=log, rank=0, scheme=fastpinn.DN(),
                         problem=SimpleNamespace(term_names=h.term_names, reference_term=0))
    w = WeightWatch(echo=False)
    w.on_train_begin(tr, E)
    for e in range(100, E + 1, 100):
        w.on_eval(tr, e, {})
    return w.reports

RUNS = [("pinn", "PINN", "--scheme pinn"),
        ("dn09w", "DN β=0.9 (the old default)", "--scheme dn --beta 0.9"),
        ("dn099", "DN β=0.99 (the new `train` default)", "--scheme dn --beta 0.99"),
        ("dn09_min01", "DN β=0.9, λ ≥ 0.1", "--beta 0.9 --weight-min 0.1"),
        ("dn09_warm1000", "DN β=0.9, warm-up 1000 epochs", "--beta 0.9 --weight-warmup 1000"),
        ("dn09_bc", "DN β=0.9, bias correction", "--beta 0.9 --bias-correction"),
        ("dn099_max100", "DN β=0.99, λ ≤ 100", "--beta 0.99 --weight-max 100"),
        ("dn09_s2", "seed 2: DN β=0.9", "--seed 2 --beta 0.9"),
        ("dn099_s2", "seed 2: DN β=0.99", "--seed 2 --beta 0.99"),
        ("pinn_s2", "seed 2: PINN", "--seed 2 --scheme pinn")]
rows, fig_data = [], []
for key, label, args in RUNS:
    d = os.path.join(sys.argv[1], key)
    if not os.path.exists(d + "/metrics.json"):
        continue
    m = json.load(open(d + "/metrics.json")); h = History.load(d + "/history.npz")
    k = h.term_names.index("ic")
    lam = h.weights[:, :, k]
    per = ", ".join(f"{v:.3f}" for v in m["rel_l2_per_seed"])
    sem = "" if m["rel_l2_sem"] is None or len(m["rel_l2_per_seed"]) < 2 else f" ± {m['rel_l2_sem']:.3f}"
    lam_at = lambda e: "/".join(f"{v:.2g}" for v in lam[e])
    warn = "; ".join(f"{r.kind} λ_{r.term} @ {r.epoch}" for r in replay(h)) or "none"
    rows.append(f"| {label} | `{args}` | {m['rel_l2_mean']:.3f}{sem} | {per} | {lam_at(500)} | "
                f"{lam_at(len(lam) - 1)} | {warn} | {m['train_seconds']:.0f} |")
    if not key.endswith("_s2"):
        fig_data.append((label, h, lam))
head = ("| configuration | options | rel. L2 (mean ± s.e.) | per seed | λ_ic at 500 (per seed) | λ_ic at 3000 | "
        "weight watcher | train s |\n|---|---|---|---|---|---|---|---|")
print(head); print("\n".join(rows))
fig, ax = plt.subplots(1, 2, figsize=(11, 4))
for label, h, lam in fig_data:
    line, = ax[0].semilogy(lam[:, 0], label=label, lw=1)
    ax[0].semilogy(lam[:, 1], color=line.get_color(), lw=1, ls=":")
    if len(h.eval_epochs):
        ax[1].semilogy(h.eval_epochs, h.rel_l2.mean(axis=1), label=label, color=line.get_color())
ax[0].set_xlabel("epoch"); ax[0].set_ylabel("λ_ic (seed 0 solid, 1 dotted)"); ax[0].legend(fontsize=7)
ax[1].set_xlabel("epoch"); ax[1].set_ylabel("rel. L2 (mean of 2 seeds)")
fig.tight_layout(); fig.savefig(sys.argv[2], dpi=90)
