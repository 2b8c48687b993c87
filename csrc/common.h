// Shared by the CPU (.cpp) and CUDA (.cu) kernels of fastpinn: the statistics layout, scalar helpers that
// compile for host and device, and the input checks of both ops.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#if defined(__CUDACC__)
#define FASTPINN_HD __host__ __device__ __forceinline__
#else
#define FASTPINN_HD inline
#endif

namespace fastpinn {

// Column layout of stats[S, K, N_STATS]; must match fastpinn/ops/layout.py.
enum Stat : int64_t {
  kSumAbs = 0,
  kSumSq = 1,
  kMaxAbs = 2,
  kSum = 3,
  kNormP = 4,
  kM2 = 5,
  kNonfinite = 6,
  kNumStats = 7,
};

// How the NORM_P column is obtained: p = 1, 2 and inf reuse other columns (as the reference does);
// any other p needs the max-scaled sum of |g / max|^p.
enum class NormKind : int { kL1, kL2, kLInf, kGeneral };

// std:: math is host-only under nvcc; the CUDA math library overloads the global names for float and double.
template <typename T>
FASTPINN_HD T fp_abs(T x) {
#if defined(__CUDA_ARCH__)
  return ::fabs(x);
#else
  return std::fabs(x);
#endif
}

template <typename T>
FASTPINN_HD T fp_sqrt(T x) {
#if defined(__CUDA_ARCH__)
  return ::sqrt(x);
#else
  return std::sqrt(x);
#endif
}

template <typename T>
FASTPINN_HD T fp_pow(T x, T y) {
#if defined(__CUDA_ARCH__)
  return ::pow(x, y);
#else
  return std::pow(x, y);
#endif
}

template <typename T>
FASTPINN_HD bool fp_isfinite(T x) {
#if defined(__CUDA_ARCH__)
  return isfinite(x);
#else
  return std::isfinite(x);
#endif
}

template <typename T>
FASTPINN_HD T fp_max(T a, T b) {
  // NaN in b is ignored; a row holding NaN is flagged by the NONFINITE column instead.
  return b > a ? b : a;
}

template <typename T>
FASTPINN_HD T fp_nan() {
#if defined(__CUDA_ARCH__)
  return static_cast<T>(::nan(""));
#else
  return std::numeric_limits<T>::quiet_NaN();
#endif
}

}  // namespace fastpinn
