// Operator schemas of the fastpinn library (always compiled).
//
// Loading the shared library (import fastpinn._C, see module.cpp) runs the static initialisers below and
// those of the kernel files, which register the schemas and the CPU (and, in CUDA builds, CUDA) kernels
// with the dispatcher; the ops are then reachable as torch.ops.fastpinn.*. Kernels: grad_stats_cpu.cpp,
// ema_update_cpu.cpp, cuda/grad_stats.cu, cuda/ema_update.cu.
#include <torch/library.h>

TORCH_LIBRARY(fastpinn, m) {
  // The fake (meta) implementations used by torch.compile are registered from this Python module.
  m.set_python_module("fastpinn.ops.fake");
  // Per-row statistics of G[S, K, P] -> stats[S, K, 7]; see fastpinn/ops/reference.py::grad_stats_ref.
  m.def("grad_stats(Tensor G, float p) -> Tensor");
  // Scheme-free in-place EMA update of the loss weights from candidate weights hat[S, K] and a validity mask;
  // see fastpinn/ops/reference.py::ema_update_ref.
  m.def(
      "ema_update(Tensor hat, Tensor valid, Tensor target, Tensor? active, Tensor(a!) lam, "
      "Tensor(b!) lam_applied, Tensor(c!) n_updates, Tensor(d!) skipped, float beta, "
      "bool bias_correction) -> ()");
}
