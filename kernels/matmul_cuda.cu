// CUDA matrix products for kernels/matmul.hpp: cuBLAS for the GEMMs, two small kernels for the
// bias.
#include <climits>
#include <type_traits>

#include "kernels/bf16.cuh"
#include "kernels/cuda_launch.cuh"
#include "kernels/matmul.hpp"

namespace ddpm::kernels::cuda {
namespace {

using ddpm::cuda::from_f32;
using ddpm::cuda::grid_for;
using ddpm::cuda::kThreads;
using ddpm::cuda::stream;
using ddpm::cuda::to_f32;

template <class T> __global__ void bias_fill_k(T* y, const T* b, int64_t rows, int64_t cols) {
  DDPM_GRID_LOOP(i, rows * cols) y[i] = b[i % cols];
}

// Version 2: one block per (32 columns, slice of the rows): threadIdx.x picks the column
// (coalesced reads along a row), threadIdx.y strides over the slice's rows, and the block's 32
// partial sums of each column are added in shared memory in a fixed order; then one thread per
// column adds its slices' sums in order. No atomics, so the result is deterministic. Sums run in
// double: a conv bias sums N*H*W values (262,144 at 64x64, batch 64), where float would drift past
// 1e-5 of the CPU result. Memory-bound: rows*cols*4 bytes read (2 for bf16). Version 1 had no
// slices, one block per 32 columns: 2 blocks for the model's 64-channel linear layers, which took
// 644 us for a [262144, 64] backward on an H200 (~10 us of DRAM time at the copy bandwidth).
constexpr int kColTile = 32, kRowThreads = 32;
template <class T> __global__ void bias_grad_k(const T* dy, double* part, int64_t rows, int64_t cols) {
  __shared__ double sh[kRowThreads][kColTile];
  const int64_t c = int64_t(blockIdx.x) * kColTile + threadIdx.x;
  const int64_t r0 = rows * blockIdx.y / gridDim.y, r1 = rows * (blockIdx.y + 1) / gridDim.y;
  double acc = 0.0;
  if (c < cols)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowThreads) acc += to_f32(dy[r * cols + c]);
  sh[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    double s = 0.0;
    for (int i = 0; i < kRowThreads; ++i) s += sh[i][threadIdx.x];
    part[blockIdx.y * cols + c] = s;
  }
}
template <class T> __global__ void bias_grad_total_k(const double* part, T* db, int64_t splits, int64_t cols) {
  DDPM_GRID_LOOP(c, cols) {
    double s = 0.0;
    for (int64_t i = 0; i < splits; ++i) s += part[i * cols + c];
    db[c] = from_f32<T>(float(s));
  }
}

constexpr cudaDataType_t data_type(float*) { return CUDA_R_32F; }
constexpr cudaDataType_t data_type(bf16*) { return CUDA_R_16BF; }

// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: cuBLAS sees each row-major
// matrix as its transpose, so we pass B first, A second, and swap m and n. f32 data runs in FP32
// (or TF32 when allowed); bf16 data always accumulates in FP32 on the tensor cores.
template <class T> void gemm_t(const Gemm& g, const T* a, const T* b, T* c) {
  DDPM_CHECK(g.m <= INT_MAX && g.n <= INT_MAX && g.k <= INT_MAX && g.batch <= INT_MAX, "gemm", "dimensions ", g.batch,
             "x", g.m, "x", g.n, "x", g.k, " exceed the 32-bit cuBLAS interface");
  const int m = int(g.m), n = int(g.n), k = int(g.k);
  const int lda = g.trans_a ? m : k, ldb = g.trans_b ? k : n;
  const float alpha = 1.0f, beta = g.accumulate ? 1.0f : 0.0f;
  const bool tf32 = std::is_same_v<T, float> && ddpm::cuda::allow_tf32();
  const cublasComputeType_t compute = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  const cudaDataType_t type = data_type(c);
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(ddpm::cuda::cublas(), g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                          g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b, type, ldb,
                                          g.k * g.n, a, type, lda, g.m * g.k, &beta, c, type, n, g.m * g.n,
                                          int(g.batch), compute, CUBLAS_GEMM_DEFAULT));
}

template <class T> void bias_fill_t(T* y, const T* b, int64_t rows, int64_t cols) {
  bias_fill_k<<<grid_for(rows * cols), kThreads, 0, stream()>>>(y, b, rows, cols);
  CUDA_CHECK_LAUNCH("bias_fill_k");
}

template <class T> void bias_grad_t(const T* dy, T* db, int64_t rows, int64_t cols, double* work) {
  const int64_t splits = bias_grad_splits(rows);
  const dim3 grid(unsigned((cols + kColTile - 1) / kColTile), unsigned(splits));
  bias_grad_k<<<grid, dim3(kColTile, kRowThreads), 0, stream()>>>(dy, work, rows, cols);
  CUDA_CHECK_LAUNCH("bias_grad_k");
  bias_grad_total_k<<<grid_for(cols), kThreads, 0, stream()>>>(work, db, splits, cols);
  CUDA_CHECK_LAUNCH("bias_grad_total_k");
}

}  // namespace

// The same functions for f32 and bf16 data.
#define FOR_FLOAT_AND_BF16(T)                                                                                    \
  void gemm(const Gemm& g, const T* a, const T* b, T* c) { gemm_t(g, a, b, c); }                                 \
  void bias_fill(T* y, const T* b, int64_t rows, int64_t cols) { bias_fill_t(y, b, rows, cols); }                \
  void bias_grad(const T* dy, T* db, int64_t rows, int64_t cols, double* work) {                                 \
    bias_grad_t(dy, db, rows, cols, work);                                                                       \
  }
FOR_FLOAT_AND_BF16(float)
FOR_FLOAT_AND_BF16(bf16)
#undef FOR_FLOAT_AND_BF16

}  // namespace ddpm::kernels::cuda
