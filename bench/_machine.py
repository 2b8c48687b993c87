"""Describe the machine and device a benchmark ran on (for result files and their names).

    from _machine import describe, device_slug, peak_bandwidth_gbs
    info = describe("cpu")          # dict: cpu model, cores, load, torch/triton versions, threads, device name
    slug = device_slug(info)        # e.g. "cpu-amd-epyc-2c" or "cuda-nvidia-h200"

Nothing here is timed; ``copy_bandwidth_gbs`` measures a ``torch.clone`` on the device as a practical
peak memory bandwidth (read + write bytes / time).
"""

from __future__ import annotations

import os
import platform
import re
from typing import Any, Optional

import torch

__all__ = ["describe", "device_slug", "peak_bandwidth_gbs", "copy_bandwidth_gbs", "KNOWN_PEAK_GBS"]

# Theoretical peak DRAM/HBM bandwidth in GB/s (vendor datasheets), matched by substring of the device name.
# Order matters: the first match wins, so the more specific names come first.
KNOWN_PEAK_GBS: tuple[tuple[str, float], ...] = (
    ("H200", 4800.0),
    ("H100 PCIe", 2000.0),
    ("H100 NVL", 3900.0),
    ("H100", 3350.0),  # SXM
    ("A100 80GB", 2039.0),
    ("A100-SXM4-80GB", 2039.0),
    ("A100-PCIE-40GB", 1555.0),
    ("A100", 1555.0),  # 40 GB
    ("L40S", 864.0),
    ("L4", 300.0),
    ("A10", 600.0),
    ("V100", 900.0),
    ("T4", 320.0),
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _triton_version() -> Optional[str]:
    try:
        import triton

        return str(triton.__version__)
    except Exception:  # noqa: BLE001 - absent or broken install: just report it missing
        return None


def _memory_gib() -> Optional[float]:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except (OSError, ValueError):
        pass
    return None


def describe(device: str = "cpu") -> dict[str, Any]:
    """Machine and device description; ``device`` is ``"cpu"`` or ``"cuda"`` (current CUDA device)."""
    info: dict[str, Any] = {
        "device": device,
        "cpu_model": _cpu_model(),
        "cpu_cores_usable": _usable_cores(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "triton": _triton_version(),
        "triton_interpret": os.environ.get("TRITON_INTERPRET"),
    }
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        info["device_name"] = props.name
        info["device_memory_gib"] = props.total_memory / 2**30
        info["device_sms"] = props.multi_processor_count
        info["device_peak_gbs"] = peak_bandwidth_gbs(props.name, props)
    else:
        info["device_name"] = f"CPU ({info['cpu_model']}, {info['cpu_cores_usable']} usable cores)"
    return info


def device_slug(info: dict[str, Any]) -> str:
    """A file-name-safe short name: ``cuda-nvidia-h200`` or ``cpu-amd-epyc-2c``."""
    if info.get("device") == "cuda" and "device_sms" in info:
        name = "cuda-" + str(info["device_name"])
    else:
        name = f"cpu-{info['cpu_model']}-{info['cpu_cores_usable']}c"
    name = re.sub(r"\(r\)|\(tm\)|cpu @.*$|processor", "", name.lower())
    slug = re.sub(r"[^a-z0-9]+", "-", name).strip("-")
    return slug[:60] or "unknown"


def peak_bandwidth_gbs(name: str, props: Any = None) -> Optional[float]:
    """Theoretical peak memory bandwidth of a known device (GB/s), else from the device properties
    (2 x memory clock x bus width) when torch exposes them, else ``None``."""
    for key, gbs in KNOWN_PEAK_GBS:
        if key.lower() in name.lower():
            return gbs
    clock_khz = getattr(props, "memory_clock_rate", None)
    bus_bits = getattr(props, "memory_bus_width", None)
    if clock_khz and bus_bits:
        return 2.0 * clock_khz * 1e3 * bus_bits / 8 / 1e9
    return None


def copy_bandwidth_gbs(n_bytes: int = 1 << 30, device: str = "cuda", reps: int = 20) -> Optional[float]:
    """Practical peak: bytes read + written per second by ``torch.clone`` of an ``n_bytes`` float32 tensor
    (median of ``reps`` timed copies, CUDA events). ``None`` without CUDA."""
    if device != "cuda" or not torch.cuda.is_available():
        return None
    x = torch.empty(n_bytes // 4, dtype=torch.float32, device=device).uniform_()
    for _ in range(3):
        x.clone()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        y = x.clone()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
        del y
    times.sort()
    t = times[len(times) // 2]
    del x
    torch.cuda.empty_cache()
    return 2.0 * n_bytes / t / 1e9

