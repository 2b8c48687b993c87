// CPU kernel of fastpinn::grad_stats. Numerics: grad_stats.h.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "checks.h"
#include "grad_stats.h"

namespace fastpinn {
namespace {

// Elements per parallel task, as at::internal::GRAIN_SIZE (whose header, TensorIterator.h, is heavy).
constexpr int64_t kGrainElements = 32768;

int64_t pow2_ceil(int64_t n) {
  int64_t w = 1;
  while (w < n) {
    w *= 2;
  }
  return w;
}

// Balanced pairwise sum of a[0..w), w a power of two; destroys a. The same halving order as the CUDA block
// reduction (there w = kChunk; the extra zero padding does not change any partial sum).
template <typename T>
T tree_sum(T* a, int64_t w) {
  for (int64_t h = w / 2; h > 0; h /= 2) {
    for (int64_t i = 0; i < h; ++i) {
      a[i] += a[i + h];
    }
  }
  return a[0];
}

template <typename T>
void pad_zero(T* a, int64_t n, int64_t w) {
  std::fill(a + n, a + w, T(0));
}

// Copy n strided elements into a dense buffer, so that the arithmetic below vectorises for any input strides.
template <typename T>
void load(const T* x, int64_t stride, int64_t n, T* buf) {
  if (stride == 1) {
    std::copy(x, x + n, buf);
  } else {
    for (int64_t i = 0; i < n; ++i) {
      buf[i] = x[i * stride];
    }
  }
}

template <typename T>
T first_chunk_shift(const T* x, int64_t stride, int64_t n0) {
  alignas(64) T a[kChunk];
  const int64_t w = pow2_ceil(n0);
  load(x, stride, n0, a);
  pad_zero(a, n0, w);
  return row_shift_from_sum(tree_sum(a, w), n0);
}

// Statistics of one chunk x[0..n), n <= kChunk.
template <typename T>
StatsAcc<T> chunk_stats(const T* x, int64_t stride, int64_t n, T shift, NormKind kind, T p) {
  alignas(64) T g[kChunk];
  alignas(64) T a[kChunk];
  alignas(64) T b[kChunk];
  alignas(64) T c[kChunk];
  alignas(64) T d[kChunk];
  const int64_t w = pow2_ceil(n);
  load(x, stride, n, g);

  constexpr T kMaxFinite = std::numeric_limits<T>::max();
  int64_t nonfinite = 0;
  T max_abs = T(0);
  for (int64_t i = 0; i < n; ++i) {
    const T v = g[i];
    const T av = fp_abs(v);
    nonfinite += !(av <= kMaxFinite);  // false for NaN and +-inf
    max_abs = fp_max(max_abs, av);
    a[i] = v;
    b[i] = av;
    c[i] = v * v;
    d[i] = v - shift;
  }
  for (T* buf : {a, b, c, d}) {
    pad_zero(buf, n, w);
  }
  const T sum = tree_sum(a, w);
  const T sum_abs = tree_sum(b, w);
  const T sum_sq = tree_sum(c, w);
  const T mean = tree_sum(d, w) / static_cast<T>(n);

  // Second pass over the (L1-resident) chunk: deviations from the chunk mean.
  for (int64_t i = 0; i < n; ++i) {
    const T dev = (g[i] - shift) - mean;
    a[i] = dev;
    b[i] = dev * dev;
  }
  pad_zero(a, n, w);
  pad_zero(b, n, w);
  const T sum_dev = tree_sum(a, w);
  const T sum_dev2 = tree_sum(b, w);

  T lp = T(0);
  if (kind == NormKind::kGeneral && max_abs > T(0)) {
    // Relative to the chunk max, so every term is <= 1: no overflow for any p.
    for (int64_t i = 0; i < n; ++i) {
      a[i] = fp_pow(fp_abs(g[i]) / max_abs, p);
    }
    pad_zero(a, n, w);
    lp = tree_sum(a, w);
  }
  return StatsAcc<T>::from_chunk(n, nonfinite, max_abs, mean, sum, sum_abs, sum_sq, sum_dev, sum_dev2, lp);
}

template <typename T>
void grad_stats_cpu_kernel(const at::Tensor& G, NormKind kind, T p, at::Tensor& out) {
  const int64_t K = G.size(1);
  const int64_t P = G.size(2);
  const int64_t rows = G.size(0) * K;
  const int64_t s0 = G.stride(0);
  const int64_t s1 = G.stride(1);
  const int64_t s2 = G.stride(2);
  const T* g = G.const_data_ptr<T>();
  auto row = [&](int64_t r) { return g + (r / K) * s0 + (r % K) * s1; };

  const int64_t n_chunks = (P + kChunk - 1) / kChunk;
  const int64_t n0 = std::min(P, kChunk);
  // Grain sizes in rows/chunks, each worth about kGrainElements elements.
  const int64_t row_grain = std::max<int64_t>(1, kGrainElements / n0);
  const int64_t chunk_grain = std::max<int64_t>(1, kGrainElements / kChunk);

  std::vector<T> shift(rows);
  at::parallel_for(0, rows, row_grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      shift[r] = first_chunk_shift(row(r), s2, n0);
    }
  });

  // All chunks of all rows in one flat range, so that a few rows with a huge P still use every thread.
  std::vector<StatsAcc<T>> parts(rows * n_chunks);
  at::parallel_for(0, rows * n_chunks, chunk_grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t r = i / n_chunks;
      const int64_t start = (i % n_chunks) * kChunk;
      parts[i] = chunk_stats(row(r) + start * s2, s2, std::min(kChunk, P - start), shift[r], kind, p);
    }
  });

  // Merge each row's chunks in order: the result does not depend on how the chunks were scheduled.
  T* o = out.data_ptr<T>();
  const bool general = kind == NormKind::kGeneral;
  const int64_t merge_grain = std::max<int64_t>(1, 1024 / n_chunks);
  at::parallel_for(0, rows, merge_grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      StatsAcc<T> acc = StatsAcc<T>::zero();
      for (int64_t c = 0; c < n_chunks; ++c) {
        acc.merge(parts[r * n_chunks + c], general, p);
      }
      acc.finalize(o + r * kNumStats, 1, kind, p);
    }
  });
}

at::Tensor grad_stats_cpu(const at::Tensor& G, double p) {
  const NormKind kind = check_grad_stats_args(G, p);
  at::Tensor out = at::empty({G.size(0), G.size(1), kNumStats}, G.options());
  if (out.numel() == 0) {
    return out;
  }
  AT_DISPATCH_FLOATING_TYPES(G.scalar_type(), "fastpinn::grad_stats", [&] {
    grad_stats_cpu_kernel<scalar_t>(G, kind, static_cast<scalar_t>(p), out);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastpinn, CPU, m) {
  m.impl("grad_stats", &grad_stats_cpu);
}

}  // namespace fastpinn
