// CPU kernel of fastpinn::ema_update: a direct loop over ensemble members (S x K is tiny).
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include "checks.h"
#include "ema_update.h"

namespace fastpinn {
namespace {

void ema_update_cpu(const at::Tensor& stats, at::Tensor& lam, at::Tensor& lam_applied, at::Tensor& n_updates,
                    at::Tensor& skipped, const at::Tensor& adaptive, int64_t scheme, int64_t reference, double beta,
                    bool bias_correction, int64_t ma_form, int64_t numel) {
  const EmaParams prm = check_ema_update_args(stats, lam, lam_applied, n_updates, skipped, adaptive, scheme, reference,
                                              beta, bias_correction, ma_form, numel);
  const int64_t S = stats.size(0);
  int64_t* n = n_updates.data_ptr<int64_t>();
  int64_t* skip = skipped.data_ptr<int64_t>();
  const bool* adapt = adaptive.const_data_ptr<bool>();
  AT_DISPATCH_FLOATING_TYPES(stats.scalar_type(), "fastpinn::ema_update", [&] {
    const scalar_t* st = stats.const_data_ptr<scalar_t>();
    scalar_t* l = lam.data_ptr<scalar_t>();
    scalar_t* la = lam_applied.data_ptr<scalar_t>();
    for (int64_t s = 0; s < S; ++s) {
      int64_t& n_s = n[s * n_updates.stride(0)];
      ema_update_member<scalar_t>(st + s * stats.stride(0), stats.stride(1), stats.stride(2),
                                  {l + s * lam.stride(0), lam.stride(1)},
                                  {la + s * lam_applied.stride(0), lam_applied.stride(1)},
                                  {skip + s * skipped.stride(0), skipped.stride(1)}, {adapt, adaptive.stride(0)}, n_s,
                                  prm);
      n_s += 1;
    }
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(fastpinn, CPU, m) {
  m.impl("ema_update", &ema_update_cpu);
}

}  // namespace fastpinn
