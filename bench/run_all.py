"""Run the training, DeepXDE and weighting-op comparisons and write one Markdown results file.

    python bench/run_all.py                 # full run (CPU: ~15-20 min on a shared 2-core box)
    python bench/run_all.py --quick         # smoke test: small point counts, few rounds, no compile
    python bench/run_all.py --out bench/results --rounds 9 --no-compile --no-deepxde

Writes ``<out>/<device-slug>-<YYYY-MM-DD>.md`` atomically (``fastpinn._io.atomic_write_text``): the machine
(CPU model, cores, load, torch/triton versions, thread count) and device, tables of ms and ratios with the
targets beside them, the per-phase profile of a step, and the raw per-round samples.

Every comparison runs in its own subprocess (``bench_ops.py``, ``bench_training.py --problem X``,
``bench_deepxde.py``), so that torch.compile caches, DeepXDE's import-time settings and memory of one
do not affect another. Within a subprocess the configurations are interleaved: each round runs every
configuration once, in a shuffled order, and a ratio is the median over rounds of the two times measured in
the same round. CPU runs use one torch thread (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

import _machine  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
PROBLEMS = ("burgers", "poisson", "allen_cahn")
TARGET_TAU10 = 1.03
TARGET_TAU1 = 1.10
TARGET_DEEPXDE = 5.0
COMPILE_CACHE = "cold"


def log(msg: str) -> None:
    print(f"[run_all {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_child(script: str, args: Sequence[str], threads: int, timeout: Optional[float] = None,
              env_extra: Optional[dict[str, str]] = None) -> Optional[dict]:
    """Run ``bench/<script> <args> --json <tmp>`` and return its JSON (``None`` on failure, logged)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        env = dict(os.environ, **(env_extra or {}))
        if DEVICE == "cpu":
            env["OMP_NUM_THREADS"] = str(threads)
            env["MKL_NUM_THREADS"] = str(threads)
        cmd = [sys.executable, str(HERE / script), *args, "--threads", str(threads), "--json", out]
        log("$ " + " ".join(cmd[1:]))
        tick = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=env, timeout=timeout, stdout=subprocess.PIPE, text=True)
        except subprocess.TimeoutExpired:
            log(f"{script} timed out after {timeout} s")
            return None
        sys.stderr.write(proc.stdout)
        log(f"{script} finished in {time.perf_counter() - tick:.0f} s (exit {proc.returncode})")
        if proc.returncode != 0 or not os.path.exists(out):
            return None
        with open(out, encoding="utf-8") as fh:
            result = json.load(fh)
        result["wall_s"] = time.perf_counter() - tick
        return result


# ------------------------------------------------------------------------------------ statistics
def _quantile(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    if not s:
        return float("nan")
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def paired(samples: dict[str, list[float]], num: str, den: str) -> tuple[float, float, float]:
    """(median, q25, q75) over rounds of num/den measured in the same round."""
    r = [a / b for a, b in zip(samples[num], samples[den])]
    return _quantile(r, 0.5), _quantile(r, 0.25), _quantile(r, 0.75)


def verdict(ratio: tuple[float, float, float], target: float, higher_is_better: bool = False) -> str:
    med, q25, q75 = ratio
    if higher_is_better:
        if med >= target:
            return "meets"
        return "within noise" if q75 >= target else "MISSES"
    if med <= target:
        return "meets"
    return "within noise" if q25 <= target else "MISSES"


def fmt_ratio(r: tuple[float, float, float], digits: int = 3) -> str:
    return f"{r[0]:.{digits}f} [{r[1]:.{digits}f}–{r[2]:.{digits}f}]"


def _ms(x: float) -> str:
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def _us(x: float) -> str:
    if x >= 1e5:
        return f"{x / 1e3:,.0f} ms"
    if x >= 1e3:
        return f"{x / 1e3:.2f} ms"
    return f"{x:.1f} µs"


# ------------------------------------------------------------------------------------- rendering
def render_machine(info: dict[str, Any], args: argparse.Namespace, started: str, wall_s: float) -> list[str]:
    load = info.get("load_average")
    load_s = ", ".join(f"{v:.2f}" for v in load) if load else "n/a"
    lines = [
        f"# fastpinn benchmarks — {info['device_name']}",
        "",
        f"Run `python bench/run_all.py{' --quick' if args.quick else ''}` started {started}, took {wall_s / 60:.1f} min.",
        "",
        "| | |",
        "|---|---|",
        f"| device | {info['device_name']} |",
        f"| CPU | {info['cpu_model']}, {info['cpu_cores_usable']} usable cores ({info['cpu_count']} online), "
        f"{info['memory_gib']:.0f} GiB RAM |" if info.get("memory_gib") else
        f"| CPU | {info['cpu_model']}, {info['cpu_cores_usable']} usable cores |",
        f"| load average at start (1/5/15 min) | {load_s} |",
        f"| torch threads | {args.threads} (`OMP_NUM_THREADS={args.threads}`, `torch.set_num_threads({args.threads})` in every "
        "benchmark process)" + (" — CPU timings" if DEVICE == "cpu" else "") + " |",
        f"| torch | {info['torch']} (CUDA {info['torch_cuda']}) |",
        f"| triton | {info['triton']} |",
        f"| python | {info['python']} on {info['platform']} |",
        f"| torch.compile caches | {info.get('compile_cache', 'n/a')} |",
    ]
    if DEVICE == "cuda":
        lines.append(f"| GPU | {info['device_name']}, {info.get('device_sms')} SMs, "
                     f"{info.get('device_memory_gib', 0):.0f} GiB, peak {info.get('device_peak_gbs')} GB/s |")
    lines.append("")
    if DEVICE == "cpu" and info.get("cpu_cores_usable", 99) <= 4:
        lines += [
            f"> **Shared machine.** This was a {info['cpu_cores_usable']}-core box shared with other people's jobs "
            f"(load average {load_s} on {info['cpu_cores_usable']} cores at the start). Absolute times are inflated and "
            "vary by tens of percent between minutes; only the ratios, measured side by side (interleaved, "
            "shuffled order, paired per round), are meaningful. Brackets give the quartiles of the per-round ratios.",
            "",
        ]
    return lines


def render_training(results: dict[str, Optional[dict]]) -> list[str]:
    lines = ["## Epoch time: schemes, plain PyTorch loop, compiled", ""]
    lines += [
        "fastpinn `Trainer` (derivatives by forward jets, one backward per term into `G[S, K, P]` for the dynamic "
        "schemes, fused statistics + compiled EMA at update epochs) against a plain PyTorch loop written as typical "
        "research code does it (`nn.Sequential`, nested `torch.autograd.grad(create_graph=True)`, one `backward()` "
        "of the weighted total per step; at a DN update epoch additionally one `autograd.grad(L_j, params, "
        "retain_graph=True)` per term, `vector_norm` of the concatenated gradients, `.item()`, λ in Python floats). "
        "Same network, initial weights, points and Adam. A timed block is 10 epochs (every τ divides it, so each "
        "block holds the same number of weight updates); ratios are over the PINN row of the same engine.",
        "",
    ]
    sizes = {r["size"] for r in results.values() if r}
    if "cpu" in sizes:
        lines += ["Point counts (size `cpu`): Burgers and Poisson as in the paper; Allen-Cahn with 4,096 PDE points, i.e. "
                  "exactly one of the paper's 4,096-point mini-batches per epoch (the paper's epoch is 5 such steps with "
                  "the same per-step cost; a τ = 10 update then falls on 1 step in 10 instead of 1 in 50, so the "
                  "overhead measured here is an upper bound).", ""]
    if "quick" in sizes:
        lines += ["Point counts (size `quick`): reduced for a smoke test; the ratios are not representative.", ""]
    for name in PROBLEMS:
        res = results.get(name)
        if res is None:
            lines += [f"### {name}", "", "_not run or failed_", ""]
            continue
        pts = ", ".join(f"{k} {v:,}" for k, v in res["points"].items())
        batch = res.get("batch_size") or {}
        bs = f"; mini-batch {', '.join(f'{k} {v:,}' for k, v in batch.items())}" if batch else ""
        lines += [f"### {name} — {res['n_params']:,} parameters; points: {pts}{bs}; "
                  f"{res['steps_per_epoch']} step(s)/epoch; size `{res['size']}` {res['sizes'] or '(paper)'}",
                  "",
                  f"{res['rounds']} interleaved rounds of {res['block']} epochs.",
                  "",
                  "| configuration | median ms/epoch | min ms/epoch | ratio over PINN (paired median [q25–q75]) "
                  "| ratio of mins | target | verdict |",
                  "|---|---:|---:|---:|---:|---:|---|"]
        S = res["samples_s"]
        for k in S:
            base = ("plain PINN" if k.startswith("plain") else
                    "fastpinn compiled PINN" if k.startswith("fastpinn compiled") else "fastpinn PINN")
            r = paired(S, k, base)
            rmin = min(S[k]) / min(S[base])
            target, v = "", ""
            if k.startswith("fastpinn") and k != base:
                if "τ=10" in k:
                    target, v = f"≤ {TARGET_TAU10}", verdict(r, TARGET_TAU10)
                elif "τ=1" in k:
                    target, v = f"≤ {TARGET_TAU1}", verdict(r, TARGET_TAU1)
            ratio_s = "1 (base)" if k == base else fmt_ratio(r)
            lines.append(f"| {k} | {_ms(1e3 * _quantile(S[k], 0.5))} | {_ms(1e3 * min(S[k]))} | {ratio_s} | "
                         f"{'' if k == base else f'{rmin:.3f}'} | {target} | {v} |")
        lines.append("")
        if res.get("warmup_s"):
            lines.append("Compile warm-up (one-off, not in the epoch times; compile caches "
                         f"{COMPILE_CACHE}): " + ", ".join(f"{k}: {v:.1f} s" for k, v in res["warmup_s"].items())
                         + " (the second trainer reuses the first one's compiled graphs in-process).")
            lines.append("")
        if "plain PINN" in S:
            lines += ["| scheme | plain loop ms/epoch | fastpinn ms/epoch | plain / fastpinn (paired) |"
                      + (" plain / fastpinn compiled |" if "fastpinn compiled PINN" in S else ""),
                      "|---|---:|---:|---:|" + ("---:|" if "fastpinn compiled PINN" in S else "")]
            for s in ("PINN", "DN τ=1", "DN τ=10"):
                row = (f"| {s} | {_ms(1e3 * _quantile(S[f'plain {s}'], 0.5))} | "
                       f"{_ms(1e3 * _quantile(S[f'fastpinn {s}'], 0.5))} | "
                       f"{fmt_ratio(paired(S, f'plain {s}', f'fastpinn {s}'), 2)} |")
                if "fastpinn compiled PINN" in S:
                    c = f"fastpinn compiled {s}"
                    row += f" {fmt_ratio(paired(S, f'plain {s}', c), 2)} |" if c in S else " |"
                lines.append(row)
            lines.append("")
    return lines


def render_profile(results: dict[str, Optional[dict]]) -> list[str]:
    lines = ["## Where the DN overhead goes (one update step, per phase)", "",
             "Median ms per phase of a full-batch DN update step (τ = 1), mirroring `Trainer.step`. On the same forward "
             "graph, in alternating order, the step's one backward per term into `G` (`K backwards`) and the single "
             "backward of Σλ_j L_j a PINN step takes (`1 backward`) are both timed (`retain_graph=True`); `extra` is "
             "the median over steps of their paired difference [quartiles]. PINN step = forward + 1 backward + Adam. "
             "Overhead at τ = 1 = extra + statistics + EMA + combine; at τ = 10 = extra + combine + (statistics + "
             "EMA) / 10 (the trainer takes the per-term backwards and the combine on every epoch).", "",
             "| problem | K | P | forward | 1 backward | K backwards | extra [q25–q75] | statistics | EMA | combine "
             "| Adam | PINN step | overhead τ=1 | overhead τ=10 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in PROBLEMS:
        res = results.get(name)
        if not res or "profile_ms" not in res:
            continue
        for ph in res["profile_ms"].values():
            if "backward_k" not in ph:  # older result layout
                continue
            pinn = ph["forward"] + ph["backward_1"] + ph["adam"]
            ex = ph["backward_extra"]
            o1 = ex + ph["stats"] + ph["ema"] + ph["combine"]
            o10 = ex + ph["combine"] + (ph["stats"] + ph["ema"]) / 10
            lines.append(
                f"| {name} | {len(res['points'])} | {res['n_params']:,} | {_ms(ph['forward'])} | {_ms(ph['backward_1'])} | "
                f"{_ms(ph['backward_k'])} | {ex:+.2f} [{ph['backward_extra_q25']:+.2f}–{ph['backward_extra_q75']:+.2f}] | "
                f"{ph['stats']:.3f} | {ph['ema']:.3f} | {ph['combine']:.3f} | {ph['adam']:.3f} | {_ms(pinn)} | "
                f"{100 * o1 / pinn:+.1f} % | {100 * o10 / pinn:+.1f} % |")
    lines.append("")
    return lines


def render_deepxde(res: Optional[dict]) -> list[str]:
    lines = ["## fastpinn vs DeepXDE — Burgers, paper setup", ""]
    if res is None:
        return lines + ["_failed (see the log)_", ""]
    if "skipped" in res:
        return lines + [f"_skipped_: {res['skipped']}", ""]
    S = res["samples_s"]
    lines += [
        f"DeepXDE {res['deepxde_version']} (PyTorch backend) vs fastpinn: network 2-[20]×8-1 tanh Glorot normal, "
        f"N_pde 10,000 + 100 IC + 200 BC (uniform random), full batch, Adam lr 1e-3, float32. DeepXDE evaluates the "
        f"network and its derivatives on all {res['deepxde_train_points']:,} training points in one batch. One "
        f"DeepXDE iteration = `train_next_batch` + `Model._train_step` (its training loop body without callbacks and "
        f"test evaluation); one fastpinn epoch = one Adam iteration. {res['rounds']} interleaved rounds of "
        f"{res['block']} iterations.",
        "",
        "| runner | median ms/iteration | min ms/iteration | DeepXDE / this (paired median [q25–q75]) | target | verdict |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for k in S:
        if k.startswith("DeepXDE"):
            lines.append(f"| {k} | {_ms(1e3 * _quantile(S[k], 0.5))} | {_ms(1e3 * min(S[k]))} | | | |")
        else:
            r = paired(S, "DeepXDE (PINN)", k)
            lines.append(f"| {k} | {_ms(1e3 * _quantile(S[k], 0.5))} | {_ms(1e3 * min(S[k]))} | {fmt_ratio(r, 2)} | "
                         f"≥ {TARGET_DEEPXDE:g}× | {verdict(r, TARGET_DEEPXDE, higher_is_better=True)} |")
    if res.get("warmup_s"):
        lines += ["", f"Compile warm-up (compile caches {COMPILE_CACHE}): "
                  + ", ".join(f"{k}: {v:.1f} s" for k, v in res["warmup_s"].items())]
    f = res.get("floor")
    if f:
        dde = _quantile(S["DeepXDE (PINN)"], 0.5) * 1e3
        lines += ["", f"**What bounds the ratio.** One fastpinn Burgers step does {f['matmul_mflop']:.0f} MFLOP of "
                  f"matrix multiplies (forward jets and backward, counted by `FlopCounterMode`); at the "
                  f"{f['matmul_gflops']:.1f} GFLOP/s this device reaches on the step's dominant shape "
                  f"(10,000-point activations × 20×20 weights, measured in the same run) they take "
                  f"{f['matmul_ms']:.1f} ms, and the {f['tanh_count'] / 1e6:.1f} M hidden-layer tanh take "
                  f"{f['tanh_ms']:.1f} ms at the measured {f['tanh_gelem_per_s']:.2f} G/s: a floor of "
                  f"{f['floor_ms']:.1f} ms per step before any elementwise jet arithmetic, Adam or overhead. "
                  f"DeepXDE's median is {dde:.1f} ms, so DeepXDE / fastpinn cannot exceed "
                  f"{dde / f['floor_ms']:.1f}× with this formulation on this device; "
                  f"{TARGET_DEEPXDE:g}× would need {dde / TARGET_DEEPXDE:.1f} ms per step."]
    lines.append("")
    return lines


def render_derivatives(res: Optional[dict]) -> list[str]:
    lines = ["## Derivative methods — forward jets vs the fused jet op vs torch.func vs nested autograd", ""]
    if res is None:
        return lines + ["_not run or failed_", ""]
    lines += ["One forward + backward to θ of each paper problem's PDE term (paper network, float32), per method, "
              f"{res['rounds']} interleaved rounds in shuffled order; ratios over the jets paired per round. "
              "`tune` is what `fastest_method` (the trainer's `derivative_method=\"tune\"`) picks on this device "
              "after checking that the methods agree.", "",
              "| problem | points | requests | jet ms | fused ms | func ms | autograd ms | fused / jet | func / jet "
              "| autograd / jet | tune picks |",
              "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, r in res["problems"].items():
        S = r["samples_s"]
        lines.append(f"| {name} | {r['n_points']:,} | {', '.join(r['requests'])} | "
                     + " | ".join(_ms(1e3 * _quantile(S[m], 0.5)) for m in ("jet", "fused", "func", "autograd")) + " | "
                     + " | ".join(fmt_ratio(paired(S, m, "jet"), 2) for m in ("fused", "func", "autograd"))
                     + f" | {r['tuned']} |")
    return lines + [""]


def render_allocator(res: Optional[dict]) -> list[str]:
    lines = ["## CPU allocator: glibc defaults vs freed memory retained (`fastpinn.malloc`)", ""]
    if res is None:
        return lines + ["_not run or failed_", ""]
    lines += [f"{res['problem']}, DN-PINN τ = 10, {res['epochs']} epochs per sample; each sample a fresh process "
              f"(the setting is process-wide), {res['rounds']} rounds alternating in shuffled order. The fastpinn CLI "
              "and every benchmark above run with freed memory retained.", "",
              "| allocator | median ms/epoch | minor page faults/epoch | system ms/epoch |", "|---|---:|---:|---:|"]
    for k, v in res["summary"].items():
        lines.append(f"| {k} | {_ms(v['ms'])} | {v['faults']:,.0f} | {v['sys_ms']:.1f} |")
    return lines + ["", f"default / retained: **{res['ratio_default_over_retained']:.2f}×** (paired median).", ""]


def render_ops(res: Optional[dict]) -> list[str]:
    lines = ["## Weighting ops: fused statistics and compiled update vs plain PyTorch", ""]
    if res is None:
        return lines + ["_failed (see the log)_", ""]
    lines += [
        "S = 1, float32, DN with p = 2. `fused` = `grad_stats(G, backend=\"cpp\")` (all 7 statistics of every row in "
        "one op); `naive loop` = per row `abs().sum()`, `pow(2).sum()`, `abs().max()`, `sum()`, `vector_norm`, "
        "`(g - g.mean()).pow(2).sum()`, non-finite count; `torch ref` = the vectorised pure-PyTorch oracle; "
        "`G.sum(-1)` = one read of G (the memory-bound floor). EMA: the compiled `ema_update` vs a Python loop over "
        "terms with `.item()` and λ in Python floats. Whole DN update: `grad_stats` + `ema_update` vs per term "
        "`vector_norm(g).item()` + Python floats (computes only the norms DN needs). Times are medians of "
        "interleaved rounds; ratios are paired medians (> 1: fastpinn faster).",
        "",
        "| P | K | fused stats | naive loop | naive / fused | torch ref / fused | fused GB/s | `G.sum(-1)` GB/s "
        "| EMA cpp | EMA Python | Python / cpp | DN update fused | DN update naive | naive / fused |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in res["cases"]:
        m = c["median_us"]
        lines.append(
            f"| {c['P']:,} | {c['K']} | {_us(m['stats-fused-cpp'])} | {_us(m['stats-naive-loop'])} | "
            f"{c['naive_over_fused_stats']:.1f}× | {c['ref_over_fused_stats']:.1f}× | {c['fused_gbs']:.2f} | "
            f"{c['floor_gbs']:.1f} | {_us(m['ema-cpp'])} | {_us(m['ema-python'])} | {c['python_over_cpp_ema']:.1f}× | "
            f"{_us(m['dn-update-fused'])} | {_us(m['dn-update-naive'])} | {c['naive_over_fused_update']:.2f}× |")
    lines.append("")
    if any("naive_over_triton_stats" in c for c in res["cases"]):
        lines += ["| P | K | Triton stats | naive / Triton | Triton GB/s |", "|---:|---:|---:|---:|---:|"]
        for c in res["cases"]:
            if "naive_over_triton_stats" in c:
                lines.append(f"| {c['P']:,} | {c['K']} | {_us(c['median_us']['stats-fused-triton'])} | "
                             f"{c['naive_over_triton_stats']:.1f}× | {c['triton_gbs']:.0f} |")
        lines.append("")
    tb = res.get("triton_bandwidth")
    if tb:
        peak, clone = tb.get("peak_gbs"), tb.get("clone_gbs")
        lines += [f"### Triton statistics kernel bandwidth at P = 10^7 on {tb['device']}", "",
                  f"Peak memory bandwidth (datasheet table): {peak if peak else 'unknown'} GB/s; practical peak "
                  f"(`torch.clone`, read + write): {clone:.0f} GB/s." if clone else "",
                  "",
                  "| K | Triton ms | Triton GB/s | % of peak | % of clone | C++ CUDA GB/s | `G.sum(-1)` GB/s |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for row in tb["rows"]:
            t = row.get("triton", {})
            if "gbs" not in t:
                lines.append(f"| {row['K']} | {t.get('error', 'n/a')} | | | | | |")
                continue
            lines.append(
                f"| {row['K']} | {t['ms']:.3f} | {t['gbs']:.0f} | {100 * t['gbs'] / peak:.0f} % | "
                f"{100 * t['gbs'] / clone:.0f} % | {row.get('cpp-cuda', {}).get('gbs', float('nan')):.0f} | "
                f"{row.get('torch.sum', {}).get('gbs', float('nan')):.0f} |"
                if peak and clone else
                f"| {row['K']} | {t['ms']:.3f} | {t['gbs']:.0f} | | | | |")
        lines.append("")
    elif DEVICE == "cpu":
        lines += ["The Triton kernel's bandwidth is measured on CUDA only (no GPU here; the Triton CPU interpreter is "
                  "not a benchmark).", ""]
    return lines


def render_targets(training: dict[str, Optional[dict]], deepxde: Optional[dict]) -> list[str]:
    lines = ["## Targets at a glance", "",
             "| target | measured (paired median [q25–q75]) | verdict |", "|---|---|---|"]
    for name in PROBLEMS:
        res = training.get(name)
        if not res:
            continue
        S = res["samples_s"]
        for k, tgt in (("fastpinn DN τ=10", TARGET_TAU10), ("fastpinn DN τ=1", TARGET_TAU1),
                       ("fastpinn compiled DN τ=10", TARGET_TAU10)):
            if k not in S:
                continue
            base = "fastpinn compiled PINN" if "compiled" in k else "fastpinn PINN"
            r = paired(S, k, base)
            lines.append(f"| {name}: {k.removeprefix('fastpinn ')} / PINN ≤ {tgt}"
                         f"{' (compiled)' if 'compiled' in k else ''} | {fmt_ratio(r)} | {verdict(r, tgt)} |")
    if deepxde and "samples_s" in deepxde:
        for k in deepxde["samples_s"]:
            if k.startswith("fastpinn"):
                r = paired(deepxde["samples_s"], "DeepXDE (PINN)", k)
                lines.append(f"| Burgers: DeepXDE / {k} ≥ {TARGET_DEEPXDE:g} | {fmt_ratio(r, 2)} | "
                             f"{verdict(r, TARGET_DEEPXDE, True)} |")
    lines += ["", "_meets_: the median meets the target; _within noise_: the median misses but the better quartile "
              "meets it; _MISSES_: both miss. On a loaded machine the per-round DN/PINN ratios scatter by ±5–10 %, "
              "more than the targets' margins; the per-phase profile below (paired within one step) gives the "
              "intrinsic overhead.", ""]
    return lines


def render_raw(payload: dict) -> list[str]:
    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if k not in ("wall_s",)}
        if isinstance(obj, float):
            return float(f"{obj:.6g}")
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    return ["<details><summary>Raw results (seconds per epoch / iteration per round, µs per op call)</summary>", "",
            "```json", json.dumps(strip(payload), indent=1, ensure_ascii=False), "```", "", "</details>", ""]


# ------------------------------------------------------------------------------------------ main
def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small point counts, few rounds, no compile")
    ap.add_argument("--out", default=str(HERE / "results"), help="directory of the results file")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds per comparison (default 9; quick 3)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads on CPU (default 1)")
    ap.add_argument("--problems", nargs="*", choices=PROBLEMS, default=list(PROBLEMS))
    ap.add_argument("--no-compile", action="store_true", help="skip the compile=True rows")
    ap.add_argument("--warm-compile-cache", action="store_true",
                    help="let torch.compile reuse its on-disk caches (default: disabled, so the reported warm-up "
                         "is the first-time cost)")
    ap.add_argument("--no-deepxde", action="store_true")
    ap.add_argument("--no-ops", action="store_true")
    ap.add_argument("--no-derivatives", action="store_true")
    ap.add_argument("--no-allocator", action="store_true")
    ap.add_argument("--name", default=None, help="results file name (default <device-slug>-<date>.md)")
    args = ap.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 9)
    compile_rows = not (args.quick or args.no_compile)
    size = "quick" if args.quick else ("cpu" if DEVICE == "cpu" else "paper")
    if DEVICE == "cpu":
        torch.set_num_threads(args.threads)
    info = _machine.describe(DEVICE)
    started = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    tick = time.perf_counter()
    log(f"machine: {info['device_name']}, torch {info['torch']}, load {info['load_average']}")

    cold = {} if args.warm_compile_cache else {"TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1"}
    info["compile_cache"] = "warm (on-disk caches allowed)" if args.warm_compile_cache else \
        "cold (TORCHINDUCTOR_FORCE_DISABLE_CACHES=1)"
    training: dict[str, Optional[dict]] = {}
    for name in args.problems:
        extra = ["--compile"] if compile_rows else []
        training[name] = run_child("bench_training.py", ["--problem", name, "--size", size, "--rounds", str(rounds),
                                                         *extra], args.threads, env_extra=cold)
    deepxde = None
    if not args.no_deepxde:
        deepxde = run_child("bench_deepxde.py", ["--rounds", str(rounds), "--block", "3" if args.quick else "10",
                                                 *(["--compile"] if compile_rows else [])], args.threads,
                            env_extra=cold)
    derivs = None
    if not args.no_derivatives:
        derivs = run_child("bench_derivatives.py", ["--size", size, "--rounds", str(rounds)], args.threads)
    alloc = None
    if not args.no_allocator and DEVICE == "cpu":
        alloc = run_child("bench_allocator.py", ["--problem", "burgers", "--rounds", str(max(3, rounds // 2)),
                                                 "--epochs", "10" if args.quick else "30"], args.threads)
    ops_res = None
    if not args.no_ops:
        ops_res = run_child("bench_ops.py", ["--quick"] if args.quick else [], args.threads)

    global COMPILE_CACHE
    COMPILE_CACHE = info["compile_cache"]
    wall = time.perf_counter() - tick
    info["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    lines = render_machine(info, args, started, wall)
    end_load = info["load_average_end"]
    if end_load:
        lines += [f"Load average at the end: {', '.join(f'{v:.2f}' for v in end_load)}.", ""]
    lines += render_targets(training, deepxde)
    lines += render_training(training)
    lines += render_profile(training)
    lines += render_deepxde(deepxde)
    lines += render_derivatives(derivs)
    if DEVICE == "cpu":
        lines += render_allocator(alloc)
    lines += render_ops(ops_res)
    lines += render_raw({"run": {"started": started, "wall_s": wall, "quick": args.quick, "rounds": rounds,
                                 "threads": args.threads, "size": size, "compile_rows": compile_rows},
                         "machine": info, "training": training, "deepxde": deepxde, "derivatives": derivs,
                         "allocator": alloc, "ops": ops_res})
    fname = args.name or f"{_machine.device_slug(info)}-{_dt.date.today().isoformat()}{'-quick' if args.quick else ''}.md"
    path = Path(args.out) / fname
    from fastpinn import _io

    _io.atomic_write_text(path, "\n".join(lines))
    log(f"wrote {path}")
    print(path)
    failed = [n for n, r in training.items() if r is None]
    failed += ["deepxde"] if not args.no_deepxde and deepxde is None else []
    failed += ["ops"] if not args.no_ops and ops_res is None else []
    failed += ["derivatives"] if not args.no_derivatives and derivs is None else []
    failed += ["allocator"] if not args.no_allocator and DEVICE == "cpu" and alloc is None else []
    if failed:
        log(f"FAILED: {', '.join(failed)} (see the log above); the file marks them 'not run or failed'")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
