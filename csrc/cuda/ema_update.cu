// CUDA kernel of fastpinn::ema_update: one thread per ensemble member s loops over the K terms (K is a
// handful). One thread per member, not per (s, k): every term of s reads n_updates[s] and it must be
// advanced exactly once, after all of them. The counter is read on the device: no host synchronisation.
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
__global__ void ema_update_kernel(const T* __restrict__ stats, int64_t st0, int64_t st1, int64_t st2, T* lam,
                                  Strides2 lam_st, T* lam_applied, Strides2 la_st, int64_t* n_updates,
                                  int64_t n_st, int64_t* skipped, Strides2 sk_st, const bool* __restrict__ adaptive,
                                  int64_t ad_st, int64_t S, EmaParams prm) {
  for (int64_t s = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; s < S;
       s += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t& n_s = n_updates[s * n_st];
    ema_update_member<T>(stats + s * st0, st1, st2, Strided<T>{lam + s * lam_st.s0, lam_st.s1},
                         Strided<T>{lam_applied + s * la_st.s0, la_st.s1},
                         Strided<int64_t>{skipped + s * sk_st.s0, sk_st.s1}, Strided<const bool>{adaptive, ad_st},
                         n_s, prm);
    n_s += 1;
  }
}

void ema_update_cuda(const at::Tensor& stats, at::Tensor& lam, at::Tensor& lam_applied, at::Tensor& n_updates,
                     at::Tensor& skipped, const at::Tensor& adaptive, int64_t scheme, int64_t reference, double beta,
                     bool bias_correction, int64_t ma_form, int64_t numel) {
  const EmaParams prm = check_ema_update_args(stats, lam, lam_applied, n_updates, skipped, adaptive, scheme, reference,
                                              beta, bias_correction, ma_form, numel);
  const c10::cuda::CUDAGuard guard(stats.device());
  const int64_t S = stats.size(0);
  if (S == 0) {
    return;
  }
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t blocks = std::min<int64_t>((S + kThreads - 1) / kThreads, 65535);
  AT_DISPATCH_FLOATING_TYPES(stats.scalar_type(), "fastpinn::ema_update_cuda", [&] {
    ema_update_kernel<scalar_t><<<blocks, kThreads, 0, stream>>>(
        stats.const_data_ptr<scalar_t>(), stats.stride(0), stats.stride(1), stats.stride(2),
        lam.data_ptr<scalar_t>(), Strides2{lam.stride(0), lam.stride(1)}, lam_applied.data_ptr<scalar_t>(),
        Strides2{lam_applied.stride(0), lam_applied.stride(1)}, n_updates.data_ptr<int64_t>(), n_updates.stride(0),
        skipped.data_ptr<int64_t>(), Strides2{skipped.stride(0), skipped.stride(1)},
        adaptive.const_data_ptr<bool>(), adaptive.stride(0), S, prm);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(fastpinn, CUDA, m) {
  m.impl("ema_update", &ema_update_cuda);
}

}  // namespace fastpinn
