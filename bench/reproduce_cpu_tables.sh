#!/usr/bin/env bash
# The paper's tables on the CPU at the full protocol (issue 18 item 5), resumable: Table 1's PINN and
# DN-PINN (beta = 0.99) rows with 3 seeds, then Table 2 (Poisson) in full, 10 seeds, 30,000 epochs.
#
#   nice -n 19 bash bench/reproduce_cpu_tables.sh ROOT >>ROOT/log.txt 2>&1 &   # train (or resume)
#   bash bench/reproduce_cpu_tables.sh ROOT report                           # the tables so far
#
# Runs go to ROOT/table1-3seeds and ROOT/table2 (one directory per configuration, an ensemble of its
# seeds each, fused derivative method, one thread). Rerun the same command to continue: finished
# configurations are checked and reused, an interrupted one resumes from its checkpoint (written every
# 120 s of training, on SIGTERM/SIGINT and at the end; a kill -9 loses at most those 120 s). `report`
# trains nothing and writes nothing under ROOT: it prints both tables, unfinished rows marked
# "in progress, epoch E/N" (`fastpinn reproduce ... --report-only`). The options below are part of what
# `report` and a resume compare with the runs on disk: change them only for a new ROOT.
# ROOT=/work/runs is the directory of the 2026-12-06 sessions' background job.
set -euo pipefail
ROOT=${1:?usage: bash bench/reproduce_cpu_tables.sh ROOT [report]}
MODE=${2:-train}
REPO=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" FASTPINN_THREADS=1 OMP_NUM_THREADS=1
export FASTPINN_CACHE_DIR=${FASTPINN_CACHE_DIR:-$ROOT/.cache}
PY=${PYTHON:-python3}
COMMON=(--derivative-method fused --device cpu --no-progress --checkpoint-seconds 120)
TABLE1=(table1 --seeds 3 --out "$ROOT/table1-3seeds")  # shard 0/6 = configurations 0 and 6: PINN, DN b=0.99
TABLE2=(table2 --seeds 10 --out "$ROOT/table2")        # shard i/7 = configuration i

case "$MODE" in
  report)
    $PY -m fastpinn reproduce "${TABLE1[@]}" "${COMMON[@]}" --report-only
    echo
    $PY -m fastpinn reproduce "${TABLE2[@]}" "${COMMON[@]}" --report-only ;;
  train)
    mkdir -p "$ROOT"
    echo "== $(date -u +%FT%TZ) table1 shard 0/6 (PINN, DN b=0.99), 3 seeds"
    $PY -m fastpinn reproduce "${TABLE1[@]}" "${COMMON[@]}" --shard 0/6
    # DN b=0.99 and PINN first: the rows the paper's comparison rests on
    for shard in 6 0 5 4 3 2 1; do
      echo "== $(date -u +%FT%TZ) table2 shard $shard/7"
      $PY -m fastpinn reproduce "${TABLE2[@]}" "${COMMON[@]}" --shard "$shard/7"
    done
    echo "== $(date -u +%FT%TZ) done" ;;
  *) echo "usage: bash bench/reproduce_cpu_tables.sh ROOT [train|report]" >&2; exit 2 ;;
esac
