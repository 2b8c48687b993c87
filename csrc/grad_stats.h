// Numerics of fastpinn::grad_stats shared by the CPU and CUDA kernels.
//
// A row g[0..P) is cut into chunks of kChunk elements. Each chunk is reduced by a balanced pairwise tree
// over the chunk zero-padded to a power of two W (on CUDA the halving tree a[i] += a[i + h], h = W/2, ..., 1;
// on the CPU a tree over SIMD vectors, then over their lanes, see grad_stats_cpu.cpp; every element is at
// depth log2(W) either way), whose rounding error grows like log2(kChunk) ulps rather than kChunk. Its
// variance is computed two-pass inside the chunk on data shifted by a per-row constant (see below). Chunks
// are then merged in a fixed order: sums with compensated (Neumaier) addition, (mean, M2) with Chan et al.'s
// parallel formula, and the L^p sum as a (scale, sum) pair rescaled whenever a larger max appears, so |g|^p
// never overflows.
// The fixed chunking and merge order make the result independent of the number of threads.
//
// The shift: Chan's merge needs the difference of two chunk means. With a large common offset (mean >> std)
// each chunk mean carries a rounding error ~eps * |mean|, which would dominate that difference. Working on
// g - c with c = the mean of the row's first chunk removes the offset: |c - mean(g)| <= sqrt(M2 / n_0) by
// Cauchy-Schwarz, so the shifted values are of the size of the spread, and g - c is exact (Sterbenz) where
// it matters. The SUM, SUM_ABS and SUM_SQ columns use the unshifted values.
#pragma once

#include "common.h"

namespace fastpinn {

// Elements per chunk: large enough that the per-chunk bookkeeping is negligible, small enough to stay in
// L1 on the CPU; on CUDA one chunk is one block of 256 threads x 2 elements.
constexpr int64_t kChunk = 512;
constexpr int kChunkThreads = static_cast<int>(kChunk / 2);

// Neumaier's variant of Kahan summation: unlike plain Kahan it is also accurate when |x| > |sum|,
// which happens for the SUM column of rows with cancellation. Aggregate (no constructors) so it can
// live in CUDA shared memory.
template <typename T>
struct Compensated {
  T sum;
  T comp;

  FASTPINN_HD void add(T x) {
    const T t = sum + x;
    if (fp_abs(sum) >= fp_abs(x)) {
      comp += (sum - t) + x;
    } else {
      comp += (x - t) + sum;
    }
    sum = t;
  }
  FASTPINN_HD void merge(const Compensated& o) {
    add(o.sum);
    comp += o.comp;
  }
  FASTPINN_HD void scale(T f) {
    sum *= f;
    comp *= f;
  }
  // An overflowed sum stays +-inf (the compensation would turn it into NaN).
  FASTPINN_HD T value() const { return fp_isfinite(sum) ? sum + comp : sum; }
};

// Running statistics of a part of a row: one chunk, or several chunks merged.
template <typename T>
struct StatsAcc {
  int64_t n;          // number of elements
  int64_t nonfinite;  // NaN/Inf entries
  T max_abs;          // also the scale of `lp`
  T mean;             // mean of the shifted values g - shift
  Compensated<T> sum;
  Compensated<T> sum_abs;
  Compensated<T> sum_sq;
  Compensated<T> m2;  // sum of squared deviations from `mean`
  Compensated<T> lp;  // sum |g / max_abs|^p, only for NormKind::kGeneral

  static FASTPINN_HD StatsAcc zero() {
    StatsAcc a;
    a.n = 0;
    a.nonfinite = 0;
    a.max_abs = T(0);
    a.mean = T(0);
    a.sum = {T(0), T(0)};
    a.sum_abs = {T(0), T(0)};
    a.sum_sq = {T(0), T(0)};
    a.m2 = {T(0), T(0)};
    a.lp = {T(0), T(0)};
    return a;
  }

  // Statistics of one chunk from its pairwise-tree sums. `sum_dev` and `sum_dev2` are the sums of
  // d = (g - shift) - mean and d^2; subtracting sum_dev^2 / n is the corrected two-pass formula, which
  // cancels the first-order effect of the rounding error of `mean`.
  static FASTPINN_HD StatsAcc from_chunk(int64_t n, int64_t nonfinite, T max_abs, T mean, T sum, T sum_abs,
                                         T sum_sq, T sum_dev, T sum_dev2, T lp) {
    StatsAcc a;
    a.n = n;
    a.nonfinite = nonfinite;
    a.max_abs = max_abs;
    a.mean = mean;
    a.sum = {sum, T(0)};
    a.sum_abs = {sum_abs, T(0)};
    a.sum_sq = {sum_sq, T(0)};
    const T m2 = sum_dev2 - sum_dev * sum_dev / static_cast<T>(n);
    a.m2 = {m2 > T(0) ? m2 : T(0), T(0)};
    a.lp = {lp, T(0)};
    return a;
  }

  // Merge the statistics of the elements that follow this part.
  FASTPINN_HD void merge(const StatsAcc& o, bool general_p, T p) {
    if (o.n == 0) {
      return;
    }
    if (n == 0) {
      *this = o;
      return;
    }
    // Chan et al.: M2 = M2_a + M2_b + delta^2 * n_a * n_b / n.
    const int64_t n_ab = n + o.n;
    const T delta = o.mean - mean;
    const T w = static_cast<T>(o.n) / static_cast<T>(n_ab);
    mean += delta * w;
    m2.merge(o.m2);
    m2.add(delta * delta * (static_cast<T>(n) * w));
    sum.merge(o.sum);
    sum_abs.merge(o.sum_abs);
    sum_sq.merge(o.sum_sq);
    if (general_p) {
      // Both lp sums are relative to their own max; bring the smaller-scale one to the larger scale.
      if (o.max_abs > max_abs) {
        if (max_abs > T(0)) {
          lp.scale(fp_pow(max_abs / o.max_abs, p));
        } else {
          lp = {T(0), T(0)};
        }
        lp.merge(o.lp);
      } else if (o.max_abs > T(0)) {
        Compensated<T> t = o.lp;
        t.scale(fp_pow(o.max_abs / max_abs, p));
        lp.merge(t);
      }
    }
    max_abs = fp_max(max_abs, o.max_abs);
    nonfinite += o.nonfinite;
    n = n_ab;
  }

  // Write the N_STATS columns; `out` has stride `os` between columns.
  FASTPINN_HD void finalize(T* out, int64_t os, NormKind kind, T p) const {
    const T s_abs = sum_abs.value();
    const T s_sq = sum_sq.value();
    T norm;
    switch (kind) {
      case NormKind::kL1:
        norm = s_abs;
        break;
      case NormKind::kL2:
        norm = fp_sqrt(s_sq);
        break;
      case NormKind::kLInf:
        norm = max_abs;
        break;
      default:
        norm = max_abs > T(0) ? max_abs * fp_pow(lp.value(), T(1) / p) : T(0);
        break;
    }
    const T m2v = m2.value();
    out[kSumAbs * os] = s_abs;
    out[kSumSq * os] = s_sq;
    out[kMaxAbs * os] = max_abs;
    out[kSum * os] = sum.value();
    out[kNormP * os] = norm;
    out[kM2 * os] = m2v > T(0) ? m2v : T(0);
    out[kNonfinite * os] = static_cast<T>(nonfinite);
  }
};

// The shift of a row: the mean of its first chunk, or 0 when that is not finite (the row then has
// NaN/Inf entries and its other columns are unspecified anyway).
template <typename T>
FASTPINN_HD T row_shift_from_sum(T first_chunk_sum, int64_t n0) {
  const T c = first_chunk_sum / static_cast<T>(n0);
  return fp_isfinite(c) ? c : T(0);
}

}  // namespace fastpinn
