"""Aggregators (issue 19, item 4): final accuracy of every aggregator against PINN and DN on the paper's problems,
seeds as one ensemble per scheme, mean ± s.e. over the seeds.

Per problem one ``fastpinn compare`` (each scheme's defaults; DN is the paper's DN, tau = 10) trains PINN, DN and
every registered aggregator into ``--root/<problem>`` (finished runs there are reused, so an interrupted
benchmark resumes, and several processes may share a problem with disjoint ``--schemes`` lists); then the report
is written from the runs' ``metrics.json``: rel. L2 mean ± s.e. and min–max over the seeds, each scheme's per-seed
ratio to DN (the members of seed ``s`` start from the same initial network in every scheme, so the ratio is
paired), and the training time.

    python bench/bench_aggregators_accuracy.py --problems poisson,burgers --epochs 1500,1000 --seeds 3
    python bench/bench_aggregators_accuracy.py --report-only --root DIR ...   # only the report of finished runs
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _machine import describe, device_slug  # noqa: E402

from fastpinn._io import atomic_write_text  # noqa: E402
from fastpinn.schemes import SCHEME_NAMES, AggregatorScheme, scheme_class  # noqa: E402

BASELINES = ("pinn", "dn")


def aggregator_names() -> list[str]:
    return [n for n in SCHEME_NAMES if issubclass(scheme_class(n), AggregatorScheme)]


def train(problem: str, epochs: int, seeds: int, schemes: list[str], root: Path, extra: list[str]) -> None:
    cmd = [sys.executable, "-m", "fastpinn", "compare", problem, "--schemes", ",".join(schemes), "--seeds",
           str(seeds), "--epochs", str(epochs), "--threads", "1", "--compile", "off", "--no-progress",
           "--no-figures", "--out", str(root / problem), *extra]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def load(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def mean_se(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else float("nan"))


def geo_mean(xs: list[float]) -> str:
    return f"{math.exp(statistics.fmean(math.log(x) for x in xs)):.3g}" if xs else "–"


def report(problem: str, root: Path, schemes: list[str]) -> tuple[list[str], dict]:
    runs = {s: load(root / problem / s) for s in schemes if (root / problem / s / "metrics.json").exists()}
    missing = [s for s in schemes if s not in runs]
    base = {b: runs[b]["rel_l2_per_seed"] for b in BASELINES if b in runs}
    first = next(iter(runs.values()))
    lines = [f"## {problem}: {first['epochs']} epochs, seeds {first['seeds']} (one ensemble per scheme), "
             f"derivative method {sorted(set(first['derivative_methods'].values()))}", "",
             "| rank | scheme | rel. L2 mean ± s.e. | min – max | per seed | / DN (geo. mean of the seeds' ratios) | "
             "seeds better than DN | / PINN (geo. mean) | seeds better than PINN | train s |",
             "|---:|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    order = sorted(runs, key=lambda s: statistics.fmean(runs[s]["rel_l2_per_seed"]))
    for rank, s in enumerate(order, 1):
        m = runs[s]
        errs = m["rel_l2_per_seed"]
        mu, se = mean_se(errs)
        paired = []
        for b in BASELINES:
            ratio = [e / d for e, d in zip(errs, base[b])] if b in base and s != b else []
            paired += [geo_mean(ratio), f"{sum(r < 1 for r in ratio)}/{len(ratio)}" if ratio else "–"]
        lines.append(f"| {rank} | {m['label']} | {mu:.3g} ± {se:.2g} | {min(errs):.3g} – {max(errs):.3g} | "
                     f"{', '.join(f'{e:.3g}' for e in errs)} | {paired[2]} | {paired[3]} | {paired[0]} | "
                     f"{paired[1]} | {m['train_seconds']:.0f} |")
    if missing:
        lines += ["", f"Not finished in time: {', '.join(missing)}."]
    return lines + [""], {s: {k: runs[s][k] for k in ("rel_l2_per_seed", "train_seconds", "epochs", "seeds")}
                          for s in runs}


def shown_argv(argv: list[str]) -> list[str]:
    """The command line for the report, without the ``--note`` text (the report prints it below)."""
    out, skip = [], False
    for a in argv:
        if skip or a.startswith("--note="):
            skip = False
            continue
        skip = a == "--note"
        if not skip:
            out.append(a)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", default="poisson,burgers")
    ap.add_argument("--epochs", default="5000,3000", help="per problem, comma-separated")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--schemes", default=None, help="default: pinn, dn and every registered aggregator")
    ap.add_argument("--root", type=Path, default=Path("bench-aggregators-accuracy"), help="the runs' directory")
    ap.add_argument("--derivative-method", default="fused")
    ap.add_argument("--report-only", action="store_true", help="write the report of the finished runs only")
    ap.add_argument("--note", default="", help="a paragraph for the report (e.g. how the load was)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    problems = [p for p in args.problems.split(",") if p]
    epochs = [int(e) for e in args.epochs.split(",")]
    schemes = args.schemes.split(",") if args.schemes else [*BASELINES, *aggregator_names()]
    if not args.report_only:
        for problem, n in zip(problems, epochs):
            train(problem, n, args.seeds, schemes, args.root,
                  ["--derivative-method", args.derivative_method, "--eval-every", str(max(1, n // 6))])
    info = describe("cpu")
    lines = [f"# Aggregators: accuracy against PINN and DN ({_dt.date.today()})", "",
             f"Machine: {info['device_name']}; torch {info['torch']}; one thread per run; load average at the "
             f"report {tuple(round(x, 1) for x in info['load_average'])}.",
             f"Command: `python bench/bench_aggregators_accuracy.py {' '.join(shown_argv(sys.argv[1:]))}`", ""]
    if args.note:
        lines += [args.note, ""]
    raw = {"machine": info}
    for problem in problems:
        table, raw[problem] = report(problem, args.root, schemes)
        lines += table
    text = "\n".join(lines)
    print(text)
    out = args.out or HERE / "results" / f"aggregators-accuracy-{device_slug(info)}-{_dt.date.today()}.md"
    atomic_write_text(out, text + "\n<details><summary>raw</summary>\n\n```json\n" + json.dumps(raw, default=str)
                      + "\n```\n</details>\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
