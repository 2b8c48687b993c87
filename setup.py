"""Build of fastpinn: pure-Python packages plus the C++/CUDA extension ``fastpinn._C`` built by CMake.

CMakeLists.txt is the one description of the native build; this file only drives it. Build without
isolation, against the torch already installed (the extension must match it)::

    pip install torch setuptools wheel pybind11 cmake ninja
    pip install --no-build-isolation -e .     # or: pip install --no-build-isolation .

Environment:
    FASTPINN_WITH_CUDA=0/1   force the CUDA kernels off/on (default: on iff nvcc is found and torch is a CUDA build)
    CMAKE_ARGS               extra arguments for the CMake configure step
    CMAKE_BUILD_PARALLEL_LEVEL  parallel compile jobs (default: os.cpu_count())
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, find_namespace_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    """An extension whose sources are built by CMake (``sourcedir`` holds the CMakeLists.txt)."""

    def __init__(self, name: str, sourcedir: Path = ROOT) -> None:
        super().__init__(name, sources=[])
        self.sourcedir = str(sourcedir)


def _cuda_option() -> str:
    value = os.environ.get("FASTPINN_WITH_CUDA", "").strip().lower()
    if value in ("", "auto"):
        return "AUTO"
    if value in ("1", "on", "true", "yes"):
        return "ON"
    if value in ("0", "off", "false", "no"):
        return "OFF"
    raise RuntimeError(f"FASTPINN_WITH_CUDA must be 0 or 1 (or auto), got {value!r}")


def _cuda_architectures() -> str | None:
    """CMake architectures from torch's TORCH_CUDA_ARCH_LIST convention ("8.0;9.0+PTX" -> "80-real;90")."""
    arch_list = os.environ.get("TORCH_CUDA_ARCH_LIST", "").replace(" ", ";")
    archs = []
    for item in filter(None, arch_list.split(";")):
        ptx = item.endswith("+PTX")
        number = item.removesuffix("+PTX").replace(".", "")
        archs.append(number if ptx else f"{number}-real")
    return ";".join(archs) or None


class CMakeBuild(build_ext):
    """Configure and build CMakeExtensions with CMake; the library lands where setuptools expects it."""

    def build_extension(self, ext: Extension) -> None:
        if not isinstance(ext, CMakeExtension):
            return super().build_extension(ext)
        try:
            import pybind11
            import torch.utils
        except ImportError as exc:  # pragma: no cover - build environment error
            raise RuntimeError(
                "building fastpinn._C needs torch and pybind11 installed in the build environment; "
                "install them first and build with `pip install --no-build-isolation ...`"
            ) from exc

        # get_ext_fullpath is build/lib.../fastpinn/_C.<abi>.so for regular builds; for editable installs
        # setuptools then copies it into the source tree (build_ext.copy_extensions_to_source).
        output_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        output_dir.mkdir(parents=True, exist_ok=True)
        cuda = _cuda_option()
        torch_prefix = torch.utils.cmake_prefix_path

        # A CMake cache remembers the interpreter and torch it found, so every distinct (python, torch, CUDA
        # option) gets its own build directory: building the same checkout from two venvs stays correct.
        # It lives in the source tree's build/ (not setuptools' build_temp, which is a fresh temporary directory
        # for every editable install) so that rebuilds are incremental.
        key = hashlib.sha1(f"{sys.executable}|{torch_prefix}|{cuda}".encode()).hexdigest()[:10]
        build_dir = Path(ext.sourcedir) / "build" / f"cmake-{key}"
        build_dir.mkdir(parents=True, exist_ok=True)

        cmake = shutil.which("cmake")
        if cmake is None:
            raise RuntimeError("cmake not found: pip install cmake (>= 3.18)")
        configure = [
            cmake,
            "-S",
            ext.sourcedir,
            "-B",
            str(build_dir),
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DCMAKE_PREFIX_PATH={torch_prefix}",
            f"-DTorch_DIR={Path(torch_prefix) / 'Torch'}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            f"-DCMAKE_BUILD_TYPE={'Debug' if self.debug else 'Release'}",
            f"-DFASTPINN_OUTPUT_DIR={output_dir}",
            f"-DFASTPINN_WITH_CUDA={cuda}",
        ]
        archs = _cuda_architectures()
        if archs:
            configure.append(f"-DCMAKE_CUDA_ARCHITECTURES={archs}")
        cache = build_dir / "CMakeCache.txt"
        if shutil.which("ninja") and not cache.exists():  # the generator of an existing cache is fixed
            configure += ["-G", "Ninja"]
        configure += shlex.split(os.environ.get("CMAKE_ARGS", ""))

        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 1)
        build = [cmake, "--build", str(build_dir), "--target", "_C", "-j", jobs]
        subprocess.run(configure, check=True)
        subprocess.run(build, check=True)

        built = output_dir / Path(self.get_ext_filename(ext.name)).name
        if not built.exists():
            raise RuntimeError(f"CMake finished but {built} is missing; check FASTPINN_OUTPUT_DIR handling")


setup(
    # fastpinn/kernels is a link to the top-level kernels/ (kept there as the home of the Triton kernels), so the
    # package is exactly the folder fastpinn/ and the root is its source directory ("" -> "."). With that simple
    # layout setuptools makes an editable install a plain sys.path entry to this checkout instead of an import
    # hook appended to sys.meta_path: a hook loses to any folder named fastpinn/ in the current directory (a
    # clone's own folder, seen from its parent, is a namespace package that shadowed the install: "cannot import
    # name 'Problem' from 'fastpinn' (unknown location)"), whereas a regular package on sys.path wins over it.
    # Namespace discovery also picks up subpackages that have no __init__.py yet; __pycache__ is not a package.
    packages=find_namespace_packages(include=["fastpinn", "fastpinn.*"], exclude=["*.__pycache__"]),
    package_dir={"": "."},
    ext_modules=[CMakeExtension("fastpinn._C")],
    cmdclass={"build_ext": CMakeBuild},
    zip_safe=False,
)
