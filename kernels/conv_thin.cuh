// Direct convolution for thin layers: the three passes of a convolution whose input or output side
// has at most kFew channels, the U-Net's first layer (3x3, 3 or 1 -> 64) and last (1x1, 64 -> 3
// or 1). Backend Ours runs these instead of the implicit GEMM (conv_cuda.cu,
// `thin_fits`); the conventions are kernels/conv.hpp's. Kept apart from the launches' callers so
// tests/test_conv_thin_emulated.cpp can run them as host C++ (CI has no GPU).
//
// Why: those layers are 0.2% of a step's FLOPs but took ~0.8 ms of the 5.5 ms of convolutions in
// a bf16 64x64 training step (H200, cuDNN, 74475a6): a GEMM with N or K of 3 wastes its tiles,
// and cuDNN's kernels for them ran at 3-25% of the copy bandwidth (1x1 64 -> 3 forward: 109 us for
// 34 MB read). They are memory-bound: napkin ~10 us per pass at 64x64, batch 64 in bf16.
//
// The forward and the data gradient are one direct convolution
//   out[p, o] = b[o] + sum over taps t and input channels i of in[p + shift(t), i] W[o, t, i]
// with shift(t) = (ky - pad, kx - pad) for t = ky k + kx, zero outside the image:
//   forward        in = x,  out = y,  W[o, t, i] = w[o, t, i]
//   data gradient  in = dy, out = dx, W[o, t, i] = w[i, T-1-t, o] (the flipped, transposed filter:
//                  conv_igemm.cuh derives it), no bias.
// The block first copies W (as f32) into shared memory, in the layout its kernel reads:
// - expand_k (few input channels, Ci <= kFew): a thread computes 8 consecutive outputs of one
//   pixel (threads of a pixel side by side: a warp stores whole rows); W as [t][i][o], o fastest
//   and padded to a multiple of 8, so a thread's 8 weights are two 16-byte shared loads that the
//   threads of other pixels read too (broadcast). Napkin (3x3, 3 -> 64 at 64x64, batch 64): 453M
//   FMAs, ~14 us at the H200's FP32 rate, and 34 MB written in bf16, ~8 us.
// - reduce_k (few output channels, Co <= kFew): 8 lanes share a pixel and split its input
//   channels in 16-byte vectors (a pixel's 64 bf16 channels are one 128-byte row, read whole by
//   its 8 lanes), each lane keeps Co partial sums, and a butterfly over the 8 lanes adds them;
//   W as [o][t][i]. Napkin (1x1, 64 -> 3): 34 MB read, ~8 us; (3x3 data gradient, 64 -> 3):
//   453M FMAs, ~14 us.
// f32 data is computed in exact f32 (no TF32: these layers gain nothing from tensor cores).
#pragma once
#include <algorithm>

#include "kernels/conv.hpp"
#include "kernels/hd.hpp"
#include "kernels/memory_bound.cuh"

namespace ddpm::kernels::cuda::thin {

using ddpm::cuda::aligned16;
using ddpm::cuda::from_f32;
using ddpm::cuda::grid_for;
using ddpm::cuda::kThreads;
using ddpm::cuda::kVec16;
using ddpm::cuda::lanes_sum;
using ddpm::cuda::load_vec;
using ddpm::cuda::store_vec;
using ddpm::cuda::to_f32;
using ddpm::cuda::Vec;

constexpr int kFew = 4;                 // at most this many channels on the thin side
constexpr int kOuts = 8;                // outputs per thread in expand_k
constexpr int kLanes = 8;               // lanes per pixel in reduce_k
constexpr int64_t kMaxWeights = 12288;  // floats of W in shared memory: 48 KB, no opt-in needed
// Blocks per launch at most: each block copies the whole filter into shared memory first (through
// the flipped gather, for the data gradient), so the grid is kept to a few blocks per SM of an
// H100/H200 and the threads loop over the pixels instead.
constexpr unsigned kMaxBlocks = 132 * 8;

// One direct convolution (see the top of the file).
template <class T>
struct Direct {
  const T *in, *w, *b;  // b may be null
  T* out;
  int n, h, wd, k, ci, co;  // wd: image width
  bool flip;                // data gradient: W[o, t, i] = w[i, T-1-t, o]
  DDPM_HD int64_t pixels() const { return int64_t(n) * h * wd; }
  DDPM_HD int taps() const { return k * k; }
};

// W[o, t, i] from the filter w.
template <class T> __device__ float weight(const Direct<T>& a, int o, int t, int i) {
  const int T_ = a.taps();
  return to_f32(a.flip ? a.w[(int64_t(i) * T_ + (T_ - 1 - t)) * a.co + o] : a.w[(int64_t(o) * T_ + t) * a.ci + i]);
}

// Outputs rounded up to whole groups of kOuts: expand_k's row length in shared memory.
DDPM_HD int padded_outputs(int co) { return (co + kOuts - 1) / kOuts * kOuts; }

// Calls f(input row) for each tap of pixel p whose input pixel is inside the image.
template <class T, class F> __device__ __forceinline__ void for_taps(const Direct<T>& a, int64_t p, F f) {
  const int x = int(p % a.wd), y = int(p / a.wd % a.h);
  const int64_t img = p / (int64_t(a.wd) * a.h);
  const int pad = (a.k - 1) / 2;
  for (int ky = 0; ky < a.k; ++ky) {
    const int yy = y + ky - pad;
    if (yy < 0 || yy >= a.h) continue;
    for (int kx = 0; kx < a.k; ++kx) {
      const int xx = x + kx - pad;
      if (xx < 0 || xx >= a.wd) continue;
      f(ky * a.k + kx, a.in + ((img * a.h + yy) * a.wd + xx) * a.ci);
    }
  }
}

template <class T> __global__ void __launch_bounds__(kThreads) expand_k(Direct<T> a) {
  extern __shared__ __align__(16) float thin_smem[];
  const int co8 = padded_outputs(a.co), groups = co8 / kOuts;
  for (int e = int(threadIdx.x); e < a.taps() * a.ci * co8; e += int(blockDim.x)) {
    const int o = e % co8, ti = e / co8;
    thin_smem[e] = o < a.co ? weight(a, o, ti / a.ci, ti % a.ci) : 0.0f;
  }
  __syncthreads();
  const bool vec_out = a.co % kOuts == 0 && reinterpret_cast<uintptr_t>(a.out) % 16 == 0;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < a.pixels() * groups;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = e / groups;
    const int o0 = int(e % groups) * kOuts;
    Vec<kOuts> acc;
    for (int j = 0; j < kOuts; ++j) acc.v[j] = a.b && o0 + j < a.co ? to_f32(a.b[o0 + j]) : 0.0f;
    for_taps(a, p, [&](int t, const T* row) {
      for (int i = 0; i < a.ci; ++i) {
        const float v = to_f32(row[i]);
        const Vec<kOuts> wv = load_vec<kOuts>(thin_smem + (t * a.ci + i) * co8 + o0);
#pragma unroll
        for (int j = 0; j < kOuts; ++j) acc.v[j] = fmaf(v, wv.v[j], acc.v[j]);
      }
    });
    T* dst = a.out + p * a.co + o0;
    if (vec_out) store_vec<kOuts>(dst, acc);
    else
      for (int j = 0; j < kOuts && o0 + j < a.co; ++j) dst[j] = from_f32<T>(acc.v[j]);
  }
}

template <int V, class T> __global__ void __launch_bounds__(kThreads) reduce_k(Direct<T> a) {
  extern __shared__ __align__(16) float thin_smem[];
  const int per_output = a.taps() * a.ci;
  for (int e = int(threadIdx.x); e < a.co * per_output; e += int(blockDim.x))
    thin_smem[e] = weight(a, e / per_output, e % per_output / a.ci, e % a.ci);
  __syncthreads();
  // kLanes lanes per pixel; a warp's 32 / kLanes pixels are consecutive, and the loop runs on the
  // warp's first pixel, so every lane of a warp takes the same turns and reaches the butterfly.
  const int sub = int(threadIdx.x % kLanes);
  const int64_t stride = int64_t(gridDim.x) * blockDim.x / kLanes;
  for (int64_t p0 = (int64_t(blockIdx.x) * blockDim.x + (threadIdx.x & ~31u)) / kLanes; p0 < a.pixels();
       p0 += stride) {
    const int64_t p = p0 + int(threadIdx.x % 32) / kLanes;
    float acc[kFew] = {};
    if (p < a.pixels())
      for_taps(a, p, [&](int t, const T* row) {
        for (int c = sub * V; c < a.ci; c += kLanes * V) {
          const Vec<V> v = load_vec<V>(row + c);
#pragma unroll
          for (int o = 0; o < kFew; ++o) {
            if (o >= a.co) break;
            const Vec<V> wv = load_vec<V>(thin_smem + o * per_output + t * a.ci + c);
            for (int j = 0; j < V; ++j) acc[o] = fmaf(v.v[j], wv.v[j], acc[o]);
          }
        }
      });
#pragma unroll
    for (int o = 0; o < kFew; ++o) acc[o] = lanes_sum(acc[o], kLanes);
    if (p >= a.pixels() || sub != 0) continue;
#pragma unroll
    for (int o = 0; o < kFew; ++o)  // a constant bound keeps acc in registers
      if (o < a.co) a.out[p * a.co + o] = from_f32<T>(acc[o] + (a.b ? to_f32(a.b[o]) : 0.0f));
  }
}

// The filter gradient dw[o, t, i] = sum over pixels p of dy[p, o] x[p + shift(t), i] (zero
// outside the image). Its wide side (Co when the input is thin, else Ci) is cut into groups of
// kOuts channels, and a thread owns one (tap, group) pair, a "combo": at each of its pixels it
// multiplies the wide side's kOuts values (one 16-byte load in bf16) by the thin side's (at most
// kFew), kOuts * kFew sums in registers. A block is rows x combos threads over a slice of the
// image rows; each row of threads takes every rows-th pixel of an image row, so coordinates are
// counted, not divided out. The rows' sums are added in row order through shared memory and
// written as the block's partial dw to `work`; filter_total_k adds the blocks' partials in a
// fixed order, so the result does not depend on scheduling (no atomics), as in bias_grad.
// Napkin (3x3, 3 -> 64 at 64x64, batch 64, bf16): 453M FMAs, ~14 us at the H200's FP32 rate, with
// 36 MB read, ~9 us; (1x1, 64 -> 3): 50M FMAs and 35 MB read, ~9 us. The implicit GEMM took 95
// and 73 us there, cuDNN 304 and 169 (H200, 74475a6).
template <class T>
struct Filter {
  const T *x, *dy;
  T* dw;
  float* work;              // [blocks][Co * k * k * Ci] partial sums
  int n, h, wd, k, ci, co;  // wd: image width
  DDPM_HD int taps() const { return k * k; }
  DDPM_HD bool thin_in() const { return ci <= kFew; }  // else Co <= kFew
  DDPM_HD int wide() const { return thin_in() ? co : ci; }
  DDPM_HD int thin() const { return thin_in() ? ci : co; }
  DDPM_HD int groups() const { return (wide() + kOuts - 1) / kOuts; }
  DDPM_HD int combos() const { return taps() * groups(); }
  DDPM_HD int64_t weights() const { return int64_t(co) * taps() * ci; }
};

// kVec: the wide side's kOuts values are one aligned vector (its channel count a multiple of kOuts).
template <bool kVec, class T> __global__ void __launch_bounds__(kThreads, 4) filter_k(Filter<T> a) {
  extern __shared__ __align__(16) float thin_smem[];  // [kFew * kOuts][blockDim.x]: no bank conflicts
  const int combos = a.combos(), rows = int(blockDim.x) / combos, row = int(threadIdx.x) / combos;
  const int c = int(threadIdx.x) % combos, t = c / a.groups(), w0 = c % a.groups() * kOuts;
  const int pad = (a.k - 1) / 2, ty = t / a.k - pad, tx = t % a.k - pad;  // tap t reads pixel (y + ty, x + tx)
  const int64_t image_rows = int64_t(a.n) * a.h;
  const int64_t r0 = image_rows * blockIdx.x / gridDim.x, r1 = image_rows * (blockIdx.x + 1) / gridDim.x;
  float acc[kFew][kOuts] = {};
  for (int64_t r = r0; row < rows && r < r1; ++r) {  // r = image * h + y
    const int yy = int(r % a.h) + ty;
    if (yy < 0 || yy >= a.h) continue;
    // Unrolled so that two pixels' loads (independent: the loop stores nothing) are in flight at once.
#pragma unroll 2
    for (int xo = row; xo < a.wd; xo += rows) {
      const int xx = xo + tx;
      if (xx < 0 || xx >= a.wd) continue;
      const int64_t p = r * a.wd + xo, q = (r + ty) * a.wd + xx;  // output pixel, input pixel
      const T* wide_p = a.thin_in() ? a.dy + p * a.co : a.x + q * a.ci;
      const T* thin_p = a.thin_in() ? a.x + q * a.ci : a.dy + p * a.co;
      Vec<kOuts> wv;
      if constexpr (kVec) {
        wv = load_vec<kOuts>(wide_p + w0);
      } else {
#pragma unroll
        for (int j = 0; j < kOuts; ++j) wv.v[j] = w0 + j < a.wide() ? to_f32(wide_p[w0 + j]) : 0.0f;
      }
#pragma unroll
      for (int s = 0; s < kFew; ++s) {
        if (s >= a.thin()) break;
        const float v = to_f32(thin_p[s]);
#pragma unroll
        for (int j = 0; j < kOuts; ++j) acc[s][j] = fmaf(v, wv.v[j], acc[s][j]);
      }
    }
  }
#pragma unroll
  for (int s = 0; s < kFew; ++s)
#pragma unroll
    for (int j = 0; j < kOuts; ++j) thin_smem[(s * kOuts + j) * blockDim.x + threadIdx.x] = acc[s][j];
  __syncthreads();
  // The rows' sums of each (thin channel, wide channel, combo), in row order, spread over all threads.
  float* part = a.work + int64_t(blockIdx.x) * a.weights();
  for (int e = int(threadIdx.x); e < kFew * kOuts * combos; e += int(blockDim.x)) {
    const int ec = e % combos, sj = e / combos, s = sj / kOuts, w = ec % a.groups() * kOuts + sj % kOuts;
    if (s >= a.thin() || w >= a.wide()) continue;
    float sum = 0.0f;
    for (int rr = 0; rr < rows; ++rr) sum += thin_smem[sj * blockDim.x + rr * combos + ec];
    const int o = a.thin_in() ? w : s, i = a.thin_in() ? s : w;
    part[(int64_t(o) * a.taps() + ec / a.groups()) * a.ci + i] = sum;
  }
}

// dw from filter_k's partials: a block takes 32 consecutive weights, one per lane (coalesced
// reads); warp w adds the partials of blocks [w B / 8, (w + 1) B / 8) in order, then the first
// warp adds the 8 warps' sums in warp order, in double.
template <class T> __global__ void __launch_bounds__(kThreads) filter_total_k(Filter<T> a, int blocks) {
  extern __shared__ __align__(16) float thin_smem[];
  double* warp_sums = reinterpret_cast<double*>(thin_smem);  // [warps][32]
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32, warps = int(blockDim.x) / 32;
  const int64_t e = int64_t(blockIdx.x) * 32 + lane;
  double sum = 0.0;
  if (e < a.weights())
    for (int b = blocks * warp / warps; b < blocks * (warp + 1) / warps; ++b) sum += a.work[int64_t(b) * a.weights() + e];
  warp_sums[warp * 32 + lane] = sum;
  __syncthreads();
  if (warp != 0 || e >= a.weights()) return;
  double total = 0.0;
  for (int w = 0; w < warps; ++w) total += warp_sums[w * 32 + lane];
  a.dw[e] = from_f32<T>(float(total));
}

// Blocks of filter_k: a slice of image rows each, at most max_blocks (kFilterBlocks by default).
// Fewer than the other kernels' cap: each block's partial dw is written and read back once.
constexpr unsigned kFilterBlocks = 132 * 4;
template <class T> unsigned filter_blocks(const Filter<T>& a, unsigned max_blocks) {
  return unsigned(std::clamp<int64_t>(int64_t(a.n) * a.h, 1, max_blocks));
}
// Floats of `work` that the filter gradient needs.
template <class T> int64_t filter_work(const Filter<T>& a, unsigned max_blocks = kFilterBlocks) {
  return int64_t(filter_blocks(a, max_blocks)) * a.weights();
}

// Floats of W in shared memory for a pass with ci input and co output channels.
inline int64_t weight_floats(int64_t k, int64_t ci, int64_t co) {
  return ci <= kFew ? k * k * ci * padded_outputs(int(co)) : co * k * k * ci;
}

// Whether the direct kernels take this pass: its input or output side has at most kFew channels,
// and the forward's or data gradient's filter fits in shared memory, or the filter gradient's
// (tap, group) pairs fit in one block.
inline bool fits(const ConvShape& s, ConvDir dir) {
  if (s.pixels() >= (int64_t(1) << 31)) return false;
  if (dir == ConvDir::Filter)
    return (s.cin <= kFew || s.cout <= kFew) &&
           s.k * s.k * ((std::max(s.cin, s.cout) + kOuts - 1) / kOuts) <= kThreads;
  const int64_t ci = dir == ConvDir::Forward ? s.cin : s.cout, co = dir == ConvDir::Forward ? s.cout : s.cin;
  return (ci <= kFew || co <= kFew) && weight_floats(s.k, ci, co) <= kMaxWeights;
}

// The launch of one pass that fits(): `launch(name, grid, shared bytes, kernel, args)` as
// ddpm::cuda::DeviceLaunch (kernels/cuda_launch.cuh) or emu::Launcher, on at most max_blocks
// blocks (the emulated test makes the threads loop with fewer).
template <class T, class Launch> void run(const Launch& launch, const Direct<T>& a, unsigned max_blocks = kMaxBlocks) {
  const size_t smem = size_t(weight_floats(a.k, a.ci, a.co)) * sizeof(float);
  if (a.ci <= kFew) {
    const uint3 grid{std::min(grid_for(a.pixels() * (padded_outputs(a.co) / kOuts)), max_blocks), 1, 1};
    launch("thin::expand_k", grid, smem, expand_k<T>, a);
    return;
  }
  const uint3 grid{unsigned(std::min<int64_t>((a.pixels() * kLanes + kThreads - 1) / kThreads, max_blocks)), 1, 1};
  constexpr int V = kVec16<T>;
  if (a.ci % V == 0 && aligned16({a.in})) launch("thin::reduce_k", grid, smem, reduce_k<V, T>, a);
  else launch("thin::reduce_k", grid, smem, reduce_k<1, T>, a);
}

// The three passes as problems of the kernels above (conv.hpp's arguments).
template <class T> Direct<T> forward(const ConvShape& s, const T* x, const T* w, const T* b, T* y) {
  return {x, w, b, y, int(s.n), int(s.h), int(s.w), int(s.k), int(s.cin), int(s.cout), false};
}
template <class T> Direct<T> data_gradient(const ConvShape& s, const T* dy, const T* w, T* dx) {
  return {dy, w, nullptr, dx, int(s.n), int(s.h), int(s.w), int(s.k), int(s.cout), int(s.cin), true};
}

template <class T> Filter<T> filter_gradient(const ConvShape& s, const T* x, const T* dy, T* dw, float* work) {
  return {x, dy, dw, work, int(s.n), int(s.h), int(s.w), int(s.k), int(s.cin), int(s.cout)};
}

// The filter gradient's two launches; a.work holds filter_work(a, max_blocks) floats.
template <class T, class Launch>
void run(const Launch& launch, const Filter<T>& a, unsigned max_blocks = kFilterBlocks) {
  const unsigned blocks = filter_blocks(a, max_blocks);
  const size_t smem = size_t(kThreads) * kFew * kOuts * sizeof(float);
  const bool vec = a.wide() % kOuts == 0 && aligned16({a.thin_in() ? a.dy : a.x});
  launch("thin::filter_k", uint3{blocks, 1, 1}, smem, vec ? filter_k<true, T> : filter_k<false, T>, a);
  launch("thin::filter_total_k", uint3{unsigned((a.weights() + 31) / 32), 1, 1}, size_t(kThreads) * sizeof(double),
         filter_total_k<T>, a, int(blocks));
}

}  // namespace ddpm::kernels::cuda::thin
