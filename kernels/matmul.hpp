// Matrix-product kernels: (batched) GEMM, and the bias broadcast and bias gradient that linear and
// conv2d share.
//
// Conventions (both backends): float32 or bf16 (f32 accumulation, outputs rounded once; with
// `accumulate` the bf16 c is widened, added to and rounded again), row-major, contiguous, on the
// backend's device.
// - gemm: c[i] = op(a[i]) op(b[i]) for i in [0, batch), where op(a) is [m, k] and op(b) is [k, n];
//   a is stored [m, k], or [k, m] when trans_a (then op(a) is its transpose); b is stored [k, n],
//   or [n, k] when trans_b; c is [m, n]. The matrices of a batch are packed back to back
//   (strides m*k, k*n, m*n). c is overwritten, or added to when `accumulate`.
//   Cost: 2*batch*m*n*k FLOPs over (m*k + k*n + m*n)*batch*4 bytes, so it is compute-bound as soon
//   as m, n, k reach a few dozen.
// - gemm_bias: c = op(a) op(b) + bias + r, the bias [n] added to every row of c, r [m, n] (may be
//   null) a residual added in the same pass (batch 1, c overwritten: `accumulate` must be false).
//   linear's forward. CPU: bias_fill, r added, then an accumulating gemm (bf16: all of it in f32
//   on widened copies, one rounding). CUDA: one cuBLASLt matmul with the bias in its epilogue and
//   r as its C matrix (beta 1), so c is written once (bias_fill + an accumulating gemm write c
//   twice and read it once: at the seed model's 64x64 attention layers, [262144, 64] -> 192 in
//   bf16, 333 MB instead of 133; and the residual add after the attention's out-projection and
//   the feed-forward would be a pass of its own); where cuBLASLt offers no algorithm for a shape,
//   the CPU's way (in bf16 then with a rounding of bias + r before the product is added).
// - bias_fill: y[r, :] = b for every row r of y [rows, cols] (overwritten); followed by an
//   accumulating gemm it gives x w^T + b.
// - bias_grad: db[c] = sum over rows r of dy[r, c] (overwritten): the gradient of a bias added to
//   every row. Memory-bound: rows*cols*4 bytes read. Both backends sum bias_grad_splits(rows)
//   slices of the rows into partial sums (double), then each column's slices in order, so results
//   do not depend on scheduling. `work` is caller-provided scratch for those partials on the
//   backend's device, bias_grad_work(rows, cols) doubles long.
//
// CPU: OpenBLAS cblas_sgemm, single-threaded, with the work split over OpenMP threads (see
// matmul_cpu.cpp for why). CUDA: cuBLAS on ddpm::cuda::cublas() (the engine stream), in plain
// FP32, or with TF32 tensor cores when ddpm::cuda::allow_tf32(); bf16 through
// cublasGemmStridedBatchedEx with bf16 operands and FP32 compute (tensor cores). Single products
// with k <= 1024 (gemm_bias, linear's input gradient, a weight gradient over few rows) go to
// cuBLASLt instead, with an algorithm timed among the heuristic's first candidates on the shape's
// first call (matmul_cuda.cu).
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/bf16.hpp"

namespace ddpm::kernels {

struct Gemm {
  int64_t batch = 1, m = 0, n = 0, k = 0;
  bool trans_a = false, trans_b = false;
  bool accumulate = false;  // c += product instead of c = product
};

// Row slices of bias_grad: about 1024 rows each, at most 256, so on the GPU a [262144, 64]
// gradient (a linear layer over 64x64 images, batch 64) spreads over 512 blocks.
inline int64_t bias_grad_splits(int64_t rows) { return std::clamp<int64_t>(rows / 1024, 1, 256); }
inline int64_t bias_grad_work(int64_t rows, int64_t cols) { return bias_grad_splits(rows) * cols; }

// The kernels of both backends (matmul_cpu.cpp, matmul_cuda.cu), declared once for T = float and
// T = bf16.
#define DDPM_MATMUL_KERNELS(T)                                                              \
  void gemm(const Gemm& g, const T* a, const T* b, T* c);                                  \
  void gemm_bias(const Gemm& g, const T* a, const T* b, const T* bias, const T* r, T* c); \
  void bias_fill(T* y, const T* b, int64_t rows, int64_t cols);                             \
  void bias_grad(const T* dy, T* db, int64_t rows, int64_t cols, double* work);

namespace cpu {
DDPM_MATMUL_KERNELS(float)
DDPM_MATMUL_KERNELS(bf16)
}  // namespace cpu

#ifdef DDPM_HAVE_CUDA
namespace cuda {
DDPM_MATMUL_KERNELS(float)
DDPM_MATMUL_KERNELS(bf16)
// gemm_bias calls that took bias_fill + gemm instead of cuBLASLt since the process started: the
// GPU tests check that the seed model's shapes add none.
int64_t gemm_bias_fallbacks();
}  // namespace cuda
#endif
#undef DDPM_MATMUL_KERNELS

}  // namespace ddpm::kernels
