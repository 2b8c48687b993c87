// CPU implementation of fastpinn::mlp_jet_forward / mlp_jet_backward: argument checks, the plan, the split of
// (member, tile) work over threads (the parts shared with mlp_taylor: mlp_dispatch.h), and the choice of
// the tile kernels for this CPU (mlp_jet.h).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "checks.h"
#include "mlp_dispatch.h"
#include "mlp_jet.h"

namespace fastpinn {
namespace mlpjet {

int64_t forward_scratch(const Plan& P) { return P.sizes[0] * kTile + 2 * P.max_width * P.channels * kTile; }

namespace {

constexpr int64_t kMaxLayers = 64;  // the tile kernels keep one pointer per layer on the stack

// The plan and the storage its pointers refer to.
struct OwnedPlan {
  std::vector<int64_t> sizes, w_off, b_off, dirs, pair_i, pair_j, first_out;
  Plan plan{};
};

OwnedPlan make_plan(const char* op, const at::Tensor& theta, const at::Tensor& x, const at::Tensor& scale,
                    const at::Tensor& shift, at::IntArrayRef sizes, at::IntArrayRef dirs, at::IntArrayRef pairs,
                    at::IntArrayRef first_out, c10::string_view activation) {
  const Activation act = mlpdispatch::parse_activation(op, activation, kJetActivations);
  mlpdispatch::LayerOffsets layers =
      mlpdispatch::check_ensemble_args(op, theta, x, scale, shift, sizes, dirs, kMaxLayers);
  const int64_t nT = static_cast<int64_t>(dirs.size());
  TORCH_CHECK(pairs.size() % 2 == 0, op, "pairs must be a flat list of (i, j) positions into dirs, got ", pairs);
  for (int64_t q : pairs) TORCH_CHECK(q >= 0 && q < nT, op, "pairs must be positions in [0, ", nT, ") into dirs, got ", pairs);
  for (int64_t f : first_out)
    TORCH_CHECK(f >= 0 && f < nT, op, "first_out must be positions in [0, ", nT, ") into dirs, got ", first_out);
  OwnedPlan o;
  o.sizes.assign(sizes.begin(), sizes.end());
  o.w_off = std::move(layers.w_off);
  o.b_off = std::move(layers.b_off);
  o.dirs.assign(dirs.begin(), dirs.end());
  for (size_t q = 0; q < pairs.size(); q += 2) {
    o.pair_i.push_back(pairs[q]);
    o.pair_j.push_back(pairs[q + 1]);
  }
  o.first_out.assign(first_out.begin(), first_out.end());
  Plan& P = o.plan;
  P.n_layers = static_cast<int64_t>(sizes.size()) - 1;
  P.sizes = o.sizes.data();
  P.w_off = o.w_off.data();
  P.b_off = o.b_off.data();
  P.n_dirs = nT;
  P.dirs = o.dirs.data();
  P.n_pairs = static_cast<int64_t>(o.pair_i.size());
  P.pair_i = o.pair_i.data();
  P.pair_j = o.pair_j.data();
  P.n_first = static_cast<int64_t>(o.first_out.size());
  P.first_out = o.first_out.data();
  P.channels = 1 + P.n_dirs + P.n_pairs;
  P.out_channels = 1 + P.n_first + P.n_pairs;
  P.max_width = layers.max_width;
  P.activation = act;
  return o;
}

// The widest kernel set this CPU runs: 2 = AVX-512F/DQ, 1 = AVX2 + FMA, 0 = baseline. FASTPINN_MLPJET_ISA=
// base|avx2|avx512 caps it (for benchmarks and tests of the narrower sets on a wide CPU).
int isa_level() {
#if defined(FASTPINN_MLPJET_AVX2)
  static const int level = [] {
    int cpu = 0;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) cpu = 1;
    if (cpu == 1 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")) cpu = 2;
    const char* cap = std::getenv("FASTPINN_MLPJET_ISA");
    if (cap != nullptr) {
      const std::string c(cap);
      const int want = c == "base" ? 0 : c == "avx2" ? 1 : c == "avx512" ? 2 : -1;
      TORCH_CHECK(want >= 0, "FASTPINN_MLPJET_ISA must be base, avx2 or avx512, got '", c, "'");
      cpu = std::min(cpu, want);
    }
    return cpu;
  }();
  return level;
#else
  return 0;
#endif
}

template <typename T>
void call_forward(const Plan& P, const T* theta, const T* scale, const T* shift, const T* x, int64_t n, int64_t t0,
                  int64_t t1, T* fields, T* scratch, T* tape) {
#if defined(FASTPINN_MLPJET_AVX2)
  if (isa_level() == 2) return avx512::forward(P, theta, scale, shift, x, n, t0, t1, fields, scratch, tape);
  if (isa_level() == 1) return avx2::forward(P, theta, scale, shift, x, n, t0, t1, fields, scratch, tape);
#endif
  base::forward(P, theta, scale, shift, x, n, t0, t1, fields, scratch, tape);
}

template <typename T>
void call_backward_batched(const Plan& P, const T* theta, const T* scale, const T* shift, const T* x, const T* gf,
                           int64_t gf_stride, int64_t K, int64_t n, int64_t t0, int64_t t1, T* gtheta,
                           int64_t gt_stride, T* scratch, const T* tape) {
#if defined(FASTPINN_MLPJET_AVX2)
  if (isa_level() == 2)
    return avx512::backward_batched(P, theta, scale, shift, x, gf, gf_stride, K, n, t0, t1, gtheta, gt_stride, scratch,
                                    tape);
  if (isa_level() == 1)
    return avx2::backward_batched(P, theta, scale, shift, x, gf, gf_stride, K, n, t0, t1, gtheta, gt_stride, scratch,
                                  tape);
#endif
  base::backward_batched(P, theta, scale, shift, x, gf, gf_stride, K, n, t0, t1, gtheta, gt_stride, scratch, tape);
}

template <typename T>
void call_backward(const Plan& P, const T* theta, const T* scale, const T* shift, const T* x, const T* gf, int64_t n,
                   int64_t t0, int64_t t1, T* gtheta, T* gx, T* scratch, const T* tape) {
#if defined(FASTPINN_MLPJET_AVX2)
  if (isa_level() == 2) return avx512::backward(P, theta, scale, shift, x, gf, n, t0, t1, gtheta, gx, scratch, tape);
  if (isa_level() == 1) return avx2::backward(P, theta, scale, shift, x, gf, n, t0, t1, gtheta, gx, scratch, tape);
#endif
  base::backward(P, theta, scale, shift, x, gf, n, t0, t1, gtheta, gx, scratch, tape);
}

// The backward ops' tape argument: empty (recompute each tile's forward state) or the forward's stored tape of
// ``elems`` elements, in theta's dtype.
at::Tensor checked_tape(const char* op, const at::Tensor& tape_in, const at::Tensor& theta, int64_t elems) {
  TORCH_CHECK(tape_in.scalar_type() == theta.scalar_type() && tape_in.dim() == 1 &&
                  (tape_in.numel() == 0 || tape_in.numel() == elems),
              op, "tape must be empty (recompute) or the forward's tape of ", elems, " elements, got ",
              tape_in.scalar_type(), " ", tape_in.sizes());
  return tape_in.contiguous();
}

std::tuple<at::Tensor, at::Tensor> mlp_jet_forward_cpu(const at::Tensor& theta_in, const at::Tensor& x_in,
                                                       const at::Tensor& scale_in, const at::Tensor& shift_in,
                                                       at::IntArrayRef sizes, at::IntArrayRef dirs,
                                                       at::IntArrayRef pairs, at::IntArrayRef first_out, bool store,
                                                       c10::string_view activation) {
  constexpr const char* op = "fastpinn::mlp_jet_forward: ";
  OwnedPlan owned = make_plan(op, theta_in, x_in, scale_in, shift_in, sizes, dirs, pairs, first_out, activation);
  const Plan& P = owned.plan;
  const at::Tensor theta = theta_in.contiguous(), x = x_in.contiguous();
  const at::Tensor scale = scale_in.contiguous(), shift = shift_in.contiguous();
  const mlpdispatch::Ensemble E(theta, x, kTile);
  const int64_t S = E.members, N = E.points, n_out = sizes.back(), tiles = E.tiles, tape_len = tape_elems(P);
  at::Tensor fields = at::empty({S, P.out_channels, N, n_out}, theta.options());
  at::Tensor tape = at::empty({store ? E.items * tape_len : 0}, theta.options());
  if (E.items == 0) return {fields, tape};
  AT_DISPATCH_FLOATING_TYPES(theta.scalar_type(), "fastpinn::mlp_jet_forward", [&] {
    const scalar_t* th = theta.const_data_ptr<scalar_t>();
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* sc = scale.const_data_ptr<scalar_t>();
    const scalar_t* sh = shift.const_data_ptr<scalar_t>();
    scalar_t* out = fields.mutable_data_ptr<scalar_t>();
    scalar_t* tp = store ? tape.mutable_data_ptr<scalar_t>() : nullptr;
    const int64_t scratch_len = forward_scratch(P);
    const mlpdispatch::Blocks blocks = mlpdispatch::forward_blocks(E.items);
    blocks.share([&](auto&& claim) {
      std::vector<scalar_t> scratch(scratch_len);
      for (int64_t b = claim(); b >= 0; b = claim()) {
        E.for_runs(blocks.begin(b), blocks.end(b), [&](int64_t s, int64_t t0, int64_t t1) {
          call_forward(P, th + s * E.params, sc, sh, xp + E.x_offset(s), N, t0, t1,
                       out + s * P.out_channels * N * n_out, scratch.data(), tp ? tp + s * tiles * tape_len : nullptr);
        });
      }
    });
  });
  return {fields, tape};
}

std::tuple<at::Tensor, at::Tensor> mlp_jet_backward_cpu(const at::Tensor& grad_in, const at::Tensor& theta_in,
                                                        const at::Tensor& x_in, const at::Tensor& scale_in,
                                                        const at::Tensor& shift_in, const at::Tensor& tape_in,
                                                        at::IntArrayRef sizes,
                                                        at::IntArrayRef dirs, at::IntArrayRef pairs,
                                                        at::IntArrayRef first_out, bool x_grad, c10::string_view activation) {
  constexpr const char* op = "fastpinn::mlp_jet_backward: ";
  OwnedPlan owned = make_plan(op, theta_in, x_in, scale_in, shift_in, sizes, dirs, pairs, first_out, activation);
  const Plan& P = owned.plan;
  const at::Tensor theta = theta_in.contiguous(), x = x_in.contiguous();
  const at::Tensor scale = scale_in.contiguous(), shift = shift_in.contiguous();
  const mlpdispatch::Ensemble E(theta, x, kTile);
  const int64_t S = E.members, N = E.points, n_out = sizes.back(), d = E.in_dim;
  TORCH_CHECK(grad_in.scalar_type() == theta.scalar_type() && grad_in.dim() == 4 && grad_in.size(0) == S &&
                  grad_in.size(1) == P.out_channels && grad_in.size(2) == N && grad_in.size(3) == n_out,
              op, "grad_fields must be ", theta.scalar_type(), " of shape [", S, ", ", P.out_channels, ", ", N, ", ",
              n_out, "], got ", grad_in.scalar_type(), " ", grad_in.sizes());
  const at::Tensor grad = grad_in.contiguous();
  const int64_t tiles = E.tiles, tape_len = tape_elems(P);
  const at::Tensor tape = checked_tape(op, tape_in, theta, S * tiles * tape_len);
  const bool has_tape = tape.numel() > 0;
  const mlpdispatch::BackwardBlocks blocks(E.items);
  at::Tensor partial = blocks.partials({S, E.params}, theta.options());
  at::Tensor gx_members = mlpdispatch::member_grad_x(E, x_grad, theta.options());
  if (E.items > 0) {
    AT_DISPATCH_FLOATING_TYPES(theta.scalar_type(), "fastpinn::mlp_jet_backward", [&] {
      const scalar_t* th = theta.const_data_ptr<scalar_t>();
      const scalar_t* xp = x.const_data_ptr<scalar_t>();
      const scalar_t* sc = scale.const_data_ptr<scalar_t>();
      const scalar_t* sh = shift.const_data_ptr<scalar_t>();
      const scalar_t* gf = grad.const_data_ptr<scalar_t>();
      scalar_t* part = partial.mutable_data_ptr<scalar_t>();
      scalar_t* gx = x_grad ? gx_members.mutable_data_ptr<scalar_t>() : nullptr;
      const scalar_t* tp = has_tape ? tape.const_data_ptr<scalar_t>() : nullptr;
      const int64_t P_len = E.params, scratch_len = backward_scratch(P, sizeof(scalar_t));
      blocks.share([&](auto&& claim) {
        std::vector<scalar_t> scratch(scratch_len);
        for (int64_t b = claim(); b >= 0; b = claim()) {
          mlpdispatch::zero_partial(part, b, S * P_len);
          E.for_runs(blocks.begin(b), blocks.end(b), [&](int64_t s, int64_t t0, int64_t t1) {
            call_backward(P, th + s * P_len, sc, sh, xp + E.x_offset(s), gf + s * P.out_channels * N * n_out, N, t0,
                          t1, part + (b * S + s) * P_len, gx ? gx + s * N * d : nullptr, scratch.data(),
                          tp ? tp + s * tiles * tape_len : nullptr);
          });
        }
      });
    });
  }
  return {mlpdispatch::sum_partials(partial), mlpdispatch::grad_x_of(E, gx_members, theta.options())};
}

// K cotangents of the same evaluation at once: grad_fields [K, S, C, N, out] -> grad_theta [K, S, P], entry k equal
// to mlp_jet_backward's grad_theta for grad_fields[k] bit for bit (same split of the work items, same arithmetic;
// see backward_impl). Each tile's forward state is recomputed once for the K cotangents.
at::Tensor mlp_jet_backward_batched_cpu(const at::Tensor& grad_in, const at::Tensor& theta_in, const at::Tensor& x_in,
                                        const at::Tensor& scale_in, const at::Tensor& shift_in,
                                        const at::Tensor& tape_in, at::IntArrayRef sizes, at::IntArrayRef dirs,
                                        at::IntArrayRef pairs, at::IntArrayRef first_out, c10::string_view activation) {
  constexpr const char* op = "fastpinn::mlp_jet_backward_batched: ";
  OwnedPlan owned = make_plan(op, theta_in, x_in, scale_in, shift_in, sizes, dirs, pairs, first_out, activation);
  const Plan& P = owned.plan;
  const at::Tensor theta = theta_in.contiguous(), x = x_in.contiguous();
  const at::Tensor scale = scale_in.contiguous(), shift = shift_in.contiguous();
  const mlpdispatch::Ensemble E(theta, x, kTile);
  const int64_t S = E.members, N = E.points, n_out = sizes.back();
  TORCH_CHECK(grad_in.scalar_type() == theta.scalar_type() && grad_in.dim() == 5 && grad_in.size(0) >= 1 &&
                  grad_in.size(1) == S && grad_in.size(2) == P.out_channels && grad_in.size(3) == N &&
                  grad_in.size(4) == n_out,
              op, "grad_fields must be ", theta.scalar_type(), " of shape [K >= 1, ", S, ", ", P.out_channels, ", ", N,
              ", ", n_out, "], got ", grad_in.scalar_type(), " ", grad_in.sizes());
  const int64_t K = grad_in.size(0);
  const at::Tensor grad = grad_in.contiguous();
  const int64_t tiles = E.tiles, tape_len = tape_elems(P);
  const at::Tensor tape = checked_tape(op, tape_in, theta, S * tiles * tape_len);
  const bool has_tape = tape.numel() > 0;
  const mlpdispatch::BackwardBlocks blocks(E.items);
  // One partial [K, S, P] per block (the blocks of mlp_jet_backward), summed in block order.
  at::Tensor partial = blocks.partials({K, S, E.params}, theta.options());
  if (E.items > 0) {
    AT_DISPATCH_FLOATING_TYPES(theta.scalar_type(), "fastpinn::mlp_jet_backward_batched", [&] {
      const scalar_t* th = theta.const_data_ptr<scalar_t>();
      const scalar_t* xp = x.const_data_ptr<scalar_t>();
      const scalar_t* sc = scale.const_data_ptr<scalar_t>();
      const scalar_t* sh = shift.const_data_ptr<scalar_t>();
      const scalar_t* gf = grad.const_data_ptr<scalar_t>();
      scalar_t* part = partial.mutable_data_ptr<scalar_t>();
      const scalar_t* tp = has_tape ? tape.const_data_ptr<scalar_t>() : nullptr;
      const int64_t P_len = E.params, field_len = P.out_channels * N * n_out;
      const int64_t scratch_len = backward_scratch(P, sizeof(scalar_t), K);
      blocks.share([&](auto&& claim) {
        std::vector<scalar_t> scratch(scratch_len);
        for (int64_t b = claim(); b >= 0; b = claim()) {
          mlpdispatch::zero_partial(part, b, K * S * P_len);
          E.for_runs(blocks.begin(b), blocks.end(b), [&](int64_t s, int64_t t0, int64_t t1) {
            call_backward_batched(P, th + s * P_len, sc, sh, xp + E.x_offset(s), gf + s * field_len, S * field_len, K,
                                  N, t0, t1, part + (b * K * S + s) * P_len, S * P_len, scratch.data(),
                                  tp ? tp + s * tiles * tape_len : nullptr);
          });
        }
      });
    });
  }
  return mlpdispatch::sum_partials(partial);
}

}  // namespace
}  // namespace mlpjet

TORCH_LIBRARY_IMPL(fastpinn, CPU, m) {
  m.impl("mlp_jet_forward", &mlpjet::mlp_jet_forward_cpu);
  m.impl("mlp_jet_backward", &mlpjet::mlp_jet_backward_cpu);
  m.impl("mlp_jet_backward_batched", &mlpjet::mlp_jet_backward_batched_cpu);
}

}  // namespace fastpinn
