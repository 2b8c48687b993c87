#!/usr/bin/env bash
# Set up a virtual environment with fastpinn built from this checkout.
# - uses the active virtualenv if there is one, else creates/uses ./.venv (override: FASTPINN_VENV=dir)
# - installs torch==2.13.0 only when torch is missing (a bare "torch" requirement would pull a large CUDA build)
# - builds the C++ extension without build isolation, against the torch that is installed
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${VIRTUAL_ENV:-}" ]]; then
    venv="${FASTPINN_VENV:-.venv}"
    if [[ ! -x "$venv/bin/python" ]]; then
        "${PYTHON:-python3}" -m venv "$venv"
    fi
    # shellcheck disable=SC1091
    source "$venv/bin/activate"
fi

pip_install() { python -m pip install --disable-pip-version-check -q "$@"; }

if ! python -c "import torch" >/dev/null 2>&1; then
    echo "[setup] installing torch==2.13.0"
    pip_install torch==2.13.0
fi
echo "[setup] installing build and runtime dependencies"
pip_install "numpy>=1.24" "tqdm>=4.60" "matplotlib>=3.7" "pybind11>=2.12" "setuptools>=64" wheel "cmake>=3.18" ninja \
    "pytest>=7" "pytest-benchmark>=4" "scipy>=1.10"
if [[ "$(uname -s)" == "Linux" ]] && ! python -c "import triton" >/dev/null 2>&1; then
    pip_install "triton>=3.0"
fi
echo "[setup] building fastpinn (C++ extension via CMake)"
pip_install --no-build-isolation -e .
python -c "import fastpinn, fastpinn.ops._ext as e; e.load(); print('[setup] fastpinn', fastpinn.__version__, e.build_info())"
