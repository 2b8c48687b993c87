// CPU kernels of fastpinn::grad_stats (numerics: grad_stats.h) and fastpinn::grad_gram (below).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "checks.h"
#include "grad_stats.h"

#if defined(__GNUC__) && defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace fastpinn {
namespace {

// Elements per parallel task, as at::internal::GRAIN_SIZE (whose header, TensorIterator.h, is heavy).
constexpr int64_t kGrainElements = 32768;

// ---- A short SIMD vector of kLanes elements: GCC/Clang vector extensions (SSE2 on the baseline x86-64
// target, NEON on arm64), a plain array elsewhere. Every operation is lane-wise and rounds exactly as the
// scalar one.
constexpr int kVecBytes = 16;

template <typename T>
constexpr int64_t kLanes = kVecBytes / static_cast<int64_t>(sizeof(T));

#if defined(__GNUC__)
#define FASTPINN_INLINE inline __attribute__((always_inline))

template <typename T>
struct VecTypes;
template <>
struct VecTypes<float> {
  using Lane = int32_t;  // the integer of the same width, for masks
  typedef float V __attribute__((vector_size(kVecBytes)));
  typedef int32_t I __attribute__((vector_size(kVecBytes)));
};
template <>
struct VecTypes<double> {
  using Lane = int64_t;
  typedef double V __attribute__((vector_size(kVecBytes)));
  typedef int64_t I __attribute__((vector_size(kVecBytes)));
};
template <typename T>
using Vec = typename VecTypes<T>::V;

template <typename T>
FASTPINN_INLINE Vec<T> vec_load(const T* x) {
  Vec<T> v;
  std::memcpy(&v, x, sizeof(v));  // unaligned load
  return v;
}
template <typename T>
FASTPINN_INLINE Vec<T> vec_splat(T x) {
  return Vec<T>{} + x;
}
template <typename T>
FASTPINN_INLINE T vec_lane(const Vec<T>& v, int64_t l) {
  return v[l];
}
// fp_abs lane-wise: clears the sign bit.
template <typename T>
FASTPINN_INLINE Vec<T> vec_abs(Vec<T> v) {
  using I = typename VecTypes<T>::I;
  const I mask = I{} + std::numeric_limits<typename VecTypes<T>::Lane>::max();
  return reinterpret_cast<Vec<T>>(reinterpret_cast<I>(v) & mask);
}
// fp_max(a, b) lane-wise: b > a ? b : a, so a NaN in b is ignored.
template <typename T>
FASTPINN_INLINE Vec<T> vec_max(Vec<T> a, Vec<T> b) {
#if defined(__SSE2__)
  // MAXPS(x, y) / MAXPD(x, y) is exactly x > y ? x : y, NaN included.
  if constexpr (std::is_same_v<T, float>) {
    return _mm_max_ps(b, a);
  } else {
    return _mm_max_pd(b, a);
  }
#else
  using I = typename VecTypes<T>::I;
  const I gt = b > a;
  return reinterpret_cast<Vec<T>>((gt & reinterpret_cast<I>(b)) | (~gt & reinterpret_cast<I>(a)));
#endif
}
// v with the lanes of index first + l >= n set to 0.
template <typename T>
FASTPINN_INLINE Vec<T> vec_keep_below(Vec<T> v, int64_t first, int64_t n) {
  using Lane = typename VecTypes<T>::Lane;
  using I = typename VecTypes<T>::I;
  I idx;
  for (int64_t l = 0; l < kLanes<T>; ++l) {
    idx[l] = static_cast<Lane>(l);
  }
  const I keep = idx < static_cast<Lane>(n - first);  // n - first > -kChunk
  return reinterpret_cast<Vec<T>>(keep & reinterpret_cast<I>(v));
}
#else
#define FASTPINN_INLINE inline

template <typename T>
struct Vec {
  T v[kLanes<T>];
  friend Vec operator+(Vec a, const Vec& b) {
    for (int64_t l = 0; l < kLanes<T>; ++l) a.v[l] += b.v[l];
    return a;
  }
  friend Vec operator-(Vec a, const Vec& b) {
    for (int64_t l = 0; l < kLanes<T>; ++l) a.v[l] -= b.v[l];
    return a;
  }
  friend Vec operator*(Vec a, const Vec& b) {
    for (int64_t l = 0; l < kLanes<T>; ++l) a.v[l] *= b.v[l];
    return a;
  }
};
template <typename T>
FASTPINN_INLINE Vec<T> vec_load(const T* x) {
  Vec<T> r;
  std::copy(x, x + kLanes<T>, r.v);
  return r;
}
template <typename T>
FASTPINN_INLINE Vec<T> vec_splat(T x) {
  Vec<T> r;
  std::fill(r.v, r.v + kLanes<T>, x);
  return r;
}
template <typename T>
FASTPINN_INLINE T vec_lane(const Vec<T>& v, int64_t l) {
  return v.v[l];
}
template <typename T>
FASTPINN_INLINE Vec<T> vec_abs(Vec<T> a) {
  for (int64_t l = 0; l < kLanes<T>; ++l) a.v[l] = fp_abs(a.v[l]);
  return a;
}
template <typename T>
FASTPINN_INLINE Vec<T> vec_max(Vec<T> a, const Vec<T>& b) {
  for (int64_t l = 0; l < kLanes<T>; ++l) a.v[l] = fp_max(a.v[l], b.v[l]);
  return a;
}
template <typename T>
FASTPINN_INLINE Vec<T> vec_keep_below(Vec<T> v, int64_t first, int64_t n) {
  for (int64_t l = 0; l < kLanes<T>; ++l) {
    if (first + l >= n) v.v[l] = T(0);
  }
  return v;
}
#endif

// ---- Pairwise sums of a chunk.
//
// The chunk sums are balanced pairwise trees over the chunk zero-padded to a power of two W (grad_stats.h),
// with the pairs chosen so that they vectorise without scratch arrays: the chunk is read as W / kLanes
// consecutive vectors of kLanes elements, the vectors are combined by a balanced tree held in registers, and
// the kLanes lanes of the result by the halving tree. Every element sits at depth log2(W) of one balanced
// binary tree, as in the plain halving tree a[i] += a[i + W/2], ..., which pairs the leaves in another order:
// the error bound is the same, O(log2(kChunk) eps) per chunk. All quantities of one pass over the chunk are
// summed in the same tree, so the chunk is read once per pass.

// Vectors per unrolled block of the tree; the blocks are combined like a binary counter.
constexpr int64_t kBlockVecs = 8;
constexpr int kMaxStack = 8;
static_assert(kChunk % (kBlockVecs * kLanes<double>) == 0 && kChunk % (kBlockVecs * kLanes<float>) == 0,
              "a full chunk must be a whole number of blocks");
static_assert(kChunk / (kBlockVecs * kLanes<float>) < (int64_t{1} << (kMaxStack - 1)), "stack too small");

// Partial sums of Q quantities and maxima of M quantities, one vector each.
template <typename T, int Q, int M = 0>
struct Partial {
  Vec<T> sum[Q];
  Vec<T> max[M > 0 ? M : 1];
};

template <typename T, int Q, int M>
FASTPINN_INLINE void combine(Partial<T, Q, M>& a, const Partial<T, Q, M>& b) {
  for (int q = 0; q < Q; ++q) {
    a.sum[q] = a.sum[q] + b.sum[q];
  }
  for (int m = 0; m < M; ++m) {
    a.max[m] = vec_max<T>(a.max[m], b.max[m]);  // exact in any order
  }
}

// Balanced tree over the vectors [k, k + N), N a power of two, unrolled; `leaf(k, out)` sets the terms of
// vector k.
template <int64_t N, typename T, int Q, int M, typename Leaf>
FASTPINN_INLINE void vec_tree(const Leaf& leaf, int64_t k, Partial<T, Q, M>& out) {
  if constexpr (N == 1) {
    leaf(k, out);
  } else {
    Partial<T, Q, M> right;
    vec_tree<N / 2>(leaf, k, out);
    vec_tree<N / 2>(leaf, k + N / 2, right);
    combine(out, right);
  }
}

// Balanced tree over the vectors [0, n_vec), n_vec a power of two <= kChunk / kLanes: unrolled blocks of
// kBlockVecs vectors; block b then closes the subtrees of the trailing one bits of b (a binary counter).
template <typename T, int Q, int M, typename Leaf>
FASTPINN_INLINE void vec_tree_n(int64_t n_vec, const Leaf& leaf, Partial<T, Q, M>& out) {
  static_assert(kBlockVecs == 8, "update the cases below");
  switch (n_vec) {
    case 1: return vec_tree<1>(leaf, 0, out);
    case 2: return vec_tree<2>(leaf, 0, out);
    case 4: return vec_tree<4>(leaf, 0, out);
    default: break;
  }
  Partial<T, Q, M> stack[kMaxStack];
  const int64_t n_blocks = n_vec / kBlockVecs;
  int top = 0;
  for (int64_t b = 0; b < n_blocks; ++b) {
    Partial<T, Q, M> acc;
    vec_tree<kBlockVecs>(leaf, b * kBlockVecs, acc);
    int j = 0;
    for (int64_t m = b; m & 1; m >>= 1, ++j) {
      combine(acc, stack[j]);  // right + left == left + right exactly
    }
    stack[j] = acc;
    top = j;
  }
  out = stack[top];
}

// The halving tree over the lanes of v.
template <typename T>
FASTPINN_INLINE T lane_sum(const Vec<T>& v) {
  T x[kLanes<T>];
  for (int64_t l = 0; l < kLanes<T>; ++l) {
    x[l] = vec_lane<T>(v, l);
  }
  for (int64_t h = kLanes<T> / 2; h > 0; h /= 2) {
    for (int64_t i = 0; i < h; ++i) {
      x[i] += x[i + h];
    }
  }
  return x[0];
}

template <typename T>
FASTPINN_INLINE T lane_max(const Vec<T>& v) {
  T m = T(0);
  for (int64_t l = 0; l < kLanes<T>; ++l) {
    m = fp_max(m, vec_lane<T>(v, l));
  }
  return m;
}

int64_t pow2_ceil(int64_t n) {
  int64_t w = 1;
  while (w < n) {
    w *= 2;
  }
  return w;
}

// The padded length W of a chunk of n elements: a power of two and a whole number of vectors.
template <typename T>
int64_t padded_length(int64_t n) {
  return std::max(kLanes<T>, pow2_ceil(n));
}

// Gather n strided elements into buf, zero-padded to w: the chunk passes then read dense memory, with the
// same summation order for every input stride.
template <typename T>
void load_padded(const T* x, int64_t stride, int64_t n, int64_t w, T* buf) {
  if (stride == 1) {
    std::copy(x, x + n, buf);
  } else {
    for (int64_t i = 0; i < n; ++i) {
      buf[i] = x[i * stride];
    }
  }
  std::fill(buf + n, buf + w, T(0));
}

// Pairwise sum of the dense, zero-padded x[0..w).
template <typename T>
T dense_tree_sum(const T* x, int64_t w) {
  Partial<T, 1> acc;
  vec_tree_n(w / kLanes<T>, [x](int64_t k, Partial<T, 1>& o) { o.sum[0] = vec_load(x + k * kLanes<T>); },
             acc);
  return lane_sum<T>(acc.sum[0]);
}

template <typename T>
T first_chunk_shift(const T* x, int64_t stride, int64_t n0) {
  if (stride == 1 && n0 == kChunk) {
    return row_shift_from_sum(dense_tree_sum(x, kChunk), n0);
  }
  alignas(64) T a[kChunk];
  const int64_t w = padded_length<T>(n0);
  load_padded(x, stride, n0, w, a);
  return row_shift_from_sum(dense_tree_sum(a, w), n0);
}

// Statistics of the dense chunk x[0..n) stored zero-padded to w = padded_length(n). Masked (n < w): the
// shifted values and deviations of the padding are zeroed explicitly (the other sums see the padding zeros).
template <bool Masked, typename T>
StatsAcc<T> dense_chunk_stats(const T* x, int64_t n, int64_t w, T shift, NormKind kind, T p) {
  constexpr int64_t L = kLanes<T>;
  const int64_t n_vec = w / L;
  const Vec<T> vshift = vec_splat(shift);
  const Vec<T> zero = vec_splat(T(0));

  // Pass 1: sum g, sum |g|, sum g^2, sum (g - shift) and max |g|, in one read of the chunk.
  Partial<T, 4, 1> s;
  vec_tree_n(n_vec, [x, n, vshift, zero](int64_t k, Partial<T, 4, 1>& o) {
    const Vec<T> g = vec_load(x + k * L);
    const Vec<T> ag = vec_abs<T>(g);
    o.sum[0] = g;
    o.sum[1] = ag;
    o.sum[2] = g * g;
    o.sum[3] = Masked ? vec_keep_below<T>(g - vshift, k * L, n) : g - vshift;
    o.max[0] = vec_max<T>(zero, ag);  // NaN ignored, as by fp_max
  }, s);
  const T sum = lane_sum<T>(s.sum[0]);
  const T sum_abs = lane_sum<T>(s.sum[1]);
  const T sum_sq = lane_sum<T>(s.sum[2]);
  const T mean = lane_sum<T>(s.sum[3]) / static_cast<T>(n);
  const T max_abs = lane_max<T>(s.max[0]);

  // NaN and +-inf reach sum |g| (a tree of additions of non-negative terms), so a finite sum_abs means that
  // there are none; otherwise (a NaN/Inf entry, or an overflowing sum) count them.
  int64_t nonfinite = 0;
  if (!fp_isfinite(sum_abs)) {
    constexpr T kMaxFinite = std::numeric_limits<T>::max();
    for (int64_t i = 0; i < n; ++i) {
      nonfinite += !(fp_abs(x[i]) <= kMaxFinite);  // false for NaN and +-inf
    }
  }

  // Pass 2 over the (L1-resident) chunk: deviations from the chunk mean.
  const Vec<T> vmean = vec_splat(mean);
  Partial<T, 2> d;
  vec_tree_n(n_vec, [x, n, vshift, vmean](int64_t k, Partial<T, 2>& o) {
    Vec<T> dev = (vec_load(x + k * L) - vshift) - vmean;
    if (Masked) {
      dev = vec_keep_below<T>(dev, k * L, n);
    }
    o.sum[0] = dev;
    o.sum[1] = dev * dev;
  }, d);
  const T sum_dev = lane_sum<T>(d.sum[0]);
  const T sum_dev2 = lane_sum<T>(d.sum[1]);

  T lp = T(0);
  if (kind == NormKind::kGeneral && max_abs > T(0)) {
    // Relative to the chunk max, so every term is <= 1: no overflow for any p. The padding adds 0^p = 0.
    Partial<T, 1> acc;
    vec_tree_n(n_vec, [x, max_abs, p](int64_t k, Partial<T, 1>& o) {
      alignas(kVecBytes) T t[L];
      for (int64_t l = 0; l < L; ++l) {
        t[l] = fp_pow(fp_abs(x[k * L + l]) / max_abs, p);
      }
      o.sum[0] = vec_load<T>(t);
    }, acc);
    lp = lane_sum<T>(acc.sum[0]);
  }
  return StatsAcc<T>::from_chunk(n, nonfinite, max_abs, mean, sum, sum_abs, sum_sq, sum_dev, sum_dev2, lp);
}

// Statistics of one chunk x[0..n), n <= kChunk, read with stride `stride`.
template <typename T>
StatsAcc<T> chunk_stats(const T* x, int64_t stride, int64_t n, T shift, NormKind kind, T p) {
  if (stride == 1 && n == kChunk) {
    return dense_chunk_stats<false>(x, n, n, shift, kind, p);  // the common case: no copy
  }
  alignas(64) T buf[kChunk];
  const int64_t w = padded_length<T>(n);
  load_padded(x, stride, n, w, buf);
  return n == w ? dense_chunk_stats<false>(buf, n, w, shift, kind, p)
                : dense_chunk_stats<true>(buf, n, w, shift, kind, p);
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

// ---- fastpinn::grad_gram: out[s, i, j] = sum_p G[s, i, p] G[s, j, p] in float64, one pass over G.
//
// A task reads one kChunk-column slab of all K rows of a member (converted to double: a product of two floats is
// exact in double) and forms all K (K + 1) / 2 dot products of the slab, which stays in L1/L2 while it does. Each
// slab dot product uses kGramLanes independent accumulators added in a fixed order at the end; the slabs of a
// member are then merged in column order with Neumaier compensation. Error of an entry: at most about
// (kChunk / kGramLanes + 2) eps64 sum_p |g_i g_j|, independent of P and of the number of threads (fixed
// chunking, fixed merge order).
constexpr int kGramLanes = 4;

double gram_dot(const double* x, const double* y, int64_t n) {
  double acc[kGramLanes] = {0.0, 0.0, 0.0, 0.0};
  int64_t q = 0;
  for (; q + kGramLanes <= n; q += kGramLanes) {
    for (int l = 0; l < kGramLanes; ++l) {
      acc[l] += x[q + l] * y[q + l];
    }
  }
  for (int l = 0; q < n; ++q, ++l) {
    acc[l] += x[q] * y[q];
  }
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

template <typename T>
void grad_gram_cpu_kernel(const at::Tensor& G, at::Tensor& out) {
  const int64_t S = G.size(0);
  const int64_t K = G.size(1);
  const int64_t P = G.size(2);
  const int64_t s0 = G.stride(0);
  const int64_t s1 = G.stride(1);
  const int64_t s2 = G.stride(2);
  const T* g = G.const_data_ptr<T>();
  const int64_t n_chunks = (P + kChunk - 1) / kChunk;
  const int64_t pairs = K * (K + 1) / 2;
  const int64_t grain = std::max<int64_t>(1, kGrainElements / (K * kChunk));

  std::vector<double> parts(S * n_chunks * pairs);
  at::parallel_for(0, S * n_chunks, grain, [&](int64_t begin, int64_t end) {
    std::vector<double> slab(K * kChunk);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t s = i / n_chunks;
      const int64_t start = (i % n_chunks) * kChunk;
      const int64_t n = std::min(kChunk, P - start);
      for (int64_t k = 0; k < K; ++k) {
        const T* x = g + s * s0 + k * s1 + start * s2;
        double* y = slab.data() + k * kChunk;
        for (int64_t q = 0; q < n; ++q) {
          y[q] = static_cast<double>(x[q * s2]);
        }
      }
      double* part = parts.data() + i * pairs;
      for (int64_t a = 0; a < K; ++a) {
        for (int64_t b = a; b < K; ++b) {
          *part++ = gram_dot(slab.data() + a * kChunk, slab.data() + b * kChunk, n);
        }
      }
    }
  });

  double* o = out.data_ptr<double>();
  at::parallel_for(0, S * pairs, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t s = i / pairs;
      const int64_t pair = i % pairs;
      Compensated<double> acc{0.0, 0.0};
      for (int64_t c = 0; c < n_chunks; ++c) {
        acc.add(parts[(s * n_chunks + c) * pairs + pair]);
      }
      // (a, b) of the pair-th entry of the upper triangle, row by row
      int64_t a = 0;
      int64_t first = 0;
      while (first + (K - a) <= pair) {
        first += K - a;
        ++a;
      }
      const int64_t b = a + (pair - first);
      const double v = acc.value();
      o[(s * K + a) * K + b] = v;
      o[(s * K + b) * K + a] = v;
    }
  });
}

at::Tensor grad_gram_cpu(const at::Tensor& G) {
  TORCH_CHECK(G.layout() == at::kStrided, "fastpinn::grad_gram: G must be a strided (dense) tensor, got layout ",
              G.layout());
  TORCH_CHECK(G.dim() == 3, "fastpinn::grad_gram: G must be 3-D [S, K, P], got shape ", G.sizes());
  TORCH_CHECK(is_float_or_double(G), "fastpinn::grad_gram: G must be float32 or float64, got ", G.scalar_type());
  TORCH_CHECK(G.size(2) >= 1, "fastpinn::grad_gram: G must have P = G.size(2) >= 1, got shape ", G.sizes());
  at::Tensor out = at::empty({G.size(0), G.size(1), G.size(1)}, G.options().dtype(at::kDouble));
  if (out.numel() == 0) {
    return out;
  }
  AT_DISPATCH_FLOATING_TYPES(G.scalar_type(), "fastpinn::grad_gram", [&] {
    grad_gram_cpu_kernel<scalar_t>(G, out);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastpinn, CPU, m) {
  m.impl("grad_stats", &grad_stats_cpu);
  m.impl("grad_gram", &grad_gram_cpu);
}

}  // namespace fastpinn
