// CUDA twin of kernels/xent_cpu.cpp.
//   1. xent_rows_k: one warp per row (classifier rows are short: k = 10 for Fashion-MNIST), lanes
//      stride over the row for its maximum, then for the sum of exponentials in double; lane 0
//      writes lse[i] and the row's loss. Reads n*k*4 bytes twice (the second pass hits L1).
//   2. xent_finish_k: one block adds the n row losses in a fixed order and divides by n.
//   3. xent_bwd_k: one thread per logit, reads logit, lse and label, writes the gradient:
//      ~8 B/elem. For a batch of 256 x 10 classes every kernel here is launch-bound (~2-3 us).
#include "kernels/memory_bound.cuh"
#include "kernels/xent.hpp"

namespace ddpm::kernels::cuda {
namespace {

using ddpm::cuda::block_sum;
using ddpm::cuda::grid_for;
using ddpm::cuda::kThreads;
using ddpm::cuda::stream;
using ddpm::cuda::warp_sum;

constexpr int kWarpsPerBlock = kThreads / 32;

__device__ __forceinline__ float warp_max(float v) {  // every lane ends with the maximum
  for (int offset = 16; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

__global__ void xent_rows_k(const float* logits, const int64_t* labels, int64_t n, int64_t k, float* lse,
                            double* work) {
  const int64_t i = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (i >= n) return;  // whole warps leave together: i is uniform across a warp
  const float* row = logits + i * k;
  float m = -INFINITY;
  for (int64_t j = lane; j < k; j += 32) m = fmaxf(m, row[j]);
  m = warp_max(m);
  double s = 0;
  for (int64_t j = lane; j < k; j += 32) s += double(expf(row[j] - m));
  s = warp_sum(s);
  if (lane == 0) {
    const float l = m + float(log(s));
    lse[i] = l;
    work[i] = double(l) - double(row[labels[i]]);
  }
}

__global__ void xent_finish_k(const double* work, int64_t n, float* out) {
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += work[i];
  s = block_sum(s);
  if (threadIdx.x == 0) out[0] = float(s / double(n));
}

__global__ void xent_bwd_k(const float* logits, const int64_t* labels, const float* lse, const float* g, int64_t n,
                           int64_t k, float* dlogits) {
  const float s = g[0] / float(n);
  DDPM_GRID_LOOP(idx, n * k) {
    const int64_t i = idx / k, j = idx % k;
    const float p = expf(logits[idx] - lse[i]);
    dlogits[idx] = s * (p - (j == labels[i] ? 1.0f : 0.0f));
  }
}

}  // namespace

void xent_fwd(const float* logits, const int64_t* labels, int64_t n, int64_t k, float* lse, float* out,
              double* work) {
  const unsigned blocks = unsigned((n + kWarpsPerBlock - 1) / kWarpsPerBlock);
  xent_rows_k<<<blocks, kThreads, 0, stream()>>>(logits, labels, n, k, lse, work);
  CUDA_CHECK_LAUNCH("xent_rows_k");
  xent_finish_k<<<1, 1024, 0, stream()>>>(work, n, out);
  CUDA_CHECK_LAUNCH("xent_finish_k");
}

void xent_bwd(const float* logits, const int64_t* labels, const float* lse, const float* g, int64_t n, int64_t k,
              float* dlogits) {
  xent_bwd_k<<<grid_for(n * k), kThreads, 0, stream()>>>(logits, labels, lse, g, n, k, dlogits);
  CUDA_CHECK_LAUNCH("xent_bwd_k");
}

}  // namespace ddpm::kernels::cuda
