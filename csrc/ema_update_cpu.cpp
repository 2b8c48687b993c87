// CPU kernel of fastpinn::ema_update: a direct loop over ensemble members (S x K is tiny).
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include "checks.h"
#include "ema_update.h"

namespace fastpinn {
namespace {

void ema_update_cpu(const at::Tensor& hat, const at::Tensor& valid, const at::Tensor& target,
                    const c10::optional<at::Tensor>& active, at::Tensor& lam, at::Tensor& lam_applied,
                    at::Tensor& n_updates, at::Tensor& skipped, double beta,
                    bool bias_correction) {
  const EmaParams prm = check_ema_update_args(hat, valid, target, active, lam, lam_applied, n_updates, skipped,
                                              beta, bias_correction);
  if (active.has_value() && !active->const_data_ptr<bool>()[0]) {
    return;  // the gate is off: the state is left exactly as it was
  }
  const int64_t S = hat.size(0);
  int64_t* n = n_updates.data_ptr<int64_t>();
  int64_t* skip = skipped.data_ptr<int64_t>();
  const bool* ok = valid.const_data_ptr<bool>();
  const bool* tgt = target.const_data_ptr<bool>();
  AT_DISPATCH_FLOATING_TYPES(hat.scalar_type(), "fastpinn::ema_update", [&] {
    const scalar_t* h = hat.const_data_ptr<scalar_t>();
    scalar_t* l = lam.data_ptr<scalar_t>();
    scalar_t* la = lam_applied.data_ptr<scalar_t>();
    for (int64_t s = 0; s < S; ++s) {
      ema_update_member<scalar_t>({h + s * hat.stride(0), hat.stride(1)}, {ok + s * valid.stride(0), valid.stride(1)},
                                  {tgt, target.stride(0)}, {l + s * lam.stride(0), lam.stride(1)},
                                  {la + s * lam_applied.stride(0), lam_applied.stride(1)},
                                  {skip + s * skipped.stride(0), skipped.stride(1)}, n[s * n_updates.stride(0)],
                                  prm);
      n[s * n_updates.stride(0)] += 1;
    }
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(fastpinn, CPU, m) {
  m.impl("ema_update", &ema_update_cpu);
}

}  // namespace fastpinn
