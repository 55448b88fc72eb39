// Resampling, layout and gather kernels: channel concat/split, 2x2 max pooling, bilinear 2x
// upsampling, embedding rows.
//
// Conventions (both backends): float32 or bf16 (f32 arithmetic, rounded once on store) NHWC
// [N, H, W, C], contiguous, on the backend's device; outputs are fully overwritten (copy_channels:
// the copied channels only). H and W are the input's sizes.
// - copy_channels: dst[r, dst_off + c] = src[r, src_off + c] for r < rows, c < width, where a
//   src row has src_C channels and a dst row dst_C. concat is two copies into the output, its
//   backward two copies out of the gradient.
// - max_pool2x2: y[n, i, j] = max of x[n, 2i..2i+1, 2j..2j+1] (H, W even). The backward routes
//   dy to the window's argmax (pool_argmax: first maximum in row-major window order, a NaN wins,
//   as PyTorch) recomputed from x; the other three elements get 0.
// - upsample2x: bilinear to [N, 2H, 2W, C] with align_corners=True (upsample_taps). The backward
//   gives each input pixel the sum of its weighted contributions.
// - embedding: out[i, :] = table[ids[i], :] (rows of D); ids were checked to lie in [0, num).
//   The backward writes the whole table gradient: dtable[r] = sum of dout[i] over the i with
//   ids[i] == r, added in order of i (0 for rows no id names).
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/bf16.hpp"
#include "kernels/hd.hpp"

namespace ddpm::kernels {

// Index 0..3 of the maximum of a 2x2 window given in row-major order (v00, v01, v10, v11):
// later elements win only when strictly greater, a NaN always wins.
DDPM_HD int pool_argmax(const float v[4]) {
  int best = 0;
  for (int k = 1; k < 4; ++k)
    if (v[k] > v[best] || v[k] != v[k]) best = k;
  return best;
}

// Output index i of one axis of a 2x align_corners upsample reads input `lo` with weight
// 1 - frac and `hi` with weight frac: src = i (in - 1) / (2 in - 1), in float like PyTorch.
struct UpsampleTaps {
  int64_t lo, hi;
  float frac;
};
DDPM_HD UpsampleTaps upsample_taps(int64_t i, int64_t in) {
  const float src = float(in - 1) / float(2 * in - 1) * float(i);
  const int64_t lo = std::min(int64_t(src), in - 1);
  return {lo, std::min(lo + 1, in - 1), src - float(lo)};
}
// The weight output index i gives input index j along one axis (0 when it does not read j).
DDPM_HD float upsample_weight(UpsampleTaps t, int64_t j) {
  return (t.lo == j ? 1.0f - t.frac : 0.0f) + (t.hi == j ? t.frac : 0.0f);
}

// The kernels of both backends (resample_cpu.cpp, resample_cuda.cu): the data kernels declared once
// for T = float and T = bf16; embedding is f32 only (its table is a parameter).
#define DDPM_RESAMPLE_KERNELS(T)                                                                                 \
  void copy_channels(const T* src, int64_t src_C, int64_t src_off, T* dst, int64_t dst_C, int64_t dst_off,     \
                     int64_t rows, int64_t width);                                                            \
  void max_pool2x2_fwd(const T* x, T* y, int64_t N, int64_t H, int64_t W, int64_t C);                         \
  void max_pool2x2_bwd(const T* x, const T* dy, T* dx, int64_t N, int64_t H, int64_t W, int64_t C);           \
  void upsample2x_fwd(const T* x, T* y, int64_t N, int64_t H, int64_t W, int64_t C);                          \
  void upsample2x_bwd(const T* dy, T* dx, int64_t N, int64_t H, int64_t W, int64_t C);                        \
  void embedding_fwd(const int64_t* ids, const float* table, float* out, int64_t B, int64_t D);               \
  void embedding_bwd(const int64_t* ids, const float* dout, float* dtable, int64_t B, int64_t num, int64_t D);

namespace cpu {
DDPM_RESAMPLE_KERNELS(float)
DDPM_RESAMPLE_KERNELS(bf16)
}  // namespace cpu

#ifdef DDPM_HAVE_CUDA
namespace cuda {
DDPM_RESAMPLE_KERNELS(float)
DDPM_RESAMPLE_KERNELS(bf16)
}  // namespace cuda
#endif
#undef DDPM_RESAMPLE_KERNELS

}  // namespace ddpm::kernels
