// 2-D convolution kernels: stride 1, zero padding (k-1)/2 (same spatial size out), odd square
// kernel k (the engine uses k = 1 and 3).
//
// Conventions (both backends): float32 or bf16 (f32 accumulation, outputs rounded once),
// contiguous, on the backend's device.
// - x, dx [N, H, W, Cin] and y, dy [N, H, W, Cout] are NHWC; w, dw [Cout, k, k, Cin] are OHWI; b is
//   [Cout] or null. In OHWI each output channel's weights are one row of k*k*Cin values in
//   (ky, kx, ci) order, which is exactly the order of an NHWC patch: w is a [Cout, k*k*Cin] matrix.
// - Every output (y, dx, dw) is overwritten, never accumulated. The bias gradient is a column sum
//   of dy viewed as [N*H*W, Cout]: kernels/matmul.hpp's bias_grad.
// - Cost of each pass (forward, data gradient, filter gradient): 2*N*H*W*Cout*Cin*k*k FLOPs.
//   E.g. 3x3, 64->64 channels at 64x64, batch 64: 2*262144*64*64*9 = 19.3 GFLOP per pass.
//
// Versions (append one block per new backend version; keep the function signatures):
// v1
//   CPU: im2col + one OpenBLAS GEMM per chunk of output pixels. Row p of the patch matrix holds
//     the k*k*Cin patch around output pixel p (NHWC makes each tap a contiguous run of Cin), so
//     forward is y = patches [P, k*k*Cin] x w^T, filter gradient dw = dy^T [Cout, P] x patches,
//     data gradient = col2im(dy x w), col2im gathering for each input pixel the taps that read it.
//     1x1 convolutions skip im2col: x itself is the patch matrix. Chunks of pixels bound the patch
//     buffer (16 MiB, reused across calls). im2col, col2im and the GEMMs (kernels/matmul.hpp) all
//     split their work over the one OpenMP thread pool. im2col costs a few percent of the GEMM
//     (one core: ~100 GFLOP/s for the GEMM, im2col within 5% of it at 32->32 channels, 32x32).
//   CUDA: cuDNN's legacy convolution API on NHWC tensors and the OHWI filter (cuDNN's NHWC
//     filter format). The algorithm of each shape and direction is chosen once: cudnnFind*'s
//     first four usable ones (deterministic when any are), timed again by us (median of three:
//     one Find timing can be 9x off) and cached; FP32 math (CUDNN_FMA_MATH) or,
//     when ddpm::cuda::allow_tf32(), TF32 tensor cores (CUDNN_DEFAULT_MATH).
//     Measured on an H200, batch 64 (forward / forward + both gradients, FP32 then TF32):
//       3x3 64->64 at 64x64:    0.56 / 2.9 ms (34 / 20 TFLOP/s), TF32 0.10 / 0.47 ms (196 / 123)
//       3x3 128->128 at 32x32:  0.51 / 2.6 ms,                     TF32 0.10 / 0.31 ms (200 / 188)
//       3x3 3->64 at 64x64:     0.08 / 1.15 ms (the filter gradient with Cin = 3 dominates)
//       1x1 64->3 at 64x64:     0.11 / 0.81 ms, TF32 0.11 / 0.25 ms: memory-bound (67 MB in), so
//                               ~7x off the copy bandwidth: a target for our own kernel.
// v2: CPU unchanged. CUDA: two backends behind the same functions, chosen at run time
//   with cuda::set_conv_backend (default CuDNN, v1 above, until per-shape measurements say
//   otherwise).
//   Ours (kernels/conv_igemm.cuh, conv_igemm_cuda.cu): implicit GEMM on tensor cores with
//     warp-level mma.sync, TF32 for f32 data (m16n8k8, operands rounded with cvt.rna) and bf16
//     (m16n8k16) for the bf16 functions, f32 accumulation. Forward y = patches(x) w^T, data
//     gradient dx = patches(dy) x (w with flipped taps, in/out swapped), filter gradient
//     dw^T = patches(x)^T dy (K = N*H*W); the patch operands are gathered tile by tile, never
//     stored. Block tiles 128x128 or 128x64 (N <= 64, or a GPU whose blocks have less than the
//     108 KB of shared memory the wide tile needs: sm_86/89/120), K tiles of 128 bytes, 3-stage cp.async
//     pipeline with zero-fill for padding taps and tails, padded shared memory (conflict-free
//     fragment loads); channel counts that are not a multiple of 4 (f32) / 8 (bf16), e.g.
//     Cin = 3, take an element-wise load path. Where the output tiles do not fill the GPU
//     (small images, the filter gradient) K is split across blocks and the partial sums are
//     added by a second kernel in a fixed order: deterministic, no atomics. Bias in the epilogue.
//     Ours is used for f32 data only when ddpm::cuda::allow_tf32(); with TF32 off the f32
//     functions stay exact on cuDNN's FMA algorithms, whatever the backend. The bf16 functions
//     always ran Ours in v2 (v3 below).
//     Napkin math (3x3 64->64 at 64x64, batch 64, 19.3 GFLOP per pass): 47 us at the H200's
//     415 TFLOP/s TF32, 24 us at 796 bf16; ~67 MB in and out per f32 pass (~32 us at 4.2 TB/s),
//     so compute-bound in TF32. The fragment loads' shared-memory bandwidth caps this version
//     near 2/3 of the mma.sync rate (docs/kernels.md, "Convolution"). Status: NOT YET MEASURED
//     on hardware (benchmarks/bench_conv compares it with cuDNN per shape).
// v3: bf16 on both backends, for the engine's bf16 (mixed-precision) path. CPU: the f32
//   kernels on widened copies (kernels/widen.hpp). CUDA: the bf16 functions follow the backend
//   switch too: CuDNN (the default) describes the tensors as CUDNN_DATA_BFLOAT16 with f32
//   accumulation and tensor-op math, Ours runs the bf16 implicit GEMM (no TF32 condition: there
//   is no exact path to protect). Measured by bench_conv on an H200 (docs/kernels.md), one 64x64
//   batch-64 step's convolutions: cuDNN bf16 5.5 ms, ours 19.1 ms, so CuDNN stays the default.
//   A third backend, Auto, times both on the first call of each shape, dtype and direction and
//   keeps the faster (the same H200 data: ours wins 3 of 124 cases, e.g. the first layer's filter
//   gradient). Not the default: its choice depends on timing, so two runs may differ in the last
//   bits, where Ours is reproducible and CuDNN nearly so (pick()). On the H200 it gained 7-9% in bf16 at 32x32,
//   batch 128, and nothing measurable at 64x64 or in TF32 (docs/kernels.md).
// v4 (current; 2026-11-27, NOT YET RUN ON HARDWARE): Ours reads its fragments with ldmatrix (.trans for the
//   bf16 MN-major tiles of the filter gradient, which v2 built from two 16-bit loads per register):
//   the same bytes, 4-12x fewer shared-memory instructions, and half the shared-memory wavefronts
//   in the bf16 filter gradient, v2's slowest pass (docs/kernels.md, "v4"). Checked on the CPU by
//   emulation (tests/test_conv_igemm_emulated.cpp). A fourth backend, Measured, runs ours where
//   bench_conv measured it faster and cuDNN elsewhere, by a fixed rule (ours_measured_faster):
//   Auto's gain without its timing, so reproducible. Not the default until both have run on a GPU.
// v6 (2026-11-27, NOT YET RUN ON HARDWARE): on an H100/H200, Ours runs bf16 on Hopper's warpgroup
//   MMA (kernels/conv_wgmma.cuh: wgmma reading 128-byte-swizzled operand tiles straight from
//   shared memory, two warpgroups of 64 x 128 accumulators, a 4-stage cp.async pipeline); v4
//   elsewhere and for TF32. The
//   default architectures became sm_80 and sm_90a (wgmma exists only in the arch-specific target).
//   Checked on the CPU by emulation (tests/test_conv_wgmma_emulated.cpp).
// v7 (2026-11-27, NOT YET RUN ON HARDWARE): Ours runs all three passes of thin layers (at most 4
//   channels on one side: the U-Net's first and last convolutions) as direct convolutions on CUDA
//   cores (kernels/conv_thin.cuh), ~10-20 us a pass at 64x64, batch 64 by napkin, where the GEMMs
//   (cuDNN's and ours) took 30-300 us; the filter gradient sums per-block partials in block order
//   (deterministic). Checked on the CPU by emulation (tests/test_conv_thin_emulated.cpp).
#pragma once
#include <cstdint>

#include "kernels/bf16.hpp"

namespace ddpm::kernels {

struct ConvShape {
  int64_t n = 0, h = 0, w = 0, cin = 0, cout = 0, k = 0;
  int64_t pixels() const { return n * h * w; }
};

// The kernels of both backends, declared once for T = float and T = bf16 (f32 accumulation,
// outputs rounded once). CPU: conv_cpu.cpp, bf16 through kernels/widen.hpp. CUDA: conv_cuda.cu
// (the backend switch and cuDNN) and conv_igemm_cuda.cu (ours).
#define DDPM_CONV_KERNELS(T)                                                             \
  void conv2d_fwd(const ConvShape& s, const T* x, const T* w, const T* b, T* y);        \
  void conv2d_bwd_data(const ConvShape& s, const T* dy, const T* w, T* dx);             \
  void conv2d_bwd_filter(const ConvShape& s, const T* x, const T* dy, T* dw);

namespace cpu {
DDPM_CONV_KERNELS(float)
DDPM_CONV_KERNELS(bf16)
}  // namespace cpu

// Which implementation runs the CUDA functions (v2, v3 above). Measured: per shape, dtype and
// direction the one bench_conv measured faster (ours_measured_faster below), a fixed rule. Auto:
// the faster of the two, timed on first use (conv_cuda.cu). Ours, Measured and Auto use our
// kernels for f32 data only in TF32.
enum class ConvBackend { Ours, CuDNN, Measured, Auto };

enum class ConvDir { Forward, Data, Filter };

// Backend Measured's rule, from bench_conv on an H200 (benchmarks/results/2026-11-26-h200-
// bench_conv.json, v2 and v3, every convolution of both benchmark setups): ours was faster only
// at the thin layers on the model's edges, where cuDNN's algorithms spend most of their time
// outside the GEMM:
// - the filter gradient of a 3x3 convolution with Cin <= 3 (the first layer): 1.5-3.2x;
// - in bf16, the forward and the filter gradient of a 1x1 convolution with Cout <= 3 (the last
//   layer): 2.2-10x (in TF32 they were even or cuDNN's).
// Everywhere else cuDNN was faster, mostly by 2-5x. tests/test_op_conv_backend.cpp holds this rule
// against the newest bench_conv results in benchmarks/results/, so a new measurement that
// disagrees fails CI until the rule follows it.
inline bool ours_measured_faster(const ConvShape& s, ConvDir dir, bool bf16_data) {
  if (dir == ConvDir::Filter && s.k == 3 && s.cin <= 3) return true;
  return bf16_data && s.k == 1 && s.cout <= 3 && dir != ConvDir::Data;
}

#ifdef DDPM_HAVE_CUDA
namespace cuda {
void set_conv_backend(ConvBackend backend);
ConvBackend conv_backend();
// Our bf16 kernels are v6 (wgmma) where that can run: a build with sm_90a code (the default
// architectures) on a GPU of compute capability 9.0 (H100, H200); v4 elsewhere, after
// set_conv_wgmma(false) (bench_conv times both), and for the whole process when the environment
// has DDPM_CONV_WGMMA=0 (conv_wgmma_available() then says false).
bool conv_wgmma_available();
void set_conv_wgmma(bool on);
DDPM_CONV_KERNELS(float)
DDPM_CONV_KERNELS(bf16)
}  // namespace cuda
#endif
#undef DDPM_CONV_KERNELS

}  // namespace ddpm::kernels
