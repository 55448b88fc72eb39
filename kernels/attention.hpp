// Multi-head scaled dot-product attention over packed projections (no mask, no dropout).
//
// Conventions (both backends):
// - qkv is [B, L, 3C] row-major with C = heads * D: columns [0, C) hold q, [C, 2C) k, [2C, 3C) v,
//   and head h uses columns h*D .. h*D + D-1 of each. out and dout are [B, L, C], heads side by
//   side in the same way. Kernels read the heads straight from this layout (no transposes).
// - With scale = 1/sqrt(D): s_ij = scale q_i . k_j, P_ij = softmax_j(s_ij), out_i = sum_j P_ij v_j.
// - qkv, out, dout and dqkv are float32 or bf16 (f32 arithmetic inside, rounded once on store);
//   lse and delta are always float32.
// - lse [B, heads, L] is the per-row log-sum-exp of s (natural log). The forward writes it so the
//   backward recomputes P_ij = exp(s_ij - lse_i) instead of saving the L x L matrix: neither
//   backend ever allocates B*heads*L*L (at 64x64 images that would be 4 GiB per 16 images).
// - Backward (the flash-attention rule): delta_i = sum_d dout_id out_id (a [B, heads, L] scratch the
//   caller provides), dP = dout V^T, dS = P * (dP - delta_i), dq = scale dS K, dk = scale dS^T Q,
//   dv = P^T dout. dqkv ([B, L, 3C], packed like qkv) is fully overwritten.
// - The CPU path takes any D >= 1. The CUDA path takes D up to 64: the kernels are compiled for
//   widths 16, 32 and 64, and a smaller D runs zero-padded to the next width (so the tiny models of
//   the reference files run too); the op checks cuda_head_dim_supported before dispatching.
// - CUDA version 1, for f32 data: flash-attention in plain f32 FMA, one thread (two at D = 64) per
//   row (kernels/attention_cuda.cu); exact f32. Version 2: the same algorithm on tensor cores
//   (mma.sync, f32 accumulation; P, and in the backward dS, rounded to the operand type before
//   the second product, as flash-attention does), one set of kernels for two operand types:
//   - bf16 data: bf16 operands (m16n8k16). Each streamed tile is kept once, row-major, and its B
//     fragments are read with ldmatrix (ldmatrix.trans for the P V, dS K, P^T dout, dS^T Q side).
//     Each warp owns two 16-row tiles (one for dK/dV at D = 64, and all kernels at L <= 64).
//   - f32 data when ddpm::cuda::allow_tf32() (`--tf32`): TF32 operands (m16n8k8; q, k, v, dout,
//     P and dS rounded to 10 mantissa bits: ~1e-3 relative error in out and dqkv, against ~1e-6
//     for version 1). Tiles read by the second product are also kept transposed (ldmatrix moves
//     16-bit values only). Without TF32, f32 runs version 1.
//   Both, forward and backward, are checked by host emulation in CI
//   (tests/test_attention_emulated.cpp) and passed the GPU tests on an H200 at commits 91bf57c,
//   51595b9, 25a059a and fc776d5. There (fc776d5) at B 64, 4 heads, L 4096, D 16, forward /
//   backward: bf16 1.78 / 3.86 ms, PyTorch SDPA bf16 2.93 / 7.66 ms, version 1 12.3 / 37.0 ms;
//   TF32 3.44 / 9.29 ms (62cd378's bounds, an experiment call) (docs/kernels.md).
//
// Napkin math per call (B, heads, L, D): forward 4*B*heads*L^2*D FLOPs (q k^T and P v); backward
// recomputes q k^T and adds dout v^T, dS k, dS^T q, P^T dout: 10*B*heads*L^2*D FLOPs (the CUDA
// version computes q k^T and dout v^T twice: 14). Bytes are tiny in comparison (qkv, out, lse),
// so at L >= 256 these are compute-bound.
#pragma once
#include <cstdint>

#include "kernels/bf16.hpp"

namespace ddpm::kernels {

struct AttnDims {
  int64_t batch, tokens, heads, head_dim;  // B, L, heads, D
  int64_t channels() const { return heads * head_dim; }  // C
};

inline bool cuda_head_dim_supported(int64_t d) { return d >= 1 && d <= 64; }

// The kernels of both backends (attention_cpu.cpp, attention_cuda.cu), declared once for qkv, out,
// dout and dqkv of T = float and T = bf16 (lse and delta are float either way).
#define DDPM_ATTENTION_KERNELS(T)                                                                   \
  void attention_fwd(const T* qkv, T* out, float* lse, const AttnDims& a);                         \
  void attention_bwd(const T* qkv, const T* out, const float* lse, const T* dout, float* delta, T* dqkv, \
                     const AttnDims& a);

namespace cpu {
DDPM_ATTENTION_KERNELS(float)
DDPM_ATTENTION_KERNELS(bf16)
}  // namespace cpu

#ifdef DDPM_HAVE_CUDA
namespace cuda {
DDPM_ATTENTION_KERNELS(float)
DDPM_ATTENTION_KERNELS(bf16)
}  // namespace cuda
#endif
#undef DDPM_ATTENTION_KERNELS

}  // namespace ddpm::kernels
