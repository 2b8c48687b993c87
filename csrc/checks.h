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

inline EmaParams check_ema_update_args(const at::Tensor& stats, const at::Tensor& lam, const at::Tensor& lam_applied,
                                       const at::Tensor& n_updates, const at::Tensor& skipped,
                                       const at::Tensor& adaptive, int64_t scheme, int64_t reference, double beta,
                                       bool bias_correction, int64_t ma_form, int64_t numel) {
  constexpr const char* op = "fastpinn::ema_update: ";
  TORCH_CHECK(stats.dim() == 3 && stats.size(2) == kNumStats, op, "stats must have shape [S, K, ", kNumStats,
              "], got ", stats.sizes());
  TORCH_CHECK(is_float_or_double(stats), op, "stats must be float32 or float64, got ", stats.scalar_type());
  const int64_t S = stats.size(0);
  const int64_t K = stats.size(1);
  TORCH_CHECK(K >= 1, op, "stats must hold K >= 1 loss terms, got shape ", stats.sizes());
  for (const at::Tensor* t : {&lam, &lam_applied}) {
    const char* name = t == &lam ? "lam" : "lam_applied";
    TORCH_CHECK(t->dim() == 2 && t->size(0) == S && t->size(1) == K, op, name, " must have shape [S, K] = [", S,
                ", ", K, "], got ", t->sizes());
    TORCH_CHECK(t->scalar_type() == stats.scalar_type(), op, name, " must have the dtype of stats (",
                stats.scalar_type(), "), got ", t->scalar_type());
  }
  TORCH_CHECK(n_updates.dim() == 1 && n_updates.size(0) == S, op, "n_updates must have shape [S] = [", S, "], got ",
              n_updates.sizes());
  TORCH_CHECK(n_updates.scalar_type() == at::kLong, op, "n_updates must be int64, got ", n_updates.scalar_type());
  TORCH_CHECK(skipped.dim() == 2 && skipped.size(0) == S && skipped.size(1) == K, op,
              "skipped must have shape [S, K] = [", S, ", ", K, "], got ", skipped.sizes());
  TORCH_CHECK(skipped.scalar_type() == at::kLong, op, "skipped must be int64, got ", skipped.scalar_type());
  TORCH_CHECK(adaptive.dim() == 1 && adaptive.size(0) == K, op, "adaptive must have shape [K] = [", K, "], got ",
              adaptive.sizes());
  TORCH_CHECK(adaptive.scalar_type() == at::kBool, op, "adaptive must be bool, got ", adaptive.scalar_type());
  for (const at::Tensor* t : {&lam, &lam_applied, &n_updates, &skipped, &adaptive}) {
    TORCH_CHECK(t->device() == stats.device(), op, "all tensors must be on the device of stats (", stats.device(),
                "), got one on ", t->device());
    TORCH_CHECK(t->layout() == at::kStrided, op, "all tensors must be strided (dense)");
  }
  TORCH_CHECK(scheme == kSchemeMA || scheme == kSchemeID || scheme == kSchemeDN, op, "scheme must be one of ",
              static_cast<int64_t>(kSchemeMA), " (MA), ", static_cast<int64_t>(kSchemeID), " (ID), ",
              static_cast<int64_t>(kSchemeDN), " (DN), got ", scheme);
  TORCH_CHECK(reference >= 0 && reference < K, op, "reference must be a term index in [0, K) = [0, ", K, "), got ",
              reference);
  // beta = 1 would never move lam and divides by 1 - beta^n = 0 under bias correction.
  TORCH_CHECK(std::isfinite(beta) && beta >= 0.0 && beta < 1.0, op, "beta must be in [0, 1), got ", beta);
  // lam and lam_applied are written one after the other: shared memory would mix EMA state and applied weights.
  const at::MemOverlapStatus overlap = at::get_overlap_status(lam, lam_applied);
  TORCH_CHECK(overlap != at::MemOverlapStatus::Full && overlap != at::MemOverlapStatus::Partial, op,
              "lam and lam_applied must be distinct buffers, got overlapping memory");
  TORCH_CHECK(ma_form == kMaFormPaper || ma_form == kMaFormWang, op, "ma_form must be ",
              static_cast<int64_t>(kMaFormPaper), " (paper, eq. 15) or ", static_cast<int64_t>(kMaFormWang),
              " (Wang et al.), got ", ma_form);
  TORCH_CHECK(numel >= 1, op, "numel (the gradient length P) must be >= 1, got ", numel);
  return EmaParams{K, scheme, reference, beta, bias_correction, ma_form, numel};
}

}  // namespace fastpinn
