"""Issue 18's table rerun: each problem the issue names (Burgers as the README's command, the others as user
problem files in bench/problems/), trained with PINN, the library's defaults and each remedy; then the table.

    python bench/weights_cases.py run RUNS_DIR      # train what is not claimed yet (start several in parallel)
    python bench/weights_cases.py report RUNS_DIR FIG_PREFIX [LOAD_LOG]  # the markdown table, the figures

Every run is one ``fastpinn train PROBLEM ...`` command as a user types it (printed in the table), CPU,
float32, one thread, ``--compile off``, the derivative method ``auto``, the issue's epochs, seeds 0, 1, 2 as
one ensemble (``--seeds 3``).
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
    ("clamp", "DN + clamp [0.01, 100]", "--weight-min 0.01 --weight-max 100"),
    ("warmup", "DN + warm-up", "--weight-warmup {warm}"),
    ("bias", "DN + bias correction", "--bias-correction"),
    ("ref", "DN + reference term", "--reference-term {ref}"),
    ("lra", "switch: LRA", "--scheme lra"),
]

# name: (problem, epochs, seeds option, eval every, reference term for the "ref" row, configs to skip, extra configs)
# The protocol: its epochs per row, three seeds (0, 1, 2) trained as one ensemble. Burgers is the
# README's command (`fastpinn train burgers --epochs 3000`), the others user problem files in bench/problems/.
SEEDS = "--seeds 3"
CASES = {
    "burgers": ("burgers", 3000, SEEDS, 100, "ic", (), ()),
    "wave1d": ("bench/problems/wave1d.py:make_problem", 2000, SEEDS, 100, "ic", (), ()),
    "euler_beam": ("bench/problems/euler_beam.py:make_problem", 10000, SEEDS, 100, "u0", (), ()),
    "klein_gordon": ("bench/problems/klein_gordon.py:make_problem", 2000, SEEDS, 100, "ic", (), ()),
    "beltrami": ("bench/problems/beltrami.py:make_problem", 300, SEEDS, 25, "ic_u", (), ()),
    "heat": ("bench/problems/heat.py:make_problem", 6000, SEEDS, 100, "ic", (), ()),
    "helmholtz2d": ("bench/problems/helmholtz2d.py:make_problem", 3000, SEEDS, 100, "bc", (), ()),
}


def configs(case: str) -> list[tuple[str, str, str]]:
    file, epochs, seeds, every, ref, skip, extra = CASES[case]
    warm = max(100, (epochs // 3) // 100 * 100)
    rows = [c for c in CONFIGS if c[0] not in skip] + list(extra)
    return [(k, label, opts.format(warm=warm, ref=ref)) for k, label, opts in rows]


def command(case: str, opts: str, out: Path) -> list[str]:
    problem, epochs, seeds, every, *_ = CASES[case]
    return [sys.executable, "-m", "fastpinn", "train", problem, "--epochs", str(epochs),
            *seeds.split(), *opts.split(), "--eval-every", str(every), "--threads", "1", "--compile", "off",
            "--no-progress", "--no-figures", "--out", str(out)]


#: The order the runs are trained in: the issue's comparison (PINN and the defaults on every row) first, then
#: the remedies, the rows where DN with the defaults does worst first (a shared machine may finish only a prefix).
ORDER = [(c, k) for c in CASES for k in ("pinn", "dn")]
ORDER += [(c, k) for c in ("euler_beam", "wave1d", "klein_gordon", "heat", "beltrami", "helmholtz2d", "burgers")
          for k in ("clamp", "warmup", "bias", "ref", "lra")]


def jobs() -> list[tuple[str, str, str, str]]:
    """Every (case, key, label, options), in the order of :data:`ORDER`."""
    rows = {(case, k): (label, opts) for case in CASES for k, label, opts in configs(case)}
    return [(c, k, *rows[c, k]) for c, k in ORDER if (c, k) in rows]


def run(runs: Path) -> None:
    """Train the runs not yet claimed, in the order of :data:`ORDER`; start several of these in parallel and
    each takes the next free run (claimed by creating ``RUNS_DIR/CASE/KEY.claim``; delete the claim and the run
    directory to train a run again)."""
    for case, key, _, opts in jobs():
        out = runs / case / key
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.close(os.open(f"{out}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        cmd = command(case, opts, out)
        print(" ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, cwd=HERE.parent, check=False)


def display(cmd: list[str]) -> str:
    keep = [w for w in cmd[2:] if w not in ("--threads", "1", "--compile", "off", "--no-progress", "--no-figures")]
    return " ".join(keep[:keep.index("--out")] if "--out" in keep else keep)


def _machine(load_log: Path | None) -> str:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 "unknown CPU")
    text = f"{model} (`lscpu`), {os.cpu_count()} cores shared with other sessions and a background job"
    if load_log is not None and load_log.exists():
        # lines "HH:MM load1 load5 load15 ..." sampled once a minute while the runs trained
        one = [float(line.split()[1]) for line in load_log.read_text().splitlines() if len(line.split()) > 2]
        if one:
            text += (f"; 1-minute load average while the runs trained: median {sorted(one)[len(one) // 2]:.1f}, "
                     f"range {min(one):.1f}-{max(one):.1f} ({len(one)} samples, one a minute)")
    return text


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


#: "Far worse than PINN": a rel. L2 above this multiple of PINN's mean on the same problem (the issue's hard
#: condition is that every such run names the term in a weight-watcher report).
FAR_WORSE = 2.0


def _mean_se(m: dict) -> str:
    per = m.get("rel_l2_per_seed") or [m["rel_l2_mean"]]
    return f"{m['rel_l2_mean']:.3g}" + (f" ± {m['rel_l2_sem']:.2g}" if len(per) > 1 else "")


def _short(w: dict) -> str:
    return f"{w['kind']} λ_{w['term']} @ {w['epoch']} (member {','.join(map(str, w['members']))})"


def far_worse(done: dict, members_only: bool = False) -> list[tuple[str, str, list[int], list[dict]]]:
    """The non-PINN runs whose mean error is above :data:`FAR_WORSE` x PINN's mean on the same problem (the
    issue's condition; the members listed are those above that bar), or with ``members_only`` those whose mean
    is not but a member ends above :data:`FAR_WORSE` x PINN's same seed (same points, same initial network):
    ``(case, key, those members, the watcher's reports naming any of them)``."""
    out = []
    for (case, key), (_, _, m, _) in done.items():
        if key == "pinn" or (case, "pinn") not in done:
            continue
        pinn = done[case, "pinn"][2]
        per = m.get("rel_l2_per_seed") or [m["rel_l2_mean"]]
        if (m["rel_l2_mean"] > FAR_WORSE * pinn["rel_l2_mean"]) == members_only:
            continue
        if members_only:
            pinn_per = pinn.get("rel_l2_per_seed") or [pinn["rel_l2_mean"]]
            members = [i for i, v in enumerate(per) if v > FAR_WORSE * pinn_per[i]]
        else:
            members = [i for i, v in enumerate(per) if v > FAR_WORSE * pinn["rel_l2_mean"]]
        if members:
            said = [w for w in m.get("weight_warnings") or [] if set(w["members"]) & set(members)]
            out.append((case, key, members, said))
    return out


def report(runs: Path, prefix: str, load_log: Path | None = None) -> None:
    import time

    import numpy as np

    done = _load(runs)
    keys = [k for k, *_ in CONFIGS]
    print("# Issue 18's table rerun at the issue's protocol: PINN, DN with the library's defaults, the remedies\n")
    print(f"Machine: {_machine(load_log)}. CPU, float32, one thread per run (`--threads 1`), `nice -n 5`, two or three "
          f"runs at a time. Written {time.strftime('%Y-%m-%d')} by `python bench/weights_cases.py report RUNS_DIR "
          "docs/figures/weights-b-` after `python bench/weights_cases.py run RUNS_DIR` (started two or three times, in parallel); every "
          "command is at the end. Each run is three seeds (0, 1, 2) trained as one ensemble (`--seeds 3`); the "
          "epochs are the issue's.\n")
    print("Rel. L2 at the last epoch, mean ± s.e. over the three seeds; `!` the weight watcher reported (details "
          f"below); **bold** the mean is above {FAR_WORSE:g}x PINN's; `-` not run.\n")
    print("| problem | epochs | " + " | ".join(label for _, label, _ in CONFIGS) + " |")
    print("|---|---:|" + "---:|" * len(keys))
    bad = {(c, k) for c, k, *_ in far_worse(done)}
    for case, (_, epochs, *_) in CASES.items():
        cells = []
        for k in keys:
            if (case, k) not in done:
                cells.append("-")
                continue
            m = done[case, k][2]
            cell = _mean_se(m) + (" !" if m.get("weight_warnings") else "")
            cells.append(f"**{cell}**" if (case, k) in bad else cell)
        print(f"| {case} | {epochs} | " + " | ".join(cells) + " |")
    print("\nThe options of each column: " + "; ".join(
        f"{label}: `{opts.format(warm='N', ref='TERM') or 'none'}`" for _, label, opts in CONFIGS)
          + ". N: a third of the epochs, rounded down to 100; TERM: the initial condition (`ic`; `ic_u` for "
          "Beltrami, `bc` for Helmholtz, `u0` for the beam).\n")
    for members_only in (False, True):
        if members_only:
            print(f"\nRuns whose mean is within {FAR_WORSE:g}x PINN's but with a member above {FAR_WORSE:g}x "
                  "PINN's same seed:\n")
        else:
            print(f"## Runs with a mean above {FAR_WORSE:g}x PINN's mean, and what the watcher said\n")
        rows = far_worse(done, members_only)
        if not rows:
            print("None.")
        for case, key, members, said in rows:
            m = done[case, key][2]
            per = ", ".join(f"{v:.3g}" for v in m.get("rel_l2_per_seed") or [m["rel_l2_mean"]])
            named = {int(i) for w in said for i in w["members"]}
            unsaid = [i for i in members if i not in named]
            pm = done[case, "pinn"][2]
            pinn = (", ".join(f"{v:.3g}" for v in pm.get("rel_l2_per_seed") or [pm["rel_l2_mean"]]) if members_only
                    else f"mean {pm['rel_l2_mean']:.3g}")
            print(f"* **{case}, {done[case, key][0]}** ({per}; PINN {pinn}), "
                  f"member{'s' if len(members) > 1 else ''} {', '.join(map(str, members))}: "
                  + ("; ".join(f"`{w['kind']}` (epoch {w['epoch']}) \"{w['message']}\"" for w in said)
                     if said else "no report")
                  + (f" -- **no report names member{'s' if len(unsaid) > 1 else ''} "
                     f"{', '.join(map(str, unsaid))}**" if unsaid else ""))
    print("\n## Every run\n")
    print("| problem | configuration | rel. L2 per seed | final λ (max over seeds) | weight watcher | train s |")
    print("|---|---|---|---|---|---:|")
    for (case, key), (label, opts, m, h) in done.items():
        per = ", ".join(f"{v:.3g}" for v in m.get("rel_l2_per_seed") or [m["rel_l2_mean"]])
        last = h.weights[-1]  # [S, K]
        lam = ", ".join(f"{n} {last[:, k].max():.2g}" for k, n in enumerate(h.term_names)
                        if not np.allclose(h.weights[:, :, k], 1.0))
        warn = "; ".join(_short(w) for w in m.get("weight_warnings") or [])
        print(f"| {case} | {label} | {per} | {lam or '1'} | {warn or 'none'} | {m['train_seconds']:.0f} |")
    print("\nThe commands (each with `--threads 1 --compile off --no-progress --no-figures --out RUNS_DIR/CASE/KEY`, "
          "under `nice -n 5`):\n")
    print("```")
    for case, key, _, opts in jobs():
        print(f"{case}/{key}: " + display(command(case, opts, runs / case / key)))
    print("```")
    figures({k: (v[0], v[3]) for k, v in done.items()}, prefix)


COLORS = {"pinn": "k", "dn": "C0", "clamp": "C2", "warmup": "C4", "bias": "C1", "ref": "C5", "lra": "C7"}


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
            if key in ("dn", "clamp", "bias", "ref"):
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
        run(runs)
    elif what == "report":
        report(runs, sys.argv[3], Path(sys.argv[4]) if len(sys.argv) > 4 else None)
    elif what == "commands":
        for case, key, label, opts in jobs():
            print(display(command(case, opts, runs / case / key)))
