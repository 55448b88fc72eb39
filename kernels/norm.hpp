// Normalisation kernels: group norm (with a fused activation) and layer norm.
//
// Conventions (both backends):
// - Group norm sees x as [N, P, C]: N samples, P = H*W positions (NHWC, so the C channels of a
//   position are contiguous), C channels in G groups of Cg = C/G consecutive channels. Layer norm
//   sees x as [R, C]: R rows normalised over C.
// - Statistics: mean and rstd = 1/sqrt(var + eps) with the biased variance, one pair per
//   (sample, group) in [N, G] order for group norm, one per row for layer norm. Sums are taken in
//   double (the GPU's layer norm rows, short and two-pass, in float), so the CPU and the GPU
//   agree to float rounding.
// - Forward: y = act(z w[c] + b[c] + shift[n, c] + res[n, p, c]) with z = (x - mean) rstd (act =
//   None and neither addition for layer norm). The optional shift [N, C] (data type) is a
//   per-sample bias: the U-Net's embedding add, folded into the norm before it (x + emb broadcast
//   over H, W) so that it costs no pass of its own; its gradient dshift[n, c] is the sum of du over
//   the sample's positions. The optional res (x's shape and type) is a residual added before the
//   activation, the ResNet block's gelu(x + norm(h)); its gradient dres = du. The
//   backward takes x and the saved mean/rstd and recomputes z and the pre-activation u, so the
//   big normalised tensor is never stored. With du = dy act'(u), M the element count of a group
//   (or row), c1 = sum(w du)/M and c2 = sum(w du z)/M over the group:
//     dx = rstd (w du - c1 - z c2),   dw[c] = sum du z,   db[c] = sum du.
// - Reductions are split the same way on both backends (norm_splits): per (sample, split of the
//   positions, channel) partial sums first, then totals per group or per channel in a fixed
//   order. No atomics: results are identical from run to run.
// - `work` is caller-provided scratch on the backend's device, group_norm_work / layer_norm_work
//   doubles long; its contents on entry do not matter. Outputs (y, mean, rstd, dx, dw, db, dshift)
//   are fully overwritten. All pointers are contiguous. shift, res, dshift and dres may be null.
// - Data (x, y, dy, dx, shift, res and their gradients) is float32 or bf16; the parameters w, b,
//   their gradients and the statistics are always float32. bf16 data is widened on load and
//   rounded once on store.
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/elementwise.hpp"
#include "kernels/hd.hpp"

namespace ddpm::kernels {

// How many splits the P positions of each sample get for the partial sums: about 512 pieces of
// work in all (one wave of 256-thread blocks on an H100/H200 at the kernels' occupancy, so even
// batch 1 fills the GPU), each at least 32 positions long so the partials stay small next to
// the data. `C` sets how many 128-channel tiles a position is cut into on the GPU.
inline int64_t norm_splits(int64_t N, int64_t P, int64_t C) {
  const int64_t tiles = (C + 127) / 128;
  const int64_t want = (512 + N * tiles - 1) / (N * tiles);
  return std::clamp<int64_t>(want, 1, std::max<int64_t>(1, P / 32));
}

// Scratch sizes in doubles: the partial sums [N, S, C, 2] and, for group norm, two per-group
// values [N, G, 2].
inline int64_t group_norm_work(int64_t N, int64_t P, int64_t C, int64_t G) {
  return N * norm_splits(N, P, C) * C * 2 + N * G * 2;
}
inline int64_t layer_norm_work(int64_t R, int64_t C) { return norm_splits(1, R, C) * C * 2; }

// The backward at one element, shared by both backends: z = (x - mean) rstd and du = dy act'(u)
// with u = z w + b.
struct NormGradAt {
  float z, du;
};
DDPM_HD NormGradAt norm_grad_at(Act act, float x, float dy, float mean, float rstd, float w, float b) {
  float z = (x - mean) * rstd;
  return {z, dy * activate_grad(act, z * w + b)};
}
DDPM_HD float norm_dx(float rstd, float w, NormGradAt t, float c1, float c2) {
  return rstd * (w * t.du - c1 - t.z * c2);
}

// The kernels of both backends (norm_cpu.cpp, norm_cuda.cu), declared once for data T = float and
// T = bf16 (parameters w, b, their gradients and the statistics are float either way).
#define DDPM_NORM_KERNELS(T)                                                                                     \
  void group_norm_fwd(Act act, const T* x, const float* w, const float* b, const T* shift, const T* res, T* y, \
                      float* mean, float* rstd, int64_t N, int64_t P, int64_t C, int64_t G, float eps,        \
                      double* work);                                                                          \
  void group_norm_bwd(Act act, const T* x, const float* w, const float* b, const T* shift, const T* res,        \
                      const float* mean, const float* rstd, const T* dy, T* dx, float* dw, float* db,          \
                      T* dshift, T* dres, int64_t N, int64_t P, int64_t C, int64_t G, double* work);          \
  void layer_norm_fwd(const T* x, const float* w, const float* b, T* y, float* mean, float* rstd, int64_t R,   \
                      int64_t C, float eps);                                                                  \
  void layer_norm_bwd(const T* x, const float* w, const float* mean, const float* rstd, const T* dy, T* dx,    \
                      float* dw, float* db, int64_t R, int64_t C, double* work);

namespace cpu {
DDPM_NORM_KERNELS(float)
DDPM_NORM_KERNELS(bf16)
}  // namespace cpu

#ifdef DDPM_HAVE_CUDA
namespace cuda {
DDPM_NORM_KERNELS(float)
DDPM_NORM_KERNELS(bf16)
}  // namespace cuda
#endif
#undef DDPM_NORM_KERNELS

}  // namespace ddpm::kernels
