// CPU implementation of fastpinn::mlp_taylor_forward / mlp_taylor_backward (semantics: mlp_taylor.h): argument
// checks, the plan, and the split of (member, tile) work over at::parallel_for (the parts shared with mlp_jet:
// mlp_dispatch.h). The backward recomputes each tile's forward state (nothing is stored between the calls: the op
// is for small problems).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <string>
#include <vector>

#include "checks.h"
#include "mlp_dispatch.h"
#include "mlp_taylor.h"
#include "mlp_taylor_kernel.h"

namespace fastpinn {
namespace mlptaylor {
namespace {

constexpr int64_t kMaxLayers = 64;

Plan make_plan(const char* op, const at::Tensor& theta, const at::Tensor& x, const at::Tensor& scale,
               const at::Tensor& shift, at::IntArrayRef sizes, at::IntArrayRef dirs, int64_t order,
               c10::string_view activation) {
  TORCH_CHECK(order >= 0 && order <= kMaxOrder, op, "order must be in [0, ", kMaxOrder, "], got ", order);
  Plan P;
  P.activation = mlpdispatch::parse_activation(op, activation, kTaylorActivations);
  mlpdispatch::LayerOffsets layers =
      mlpdispatch::check_ensemble_args(op, theta, x, scale, shift, sizes, dirs, kMaxLayers);
  const int64_t L = static_cast<int64_t>(sizes.size()) - 1, d = sizes[0];
  P.n_layers = L;
  P.sizes.assign(sizes.begin(), sizes.end());
  P.w_off = std::move(layers.w_off);
  P.b_off = std::move(layers.b_off);
  P.max_width = layers.max_width;
  P.dirs.assign(dirs.begin(), dirs.end());
  P.order = order;
  P.channels = 1 + static_cast<int64_t>(P.dirs.size()) * order;
  int64_t at_ = d * kTile;
  for (int64_t k = 0; k < L; ++k) {
    const int64_t block = P.channels * sizes[k + 1] * kTile;
    P.z_off.push_back(at_);
    at_ += block;
    if (k + 1 < L) {
      P.a_off.push_back(at_);
      at_ += block;
      P.x_off.push_back(at_);
      at_ += block;
    }
  }
  P.state_elems = at_;
  return P;
}

at::Tensor mlp_taylor_forward_cpu(const at::Tensor& theta_in, const at::Tensor& x_in, const at::Tensor& scale_in,
                                  const at::Tensor& shift_in, at::IntArrayRef sizes, at::IntArrayRef dirs,
                                  int64_t order, c10::string_view activation) {
  constexpr const char* op = "fastpinn::mlp_taylor_forward: ";
  const Plan P = make_plan(op, theta_in, x_in, scale_in, shift_in, sizes, dirs, order, activation);
  const at::Tensor theta = theta_in.contiguous(), x = x_in.contiguous();
  const at::Tensor scale = scale_in.contiguous(), shift = shift_in.contiguous();
  const mlpdispatch::Ensemble E(theta, x, kTile);
  const int64_t S = E.members, N = E.points, n_out = sizes.back(), C = P.channels;
  at::Tensor fields = at::empty({S, C, N, n_out}, theta.options());
  if (E.items == 0) return fields;
  AT_DISPATCH_FLOATING_TYPES(theta.scalar_type(), "fastpinn::mlp_taylor_forward", [&] {
    using T = scalar_t;
    const T* th = theta.const_data_ptr<T>();
    const T* xp = x.const_data_ptr<T>();
    const T* sc = scale.const_data_ptr<T>();
    const T* sh = shift.const_data_ptr<T>();
    T* out = fields.mutable_data_ptr<T>();
    const int64_t L = P.n_layers;
    std::vector<T> fact(P.order + 1);
    for (int64_t k = 0; k <= P.order; ++k) fact[k] = factorial<T>(k);
    const mlpdispatch::Blocks blocks = mlpdispatch::forward_blocks(E.items);
    blocks.share([&](auto&& claim) {
      std::vector<T> st(P.state_elems);
      for (int64_t b = claim(); b >= 0; b = claim()) {
        E.for_runs(blocks.begin(b), blocks.end(b), [&](int64_t s, int64_t t0, int64_t t1) {
          for (int64_t t = t0; t < t1; ++t) {
            const int64_t p0 = t * kTile, np = std::min(kTile, N - p0);
            tile_forward<T>(P, th + s * E.params, sc, sh, xp + E.x_offset(s), p0, np, st.data());
            const T* Z = st.data() + P.z_off[L - 1];
            T* o = out + s * C * N * n_out;
            for (int64_t c = 0; c < C; ++c) {
              const T f = fact[c == 0 ? 0 : (c - 1) % P.order + 1];
              for (int64_t p = 0; p < np; ++p)
                for (int64_t j = 0; j < n_out; ++j)
                  o[(c * N + p0 + p) * n_out + j] = Z[(c * n_out + j) * kTile + p] * f;
            }
          }
        });
      }
    });
  });
  return fields;
}

std::tuple<at::Tensor, at::Tensor> mlp_taylor_backward_cpu(const at::Tensor& grad_in, const at::Tensor& theta_in,
                                                           const at::Tensor& x_in, const at::Tensor& scale_in,
                                                           const at::Tensor& shift_in, at::IntArrayRef sizes,
                                                           at::IntArrayRef dirs, int64_t order,
                                                           c10::string_view activation, bool x_grad) {
  constexpr const char* op = "fastpinn::mlp_taylor_backward: ";
  const Plan P = make_plan(op, theta_in, x_in, scale_in, shift_in, sizes, dirs, order, activation);
  const at::Tensor theta = theta_in.contiguous(), x = x_in.contiguous();
  const at::Tensor scale = scale_in.contiguous(), shift = shift_in.contiguous();
  const mlpdispatch::Ensemble E(theta, x, kTile);
  const int64_t S = E.members, N = E.points, n_out = sizes.back(), d = E.in_dim, C = P.channels;
  TORCH_CHECK(grad_in.scalar_type() == theta.scalar_type() && grad_in.dim() == 4 && grad_in.size(0) == S &&
                  grad_in.size(1) == C && grad_in.size(2) == N && grad_in.size(3) == n_out,
              op, "grad_fields must be ", theta.scalar_type(), " of shape [", S, ", ", C, ", ", N, ", ", n_out,
              "], got ", grad_in.scalar_type(), " ", grad_in.sizes());
  const at::Tensor grad = grad_in.contiguous();
  const mlpdispatch::BackwardBlocks blocks(E.items);
  at::Tensor partial = blocks.partials({S, E.params}, theta.options());
  at::Tensor gx_members = mlpdispatch::member_grad_x(E, x_grad, theta.options());
  if (E.items > 0) {
    AT_DISPATCH_FLOATING_TYPES(theta.scalar_type(), "fastpinn::mlp_taylor_backward", [&] {
      using T = scalar_t;
      const T* th = theta.const_data_ptr<T>();
      const T* xp = x.const_data_ptr<T>();
      const T* sc = scale.const_data_ptr<T>();
      const T* sh = shift.const_data_ptr<T>();
      const T* gf = grad.const_data_ptr<T>();
      T* part = partial.mutable_data_ptr<T>();
      T* gx = x_grad ? gx_members.mutable_data_ptr<T>() : nullptr;
      const int64_t P_len = E.params;
      std::vector<T> fact(P.order + 1);
      for (int64_t k = 0; k <= P.order; ++k) fact[k] = factorial<T>(k);
      const int64_t block = C * std::max(P.max_width, d) * kTile;
      blocks.share([&](auto&& claim) {
        std::vector<T> st(P.state_elems), gZ(block), gA(block), gX(block);
        for (int64_t b = claim(); b >= 0; b = claim()) {
          mlpdispatch::zero_partial(part, b, S * P_len);
          E.for_runs(blocks.begin(b), blocks.end(b), [&](int64_t s, int64_t t0, int64_t t1) {
            const T* ths = th + s * P_len;
            const T* g = gf + s * C * N * n_out;
            for (int64_t t = t0; t < t1; ++t) {
              const int64_t p0 = t * kTile, np = std::min(kTile, N - p0);
              tile_forward<T>(P, ths, sc, sh, xp + E.x_offset(s), p0, np, st.data());
              for (int64_t ch = 0; ch < C; ++ch) {
                const T f = fact[ch == 0 ? 0 : (ch - 1) % P.order + 1];
                for (int64_t j = 0; j < n_out; ++j)
                  for (int64_t p = 0; p < np; ++p) gZ[(ch * n_out + j) * kTile + p] = g[(ch * N + p0 + p) * n_out + j] * f;
              }
              tile_backward<T>(P, ths, sc, st.data(), p0, np, gZ.data(), gA.data(), gX.data(),
                               part + (b * S + s) * P_len, gx ? gx + s * N * d : nullptr);
            }
          });
        }
      });
    });
  }
  return {mlpdispatch::sum_partials(partial), mlpdispatch::grad_x_of(E, gx_members, theta.options())};
}

}  // namespace
}  // namespace mlptaylor

TORCH_LIBRARY_IMPL(fastpinn, CPU, m) {
  m.impl("mlp_taylor_forward", &mlptaylor::mlp_taylor_forward_cpu);
  m.impl("mlp_taylor_backward", &mlptaylor::mlp_taylor_backward_cpu);
}

}  // namespace fastpinn
