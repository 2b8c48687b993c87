#!/usr/bin/env bash
# Every check that needs a GPU, in one prepared run (a device lease is short: see bench/README.md).
#
#   bash bench/gpu_session.sh            # on a CUDA machine with torch, triton, cmake, ninja, pybind11, pytest
#
# 1. builds the extension with the CUDA kernels for this GPU (no build isolation: against the torch there);
# 2. runs the fused jet op's Triton tests and its Burgers benchmark first (bench_fused_mlp.py), then the GPU
#    tests (on a GPU the Triton kernels run compiled, the CUDA ops and the CUDA-graph step
#    are checked against their pure-PyTorch twins); FASTPINN_GPU_FULL_SUITE=1 adds the whole suite at the end;
#    then the aggregators' GPU checks (issue 19: no device-to-host copy in a step, the captured step equals the
#    eager one, the Gram op's compiled Triton kernel against exact sums; FASTPINN_GPU_AGG_BENCH=1 adds their
#    per-step overhead on Burgers with CUDA graphs, bench_aggregators_step.py, ~2 min);
# 3. measures the statistics kernel's bandwidth at P = 10^7 and the whole-run targets
#    (bench_gpu_targets.py: Burgers per step mode, the 10-seed ensemble, Table 1 projected);
# 4. optionally (FASTPINN_GPU_TABLES=1) the paper's Tables 1 and 3 at a reduced length (bench/reproduce_gpu.sh,
#    10 seeds x FASTPINN_GPU_TABLE_EPOCHS=300 epochs, at most 4 minutes): the command works on CUDA, time per row;
# 5. optionally (FASTPINN_GPU_RUN_ALL=1) the interleaved scheme-overhead benchmark (run_all.py, ~15 min).
# Logs and result files go to $OUT (the device tool's folder) or bench/results/gpu-session.
# Stages run in order of importance, each under its own time limit, so a hang in one still leaves the
# others' results; stages 1-3 fit a 10-minute device call (build ~3 min, tests ~3 min, benchmarks ~3 min).
# FASTPINN_GPU_COMPILE=1 adds the compiled-terms rows to the targets (about a minute of warm-up each).
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-bench/results/gpu-session}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
EPOCHS=${FASTPINN_GPU_EPOCHS:-3000}   # per timed run; the 30,000-epoch figures are projected from the rate

stage() { echo; echo "=== $1 ($(date +%T))"; }

stage "machine"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1 | tee "$OUT/machine.txt"
$PY -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__, torch.cuda.get_device_name())" \
  2>&1 | tee -a "$OUT/machine.txt"

stage "build (CUDA kernels for this GPU)"
ARCH=$($PY -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")
TORCH_CUDA_ARCH_LIST="$ARCH" FASTPINN_WITH_CUDA=1 CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
  timeout 300 $PY -m pip install --no-build-isolation --no-deps --no-index -e . >"$OUT/build.log" 2>&1
echo "build rc=$?"; tail -3 "$OUT/build.log"
$PY -c "from fastpinn.ops import _ext; print(_ext.build_info())" 2>&1 | tee -a "$OUT/build.log"

stage "fused jet op: Triton kernels compiled on the GPU, the op's CUDA dispatch, then its GPU benchmark"
timeout 180 $PY -m pytest -q -p no:cacheprovider --durations=5 tests/test_triton_mlp_jet.py >"$OUT/tests_fused_gpu.log" 2>&1
echo "fused jet tests rc=$?"; tail -15 "$OUT/tests_fused_gpu.log"
timeout 120 $PY bench/bench_fused_mlp.py --rounds 5 --out "$OUT" 2>&1 | tee "$OUT/fused_mlp.txt"

stage "GPU tests (compiled Triton kernel, CUDA ops, CUDA-graph step)"
timeout 240 $PY -m pytest -q -p no:cacheprovider --durations=10 tests/test_trainer.py tests/test_cpp_ops.py \
  tests/test_triton_grad_stats.py tests/test_schemes.py tests/test_ntk.py >"$OUT/tests_gpu.log" 2>&1
echo "GPU tests rc=$?"; tail -25 "$OUT/tests_gpu.log"

stage "aggregators (issue 19): no host sync (set_sync_debug_mode), CUDA-graph capture, Triton Gram kernel compiled"
# -rs: a skip here means a check did not run (e.g. no CUDA seen), so its reason is printed
timeout 180 $PY -m pytest -q -rs -p no:cacheprovider --durations=5 tests/test_aggregators_gpu.py \
  tests/test_aggregators_gram.py tests/test_aggregators.py::test_device_gate_step_has_no_device_to_host_copy_on_cuda \
  >"$OUT/tests_aggregators_gpu.log" 2>&1
echo "aggregator GPU tests rc=$?"; tail -15 "$OUT/tests_aggregators_gpu.log"
if [ "${FASTPINN_GPU_AGG_BENCH:-0}" = 1 ]; then  # issue 19's overhead target (<= 5 % over DN τ=1 on Burgers)
  timeout 180 $PY bench/bench_aggregators_step.py --device cuda --step-mode cuda_graph --problems burgers \
    --rounds 4 --out "$OUT/aggregators-step-gpu.md" 2>&1 | tail -18
fi

stage "statistics kernel bandwidth"
timeout 90 $PY bench/bench_grad_stats_bandwidth.py 2>&1 | tee "$OUT/bandwidth.txt"

stage "whole-run targets ($EPOCHS epochs per run)"
COMPILE_FLAG=$([ "${FASTPINN_GPU_COMPILE:-0}" = 1 ] && echo --compile)
timeout 240 $PY bench/bench_gpu_targets.py --epochs "$EPOCHS" $COMPILE_FLAG --out "$OUT" 2>&1 | tee "$OUT/targets.log"

NGPU=$($PY -c "import torch; print(torch.cuda.device_count())")
if [ "$NGPU" -ge 2 ]; then
  stage "data-parallel scaling, NCCL, 1 vs $NGPU ranks"
  timeout 300 $PY bench/bench_distributed.py --device cuda --ranks "$NGPU" --n-pde 200000 \
    --out "$OUT/distributed.md" 2>&1 | tail -20
else
  echo "data-parallel scaling: needs >= 2 GPUs, found $NGPU (skipped)"
fi

if [ "${FASTPINN_GPU_TABLES:-0}" = 1 ]; then
  # The full Tables 1 and 3 take longer than a session: this checks their command on the GPU and times each
  # configuration at a reduced length (the full run: bash bench/reproduce_gpu.sh ROOT, resumable).
  TEP=${FASTPINN_GPU_TABLE_EPOCHS:-300}
  stage "paper Tables 1 and 3, 10 seeds x $TEP epochs (bench/reproduce_gpu.sh)"
  EPOCHS=$TEP BUDGET_S=240 EXTRA="--no-figures" PYTHON=$PY bash bench/reproduce_gpu.sh "$OUT/tables" 2>&1 | tail -45
fi

if [ "${FASTPINN_GPU_FULL_SUITE:-0}" = 1 ]; then
  stage "the whole test suite"
  timeout 600 $PY -m pytest tests -q -m "not slow" -p no:cacheprovider >"$OUT/tests.log" 2>&1
  echo "tests rc=$?"; tail -5 "$OUT/tests.log"
fi

if [ "${FASTPINN_GPU_RUN_ALL:-0}" = 1 ]; then
  stage "scheme overhead, plain loop, derivatives (interleaved)"
  timeout 900 $PY bench/run_all.py --no-deepxde --out "$OUT" 2>&1 | tail -40
fi
stage "done"
