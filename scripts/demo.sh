#!/usr/bin/env bash
# Set up (see setup.sh) and run the main job: Poisson with PINN vs DN-PINN on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
fastpinn demo "$@"
