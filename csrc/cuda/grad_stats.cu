// CUDA kernels of fastpinn::grad_stats. Same numerics as the CPU kernel (grad_stats.h):
//   1. row_shift_kernel:   one block per row, the mean of the row's first chunk (the shift);
//   2. chunk_stats_kernel: one block per chunk of kChunk = 2 x 256 elements, a shared-memory halving tree
//                          (balanced, the same depth as the CPU's vector-then-lane tree), partial
//                          statistics to a workspace;
//   3. merge_rows_kernel:  one block per row, each thread merges a strided subset of the chunks, then a
//                          fixed tree over the threads (deterministic, independent of timing).
// No host synchronisation; everything runs on the current stream.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>

#include "../checks.h"
#include "../grad_stats.h"

namespace fastpinn {
namespace {

constexpr int kThreads = kChunkThreads;  // one chunk = kThreads x 2 elements
constexpr int kMergeThreads = 128;

struct RowLayout {
  int64_t num_terms;  // K, to split a row index r into (s, k)
  int64_t s0, s1, s2;  // strides of G
  int64_t P;
};

template <typename T>
__device__ __forceinline__ const T* row_ptr(const T* g, const RowLayout& L, int64_t r) {
  return g + (r / L.num_terms) * L.s0 + (r % L.num_terms) * L.s1;
}

// In-place halving tree over buf[0..kThreads): buf[t] += buf[t + h] for h = kThreads/2, ..., 1.
template <typename T>
__device__ __forceinline__ T block_tree_sum(T* buf) {
  const int t = threadIdx.x;
  for (int h = kThreads / 2; h > 0; h /= 2) {
    if (t < h) {
      buf[t] += buf[t + h];
    }
    __syncthreads();
  }
  const T total = buf[0];
  __syncthreads();  // buf may be reused right after
  return total;
}

template <typename T>
__global__ void row_shift_kernel(const T* __restrict__ g, RowLayout L, int64_t rows, T* __restrict__ shift) {
  __shared__ T buf[kThreads];
  const int t = threadIdx.x;
  const int64_t n0 = L.P < kChunk ? L.P : kChunk;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* x = row_ptr(g, L, r);
    // The first level of the tree (h = kThreads) happens in registers.
    const T v0 = t < n0 ? x[t * L.s2] : T(0);
    const T v1 = t + kThreads < n0 ? x[(t + kThreads) * L.s2] : T(0);
    buf[t] = v0 + v1;
    __syncthreads();
    const T total = block_tree_sum(buf);
    if (t == 0) {
      shift[r] = row_shift_from_sum(total, n0);
    }
  }
}

template <typename T>
__global__ void chunk_stats_kernel(const T* __restrict__ g, RowLayout L, int64_t rows, int64_t n_chunks,
                                   const T* __restrict__ shift, NormKind kind, T p, StatsAcc<T>* __restrict__ parts) {
  __shared__ T a[kThreads];
  __shared__ T b[kThreads];
  __shared__ T c[kThreads];
  __shared__ T d[kThreads];
  __shared__ T mx[kThreads];
  __shared__ int nf[kThreads];
  constexpr T kMaxFinite = std::numeric_limits<T>::max();
  const int t = threadIdx.x;

  for (int64_t i = blockIdx.x; i < rows * n_chunks; i += gridDim.x) {
    const int64_t r = i / n_chunks;
    const int64_t start = (i % n_chunks) * kChunk;
    const int64_t n = L.P - start < kChunk ? L.P - start : kChunk;
    const T* x = row_ptr(g, L, r) + start * L.s2;
    const T sh = shift[r];
    const bool in0 = t < n;
    const bool in1 = t + kThreads < n;
    const T v0 = in0 ? x[t * L.s2] : T(0);
    const T v1 = in1 ? x[(t + kThreads) * L.s2] : T(0);
    const T a0 = fp_abs(v0);
    const T a1 = fp_abs(v1);

    a[t] = v0 + v1;
    b[t] = a0 + a1;
    c[t] = v0 * v0 + v1 * v1;  // built with --fmad=false: two rounded products, as on the CPU
    d[t] = (in0 ? v0 - sh : T(0)) + (in1 ? v1 - sh : T(0));
    mx[t] = fp_max(fp_max(T(0), a0), a1);  // NaN ignored, as in the CPU kernel's running max
    nf[t] = !(a0 <= kMaxFinite) + !(a1 <= kMaxFinite);  // padding zeros are finite
    __syncthreads();
    for (int h = kThreads / 2; h > 0; h /= 2) {
      if (t < h) {
        a[t] += a[t + h];
        b[t] += b[t + h];
        c[t] += c[t + h];
        d[t] += d[t + h];
        mx[t] = fp_max(mx[t], mx[t + h]);
        nf[t] += nf[t + h];
      }
      __syncthreads();
    }
    const T sum = a[0];
    const T sum_abs = b[0];
    const T sum_sq = c[0];
    const T mean = d[0] / static_cast<T>(n);
    const T max_abs = mx[0];
    const int nonfinite = nf[0];
    __syncthreads();

    // Second pass, on the values still held in registers: deviations from the chunk mean.
    const T dev0 = in0 ? (v0 - sh) - mean : T(0);
    const T dev1 = in1 ? (v1 - sh) - mean : T(0);
    a[t] = dev0 + dev1;
    b[t] = dev0 * dev0 + dev1 * dev1;
    __syncthreads();
    for (int h = kThreads / 2; h > 0; h /= 2) {
      if (t < h) {
        a[t] += a[t + h];
        b[t] += b[t + h];
      }
      __syncthreads();
    }
    const T sum_dev = a[0];
    const T sum_dev2 = b[0];
    __syncthreads();

    T lp = T(0);
    if (kind == NormKind::kGeneral && max_abs > T(0)) {  // uniform across the block
      a[t] = (in0 ? fp_pow(a0 / max_abs, p) : T(0)) + (in1 ? fp_pow(a1 / max_abs, p) : T(0));
      __syncthreads();
      lp = block_tree_sum(a);
    }
    if (t == 0) {
      parts[i] = StatsAcc<T>::from_chunk(n, nonfinite, max_abs, mean, sum, sum_abs, sum_sq, sum_dev, sum_dev2, lp);
    }
  }
}

template <typename T>
__global__ void merge_rows_kernel(const StatsAcc<T>* __restrict__ parts, int64_t rows, int64_t n_chunks,
                                  NormKind kind, T p, T* __restrict__ out) {
  __shared__ StatsAcc<T> acc[kMergeThreads];
  const int t = threadIdx.x;
  const bool general = kind == NormKind::kGeneral;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    // Chan's formula and the compensated sums merge any subsets, so a strided subset per thread is fine
    // and keeps the loads coalesced.
    StatsAcc<T> own = StatsAcc<T>::zero();
    for (int64_t c = t; c < n_chunks; c += kMergeThreads) {
      own.merge(parts[r * n_chunks + c], general, p);
    }
    acc[t] = own;
    __syncthreads();
    for (int h = kMergeThreads / 2; h > 0; h /= 2) {
      if (t < h) {
        acc[t].merge(acc[t + h], general, p);
      }
      __syncthreads();
    }
    if (t == 0) {
      acc[0].finalize(out + r * kNumStats, 1, kind, p);
    }
    __syncthreads();
  }
}

int64_t grid_size(int64_t work_items, int64_t blocks_per_sm) {
  int device = 0;
  int sms = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return std::max<int64_t>(1, std::min<int64_t>(work_items, static_cast<int64_t>(sms) * blocks_per_sm));
}

at::Tensor grad_stats_cuda(const at::Tensor& G, double p) {
  const NormKind kind = check_grad_stats_args(G, p);
  const c10::cuda::CUDAGuard guard(G.device());
  at::Tensor out = at::empty({G.size(0), G.size(1), kNumStats}, G.options());
  const int64_t rows = G.size(0) * G.size(1);
  if (rows == 0) {
    return out;
  }
  const RowLayout L{G.size(1), G.stride(0), G.stride(1), G.stride(2), G.size(2)};
  const int64_t n_chunks = (L.P + kChunk - 1) / kChunk;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES(G.scalar_type(), "fastpinn::grad_stats_cuda", [&] {
    using T = scalar_t;
    const T pt = static_cast<T>(p);
    // Scratch from the caching allocator: stream-ordered, no synchronisation.
    at::Tensor shift = at::empty({rows}, G.options());
    at::Tensor parts = at::empty({rows * n_chunks * static_cast<int64_t>(sizeof(StatsAcc<T>))},
                                 G.options().dtype(at::kByte));
    auto* parts_ptr = reinterpret_cast<StatsAcc<T>*>(parts.data_ptr());
    const T* g = G.const_data_ptr<T>();

    row_shift_kernel<T><<<grid_size(rows, 32), kThreads, 0, stream>>>(g, L, rows, shift.data_ptr<T>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    chunk_stats_kernel<T><<<grid_size(rows * n_chunks, 32), kThreads, 0, stream>>>(
        g, L, rows, n_chunks, shift.const_data_ptr<T>(), kind, pt, parts_ptr);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    merge_rows_kernel<T><<<grid_size(rows, 32), kMergeThreads, 0, stream>>>(parts_ptr, rows, n_chunks, kind, pt,
                                                                          out.data_ptr<T>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastpinn, CUDA, m) {
  m.impl("grad_stats", &grad_stats_cuda);
}

}  // namespace fastpinn
