"""The compiled extension fastpinn._C: it loads, says how it was built, and a missing or stale build breaks
nothing until an op is first used, which then explains how to rebuild."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fastpinn.ops import _ext

ROOT = Path(__file__).resolve().parents[1]
needs_ext = pytest.mark.skipif(not _ext.available(), reason="fastpinn._C is not built")


def run_python(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (outside the repository, so the installed package is used)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(torch.__file__).parents[2],  # site-packages' parent: neutral, yet importable as an install
        env=env,
    )


def major_minor(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.match(r"(\d+)\.(\d+)", version).groups())


def test_extension_loads_and_registers_ops() -> None:
    # Not skipped when the extension is missing: this is the test that fails (with the rebuild hint) then,
    # while the tests of the ops skip.
    mod = _ext.load()
    assert mod is _ext.load()  # cached
    assert mod.__name__ == "fastpinn._C"
    import fastpinn

    assert Path(mod.__file__).parent == Path(fastpinn.__file__).parent  # importable from the package itself
    assert str(torch.ops.fastpinn.grad_stats.default._schema) == "fastpinn::grad_stats(Tensor G, float p) -> Tensor"
    schema = str(torch.ops.fastpinn.ema_update.default._schema)
    for arg in ("Tensor(a!) lam", "Tensor(b!) lam_applied", "Tensor(c!) n_updates", "Tensor(d!) skipped"):
        assert arg in schema
    assert schema.endswith("-> ()")


@needs_ext
def test_build_info() -> None:
    info = _ext.build_info()
    assert {"cuda", "torch_version", "compiler"} <= set(info)
    assert isinstance(info["cuda"], bool)
    if torch.version.cuda is None:  # a CPU build of torch: the CUDA kernels cannot have been built
        assert info["cuda"] is False
    assert major_minor(info["torch_version"]) == major_minor(torch.__version__)
    assert info["compiler"] and info["compiler"] != "unknown"


def test_missing_extension_fails_only_on_first_use() -> None:
    result = run_python(
        """
        import sys
        sys.modules["fastpinn._C"] = None  # any `import fastpinn._C` now raises ImportError
        import torch
        import fastpinn
        import fastpinn.ops
        from fastpinn.ops import _ext
        assert not _ext.available()
        for attempt in range(2):  # the failure is cached, and reported the same way each time
            try:
                fastpinn.ops.grad_stats(torch.ones(1, 2, 3), backend="cpp")
            except RuntimeError as exc:
                print(exc)
            else:
                raise SystemExit("no RuntimeError")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("pip install --no-build-isolation -e .") == 2
    assert result.stdout.count("Original error:") == 2 and "fastpinn._C" in result.stdout


@needs_ext
def test_extension_built_for_other_torch_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    _ext.load()
    monkeypatch.setattr(torch, "__version__", "1.0.0")  # as if torch had been upgraded after the build
    with pytest.raises(RuntimeError, match=r"built against torch \S+, but torch 1\.0\.0 is installed") as info:
        _ext.import_extension()
    assert "pip install --no-build-isolation -e ." in str(info.value)


@needs_ext
def test_direct_import_registers_ops_and_fakes() -> None:
    # Importing the module alone (not through _ext) must leave the ops usable under torch.compile:
    # the C++ library names fastpinn.ops.fake as the home of the fake implementations.
    result = run_python(
        """
        import fastpinn._C
        import torch
        from torch._subclasses.fake_tensor import FakeTensorMode
        with FakeTensorMode():
            out = torch.ops.fastpinn.grad_stats(torch.empty(2, 3, 10), 2.0)
        print(tuple(out.shape))
        """
    )
    assert result.returncode == 0, result.stderr
    assert "(2, 3, 7)" in result.stdout


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")
@pytest.mark.skipif(torch.version.cuda is not None, reason="checks the CPU-only torch case")
def test_cmake_refuses_cuda_without_cuda_torch(tmp_path: Path) -> None:
    result = subprocess.run(
        ["cmake", "-S", str(ROOT), "-B", str(tmp_path), f"-DPython_EXECUTABLE={sys.executable}",
         "-DFASTPINN_WITH_CUDA=ON"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "FASTPINN_WITH_CUDA=ON but" in result.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
@pytest.mark.parametrize("source", sorted(p.name for p in (ROOT / "csrc" / "cuda").glob("*.cu")))
def test_cuda_sources_compile(source: str, tmp_path: Path) -> None:
    # Compile-only check of the CUDA kernels where no CUDA build of torch is available (the build itself
    # leaves them out then). The CPU wheel of torch ships the c10/cuda headers but not the generated
    # cuda_cmake_macros.h, which C10_CUDA_NO_CMAKE_CONFIGURE_FILE skips.
    include = Path(torch.__file__).parent / "include"
    std = "c++20" if major_minor(torch.__version__) >= (2, 10) else "c++17"  # as CMakeLists.txt
    cmd = [
        "nvcc", "-c", str(ROOT / "csrc" / "cuda" / source), "-o", str(tmp_path / "out.o"), f"-std={std}", "-O3",
        "--fmad=false", "--expt-relaxed-constexpr", "-arch=sm_80", "-Xcompiler", "-fPIC",
        "-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE", f"-I{ROOT / 'csrc'}", f"-I{include}",
        f"-I{include / 'torch' / 'csrc' / 'api' / 'include'}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-5000:]
    assert "warning" not in result.stderr.lower(), result.stderr[-5000:]
