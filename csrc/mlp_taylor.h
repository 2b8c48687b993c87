// fastpinn::mlp_taylor_forward / mlp_taylor_backward: pure input derivatives d^k u / dx_c^k, k = 0..n, of an MLP
// (tanh or sin hidden layers, linear output, flat theta and input box scaling as in mlp_jet.h) by univariate
// Taylor mode: along each requested coordinate c the network is evaluated on the line x + t e_c with truncated
// Taylor series in t, so one pass carries the value and the n normalised coefficients z_k = (1/k!) d^k z/dt^k of
// every pre-activation.
//
// Semantics (the oracle is fastpinn/ops/mlp_taylor.py::taylor_reference): per layer C = 1 + n_dirs * n channels,
// the value (shared by the directions) and, per direction, the coefficients 1..n. Through an affine map every
// channel is multiplied by W and only the value gets the bias. The first pre-activation's coefficients are
// W0[:, c] * scale[c] (k = 1) and 0 (k >= 2). Activations, by their ODEs as coefficient recursions (k >= 1):
//   tanh: a' = s z', s = 1 - a^2:  a_k = (1/k) sum_{j=1..k} j z_j s_{k-j},   s_k = -sum_{j=0..k} a_j a_{k-j}
//   sin:  a' = c z', c' = -a z':   a_k = (1/k) sum_{j=1..k} j z_j c_{k-j},   c_k = -(1/k) sum_{j=1..k} j z_j a_{k-j}
// The backward reverses these recursions (hand-written adjoints, see mlp_taylor_cpu.cpp). The fields returned
// are the derivatives k! z_k of the output layer.
#pragma once

#include <cstdint>
#include <vector>

#include "activation.h"

namespace fastpinn {
namespace mlptaylor {

// Points per tile: the kernels loop over a tile's points innermost (vectorisable), one tile's state in cache.
constexpr int64_t kTile = 32;
// Highest order the op takes (float32 loses about a digit per order of a tanh net's derivative).
constexpr int64_t kMaxOrder = 8;

// The activations with a recursion here (the kernels treat every other one as sin: parse_activation admits only these).
constexpr Activation kTaylorActivations[] = {Activation::kTanh, Activation::kSin};

// The network, the requested directions and order, and where each layer's tile state lives.
struct Plan {
  int64_t n_layers = 0;          // L weight layers
  std::vector<int64_t> sizes;    // L + 1 widths: in_dim, hidden..., out_dim
  std::vector<int64_t> w_off;    // offsets of W_k[out, in] (row-major) in a row of theta
  std::vector<int64_t> b_off;    // offsets of b_k[out]
  std::vector<int64_t> dirs;     // coordinates the derivatives are taken along
  int64_t order = 0;             // n
  int64_t channels = 1;          // C = 1 + n_dirs * n
  int64_t max_width = 0;         // max(sizes[1..L])
  Activation activation = Activation::kTanh;
  // Tile state: scaled points [d, kTile], then per layer l the pre-activations Z_l [C, w, kTile] and, for the
  // hidden layers, the activations A_l and the auxiliary series (tanh: s = 1 - a^2; sin: cos z) X_l, same shape.
  std::vector<int64_t> z_off, a_off, x_off;
  int64_t state_elems = 0;

  // Channel of coefficient k of direction d (k = 0: the shared value).
  int64_t ch(int64_t d, int64_t k) const { return k == 0 ? 0 : 1 + d * order + (k - 1); }
};

}  // namespace mlptaylor
}  // namespace fastpinn
