// The tile kernels of fastpinn::mlp_taylor_* (semantics in mlp_taylor.h). Every loop over points runs over one
// tile's np <= kTile points innermost, so the compiler vectorises it; the networks this op is for are small
// (the per-call overhead of a step, not its flops, is what fusing the whole net into one call removes).
#pragma once

#include <cmath>
#include <cstdint>

#include "mlp_taylor.h"

namespace fastpinn {
namespace mlptaylor {

constexpr int64_t TP = kTile;

// k! as the scalar type (k <= kMaxOrder).
template <typename T>
inline T factorial(int64_t k) {
  T f = 1;
  for (int64_t i = 2; i <= k; ++i) f *= static_cast<T>(i);
  return f;
}

// The activation's Taylor recursion for layer state Z [C, w, TP] -> A, X (see mlp_taylor.h).
template <typename T>
void activation_forward(const Plan& P, int64_t w, int64_t np, const T* Z, T* A, T* X) {
  const int64_t n = P.order, nd = static_cast<int64_t>(P.dirs.size());
  const bool is_tanh = P.activation == Activation::kTanh;
  for (int64_t i = 0; i < w; ++i) {
    auto at = [&](const T* base, int64_t d, int64_t k) { return base + (P.ch(d, k) * w + i) * TP; };
    auto mut = [&](T* base, int64_t d, int64_t k) { return base + (P.ch(d, k) * w + i) * TP; };
    const T* z0 = at(Z, 0, 0);
    T* a0 = A + i * TP;
    T* x0 = X + i * TP;
    if (is_tanh) {
      for (int64_t p = 0; p < np; ++p) {
        const T a = std::tanh(z0[p]);
        a0[p] = a;
        x0[p] = T(1) - a * a;
      }
    } else {
      for (int64_t p = 0; p < np; ++p) {
        a0[p] = std::sin(z0[p]);
        x0[p] = std::cos(z0[p]);
      }
    }
    for (int64_t d = 0; d < nd; ++d) {
      for (int64_t k = 1; k <= n; ++k) {
        T* ak = mut(A, d, k);
        for (int64_t p = 0; p < np; ++p) ak[p] = 0;
        for (int64_t j = 1; j <= k; ++j) {
          const T coef = static_cast<T>(j) / static_cast<T>(k);
          const T* zj = at(Z, d, j);
          const T* xkj = at(X, d, k - j);
          for (int64_t p = 0; p < np; ++p) ak[p] += coef * zj[p] * xkj[p];
        }
        if (k == n) continue;  // X_n is never read
        T* xk = mut(X, d, k);
        for (int64_t p = 0; p < np; ++p) xk[p] = 0;
        if (is_tanh) {  // s_k = -sum_{j=0..k} a_j a_{k-j}
          for (int64_t j = 0; j <= k; ++j) {
            const T* aj = at(A, d, j);
            const T* akj = at(A, d, k - j);
            for (int64_t p = 0; p < np; ++p) xk[p] -= aj[p] * akj[p];
          }
        } else {  // c_k = -(1/k) sum_{j=1..k} j z_j a_{k-j}
          for (int64_t j = 1; j <= k; ++j) {
            const T coef = static_cast<T>(j) / static_cast<T>(k);
            const T* zj = at(Z, d, j);
            const T* akj = at(A, d, k - j);
            for (int64_t p = 0; p < np; ++p) xk[p] -= coef * zj[p] * akj[p];
          }
        }
      }
    }
  }
}

// Adjoint of activation_forward: gA [C, w, TP] (overwritten: it accumulates the recursion's own adjoints) ->
// gZ [C, w, TP]; gX is scratch of the same shape.
template <typename T>
void activation_backward(const Plan& P, int64_t w, int64_t np, const T* Z, const T* A, const T* X, T* gA, T* gZ,
                         T* gX) {
  const int64_t n = P.order, nd = static_cast<int64_t>(P.dirs.size()), C = P.channels;
  const bool is_tanh = P.activation == Activation::kTanh;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < w; ++i)
      for (int64_t p = 0; p < np; ++p) gZ[(c * w + i) * TP + p] = gX[(c * w + i) * TP + p] = 0;
  for (int64_t i = 0; i < w; ++i) {
    auto at = [&](const T* base, int64_t d, int64_t k) { return base + (P.ch(d, k) * w + i) * TP; };
    auto mut = [&](T* base, int64_t d, int64_t k) { return base + (P.ch(d, k) * w + i) * TP; };
    for (int64_t d = 0; d < nd; ++d) {
      for (int64_t k = n; k >= 1; --k) {
        // Reverse of X_k (computed after A_k in the forward, so undone first).
        if (k < n) {
          const T* gx = at(gX, d, k);
          if (is_tanh) {
            for (int64_t j = 0; j <= k; ++j) {
              T* gaj = mut(gA, d, j);
              const T* akj = at(A, d, k - j);
              // d s_k / d a_j = -2 a_{k-j} (a_j appears as the j-th and the (k-j)-th factor of the sum)
              for (int64_t p = 0; p < np; ++p) gaj[p] -= T(2) * gx[p] * akj[p];
            }
          } else {
            for (int64_t j = 1; j <= k; ++j) {
              const T coef = static_cast<T>(j) / static_cast<T>(k);
              T* gzj = mut(gZ, d, j);
              T* gakj = mut(gA, d, k - j);
              const T* zj = at(Z, d, j);
              const T* akj = at(A, d, k - j);
              for (int64_t p = 0; p < np; ++p) {
                gzj[p] -= coef * gx[p] * akj[p];
                gakj[p] -= coef * gx[p] * zj[p];
              }
            }
          }
        }
        // Reverse of A_k = (1/k) sum_j j z_j X_{k-j}.
        const T* ga = at(gA, d, k);
        for (int64_t j = 1; j <= k; ++j) {
          const T coef = static_cast<T>(j) / static_cast<T>(k);
          T* gzj = mut(gZ, d, j);
          T* gxkj = mut(gX, d, k - j);
          const T* zj = at(Z, d, j);
          const T* xkj = at(X, d, k - j);
          for (int64_t p = 0; p < np; ++p) {
            gzj[p] += coef * ga[p] * xkj[p];
            gxkj[p] += coef * ga[p] * zj[p];
          }
        }
      }
    }
    // The value channel: tanh a0 = tanh z0, s0 = 1 - a0^2; sin a0 = sin z0, c0 = cos z0.
    const T* a0 = A + i * TP;
    const T* x0 = X + i * TP;
    const T* ga0 = gA + i * TP;
    const T* gx0 = gX + i * TP;
    T* gz0 = gZ + i * TP;
    if (is_tanh) {
      for (int64_t p = 0; p < np; ++p) gz0[p] = (ga0[p] - T(2) * a0[p] * gx0[p]) * x0[p];
    } else {
      for (int64_t p = 0; p < np; ++p) gz0[p] = ga0[p] * x0[p] - gx0[p] * a0[p];
    }
  }
}

// Z[C, out, TP] = W[out, in] A[C, in, TP] (+ b on channel 0).
template <typename T>
void affine_forward(int64_t C, int64_t n_in, int64_t n_out, int64_t np, const T* W, const T* b, const T* A, T* Z) {
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t i = 0; i < n_out; ++i) {
      T* z = Z + (c * n_out + i) * TP;
      const T init = c == 0 ? b[i] : T(0);
      for (int64_t p = 0; p < np; ++p) z[p] = init;
      for (int64_t j = 0; j < n_in; ++j) {
        const T wij = W[i * n_in + j];
        const T* a = A + (c * n_in + j) * TP;
        for (int64_t p = 0; p < np; ++p) z[p] += wij * a[p];
      }
    }
  }
}

// One tile's forward: points x[p0 .. p0 + np) (rows of d) -> the tile state st (Plan offsets).
template <typename T>
void tile_forward(const Plan& P, const T* theta, const T* scale, const T* shift, const T* x, int64_t p0, int64_t np,
                  T* st) {
  const int64_t d = P.sizes[0], C = P.channels, n = P.order, nd = static_cast<int64_t>(P.dirs.size());
  T* xs = st;
  for (int64_t j = 0; j < d; ++j)
    for (int64_t p = 0; p < np; ++p) xs[j * TP + p] = x[(p0 + p) * d + j] * scale[j] + shift[j];
  // Layer 0: the value from the points; the coefficients are the same at every point.
  {
    const int64_t w = P.sizes[1];
    const T* W = theta + P.w_off[0];
    affine_forward<T>(1, d, w, np, W, theta + P.b_off[0], xs, st + P.z_off[0]);
    T* Z = st + P.z_off[0];
    for (int64_t dd = 0; dd < nd; ++dd) {
      const int64_t c = P.dirs[dd];
      for (int64_t k = 1; k <= n; ++k) {
        for (int64_t i = 0; i < w; ++i) {
          const T v = k == 1 ? W[i * d + c] * scale[c] : T(0);
          T* z = Z + (P.ch(dd, k) * w + i) * TP;
          for (int64_t p = 0; p < np; ++p) z[p] = v;
        }
      }
    }
  }
  for (int64_t l = 1; l < P.n_layers; ++l) {
    const int64_t w_in = P.sizes[l];
    activation_forward<T>(P, w_in, np, st + P.z_off[l - 1], st + P.a_off[l - 1], st + P.x_off[l - 1]);
    affine_forward<T>(C, w_in, P.sizes[l + 1], np, theta + P.w_off[l], theta + P.b_off[l], st + P.a_off[l - 1],
                      st + P.z_off[l]);
  }
}

// Backward of one tile: gZ [C, out, TP] holds the gradient of the output layer's coefficients on entry (it is
// reused as scratch); adds to gtheta and writes gx rows (if not null). gA, gX: scratch [C, max_width, TP].
template <typename T>
void tile_backward(const Plan& P, const T* theta, const T* scale, const T* st, int64_t p0, int64_t np, T* gZ, T* gA,
                   T* gX, T* gtheta, T* gx) {
  const int64_t d = P.sizes[0], C = P.channels, nd = static_cast<int64_t>(P.dirs.size());
  for (int64_t l = P.n_layers - 1; l >= 1; --l) {
    const int64_t n_in = P.sizes[l], n_out = P.sizes[l + 1];
    const T* W = theta + P.w_off[l];
    const T* A = st + P.a_off[l - 1];
    T* gW = gtheta + P.w_off[l];
    T* gb = gtheta + P.b_off[l];
    for (int64_t i = 0; i < n_out; ++i) {
      const T* g = gZ + i * TP;
      T acc = 0;
      for (int64_t p = 0; p < np; ++p) acc += g[p];
      gb[i] += acc;
    }
    for (int64_t c = 0; c < C; ++c) {
      for (int64_t j = 0; j < n_in; ++j) {
        T* ga = gA + (c * n_in + j) * TP;
        for (int64_t p = 0; p < np; ++p) ga[p] = 0;
      }
      for (int64_t i = 0; i < n_out; ++i) {
        const T* g = gZ + (c * n_out + i) * TP;
        for (int64_t j = 0; j < n_in; ++j) {
          const T* a = A + (c * n_in + j) * TP;
          T* ga = gA + (c * n_in + j) * TP;
          const T wij = W[i * n_in + j];
          T acc = 0;
          for (int64_t p = 0; p < np; ++p) {
            acc += g[p] * a[p];
            ga[p] += wij * g[p];
          }
          gW[i * n_in + j] += acc;
        }
      }
    }
    activation_backward<T>(P, n_in, np, st + P.z_off[l - 1], A, st + P.x_off[l - 1], gA, gZ, gX);
  }
  // Layer 0: the value channel saw the scaled points, the first coefficients W0[:, c] * scale[c].
  const int64_t w = P.sizes[1];
  const T* W = theta + P.w_off[0];
  const T* xs = st;
  T* gW = gtheta + P.w_off[0];
  T* gb = gtheta + P.b_off[0];
  for (int64_t i = 0; i < w; ++i) {
    const T* g = gZ + i * TP;
    T acc = 0;
    for (int64_t p = 0; p < np; ++p) acc += g[p];
    gb[i] += acc;
    for (int64_t j = 0; j < d; ++j) {
      const T* xj = xs + j * TP;
      T a2 = 0;
      for (int64_t p = 0; p < np; ++p) a2 += g[p] * xj[p];
      gW[i * d + j] += a2;
    }
    if (P.order >= 1) {
      for (int64_t dd = 0; dd < nd; ++dd) {
        const int64_t c = P.dirs[dd];
        const T* g1 = gZ + (P.ch(dd, 1) * w + i) * TP;
        T a1 = 0;
        for (int64_t p = 0; p < np; ++p) a1 += g1[p];
        gW[i * d + c] += a1 * scale[c];
      }
    }
  }
  if (gx != nullptr) {
    for (int64_t j = 0; j < d; ++j) {
      T* acc = gA + j * TP;  // scratch
      for (int64_t p = 0; p < np; ++p) acc[p] = 0;
      for (int64_t i = 0; i < w; ++i) {
        const T wij = W[i * d + j];
        const T* g = gZ + i * TP;
        for (int64_t p = 0; p < np; ++p) acc[p] += wij * g[p];
      }
      for (int64_t p = 0; p < np; ++p) gx[(p0 + p) * d + j] = acc[p] * scale[j];
    }
  }
}

}  // namespace mlptaylor
}  // namespace fastpinn
