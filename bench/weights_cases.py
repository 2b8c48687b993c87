"""Issue 18's table rerun: each problem the issue names, as a user problem file (bench/problems/), trained with
the library's defaults, the issue's settings, the authors' update rule, and the remedies; then the table.

    python bench/weights_cases.py run RUNS_DIR [--worker I/N]     # train what is missing (N workers in parallel)
    python bench/weights_cases.py report RUNS_DIR FIG_PREFIX      # print the markdown table, write the figures

Every run is one ``fastpinn train FILE.py:make_problem ...`` command as a user types it (printed in the table),
CPU, float32, one thread, ``--compile off``, the derivative method ``auto``. Seeds: ``--seeds 2`` (seeds 0
and 1 as one ensemble) unless the case says ``--seed 0``. Run lengths are cut for a shared 2-core machine where
the case says so (the ``epochs`` column).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (key, label, options) -- the options are added to the case's own; {warm} and {ref} are filled per case.
CONFIGS = [
    ("pinn", "PINN", "--scheme pinn"),
    ("dn", "DN, defaults (β = 0.99)", ""),
    ("dn09", "DN β = 0.9 (the issue's)", "--beta 0.9"),
    ("authors", "DN β = 0.9, authors' rule", "--beta 0.9 --update-schedule authors --init truncated_normal"),
    ("clamp", "DN + clamp [0.01, 100]", "--weight-min 0.01 --weight-max 100"),
    ("warmup", "DN + warm-up", "--weight-warmup {warm}"),
    ("ref", "DN + reference term", "--reference-term {ref}"),
    ("lra", "switch: LRA", "--scheme lra"),
]

# The remedies on the β = 0.9, where the defaults already train (the collapsing cases).
AT_09 = (("dn09_warmup", "DN β = 0.9 + warm-up", "--beta 0.9 --weight-warmup {warm}"),
         ("dn09_clamp", "DN β = 0.9 + clamp [0.01, 100]", "--beta 0.9 --weight-min 0.01 --weight-max 100"))

# name: (file, epochs, seeds option, eval every, reference term for the "ref" row, configs to skip, extra configs)
CASES = {
    "wave1d": ("wave1d.py", 2000, "--seeds 2", 100, "ic", (), AT_09),
    "euler_beam": ("euler_beam.py", 5000, "--seeds 2", 100, "u0", ("dn09",),
                   (("authors099", "DN β = 0.99, authors' rule", "--update-schedule authors --init truncated_normal"),)),
    "klein_gordon": ("klein_gordon.py", 2000, "--seeds 2", 100, "ic", (), ()),
    "beltrami": ("beltrami.py", 300, "--seed 0", 25, "ic_u", ("warmup", "lra"), ()),
    "heat": ("heat.py", 3000, "--seeds 2", 100, "ic", (), AT_09),
    "helmholtz2d": ("helmholtz2d.py", 1000, "--seed 0", 100, "bc", ("warmup", "ref"), ()),
}


def configs(case: str) -> list[tuple[str, str, str]]:
    file, epochs, seeds, every, ref, skip, extra = CASES[case]
    warm = max(100, (epochs // 3) // 100 * 100)
    rows = [c for c in CONFIGS if c[0] not in skip] + list(extra)
    return [(k, label, opts.format(warm=warm, ref=ref)) for k, label, opts in rows]


def command(case: str, opts: str, out: Path) -> list[str]:
    file, epochs, seeds, every, *_ = CASES[case]
    return [sys.executable, "-m", "fastpinn", "train", f"bench/problems/{file}:make_problem", "--epochs", str(epochs),
            *seeds.split(), *opts.split(), "--eval-every", str(every), "--threads", "1", "--compile", "off",
            "--no-progress", "--no-figures", "--out", str(out)]


#: The order the runs are trained in (a shared 2-core machine finishes only a prefix in an hour): the issue's
#: comparison (PINN, the defaults, the issue's β, the authors' rule), then the remedies, the failing cases first.
ORDER = [(c, k) for k in ("pinn", "dn") for c in ("wave1d", "euler_beam", "klein_gordon", "heat", "beltrami",
                                                   "helmholtz2d")]
ORDER[3:3] = [("wave1d", "authors"), ("euler_beam", "authors099")]
ORDER += [("wave1d", "dn09"), ("helmholtz2d", "dn09"), ("wave1d", "warmup"), ("wave1d", "clamp"),
          ("euler_beam", "clamp"), ("wave1d", "dn09_warmup"), ("heat", "dn09_warmup"), ("wave1d", "dn09_clamp"),
          ("euler_beam", "warmup"), ("heat", "dn09_clamp"), ("wave1d", "lra"),
          ("klein_gordon", "dn09"), ("beltrami", "dn09"), ("wave1d", "ref"), ("klein_gordon", "clamp"),
          ("heat", "dn09"), ("klein_gordon", "authors"), ("beltrami", "clamp"), ("klein_gordon", "warmup"),
          ("heat", "authors"), ("beltrami", "authors"), ("helmholtz2d", "clamp"), ("euler_beam", "lra"),
          ("klein_gordon", "lra"), ("euler_beam", "ref"), ("klein_gordon", "ref"), ("heat", "warmup"),
          ("heat", "clamp"), ("heat", "lra"), ("heat", "ref"), ("beltrami", "ref"), ("helmholtz2d", "authors"),
          ("helmholtz2d", "lra"), ("euler_beam", "authors")]


def jobs() -> list[tuple[str, str, str, str]]:
    """Every (case, key, label, options), in the order of :data:`ORDER`."""
    rows = {(case, k): (label, opts) for case in CASES for k, label, opts in configs(case)}
    return [(c, k, *rows[c, k]) for c, k in ORDER if (c, k) in rows]


def run(runs: Path, worker: int, workers: int) -> None:
    """Train this worker's share of the runs not yet started (a directory that exists is finished, running in
    another worker, or was stopped: delete it to train it again)."""
    for i, (case, key, _, opts) in enumerate(jobs()):
        out = runs / case / key
        if i % workers != worker or out.exists():
            continue
        cmd = command(case, opts, out)
        print(" ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, cwd=HERE.parent, check=False)


def display(cmd: list[str]) -> str:
    keep = [w for w in cmd[2:] if w not in ("--threads", "1", "--compile", "off", "--no-progress", "--no-figures")]
    return " ".join(keep[:keep.index("--out")] if "--out" in keep else keep)


def _machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 "unknown CPU")
    return f"{model} (`lscpu`), {os.cpu_count()} cores shared with seven other sessions and a background job"


def _load(runs: Path) -> dict:
    """``{(case, key): (label, options, metrics, History)}`` of the finished runs."""
    from fastpinn.history import History

    out = {}
    for case in CASES:
        for key, label, opts in configs(case):
            d = runs / case / key
            if (d / "metrics.json").exists():
                out[case, key] = (label, opts, json.loads((d / "metrics.json").read_text()),
                                  History.load(str(d / "history.npz")))
    return out


def report(runs: Path, prefix: str) -> None:
    import time

    import numpy as np

    done = _load(runs)
    print("# Issue 18's table rerun: the library's defaults, the issue's β, the authors' rule and the remedies\n")
    print(f"Machine: {_machine()}; CPU, float32, one thread per run. Written {time.strftime('%Y-%m-%d')} by "
          "`python bench/weights_cases.py report RUNS_DIR docs/figures/weights-` (the runs: `... run RUNS_DIR`; "
          "every command at the end). Seeds: `--seeds 2` is seeds 0 and 1 trained as one ensemble; `seed 0` one "
          "network. Short runs on a loaded machine: see docs/weights.md. Burgers (the issue's first two rows) is in "
          "weights-burgers-cpu-intel-xeon-2c-2026-12-06.md.\n")
    keys = [k for k, *_ in CONFIGS] + ["authors099", "dn09_warmup", "dn09_clamp"]
    print("Mean rel. L2 at the last epoch (seeds 0, 1 as one ensemble, or seed 0 alone where the case says); "
          "`!` the weight watcher reported something (the details below); `-` not run.\n")
    print("| problem | epochs | seeds | " + " | ".join(k for k in keys) + " |")
    print("|---|---:|---|" + "---:|" * len(keys))
    for case, (file, epochs, seeds, *_) in CASES.items():
        cells = []
        for k in keys:
            if (case, k) not in done:
                cells.append("-")
                continue
            m = done[case, k][2]
            cells.append(f"{m['rel_l2_mean']:.3g}" + (" !" if m.get("weight_warnings") else ""))
        print(f"| {case} | {epochs} | {seeds.split()[1] if '--seeds' in seeds else 'seed 0'} | " + " | ".join(cells) + " |")
    print("\nThe columns: " + "; ".join(f"`{k}` {label} (`{opts.format(warm='N', ref='TERM') or 'no options'}`)"
                                          for k, label, opts in CONFIGS + list(CASES['euler_beam'][6]) + list(AT_09))
          + ". N: a third of the epochs, rounded down to 100; TERM: the initial condition (the boundary condition "
          "for Helmholtz, u0 for the beam).\n")
    print("| problem | configuration | rel. L2 mean (per seed) | final λ (max over seeds) | weight watcher | s |")
    print("|---|---|---|---|---|---|")
    for (case, key), (label, opts, m, h) in done.items():
        per = m.get("rel_l2_per_seed") or [m.get("rel_l2")]
        err = f"{m['rel_l2_mean']:.3g}" + (f" ({', '.join(f'{v:.3g}' for v in per)})" if len(per) > 1 else "")
        last = h.weights[-1]  # [S, K]
        lam = ", ".join(f"{n} {last[:, k].max():.2g}" for k, n in enumerate(h.term_names)
                        if not np.allclose(h.weights[:, :, k], 1.0))
        warn = "; ".join(f"{w['kind']} λ_{w['term']} @ {w['epoch']} (member {','.join(map(str, w['members']))})"
                         for w in m.get("weight_warnings") or [])
        print(f"| {case} | {label} | {err} | {lam or '1'} | {warn or 'none'} | {m['train_seconds']:.0f} |")
    print("\nThe commands (each with `--threads 1 --compile off --no-progress --no-figures --out RUNS_DIR/CASE/KEY`):\n")
    print("```")
    for case, key, _, opts in jobs():
        print(f"{case}/{key}: " + display(command(case, opts, runs / case / key)))
    print("```")
    figures({k: (v[0], v[3]) for k, v in done.items()}, prefix)


COLORS = {"dn09_warmup": "C6", "dn09_clamp": "C8", "pinn": "k", "dn": "C0", "dn09": "C1", "authors": "C3", "authors099": "C3", "clamp": "C2", "warmup": "C4",
          "ref": "C5", "lra": "C7"}


def figures(histories: dict, prefix: str) -> None:
    """One PNG per case: the adaptive λ of the DN runs without a warm-up, of the seed that ends worse (left), and
    the rel. L2 over epochs (mean over seeds, right); one colour per configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    for case in CASES:
        rows = [(k, *histories[case, k]) for k, *_ in configs(case) if (case, k) in histories]
        if not rows:
            continue
        fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
        for key, label, h in rows:
            err = np.asarray(h.rel_l2)
            if key in ("dn", "dn09", "authors", "authors099", "clamp", "ref", "dn09_clamp"):
                s = int(np.argmax(err[-1])) if len(err) else 0
                for k, n in enumerate(h.term_names):
                    if np.allclose(h.weights[:, :, k], 1.0):
                        continue
                    w = np.abs(h.weights[:, s, k]) + 1e-30
                    ax[0].semilogy(w, lw=0.9, color=COLORS[key], label=f"{label} (seed {s})" if k == 1 else None)
                    ax[0].annotate(n, (len(w) - 1, w[-1]), fontsize=6, color=COLORS[key])
            if len(h.eval_epochs):
                ax[1].semilogy(h.eval_epochs, err.mean(axis=1), label=label, lw=1, color=COLORS[key])
        ax[0].set_xlabel("epoch"); ax[0].set_ylabel("adaptive λ (term named at the end)")
        ax[1].set_xlabel("epoch"); ax[1].set_ylabel("rel. L2 (mean over seeds)")
        for a in ax:
            if a.get_legend_handles_labels()[0]:
                a.legend(fontsize=6)
        fig.suptitle(case, fontsize=9)
        fig.tight_layout()
        fig.savefig(f"{prefix}{case}.png", dpi=70)
        plt.close(fig)


if __name__ == "__main__":
    what, runs = sys.argv[1], Path(sys.argv[2])
    if what == "run":
        worker, workers = (map(int, sys.argv[4].split("/")) if len(sys.argv) > 4 else (0, 1))
        run(runs, worker, workers)
    elif what == "report":
        report(runs, sys.argv[3])
    elif what == "commands":
        for case, key, label, opts in jobs():
            print(display(command(case, opts, runs / case / key)))
