#!/usr/bin/env bash
# Set up (see setup.sh) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# Test-only oracles of the aggregation solvers (tests/test_aggregation_solvers.py skips what is missing):
# TorchJD and conflictfree with --no-deps so that pip can never touch torch; the solvers TorchJD's UPGrad,
# CAGrad and Nash-MTL call (quadprog/qpsolvers, cvxpy/clarabel/ecos) do not depend on torch.
echo "[test] installing the test-only oracles (torchjd, conflictfree and their solvers)"
python -m pip install --disable-pip-version-check -q --no-deps "torchjd==0.18.0" "conflictfree==0.1.8" \
    || echo "[test] torchjd/conflictfree unavailable: their oracle tests will skip"
python -m pip install --disable-pip-version-check -q "quadprog>=0.1.9,!=0.1.10" "qpsolvers>=1.0.1" "cvxpy>=1.3" \
    clarabel "ecos>=2.0.14" || echo "[test] quadprog/cvxpy unavailable: TorchJD's UPGrad/CAGrad/Nash-MTL oracles will skip"
# Without a GPU the Triton kernels run in the interpreter (tests/conftest.py sets TRITON_INTERPRET=1).
python -m pytest -q -m "not slow" "$@"
