// fastpinn::mlp_jet_forward / mlp_jet_backward: an MLP (tanh, sin, silu or softplus) with forward derivative
// jets, fused over tiles of points. This header is shared by the ATen-side dispatcher (mlp_jet_cpu.cpp) and the tile
// kernels (mlp_jet_kernel.h, compiled once per instruction set), so it includes no torch header.
//
// Semantics (the oracle is fastpinn/jets.py::jet_mlp): per layer the jet of the pre-activation is carried in
// C = 1 + n_dirs + n_pairs channels, the value z, the tangents T_c = dz/dx_{dirs[c]} and the second derivatives
// Q_q = d2z/dx_{dirs[pair_i[q]]} dx_{dirs[pair_j[q]]}. Through a = phi(z) (Plan::activation: tanh, sin, silu or
// softplus): T'_c = phi'(z) T_c and Q'_q = phi'(z) Q_q + phi''(z) T_i T_j; through an affine map every channel is
// multiplied by W and only the value gets the bias. The first pre-activation is W0 (scale * x + shift) + b0, its
// tangents W0[:, c] * scale[c] (the same at every point) and its second derivatives zero.
#pragma once

#include <cstdint>

#include "activation.h"

namespace fastpinn {
namespace mlpjet {

// Points per tile: a multiple of 32, two 64-byte vectors of floats (the kernels' unit of work along the points).
constexpr int64_t kTile = 32;

// The network and the requested channels; every pointer is owned by the caller and outlives the call.
struct Plan {
  int64_t n_layers;          // L, weight layers
  const int64_t* sizes;      // L + 1 widths: in_dim, hidden..., out_dim
  const int64_t* w_off;      // L offsets of W_k[out, in] (row-major) in a row of theta
  const int64_t* b_off;      // L offsets of b_k[out]
  int64_t n_dirs;            // tangent directions
  const int64_t* dirs;       // n_dirs coordinate indices
  int64_t n_pairs;           // second-derivative channels
  const int64_t* pair_i;     // n_pairs positions into dirs
  const int64_t* pair_j;     // n_pairs positions into dirs
  int64_t n_first;           // requested first derivatives
  const int64_t* first_out;  // n_first positions into dirs
  int64_t channels;          // C = 1 + n_dirs + n_pairs (internal)
  int64_t out_channels;      // 1 + n_first + n_pairs (fields returned: value, first, second)
  int64_t max_width;         // max(sizes[1..L])
  Activation activation;     // of the hidden layers (the kernels' Act)
};
// The activations the kernels implement (mlp_jet_kernel.h Act).
constexpr Activation kJetActivations[] = {Activation::kTanh, Activation::kSin, Activation::kSilu, Activation::kSoftplus};

// Scratch elements one task needs (one tile at a time).
int64_t forward_scratch(const Plan& plan);
// Lanes of the widest SIMD vector of any kernel set (64-byte vectors of floats), for scratch sizing.
constexpr int64_t kMaxLanes = 16;
// Elements of the weight-gradient SIMD accumulators of layers 1..L-1 (laid out with theta's offsets from
// w_off[1]: the gaps of the biases are unused), at kMaxLanes per entry.
inline int64_t gw_acc_elems(const Plan& P) {
  return P.n_layers > 1 ? (P.w_off[P.n_layers - 1] + P.sizes[P.n_layers] * P.sizes[P.n_layers - 1] - P.w_off[1]) * kMaxLanes : 0;
}
// Whether the backward keeps the hidden layers' weight gradients in SIMD accumulators (gw_acc_elems) over a
// call's tiles: when they fit in L2 next to the tile state (narrow nets: Burgers 9x20 needs 100 KiB).
constexpr int64_t kAccBytes = 256 * 1024;
inline bool use_simd_acc(const Plan& P, int64_t elem_bytes) { return gw_acc_elems(P) * elem_bytes <= kAccBytes; }
// Columns of a transposed activation jet: n rounded up to whole chunks of two SIMD vectors of any kernel set.
inline int64_t padded_cols(int64_t n) { return (n + 2 * kMaxLanes - 1) / (2 * kMaxLanes) * (2 * kMaxLanes); }
// Otherwise: the weight gradients of layers 1..L-1 with rows padded to padded_cols (no horizontal sums per
// tile, see mlp_jet_kernel.h), then one transposed activation jet [C * kTile, padded_cols(max_width)].
inline int64_t grad_weight_elems(const Plan& P) {
  int64_t n = padded_cols(P.max_width) * P.channels * kTile;
  for (int64_t k = 1; k < P.n_layers; ++k) n += P.sizes[k + 1] * padded_cols(P.sizes[k]);
  return n;
}
// Elements of one gradient jet of a tile in the backward (the widest layer's, or the scaled points').
inline int64_t backward_rows(const Plan& P) {
  const int64_t g = P.max_width * P.channels * kTile, xs = P.sizes[0] * kTile;
  return g > xs ? g : xs;
}
// Elements of one stream's weight-gradient accumulators (the SIMD ones, or the row-padded copies).
inline int64_t weight_acc_elems(const Plan& P, int64_t elem_bytes) {
  return use_simd_acc(P, elem_bytes) ? gw_acc_elems(P)
                                     : grad_weight_elems(P) - padded_cols(P.max_width) * P.channels * kTile;
}
// Elements of one tile's stored forward state (the tape): the scaled points, every layer's jet, and the
// activation jet and phi' of every hidden layer. Must match fastpinn/ops/mlp_jet.py::tape_numel.
inline int64_t tape_elems(const Plan& P) {
  const int64_t CT = P.channels * kTile;
  int64_t n = P.sizes[0] * kTile;
  for (int64_t k = 0; k < P.n_layers; ++k) n += P.sizes[k + 1] * (k + 1 < P.n_layers ? 2 * CT + kTile : CT);
  return n;
}

// One set of kernels per instruction set. Shapes, all contiguous, for one ensemble member:
// theta[P], scale[d], shift[d], x[N, d], fields/grad_fields[out_channels, N, out_dim], grad_x[N, d].
// forward writes the fields of the points in tiles [tile_begin, tile_end) and, if tape is not null, each tile's
// forward state to tape[tiles, tape_elems]; backward adds the gradient of sum(grad_fields * fields) over those
// tiles to grad_theta[P] and, if grad_x is not null, writes grad_x there -- reading the forward state from tape
// when it is not null, else recomputing it. backward_batched does the same for `streams` cotangents at
// grad_fields + j * grad_stride into grad_theta + j * grad_theta_stride, sharing each tile's forward state (no
// grad_x); stream j's gradient equals backward's with that cotangent alone, bit for bit.
// Scratch elements of one task's backward with `streams` cotangents (one tile at a time): the tile's forward state,
// a gradient jet per stream and a shared one, phi'' and phi''' of a layer, the transposed activation jet (padded
// path) and per stream the weight-gradient accumulators. Defined after tape_elems.
inline int64_t backward_scratch(const Plan& P, int64_t elem_bytes, int64_t streams = 1) {
  const bool acc = use_simd_acc(P, elem_bytes);
  return tape_elems(P) + (streams + 1) * backward_rows(P) + 2 * P.max_width * kTile +
         (acc ? 0 : padded_cols(P.max_width) * P.channels * kTile) + streams * weight_acc_elems(P, elem_bytes);
}

#define FASTPINN_MLPJET_DECLARE(T)                                                                          \
  void forward(const Plan& plan, const T* theta, const T* scale, const T* shift, const T* x, int64_t n_points, \
               int64_t tile_begin, int64_t tile_end, T* fields, T* scratch, T* tape);                        \
  void backward(const Plan& plan, const T* theta, const T* scale, const T* shift, const T* x,                 \
                const T* grad_fields, int64_t n_points, int64_t tile_begin, int64_t tile_end, T* grad_theta, \
                T* grad_x, T* scratch, const T* tape);                                                        \
  void backward_batched(const Plan& plan, const T* theta, const T* scale, const T* shift, const T* x,         \
                        const T* grad_fields, int64_t grad_stride, int64_t streams, int64_t n_points,         \
                        int64_t tile_begin, int64_t tile_end, T* grad_theta, int64_t grad_theta_stride,       \
                        T* scratch, const T* tape);

namespace base {
FASTPINN_MLPJET_DECLARE(float)
FASTPINN_MLPJET_DECLARE(double)
}  // namespace base
#if defined(FASTPINN_MLPJET_AVX2)
namespace avx2 {
FASTPINN_MLPJET_DECLARE(float)
FASTPINN_MLPJET_DECLARE(double)
}  // namespace avx2
namespace avx512 {
FASTPINN_MLPJET_DECLARE(float)
FASTPINN_MLPJET_DECLARE(double)
}  // namespace avx512
#endif
#undef FASTPINN_MLPJET_DECLARE

}  // namespace mlpjet
}  // namespace fastpinn
