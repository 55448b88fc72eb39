// CUDA twin of kernels/norm_cpu.cpp: the launches of the kernels in kernels/norm.cuh. Split
// reductions plus elementwise passes.
//
// Group norm, forward (E = elements of x):
//   1. column_sums_k: per (sample, split of positions, channel) sums of x and x^2 in double;
//      grid (N, S, channel tiles) of ~512 blocks, so even one group per sample (the seed
//      model's GroupNorm(1, C)) keeps every SM busy. Reads 4 B/elem, writes 16 B per channel per
//      split (at most 1/8 of the data: a split is >= 32 positions).
//   2. group_totals_k: one block per (sample, group) adds its partials -> mean, rstd.
//   3. gn_pass_k: y = act((x - mean) rstd w + b) on the same tiles, float4 over channels: 8 B/elem.
//   About 12 B/elem: at [64, 64, 64, 64] (16.8M elements) ~200 MB, ~52 us at 3.86 TB/s.
// Group norm, backward: the same column sums of du and du z (8 B/elem), per-channel totals ->
// dw, db, per-group totals -> c1, c2, then the dx pass (12 B/elem): ~20 B/elem, ~87 us there.
// The second read of x (and dy) hits L2 when the tensor fits in it (H100: 50 MB).
// Layer norm: up to a warp per row (rows are short: C = 64..512 in the model), three passes over
// the row in registers/L1: 8 B/elem forward, 12 B/elem backward plus the column sums for dw, db.
//
// bf16 data (x, dy, y, dx) halves those bytes; the arithmetic and the sums are the same f32/double.
// Version 1, measured (f32) on an H200 at [64, 64, 64, 64], 1 group + GELU: forward 76 us,
// backward 117 us (a device copy of the same tensor: 34 us); layer norm [262144, 64]: 63 us and
// 109 us. In bf16 (fc776d5) the passes ran at 20-36% of the copy bandwidth: one load in flight
// per thread (norm.cuh). Version 2 keeps kBatch = 4 in flight; not yet measured on hardware.
//
// Column sums are in double: on H100/H200 the FP64 rate (~60 TFLOP/s) is far above what a
// 4 B/elem stream needs (~2 TFLOP/s at full bandwidth), and it keeps var = E[x^2] - mean^2
// exact enough when the mean dwarfs the spread.
#include "kernels/norm.cuh"

namespace ddpm::kernels::cuda {

using ddpm::cuda::DeviceLaunch;

// The same functions for f32 and bf16 data.
#define FOR_FLOAT_AND_BF16(T)                                                                                       \
  void group_norm_fwd(Act act, const T* x, const float* w, const float* b, const T* shift, const T* res, T* y,     \
                      float* mean, float* rstd, int64_t N, int64_t P, int64_t C, int64_t G, float eps,            \
                      double* work) {                                                                             \
    norm::group_norm_fwd(DeviceLaunch{}, act, x, w, b, shift, res, y, mean, rstd, N, P, C, G, eps, work);         \
  }                                                                                                               \
  void group_norm_bwd(Act act, const T* x, const float* w, const float* b, const T* shift, const T* res,           \
                      const float* mean, const float* rstd, const T* dy, T* dx, float* dw, float* db, T* dshift,  \
                      T* dres, int64_t N, int64_t P, int64_t C, int64_t G, double* work) {                        \
    norm::group_norm_bwd(DeviceLaunch{}, act, x, w, b, shift, res, mean, rstd, dy, dx, dw, db, dshift, dres, N, P, \
                         C, G, work);                                                                             \
  }                                                                                                               \
  void layer_norm_fwd(const T* x, const float* w, const float* b, T* y, float* mean, float* rstd, int64_t R,     \
                      int64_t C, float eps) {                                                                    \
    norm::layer_norm_fwd(DeviceLaunch{}, x, w, b, y, mean, rstd, R, C, eps);                                         \
  }                                                                                                              \
  void layer_norm_bwd(const T* x, const float* w, const float* mean, const float* rstd, const T* dy, T* dx,      \
                      float* dw, float* db, int64_t R, int64_t C, double* work) {                                \
    norm::layer_norm_bwd(DeviceLaunch{}, x, w, mean, rstd, dy, dx, dw, db, R, C, work);                              \
  }
FOR_FLOAT_AND_BF16(float)
FOR_FLOAT_AND_BF16(bf16)
#undef FOR_FLOAT_AND_BF16

}  // namespace ddpm::kernels::cuda
