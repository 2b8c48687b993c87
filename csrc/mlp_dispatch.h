// The ATen side shared by the fused MLP ops (mlp_jet_cpu.cpp, mlp_taylor_cpu.cpp): the checks of the ensemble
// inputs, the layout of S members over N points cut into tiles, the split of (member, tile) work items over
// threads (blocks claimed by the threads as they go), and the reductions of the per-block and per-member gradients.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "activation.h"
#include "checks.h"

namespace fastpinn {
namespace mlpdispatch {

// The activation a schema's `str activation` names, if it is one of `allowed` (the op's kernels: kJetActivations,
// kTaylorActivations); else a one-line ValueError naming the field and the allowed names.
template <size_t N>
Activation parse_activation(const char* op, c10::string_view name, const Activation (&allowed)[N]) {
  for (Activation a : allowed)
    if (name == activation_name(a)) return a;
  std::string names;
  for (Activation a : allowed) names += (names.empty() ? "" : ", ") + std::string(activation_name(a));
  TORCH_CHECK_VALUE(false, op, "activation must be one of ", names, ", got '", std::string(name), "'");
}

// Offsets into a member's flat parameter vector: layer k's weight [sizes[k+1], sizes[k]] starts at w_off[k], its
// bias at b_off[k]; max_width is the widest layer output.
struct LayerOffsets {
  std::vector<int64_t> w_off, b_off;
  int64_t max_width = 0;
};

// Checks theta [S, P], x [N, d] or [S, N, d], scale/shift [d], sizes (in_dim, hidden widths, out_dim; at most
// max_layers layers) and dirs (coordinate indices) for op; returns the layer offsets.
inline LayerOffsets check_ensemble_args(const char* op, const at::Tensor& theta, const at::Tensor& x,
                                        const at::Tensor& scale, const at::Tensor& shift, at::IntArrayRef sizes,
                                        at::IntArrayRef dirs, int64_t max_layers) {
  TORCH_CHECK(is_float_or_double(theta), op, "theta must be float32 or float64, got ", theta.scalar_type());
  TORCH_CHECK(theta.dim() == 2, op, "theta must be 2-D [S, P], got shape ", theta.sizes());
  for (const at::Tensor* t : {&x, &scale, &shift}) {
    TORCH_CHECK(t->scalar_type() == theta.scalar_type(), op, "x, scale and shift must have theta's dtype (",
                theta.scalar_type(), "), got ", t->scalar_type());
    TORCH_CHECK(t->device() == theta.device(), op, "all tensors must be on theta's device");
    TORCH_CHECK(t->layout() == at::kStrided, op, "all tensors must be strided (dense)");
  }
  const int64_t L = static_cast<int64_t>(sizes.size()) - 1;
  TORCH_CHECK(L >= 1 && L <= max_layers, op, "sizes must list in_dim, the hidden widths and out_dim (2 to ",
              max_layers + 1, " entries), got ", sizes);
  for (int64_t s : sizes) TORCH_CHECK(s >= 1, op, "every entry of sizes must be >= 1, got ", sizes);
  LayerOffsets o;
  int64_t offset = 0;
  for (int64_t k = 0; k < L; ++k) {
    o.w_off.push_back(offset);
    offset += sizes[k + 1] * sizes[k];
    o.b_off.push_back(offset);
    offset += sizes[k + 1];
    o.max_width = std::max(o.max_width, sizes[k + 1]);
  }
  TORCH_CHECK(theta.size(1) == offset, op, "theta must have P = ", offset, " columns for sizes ", sizes, ", got ",
              theta.sizes());
  const int64_t d = sizes[0];
  TORCH_CHECK((x.dim() == 2 || (x.dim() == 3 && x.size(0) == theta.size(0))) && x.size(-1) == d, op,
              "x must have shape [N, ", d, "] or [S, N, ", d, "] with S = ", theta.size(0), ", got ", x.sizes());
  TORCH_CHECK(scale.dim() == 1 && scale.size(0) == d && shift.dim() == 1 && shift.size(0) == d, op,
              "scale and shift must have shape [", d, "], got ", scale.sizes(), " and ", shift.sizes());
  for (int64_t c : dirs) TORCH_CHECK(c >= 0 && c < d, op, "dirs must be coordinate indices in [0, ", d, "), got ", dirs);
  return o;
}

// S members (rows of theta) at N points, shared by all members (x [N, d]) or one set per member (x [S, N, d]).
// The work items are (member, tile) pairs in member-major order: item = s * tiles + t.
struct Ensemble {
  int64_t members, points, in_dim, params;
  bool shared;
  int64_t tiles, items;

  Ensemble(const at::Tensor& theta, const at::Tensor& x, int64_t tile)
      : members(theta.size(0)), points(x.size(-2)), in_dim(x.size(-1)), params(theta.size(1)),
        shared(x.dim() == 2), tiles((points + tile - 1) / tile), items(members * tiles) {}

  // Offset of member s's points in x.
  int64_t x_offset(int64_t s) const { return shared ? 0 : s * points * in_dim; }

  // Calls run(s, t0, t1) for each run of tiles [t0, t1) of one member s that makes up items [begin, end), in
  // item order.
  template <typename Run>
  void for_runs(int64_t begin, int64_t end, Run&& run) const {
    for (int64_t item = begin; item < end;) {
      const int64_t s = item / tiles, t0 = item % tiles, t1 = std::min(tiles, t0 + (end - item));
      run(s, t0, t1);
      item += t1 - t0;
    }
  }
};

// The split of a call's (member, tile) items over threads. The items are cut into fixed blocks that the threads
// claim one at a time (first come, first served) instead of one static range per thread: a thread that runs
// slower -- a core shared with another process, a descheduled thread on a busy machine, a slower core -- then
// takes fewer blocks instead of holding up the call's end. Which blocks there are depends only on the item count
// and the thread count, never on the timing, so each block's result (and the backward's weight gradient, summed
// over blocks in block order) is the same from run to run.
struct Blocks {
  int64_t count, items;

  // n_items cut into blocks: one at 1 thread; else a multiple of the thread count, up to blocks_per_thread per
  // thread while a block keeps at least min_items items (few items: one block per thread, an even split).
  Blocks(int64_t n_items, int64_t min_items, int64_t blocks_per_thread) : count(1), items(n_items) {
    const int64_t threads = at::get_num_threads();
    if (threads > 1 && n_items > 1) {
      const int64_t per_thread = std::min(blocks_per_thread, std::max<int64_t>(1, n_items / (min_items * threads)));
      count = std::min(n_items, per_thread * threads);
    }
  }

  int64_t begin(int64_t b) const { return b * items / count; }
  int64_t end(int64_t b) const { return (b + 1) * items / count; }

  // Calls worker(claim) on up to one thread per block, all at once; claim() returns the next unclaimed block or -1
  // when none is left. worker sets up its thread's scratch once and loops over the blocks it claims.
  template <typename Worker>
  void share(Worker&& worker) const {
    std::atomic<int64_t> next{0};
    const int64_t n = count;
    auto claim = [&next, n]() -> int64_t {
      const int64_t b = next.fetch_add(1, std::memory_order_relaxed);
      return b < n ? b : -1;
    };
    const int64_t workers = std::min<int64_t>(at::get_num_threads(), count);
    if (workers <= 1) return worker(claim);
    at::parallel_for(0, workers, 1, [&](int64_t, int64_t) { worker(claim); });
  }
};

// Forward blocks: the items are independent and a claim costs one atomic add, so blocks can be small.
constexpr int64_t kForwardBlockItems = 1, kForwardBlocksPerThread = 16;
inline Blocks forward_blocks(int64_t n_items) { return Blocks(n_items, kForwardBlockItems, kForwardBlocksPerThread); }

// Backward blocks: each block sums its weight gradient into its own partial [S, P] (zeroed and summed once per
// block: a few passes over P, small against the >= 4 tiles of recompute and backward that a block runs).
constexpr int64_t kBackwardBlockItems = 4, kBackwardBlocksPerThread = 4;

struct BackwardBlocks : Blocks {
  explicit BackwardBlocks(int64_t n_items) : Blocks(n_items, kBackwardBlockItems, kBackwardBlocksPerThread) {}

  // The blocks' partial gradients [blocks, *block_shape] (e.g. [S, P]), uninitialised: each block zeroes its own
  // (zero_partial) on the thread that fills it. Zeros when there are no items (no block runs).
  at::Tensor partials(at::IntArrayRef block_shape, const at::TensorOptions& options) const {
    std::vector<int64_t> shape{count};
    shape.insert(shape.end(), block_shape.begin(), block_shape.end());
    return items == 0 ? at::zeros(shape, options) : at::empty(shape, options);
  }
};

// Zeroes block b's partial of `len` elements (the product of block_shape).
template <typename T>
void zero_partial(T* partials, int64_t b, int64_t len) {
  std::fill(partials + b * len, partials + (b + 1) * len, T(0));
}

// The gradient wrt theta [*block_shape] from the blocks' partials [blocks, *block_shape]: their sum in block order,
// element by element (the same for every thread count that gives the same blocks).
inline at::Tensor sum_partials(const at::Tensor& partial) {
  const int64_t blocks = partial.size(0);
  if (blocks == 1) return partial[0];
  at::Tensor out = at::empty(partial.sizes().slice(1), partial.options());
  const int64_t len = out.numel();
  AT_DISPATCH_FLOATING_TYPES(partial.scalar_type(), "fastpinn::sum_partials", [&] {
    const scalar_t* p = partial.const_data_ptr<scalar_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    // Grain: a net of ~50k parameters (Allen-Cahn's 2-128x4-1) reduces inline, without a parallel region.
    at::parallel_for(0, len, 1 << 16, [&](int64_t e0, int64_t e1) {
      std::copy(p + e0, p + e1, o + e0);
      for (int64_t b = 1; b < blocks; ++b) {
        const scalar_t* q = p + b * len;
        for (int64_t e = e0; e < e1; ++e) o[e] += q[e];
      }
    });
  });
  return out;
}

// The per-member gradients wrt x [S, N, d], written by the kernels; undefined when x's gradient is not wanted.
inline at::Tensor member_grad_x(const Ensemble& e, bool x_grad, const at::TensorOptions& options) {
  return x_grad ? at::empty({e.members, e.points, e.in_dim}, options) : at::Tensor();
}

// The gradient wrt x in x's shape: shared points get the sum over members, per-member points their own; an empty
// tensor when x's gradient was not wanted.
inline at::Tensor grad_x_of(const Ensemble& e, const at::Tensor& gx_members, const at::TensorOptions& options) {
  if (!gx_members.defined()) return at::empty({0}, options);
  return e.shared ? gx_members.sum(0) : gx_members;
}

}  // namespace mlpdispatch
}  // namespace fastpinn
