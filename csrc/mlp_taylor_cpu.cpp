// CPU implementation of fastpinn::mlp_taylor_forward / mlp_taylor_backward (semantics: mlp_taylor.h): argument
// checks, the plan, and the split of (member, tile) work over at::parallel_for. The backward recomputes each
// tile's forward state (nothing is stored between the calls: the op is for small problems).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <string>
#include <vector>

#include "checks.h"
#include "mlp_taylor.h"
#include "mlp_taylor_kernel.h"

namespace fastpinn {
namespace mlptaylor {
namespace {

constexpr int64_t kMaxLayers = 64;

Plan make_plan(const char* op, const at::Tensor& theta, const at::Tensor& x, const at::Tensor& scale,
               const at::Tensor& shift, at::IntArrayRef sizes, at::IntArrayRef dirs, int64_t order,
               c10::string_view activation) {
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
  TORCH_CHECK(order >= 0 && order <= kMaxOrder, op, "order must be in [0, ", kMaxOrder, "], got ", order);
  Plan P;
  if (activation == "tanh") {
    P.activation = Activation::kTanh;
  } else if (activation == "sin") {
    P.activation = Activation::kSin;
  } else {
    TORCH_CHECK(false, op, "activation must be 'tanh' or 'sin', got '", std::string(activation), "'");
  }
  P.n_layers = L;
  P.sizes.assign(sizes.begin(), sizes.end());
  int64_t offset = 0;
  for (int64_t k = 0; k < L; ++k) {
    P.w_off.push_back(offset);
    offset += sizes[k + 1] * sizes[k];
    P.b_off.push_back(offset);
    offset += sizes[k + 1];
    P.max_width = std::max(P.max_width, sizes[k + 1]);
  }
  TORCH_CHECK(theta.size(1) == offset, op, "theta must have P = ", offset, " columns for sizes ", sizes, ", got ",
              theta.sizes());
  const int64_t d = sizes[0];
  TORCH_CHECK((x.dim() == 2 || (x.dim() == 3 && x.size(0) == theta.size(0))) && x.size(-1) == d, op,
              "x must have shape [N, ", d, "] or [S, N, ", d, "] with S = ", theta.size(0), ", got ", x.sizes());
  TORCH_CHECK(scale.dim() == 1 && scale.size(0) == d && shift.dim() == 1 && shift.size(0) == d, op,
              "scale and shift must have shape [", d, "], got ", scale.sizes(), " and ", shift.sizes());
  for (int64_t c : dirs) TORCH_CHECK(c >= 0 && c < d, op, "dirs must be coordinate indices in [0, ", d, "), got ", dirs);
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
  const int64_t S = theta.size(0), N = x.size(-2), n_out = sizes.back(), d = sizes[0], C = P.channels;
  const bool shared = x.dim() == 2;
  at::Tensor fields = at::empty({S, C, N, n_out}, theta.options());
  const int64_t tiles = (N + kTile - 1) / kTile;
  if (tiles == 0 || S == 0) return fields;
  AT_DISPATCH_FLOATING_TYPES(theta.scalar_type(), "fastpinn::mlp_taylor_forward", [&] {
    using T = scalar_t;
    const T* th = theta.const_data_ptr<T>();
    const T* xp = x.const_data_ptr<T>();
    const T* sc = scale.const_data_ptr<T>();
    const T* sh = shift.const_data_ptr<T>();
    T* out = fields.mutable_data_ptr<T>();
    const int64_t P_len = theta.size(1), L = P.n_layers;
    std::vector<T> fact(P.order + 1);
    for (int64_t k = 0; k <= P.order; ++k) fact[k] = factorial<T>(k);
    at::parallel_for(0, S * tiles, 4, [&](int64_t begin, int64_t end) {
      std::vector<T> st(P.state_elems);
      for (int64_t item = begin; item < end; ++item) {
        const int64_t s = item / tiles, t = item % tiles, p0 = t * kTile, np = std::min(kTile, N - p0);
        tile_forward<T>(P, th + s * P_len, sc, sh, xp + (shared ? 0 : s * N * d), p0, np, st.data());
        const T* Z = st.data() + P.z_off[L - 1];
        T* o = out + s * C * N * n_out;
        for (int64_t c = 0; c < C; ++c) {
          const T f = fact[c == 0 ? 0 : (c - 1) % P.order + 1];
          for (int64_t p = 0; p < np; ++p)
            for (int64_t j = 0; j < n_out; ++j) o[(c * N + p0 + p) * n_out + j] = Z[(c * n_out + j) * kTile + p] * f;
        }
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
  const int64_t S = theta.size(0), N = x.size(-2), n_out = sizes.back(), d = sizes[0], C = P.channels;
  TORCH_CHECK(grad_in.scalar_type() == theta.scalar_type() && grad_in.dim() == 4 && grad_in.size(0) == S &&
                  grad_in.size(1) == C && grad_in.size(2) == N && grad_in.size(3) == n_out,
              op, "grad_fields must be ", theta.scalar_type(), " of shape [", S, ", ", C, ", ", N, ", ", n_out,
              "], got ", grad_in.scalar_type(), " ", grad_in.sizes());
  const at::Tensor grad = grad_in.contiguous();
  const bool shared = x.dim() == 2;
  const int64_t tiles = (N + kTile - 1) / kTile, items = S * tiles;
  // Deterministic for a given thread count: chunk c owns a fixed range of (member, tile) items and its own
  // partial gradient; the partials are summed in chunk order.
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), items));
  at::Tensor partial = at::zeros({chunks, S, theta.size(1)}, theta.options());
  at::Tensor gx_members = x_grad ? at::empty({S, N, d}, theta.options()) : at::Tensor();
  if (items > 0) {
    AT_DISPATCH_FLOATING_TYPES(theta.scalar_type(), "fastpinn::mlp_taylor_backward", [&] {
      using T = scalar_t;
      const T* th = theta.const_data_ptr<T>();
      const T* xp = x.const_data_ptr<T>();
      const T* sc = scale.const_data_ptr<T>();
      const T* sh = shift.const_data_ptr<T>();
      const T* gf = grad.const_data_ptr<T>();
      T* part = partial.mutable_data_ptr<T>();
      T* gx = x_grad ? gx_members.mutable_data_ptr<T>() : nullptr;
      const int64_t P_len = theta.size(1);
      std::vector<T> fact(P.order + 1);
      for (int64_t k = 0; k <= P.order; ++k) fact[k] = factorial<T>(k);
      const int64_t block = C * std::max(P.max_width, d) * kTile;
      at::parallel_for(0, chunks, 1, [&](int64_t c_begin, int64_t c_end) {
        std::vector<T> st(P.state_elems), gZ(block), gA(block), gX(block);
        for (int64_t c = c_begin; c < c_end; ++c) {
          for (int64_t item = c * items / chunks; item < (c + 1) * items / chunks; ++item) {
            const int64_t s = item / tiles, t = item % tiles, p0 = t * kTile, np = std::min(kTile, N - p0);
            const T* ths = th + s * P_len;
            tile_forward<T>(P, ths, sc, sh, xp + (shared ? 0 : s * N * d), p0, np, st.data());
            const T* g = gf + s * C * N * n_out;
            for (int64_t ch = 0; ch < C; ++ch) {
              const T f = fact[ch == 0 ? 0 : (ch - 1) % P.order + 1];
              for (int64_t j = 0; j < n_out; ++j)
                for (int64_t p = 0; p < np; ++p) gZ[(ch * n_out + j) * kTile + p] = g[(ch * N + p0 + p) * n_out + j] * f;
            }
            tile_backward<T>(P, ths, sc, st.data(), p0, np, gZ.data(), gA.data(), gX.data(),
                             part + (c * S + s) * P_len, gx ? gx + s * N * d : nullptr);
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
    grad_x = S == 1 ? gx_members[0] : gx_members.sum(0);
  } else {
    grad_x = gx_members;
  }
  return {grad_theta, grad_x};
}

}  // namespace
}  // namespace mlptaylor

TORCH_LIBRARY_IMPL(fastpinn, CPU, m) {
  m.impl("mlp_taylor_forward", &mlptaylor::mlp_taylor_forward_cpu);
  m.impl("mlp_taylor_backward", &mlptaylor::mlp_taylor_backward_cpu);
}

}  // namespace fastpinn
