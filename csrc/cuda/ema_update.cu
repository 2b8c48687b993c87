// CUDA kernel of fastpinn::ema_update: one thread per ensemble member s loops over the K terms (K is a
// handful). The gate `active` is read on the device: no host synchronisation, so the same launch can sit in
// a captured CUDA graph and be switched on and off by a device-side counter.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>

#include "../checks.h"
#include "../ema_update.h"

namespace fastpinn {
namespace {

constexpr int kThreads = 128;

struct Strides2 {
  int64_t s0, s1;
};

template <typename T>
__global__ void ema_update_kernel(const T* __restrict__ hat, Strides2 hat_st, const bool* __restrict__ valid,
                                  Strides2 valid_st, const bool* __restrict__ target, int64_t target_st,
                                  const bool* __restrict__ active, T* lam, Strides2 lam_st, T* lam_applied,
                                  Strides2 la_st, int64_t* n_updates, int64_t n_st,
                                  int64_t* skipped, Strides2 sk_st, int64_t S, EmaParams prm) {
  if (active != nullptr && !active[0]) {
    return;
  }
  for (int64_t s = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; s < S;
       s += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    ema_update_member<T>(Strided<const T>{hat + s * hat_st.s0, hat_st.s1},
                         Strided<const bool>{valid + s * valid_st.s0, valid_st.s1},
                         Strided<const bool>{target, target_st}, Strided<T>{lam + s * lam_st.s0, lam_st.s1},
                         Strided<T>{lam_applied + s * la_st.s0, la_st.s1},
                         Strided<int64_t>{skipped + s * sk_st.s0, sk_st.s1}, n_updates[s * n_st], prm);
    n_updates[s * n_st] += 1;
  }
}

void ema_update_cuda(const at::Tensor& hat, const at::Tensor& valid, const at::Tensor& target,
                     const c10::optional<at::Tensor>& active, at::Tensor& lam, at::Tensor& lam_applied,
                     at::Tensor& n_updates, at::Tensor& skipped, double beta,
                     bool bias_correction) {
  const EmaParams prm = check_ema_update_args(hat, valid, target, active, lam, lam_applied, n_updates, skipped,
                                              beta, bias_correction);
  const c10::cuda::CUDAGuard guard(hat.device());
  const int64_t S = hat.size(0);
  if (S == 0) {
    return;
  }
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t blocks = std::min<int64_t>((S + kThreads - 1) / kThreads, 65535);
  const bool* active_ptr = active.has_value() ? active->const_data_ptr<bool>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES(hat.scalar_type(), "fastpinn::ema_update_cuda", [&] {
    ema_update_kernel<scalar_t><<<blocks, kThreads, 0, stream>>>(
        hat.const_data_ptr<scalar_t>(), Strides2{hat.stride(0), hat.stride(1)}, valid.const_data_ptr<bool>(),
        Strides2{valid.stride(0), valid.stride(1)}, target.const_data_ptr<bool>(), target.stride(0), active_ptr,
        lam.data_ptr<scalar_t>(), Strides2{lam.stride(0), lam.stride(1)}, lam_applied.data_ptr<scalar_t>(),
        Strides2{lam_applied.stride(0), lam_applied.stride(1)}, n_updates.data_ptr<int64_t>(), n_updates.stride(0),
        skipped.data_ptr<int64_t>(), Strides2{skipped.stride(0), skipped.stride(1)}, S, prm);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(fastpinn, CUDA, m) {
  m.impl("ema_update", &ema_update_cuda);
}

}  // namespace fastpinn
