#!/usr/bin/env bash
# The paper's tables on the CPU at the full protocol (issue 18 item 5), resumable: Table 1's PINN and
# DN-PINN (beta = 0.99) rows with 3 seeds, then Table 2 (Poisson) in full, 10 seeds, 30,000 epochs.
#
#   nice -n 19 bash bench/reproduce_cpu_tables.sh ROOT >>ROOT/log.txt 2>&1 &   # train (or resume)
#   bash bench/reproduce_cpu_tables.sh ROOT report                           # the tables so far
#   bash bench/reproduce_cpu_tables.sh ROOT results [DIR]                    # ... as files in DIR
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
  results)  # the report as bench/results files, the machine and the commands named
    DIR=${3:-$REPO/bench/results}
    MODEL=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
    SLUG=$(echo "cpu-${MODEL:-unknown}-$(getconf _NPROCESSORS_ONLN)c" | tr 'A-Z' 'a-z' \
           | sed -E 's/\(r\)|\(tm\)|processor//g; s/[^a-z0-9]+/-/g; s/^-+|-+$//g')
    mkdir -p "$DIR"
    for which in table1 table2; do
      if [ "$which" = table1 ]; then args=("${TABLE1[@]}"); name=table1-3seeds; shard="--shard 0/6"
        what="Table 1 (Burgers), PINN and DN-PINN β = 0.99 rows, 3 seeds, 30,000 epochs, on the CPU"
        scope="Only configurations 0 (PINN) and 6 (DN-PINN β = 0.99) are trained here (\`--shard 0/6\`), the rows \
issue 18 asks for on the CPU; the other five stay \"not started\" by design (the full Table 1: \`bash bench/reproduce_gpu.sh ROOT\`)."
      else args=("${TABLE2[@]}"); name=table2-10seeds; shard="--shard i/7, i = 6 0 5 4 3 2 1 in turn"
        what="Table 2 (Poisson), all seven rows, 10 seeds, 30,000 epochs, on the CPU"
        scope="Each configuration is one shard (\`--shard i/7\`), DN-PINN β = 0.99 and PINN first."
      fi
      body=$($PY -m fastpinn reproduce "${args[@]}" "${COMMON[@]}" --report-only 2>/dev/null) || exit 1
      suffix=$(grep -q "^Partial table\|Partial table," <<<"$body" && echo -partial || true)
      file="$DIR/reproduce-$name-$SLUG$suffix.md"
      {
        echo "# $what${suffix:+ -- partial}"
        echo
        echo "Machine: ${MODEL:-unknown CPU} (\`lscpu\`), $(getconf _NPROCESSORS_ONLN) cores shared with other sessions' work (load average" \
             "$(cut -d' ' -f1-3 /proc/loadavg) when this was written), one torch thread per run, niced: the time columns are" \
             "load-polluted wall seconds, not this CPU's speed. Written $(date -u '+%Y-%m-%d %H:%M UTC')."
        echo
        echo "$scope"
        echo
        echo "- Trained by \`bash bench/reproduce_cpu_tables.sh ROOT\` (ROOT = $ROOT), i.e. \`python -m fastpinn reproduce" \
             "${args[*]/#$ROOT/ROOT} ${COMMON[*]} $shard\`."
        echo "- This table: \`bash bench/reproduce_cpu_tables.sh ROOT report\` (\`--report-only\`: reads the runs, trains" \
             "and writes nothing there); this file: \`bash bench/reproduce_cpu_tables.sh ROOT results\`."
        echo "- Resume: \`nice -n 19 bash bench/reproduce_cpu_tables.sh ROOT >>ROOT/log.txt 2>&1 &\` (finished" \
             "configurations are checked and reused, an interrupted one continues from its checkpoint, written every" \
             "120 s of training)."
        echo
        echo "$body"
      } >"$file.tmp" && mv "$file.tmp" "$file"
      echo "written: $file"
    done ;;
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
  *) echo "usage: bash bench/reproduce_cpu_tables.sh ROOT [train|report|results [DIR]]" >&2; exit 2 ;;
esac
