#!/usr/bin/env bash
# Set up (see setup.sh) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# Without a GPU the Triton kernels run in the interpreter (tests/conftest.py sets TRITON_INTERPRET=1).
python -m pytest -q -m "not slow" "$@"
