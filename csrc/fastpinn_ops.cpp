// Operator schemas of the fastpinn library (always compiled).
//
// Loading the shared library (import fastpinn._C, see module.cpp) runs the static initialisers below and
// those of the kernel files, which register the schemas and the CPU (and, in CUDA builds, CUDA) kernels
// with the dispatcher; the ops are then reachable as torch.ops.fastpinn.*. Kernels: grad_stats_cpu.cpp,
// ema_update_cpu.cpp, mlp_jet_cpu.cpp, cuda/grad_stats.cu, cuda/ema_update.cu.
#include <torch/library.h>

TORCH_LIBRARY(fastpinn, m) {
  // The fake (meta) implementations used by torch.compile are registered from this Python module.
  m.set_python_module("fastpinn.ops.fake");
  // Per-row statistics of G[S, K, P] -> stats[S, K, 7]; see fastpinn/ops/reference.py::grad_stats_ref.
  m.def("grad_stats(Tensor G, float p) -> Tensor");
  // Gram matrix of each member's rows of G[S, K, P] -> gram[S, K, K], float64 whatever G's dtype (CPU kernel only;
  // CUDA tensors use the Triton op fastpinn::grad_gram_triton); see fastpinn/ops/reference.py::grad_gram_ref.
  m.def("grad_gram(Tensor G) -> Tensor");
  // Scheme-free in-place EMA update of the loss weights from candidate weights hat[S, K] and a validity mask;
  // see fastpinn/ops/reference.py::ema_update_ref.
  m.def(
      "ema_update(Tensor hat, Tensor valid, Tensor target, Tensor? active, Tensor(a!) lam, "
      "Tensor(b!) lam_applied, Tensor(c!) n_updates, Tensor(d!) skipped, float beta, "
      "bool bias_correction) -> ()");
  // An MLP (the hidden layers' activation by name, "tanh", "sin", "silu" or "softplus": csrc/activation.h says why a
  // name) with forward derivative jets, fused over tiles of points; see csrc/mlp_jet.h and
  // fastpinn/ops/mlp_jet.py (the Python entry, its autograd formula and its oracle). theta[S, P],
  // x[N, d] or [S, N, d], scale/shift[d], sizes = [d, hidden..., out], dirs = tangent coordinates,
  // pairs = flat (i, j) positions into dirs, first_out = positions into dirs of the returned first
  // derivatives -> (fields[S, 1 + len(first_out) + len(pairs) / 2, N, out], tape): with store, tape holds every
  // tile's forward state for the backward ([S * tiles * tape_elems]), else it is empty.
  m.def(
      "mlp_jet_forward(Tensor theta, Tensor x, Tensor scale, Tensor shift, int[] sizes, int[] dirs, int[] pairs, "
      "int[] first_out, bool store, str activation=\"tanh\") -> (Tensor, Tensor)");
  // Gradient of sum(grad_fields * fields) wrt theta [S, P] and, if x_grad, wrt x (x's shape; else [0]).
  // The per-tile forward state is read from tape, or recomputed when tape is empty.
  m.def(
      "mlp_jet_backward(Tensor grad_fields, Tensor theta, Tensor x, Tensor scale, Tensor shift, Tensor tape, "
      "int[] sizes, int[] dirs, int[] pairs, int[] first_out, bool x_grad, str activation=\"tanh\") -> (Tensor, Tensor)");
  // The backward of K cotangents of one evaluation at once: grad_fields [K, S, C, N, out] -> grad_theta [K, S, P],
  // entry k equal to mlp_jet_backward's grad_theta for grad_fields[k] (no x gradient); each tile's forward state is
  // recomputed (or read from tape) once for all K.
  m.def(
      "mlp_jet_backward_batched(Tensor grad_fields, Tensor theta, Tensor x, Tensor scale, Tensor shift, Tensor tape, "
      "int[] sizes, int[] dirs, int[] pairs, int[] first_out, str activation=\"tanh\") -> Tensor");
  // Pure input derivatives d^k u/dx_c^k (k <= order) of a tanh or sin MLP by univariate Taylor mode; see
  // csrc/mlp_taylor.h and fastpinn/ops/mlp_taylor.py. -> fields[S, 1 + len(dirs) * order, N, out]: the value,
  // then per direction the orders 1..order.
  m.def(
      "mlp_taylor_forward(Tensor theta, Tensor x, Tensor scale, Tensor shift, int[] sizes, int[] dirs, int order, "
      "str activation) -> Tensor");
  // Gradient of sum(grad_fields * fields) wrt theta [S, P] and, if x_grad, wrt x (x's shape; else [0]).
  m.def(
      "mlp_taylor_backward(Tensor grad_fields, Tensor theta, Tensor x, Tensor scale, Tensor shift, int[] sizes, "
      "int[] dirs, int order, str activation, bool x_grad) -> (Tensor, Tensor)");
}
