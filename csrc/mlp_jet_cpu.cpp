// CPU implementation of fastpinn::mlp_jet_forward / mlp_jet_backward: argument checks, the plan, the split of
// (member, tile) work over at::parallel_for, and the choice of the tile kernels for this CPU (mlp_jet.h).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "checks.h"
#include "mlp_jet.h"

namespace fastpinn {
namespace mlpjet {

int64_t forward_scratch(const Plan& P) { return P.sizes[0] * kTile + 2 * P.max_width * P.channels * kTile; }

int64_t backward_scratch(const Plan& P, int64_t elem_bytes) {
  return tape_elems(P) + 2 * std::max(P.max_width * P.channels * kTile, P.sizes[0] * kTile) +
         (use_simd_acc(P, elem_bytes) ? gw_acc_elems(P) : grad_weight_elems(P));
}

namespace {

constexpr int64_t kMaxLayers = 64;  // the tile kernels keep one pointer per layer on the stack

// The plan and the storage its pointers refer to.
struct OwnedPlan {
  std::vector<int64_t> sizes, w_off, b_off, dirs, pair_i, pair_j, first_out;
  Plan plan{};
};

OwnedPlan make_plan(const char* op, const at::Tensor& theta, const at::Tensor& x, const at::Tensor& scale,
                    const at::Tensor& shift, at::IntArrayRef sizes, at::IntArrayRef dirs, at::IntArrayRef pairs,
                    at::IntArrayRef first_out, int64_t activation) {
  TORCH_CHECK(activation >= 0 && activation < kActivations, op, "activation must be 0 (tanh), 1 (sin), 2 (silu) or 3 (softplus), got ",
              activation);
  TORCH_CHECK(is_float_or_double(theta), op, "theta must be float32 or float64, got ", theta.scalar_type());
  TORCH_CHECK(theta.dim() == 2, op, "theta must be 2-D [S, P], got shape ", theta.sizes());
  for (const at::Tensor* t : {&x, &scale, &shift}) {
    TORCH_CHECK(t->scalar_type() == theta.scalar_type(), op, "x, scale and shift must have theta's dtype (",
                theta.scalar_type(), "), got ", t->scalar_type());
    TORCH_CHECK(t->device() == theta.device(), op, "all tensors must be on theta's device");
    TORCH_CHECK(t->layout() == at::kStrided, op, "all tensors must be strided (dense)");
  }
  const int64_t L = static_cast<int64_t>(sizes.size()) - 1;
  TORCH_CHECK(L >= 1 && L <= kMaxLayers, op, "sizes must list in_dim, the hidden widths and out_dim (2 to ",
              kMaxLayers + 1, " entries), got ", sizes);
  for (int64_t s : sizes) TORCH_CHECK(s >= 1, op, "every entry of sizes must be >= 1, got ", sizes);
  OwnedPlan o;
  o.sizes.assign(sizes.begin(), sizes.end());
  int64_t offset = 0, max_width = 0;
  for (int64_t k = 0; k < L; ++k) {
    o.w_off.push_back(offset);
    offset += sizes[k + 1] * sizes[k];
    o.b_off.push_back(offset);
    offset += sizes[k + 1];
    max_width = std::max(max_width, sizes[k + 1]);
  }
  TORCH_CHECK(theta.size(1) == offset, op, "theta must have P = ", offset, " columns for sizes ", sizes, ", got ",
              theta.sizes());
  const int64_t d = sizes[0];
  TORCH_CHECK((x.dim() == 2 || (x.dim() == 3 && x.size(0) == theta.size(0))) && x.size(-1) == d, op,
              "x must have shape [N, ", d, "] or [S, N, ", d, "] with S = ", theta.size(0), ", got ", x.sizes());
  TORCH_CHECK(scale.dim() == 1 && scale.size(0) == d && shift.dim() == 1 && shift.size(0) == d, op,
              "scale and shift must have shape [", d, "], got ", scale.sizes(), " and ", shift.sizes());
  for (int64_t c : dirs) TORCH_CHECK(c >= 0 && c < d, op, "dirs must be coordinate indices in [0, ", d, "), got ", dirs);
  const int64_t nT = static_cast<int64_t>(dirs.size());
  TORCH_CHECK(pairs.size() % 2 == 0, op, "pairs must be a flat list of (i, j) positions into dirs, got ", pairs);
  for (int64_t q : pairs) TORCH_CHECK(q >= 0 && q < nT, op, "pairs must be positions in [0, ", nT, ") into dirs, got ", pairs);
  for (int64_t f : first_out)
    TORCH_CHECK(f >= 0 && f < nT, op, "first_out must be positions in [0, ", nT, ") into dirs, got ", first_out);
  o.dirs.assign(dirs.begin(), dirs.end());
  for (size_t q = 0; q < pairs.size(); q += 2) {
    o.pair_i.push_back(pairs[q]);
    o.pair_j.push_back(pairs[q + 1]);
  }
  o.first_out.assign(first_out.begin(), first_out.end());
  Plan& P = o.plan;
  P.n_layers = L;
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
  P.max_width = max_width;
  P.activation = activation;
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
void call_backward(const Plan& P, const T* theta, const T* scale, const T* shift, const T* x, const T* gf, int64_t n,
                   int64_t t0, int64_t t1, T* gtheta, T* gx, T* scratch, const T* tape) {
#if defined(FASTPINN_MLPJET_AVX2)
  if (isa_level() == 2) return avx512::backward(P, theta, scale, shift, x, gf, n, t0, t1, gtheta, gx, scratch, tape);
  if (isa_level() == 1) return avx2::backward(P, theta, scale, shift, x, gf, n, t0, t1, gtheta, gx, scratch, tape);
#endif
  base::backward(P, theta, scale, shift, x, gf, n, t0, t1, gtheta, gx, scratch, tape);
}

std::tuple<at::Tensor, at::Tensor> mlp_jet_forward_cpu(const at::Tensor& theta_in, const at::Tensor& x_in,
                                                       const at::Tensor& scale_in, const at::Tensor& shift_in,
                                                       at::IntArrayRef sizes, at::IntArrayRef dirs,
                                                       at::IntArrayRef pairs, at::IntArrayRef first_out, bool store,
                                                       int64_t activation) {
  constexpr const char* op = "fastpinn::mlp_jet_forward: ";
  OwnedPlan owned = make_plan(op, theta_in, x_in, scale_in, shift_in, sizes, dirs, pairs, first_out, activation);
  const Plan& P = owned.plan;
  const at::Tensor theta = theta_in.contiguous(), x = x_in.contiguous();
  const at::Tensor scale = scale_in.contiguous(), shift = shift_in.contiguous();
  const int64_t S = theta.size(0), N = x.size(-2), n_out = sizes.back();
  const bool shared = x.dim() == 2;
  at::Tensor fields = at::empty({S, P.out_channels, N, n_out}, theta.options());
  const int64_t tiles = (N + kTile - 1) / kTile, tape_len = tape_elems(P);
  at::Tensor tape = at::empty({store ? S * tiles * tape_len : 0}, theta.options());
  if (tiles == 0) return {fields, tape};
  AT_DISPATCH_FLOATING_TYPES(theta.scalar_type(), "fastpinn::mlp_jet_forward", [&] {
    const scalar_t* th = theta.const_data_ptr<scalar_t>();
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* sc = scale.const_data_ptr<scalar_t>();
    const scalar_t* sh = shift.const_data_ptr<scalar_t>();
    scalar_t* out = fields.mutable_data_ptr<scalar_t>();
    scalar_t* tp = store ? tape.mutable_data_ptr<scalar_t>() : nullptr;
    const int64_t P_len = theta.size(1), scratch_len = forward_scratch(P);
    // Work items are (member, tile); a few tiles per grain keeps the per-task overhead small.
    at::parallel_for(0, S * tiles, 4, [&](int64_t begin, int64_t end) {
      std::vector<scalar_t> scratch(scratch_len);
      for (int64_t item = begin; item < end;) {
        const int64_t s = item / tiles, t0 = item % tiles, t1 = std::min(tiles, t0 + (end - item));
        call_forward(P, th + s * P_len, sc, sh, xp + (shared ? 0 : s * N * P.sizes[0]), N, t0, t1,
                     out + s * P.out_channels * N * n_out, scratch.data(), tp ? tp + s * tiles * tape_len : nullptr);
        item += t1 - t0;
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
                                                        at::IntArrayRef first_out, bool x_grad, int64_t activation) {
  constexpr const char* op = "fastpinn::mlp_jet_backward: ";
  OwnedPlan owned = make_plan(op, theta_in, x_in, scale_in, shift_in, sizes, dirs, pairs, first_out, activation);
  const Plan& P = owned.plan;
  const at::Tensor theta = theta_in.contiguous(), x = x_in.contiguous();
  const at::Tensor scale = scale_in.contiguous(), shift = shift_in.contiguous();
  const int64_t S = theta.size(0), N = x.size(-2), n_out = sizes.back(), d = sizes[0];
  TORCH_CHECK(grad_in.scalar_type() == theta.scalar_type() && grad_in.dim() == 4 && grad_in.size(0) == S &&
                  grad_in.size(1) == P.out_channels && grad_in.size(2) == N && grad_in.size(3) == n_out,
              op, "grad_fields must be ", theta.scalar_type(), " of shape [", S, ", ", P.out_channels, ", ", N, ", ",
              n_out, "], got ", grad_in.scalar_type(), " ", grad_in.sizes());
  const at::Tensor grad = grad_in.contiguous();
  const bool shared = x.dim() == 2;
  const int64_t tiles = (N + kTile - 1) / kTile, items = S * tiles, tape_len = tape_elems(P);
  const bool has_tape = tape_in.numel() > 0;
  TORCH_CHECK(tape_in.scalar_type() == theta.scalar_type() && tape_in.dim() == 1 &&
                  (!has_tape || tape_in.numel() == S * tiles * tape_len),
              op, "tape must be empty (recompute) or the forward's tape of ", S * tiles * tape_len, " elements, got ",
              tape_in.scalar_type(), " ", tape_in.sizes());
  const at::Tensor tape = tape_in.contiguous();
  // Deterministic for a given thread count: chunk c owns a fixed range of (member, tile) items and its own
  // partial gradient; the partials are summed in chunk order.
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), items));
  at::Tensor partial = at::zeros({chunks, S, theta.size(1)}, theta.options());
  // Shared points: every member writes its own gradient wrt x, summed over members below.
  at::Tensor gx_members = x_grad ? at::empty({S, N, d}, theta.options()) : at::Tensor();
  if (items > 0) {
    AT_DISPATCH_FLOATING_TYPES(theta.scalar_type(), "fastpinn::mlp_jet_backward", [&] {
      const scalar_t* th = theta.const_data_ptr<scalar_t>();
      const scalar_t* xp = x.const_data_ptr<scalar_t>();
      const scalar_t* sc = scale.const_data_ptr<scalar_t>();
      const scalar_t* sh = shift.const_data_ptr<scalar_t>();
      const scalar_t* gf = grad.const_data_ptr<scalar_t>();
      scalar_t* part = partial.mutable_data_ptr<scalar_t>();
      scalar_t* gx = x_grad ? gx_members.mutable_data_ptr<scalar_t>() : nullptr;
      const scalar_t* tp = has_tape ? tape.const_data_ptr<scalar_t>() : nullptr;
      const int64_t P_len = theta.size(1), scratch_len = backward_scratch(P, sizeof(scalar_t));
      at::parallel_for(0, chunks, 1, [&](int64_t c_begin, int64_t c_end) {
        std::vector<scalar_t> scratch(scratch_len);
        for (int64_t c = c_begin; c < c_end; ++c) {
          const int64_t begin = c * items / chunks, end = (c + 1) * items / chunks;
          for (int64_t item = begin; item < end;) {
            const int64_t s = item / tiles, t0 = item % tiles, t1 = std::min(tiles, t0 + (end - item));
            call_backward(P, th + s * P_len, sc, sh, xp + (shared ? 0 : s * N * d), gf + s * P.out_channels * N * n_out,
                          N, t0, t1, part + (c * S + s) * P_len, gx ? gx + s * N * d : nullptr, scratch.data(),
                          tp ? tp + s * tiles * tape_len : nullptr);
            item += t1 - t0;
          }
        }
      });
    });
  }
  at::Tensor grad_theta = chunks == 1 ? partial[0] : partial.sum(0);
  at::Tensor grad_x;
  if (!x_grad) {
    grad_x = at::empty({0}, theta.options());
  } else if (shared) {
    grad_x = gx_members.sum(0);
  } else {
    grad_x = gx_members;
  }
  return {grad_theta, grad_x};
}

}  // namespace
}  // namespace mlpjet

TORCH_LIBRARY_IMPL(fastpinn, CPU, m) {
  m.impl("mlp_jet_forward", &mlpjet::mlp_jet_forward_cpu);
  m.impl("mlp_jet_backward", &mlpjet::mlp_jet_backward_cpu);
}

}  // namespace fastpinn
