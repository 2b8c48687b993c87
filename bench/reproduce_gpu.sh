#!/usr/bin/env bash
# The paper's Table 1 (Burgers, 30,000 epochs) and Table 3 (Allen-Cahn, 50,000 epochs, batch 4,096) in
# full -- 7 configurations x 10 seeds each -- on one GPU, resumable, then both tables printed.
#
#   bash bench/reproduce_gpu.sh ROOT                      # runs in ROOT/table1-10seeds, ROOT/table3-10seeds
#   BUDGET_S=500 bash bench/reproduce_gpu.sh ROOT         # stop cleanly after ~500 s; rerun to continue
#   DEVICE=cpu SEEDS=2 EPOCHS=3 EXTRA="--n-pde 64 --no-figures" bash bench/reproduce_gpu.sh ROOT  # smoke test
#
# Settings (environment): DEVICE (cuda), SEEDS (10, the paper's), EPOCHS (empty: the paper's), TABLES
# ("table1 table3"), METHOD (fused), STEP_MODE (eager), BUDGET_S (empty: no limit), EXTRA (more
# `fastpinn reproduce` options). Each configuration trains its seeds as one batched ensemble (theta[S, P]:
# one launch per op for all seeds instead of one per seed) and the configurations run one after the other,
# so each row's time is that configuration's alone, comparable with the paper's A6000 column.
# METHOD=fused is the derivative method the CPU tables use (the same numerics on both); on CUDA it runs
# the Triton jet kernels. Not yet measured on a GPU against METHOD=jet (bench/gpu_session.sh runs
# bench_fused_mlp.py, which does): if jet is faster there, use it -- the method is not part of a run's
# identity, so a resume may switch. STEP_MODE=cuda_graph has not run on a GPU yet; eager is the default.
# BUDGET_S: the remaining time is given to each `reproduce` as a SIGTERM deadline; a stopped run writes its
# checkpoint and exits 143, and the next call of this script resumes it (carry ROOT along when the
# machine is a fresh one). The report at the end marks unfinished rows "in progress, epoch E/N".
set -uo pipefail
ROOT=${1:?usage: bash bench/reproduce_gpu.sh ROOT}
REPO=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
SEEDS=${SEEDS:-10}
TABLES=${TABLES:-table1 table3}
METHOD=${METHOD:-fused}
STEP_MODE=${STEP_MODE:-eager}
read -r -a EXTRA_ARGS <<<"${EXTRA:-}"
START=$(date +%s)
mkdir -p "$ROOT"

args() {  # the options that name one table's sweep (train and report alike)
  echo "$1 --seeds $SEEDS ${EPOCHS:+--epochs $EPOCHS} --device $DEVICE --out $ROOT/$1-${SEEDS}seeds"
}

rc=0
for t in $TABLES; do
  limit=()
  if [ -n "${BUDGET_S:-}" ]; then
    left=$((BUDGET_S - ($(date +%s) - START)))
    if [ "$left" -le 10 ]; then echo "== budget spent before $t"; rc=143; break; fi
    limit=(timeout -s TERM --kill-after=60 "$left")
  fi
  echo "== $(date -u +%FT%TZ) $t on $DEVICE, $SEEDS seeds, method $METHOD, step mode $STEP_MODE"
  # shellcheck disable=SC2046  # args() is split on purpose
  "${limit[@]}" $PY -m fastpinn reproduce $(args "$t") --derivative-method "$METHOD" --step-mode "$STEP_MODE" \
    --checkpoint-seconds 60 --no-progress "${EXTRA_ARGS[@]}" >"$ROOT/$t.log" 2>&1
  code=$?
  tail -3 "$ROOT/$t.log"
  # timeout exits 124 when it sent the SIGTERM (the run then wrote its checkpoint and exited 143)
  if [ "$code" -eq 124 ] || [ "$code" -eq 143 ]; then
    echo "== $t stopped by BUDGET_S after writing its checkpoint; rerun to resume"; rc=143; break
  elif [ "$code" -ne 0 ]; then
    echo "== $t failed with exit $code (see $ROOT/$t.log)"; rc=$code; break
  fi
done
for t in $TABLES; do
  echo
  # shellcheck disable=SC2046
  $PY -m fastpinn reproduce $(args "$t") "${EXTRA_ARGS[@]}" --report-only
done
exit $rc
