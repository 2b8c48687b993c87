// The weight update of fastpinn::ema_update for one ensemble member, shared by the CPU loop and the CUDA
// kernel (one thread per member). Semantics: fastpinn/ops/reference.py::ema_update_ref.
#pragma once

#include "common.h"

namespace fastpinn {

struct EmaParams {
  int64_t num_terms;  // K
  int64_t scheme;
  int64_t reference;
  double beta;
  bool bias_correction;
  int64_t ma_form;
  int64_t numel;
};

// A strided row view: element k lives at ptr[k * stride].
template <typename T>
struct Strided {
  T* ptr;
  int64_t stride;
  FASTPINN_HD T& operator[](int64_t k) const { return ptr[k * stride]; }
};

// Sample standard deviation from the M2 column (Bessel's correction); NaN for a single element, which
// makes the term skipped, as in the reference.
template <typename T>
FASTPINN_HD T sample_std(T m2, int64_t numel) {
  return numel > 1 ? fp_sqrt(m2 / static_cast<T>(numel - 1)) : fp_nan<T>();
}

// Update member s. `stats` points at stats[s, 0, 0] with strides (sk, sc) for (term, column);
// `n_old` is n_updates[s] before this update. Floating-point operations follow the reference's order and
// precision: the candidate is formed in T, beta and 1 - beta are rounded to T, 1 - beta^n is computed in
// double and then rounded to T.
template <typename T>
FASTPINN_HD void ema_update_member(const T* stats, int64_t sk, int64_t sc, Strided<T> lam, Strided<T> lam_applied,
                                   Strided<int64_t> skipped, Strided<const bool> adaptive, int64_t n_old,
                                   const EmaParams& prm) {
  auto stat = [&](int64_t k, int64_t c) -> T { return stats[k * sk + c * sc]; };
  const int64_t r = prm.reference;

  T num;
  if (prm.scheme == kSchemeMA) {
    num = stat(r, kMaxAbs);
  } else if (prm.scheme == kSchemeID) {
    num = sample_std(stat(r, kM2), prm.numel);
  } else {
    num = stat(r, kNormP);
  }
  const bool num_ok = stat(r, kNonfinite) == T(0) && fp_isfinite(num) && num > T(0);

  const int64_t n_new = n_old + 1;
#if defined(__CUDA_ARCH__)
  const double beta_n = ::pow(prm.beta, static_cast<double>(n_new));
#else
  const double beta_n = std::pow(prm.beta, static_cast<double>(n_new));
#endif
  const T correction = static_cast<T>(1.0 - beta_n);
  const T beta = static_cast<T>(prm.beta);
  const T one_minus_beta = static_cast<T>(1.0 - prm.beta);

  for (int64_t j = 0; j < prm.num_terms; ++j) {
    if (j == r || !adaptive[j]) {
      continue;
    }
    T den;
    if (prm.scheme == kSchemeMA) {
      den = stat(j, kSumAbs) / static_cast<T>(prm.numel);
      if (prm.ma_form == kMaFormPaper) {
        den = den * lam_applied[j];
      }
    } else if (prm.scheme == kSchemeID) {
      den = sample_std(stat(j, kM2), prm.numel);
    } else {
      den = stat(j, kNormP);
    }
    const T hat = num / den;
    const bool valid = num_ok && stat(j, kNonfinite) == T(0) && fp_isfinite(den) && den > T(0) && fp_isfinite(hat);
    if (!valid) {
      skipped[j] += 1;  // both weights are kept
      continue;
    }
    const T new_lam = beta * lam[j] + one_minus_beta * hat;
    lam[j] = new_lam;
    lam_applied[j] = prm.bias_correction ? new_lam / correction : new_lam;
  }
}

}  // namespace fastpinn
