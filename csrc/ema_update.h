// The scheme-free weight update of fastpinn::ema_update for one ensemble member, shared by the CPU loop and
// the CUDA kernel (one thread per member). Semantics: fastpinn/ops/reference.py::ema_update_ref.
//
// The op knows no scheme: each scheme forms its candidate weights hat[S, K] and a validity mask in Python
// (a few tensor operations on the tiny statistics); the op does what every scheme shares -- the EMA, the
// per-term bias correction, the update gate and the skip counting.
#pragma once

#include "common.h"

namespace fastpinn {

struct EmaParams {
  int64_t num_terms;  // K
  double beta;
  bool bias_correction;
};

// A strided row view: element k lives at ptr[k * stride].
template <typename T>
struct Strided {
  T* ptr;
  int64_t stride;
  FASTPINN_HD T& operator[](int64_t k) const { return ptr[k * stride]; }
};

// Update member s (all views point at row s); `n_old` is n_updates[s] before this update. A target term
// whose candidate is invalid or non-finite keeps both weights and `skipped` counts it; otherwise
// lam <- beta lam + (1 - beta) hat and the applied weight is lam / (1 - beta^c) with bias correction, where
// c is the term's own number of EMA updates. Every update call either updates or skips each target term, so
// c = n_updates - skipped (both after this call) -- no separate counter is needed. Floating-point
// operations follow the reference's order and precision: beta and 1 - beta are rounded to T,
// 1 - beta^c is computed in double and then rounded to T.
template <typename T>
FASTPINN_HD void ema_update_member(Strided<const T> hat, Strided<const bool> valid, Strided<const bool> target,
                                   Strided<T> lam, Strided<T> lam_applied, Strided<int64_t> skipped,
                                   int64_t n_old, const EmaParams& prm) {
  const T beta = static_cast<T>(prm.beta);
  const T one_minus_beta = static_cast<T>(1.0 - prm.beta);
  for (int64_t j = 0; j < prm.num_terms; ++j) {
    if (!target[j]) {
      continue;
    }
    const T h = hat[j];
    if (!valid[j] || !fp_isfinite(h)) {
      skipped[j] += 1;  // both weights are kept
      continue;
    }
    const int64_t c = n_old + 1 - skipped[j];
    const T new_lam = beta * lam[j] + one_minus_beta * h;
    lam[j] = new_lam;
    if (prm.bias_correction) {
#if defined(__CUDA_ARCH__)
      const double beta_c = ::pow(prm.beta, static_cast<double>(c));
#else
      const double beta_c = std::pow(prm.beta, static_cast<double>(c));
#endif
      lam_applied[j] = new_lam / static_cast<T>(1.0 - beta_c);
    } else {
      lam_applied[j] = new_lam;
    }
  }
}

}  // namespace fastpinn
