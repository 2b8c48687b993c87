// Argument checks shared by the CPU and CUDA implementations (host code only).
#pragma once

#include <ATen/MemoryOverlap.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <cmath>

#include "common.h"
#include "ema_update.h"

namespace fastpinn {

inline bool is_float_or_double(const at::Tensor& t) {
  return t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble;
}

inline NormKind check_grad_stats_args(const at::Tensor& G, double p) {
  TORCH_CHECK(G.layout() == at::kStrided, "fastpinn::grad_stats: G must be a strided (dense) tensor, got layout ",
              G.layout());
  TORCH_CHECK(G.dim() == 3, "fastpinn::grad_stats: G must be 3-D [S, K, P], got shape ", G.sizes());
  TORCH_CHECK(is_float_or_double(G), "fastpinn::grad_stats: G must be float32 or float64, got ", G.scalar_type());
  TORCH_CHECK(G.size(2) >= 1, "fastpinn::grad_stats: G must have P = G.size(2) >= 1, got shape ", G.sizes());
  TORCH_CHECK(!std::isnan(p) && p >= 1.0, "fastpinn::grad_stats: p must be a number >= 1 or inf, got ", p);
  if (p == 1.0) {
    return NormKind::kL1;
  }
  if (p == 2.0) {
    return NormKind::kL2;
  }
  if (std::isinf(p)) {
    return NormKind::kLInf;
  }
  return NormKind::kGeneral;
}

inline EmaParams check_ema_update_args(const at::Tensor& hat, const at::Tensor& valid, const at::Tensor& target,
                                       const c10::optional<at::Tensor>& active, const at::Tensor& lam,
                                       const at::Tensor& lam_applied, const at::Tensor& n_updates, const at::Tensor& skipped, double beta,
                                       bool bias_correction) {
  constexpr const char* op = "fastpinn::ema_update: ";
  TORCH_CHECK(hat.dim() == 2, op, "hat must have shape [S, K], got ", hat.sizes());
  TORCH_CHECK(is_float_or_double(hat), op, "hat must be float32 or float64, got ", hat.scalar_type());
  const int64_t S = hat.size(0);
  const int64_t K = hat.size(1);
  TORCH_CHECK(K >= 1, op, "hat must hold K >= 1 loss terms, got shape ", hat.sizes());
  for (const at::Tensor* t : {&lam, &lam_applied}) {
    const char* name = t == &lam ? "lam" : "lam_applied";
    TORCH_CHECK(t->dim() == 2 && t->size(0) == S && t->size(1) == K, op, name, " must have shape [S, K] = [", S,
                ", ", K, "], got ", t->sizes());
    TORCH_CHECK(t->scalar_type() == hat.scalar_type(), op, name, " must have the dtype of hat (",
                hat.scalar_type(), "), got ", t->scalar_type());
  }
  TORCH_CHECK(valid.dim() == 2 && valid.size(0) == S && valid.size(1) == K, op, "valid must have shape [S, K] = [",
              S, ", ", K, "], got ", valid.sizes());
  TORCH_CHECK(valid.scalar_type() == at::kBool, op, "valid must be bool, got ", valid.scalar_type());
  TORCH_CHECK(skipped.dim() == 2 && skipped.size(0) == S && skipped.size(1) == K, op,
              "skipped must have shape [S, K] = [", S, ", ", K, "], got ", skipped.sizes());
  TORCH_CHECK(skipped.scalar_type() == at::kLong, op, "skipped must be int64, got ", skipped.scalar_type());
  TORCH_CHECK(n_updates.dim() == 1 && n_updates.size(0) == S, op, "n_updates must have shape [S] = [", S, "], got ",
              n_updates.sizes());
  TORCH_CHECK(n_updates.scalar_type() == at::kLong, op, "n_updates must be int64, got ", n_updates.scalar_type());
  TORCH_CHECK(target.dim() == 1 && target.size(0) == K, op, "target must have shape [K] = [", K, "], got ",
              target.sizes());
  TORCH_CHECK(target.scalar_type() == at::kBool, op, "target must be bool, got ", target.scalar_type());
  if (active.has_value()) {
    TORCH_CHECK(active->dim() == 0 && active->scalar_type() == at::kBool, op,
                "active must be a 0-dim bool tensor, got shape ", active->sizes(), " and dtype ",
                active->scalar_type());
    TORCH_CHECK(active->device() == hat.device(), op, "active must be on the device of hat (", hat.device(),
                "), got ", active->device());
  }
  for (const at::Tensor* t : {&valid, &target, &lam, &lam_applied, &n_updates, &skipped}) {
    TORCH_CHECK(t->device() == hat.device(), op, "all tensors must be on the device of hat (", hat.device(),
                "), got one on ", t->device());
    TORCH_CHECK(t->layout() == at::kStrided, op, "all tensors must be strided (dense)");
  }
  // beta = 1 would never move lam and divides by 1 - beta^n = 0 under bias correction.
  TORCH_CHECK(std::isfinite(beta) && beta >= 0.0 && beta < 1.0, op, "beta must be in [0, 1), got ", beta);
  // lam and lam_applied are written one after the other: shared memory would mix EMA state and applied weights.
  const at::MemOverlapStatus overlap = at::get_overlap_status(lam, lam_applied);
  TORCH_CHECK(overlap != at::MemOverlapStatus::Full && overlap != at::MemOverlapStatus::Partial, op,
              "lam and lam_applied must be distinct buffers, got overlapping memory");
  return EmaParams{K, beta, bias_correction};
}

}  // namespace fastpinn
