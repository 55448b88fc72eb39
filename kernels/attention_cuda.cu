// CUDA twin of kernels/attention_cpu.cpp. Version 1, for f32 data: flash-attention in plain f32
// FMA, exact f32. Version 2 (forward and backward): the same algorithm on tensor cores, in
// namespace tc (kernels/attention_tc.cuh), one set of kernels for two operand types: bf16 data on
// bf16 mma.sync, and f32 data on TF32 mma.sync when ddpm::cuda::allow_tf32() (`--tf32`; without it
// f32 runs version 1). Only delta_i = dout_i . out_i is one kernel for both versions.
//
// Every kernel gives each block kRows "own" rows of one (batch, head) and streams the other side
// through shared memory in tiles of kTile rows, read straight from the packed [B, L, 3C] layout:
// - forward: own queries; K and V tiles; online softmax (running max m and sum l in registers,
//   the output rescaled by exp(m_old - m_new) once per kChunk keys); writes out and lse.
// - backward: delta_i = dout_i . out_i; then one kernel over own keys streaming Q and dout tiles
//   accumulates dk and dv, and one over own queries streaming K and V tiles accumulates dq. Both
//   recompute P from lse. No atomics: each output row has one owner, so results are
//   deterministic.
// Scores are kept in log2 units (q or k pre-scaled by log2(e)/sqrt(D)) so that each exponential
// is one exp2.
//
// Napkin math (B, heads, L, D): FLOPs 4*B*heads*L^2*D forward, 14*B*heads*L^2*D backward (the
// two backward kernels both recompute q.k and dout.v). Each K/V (or Q/dout) tile is reused by
// kRows threads from shared memory, so global traffic is 2*L*D*4 bytes per tile pass and stays
// in L2; at L >= 256 the kernels are bound by FMA and shared-memory issue, not by DRAM.
// Example: 64x64 images, batch 64, last attention (L = 4096, D = 16, 4 heads): 275 GFLOP
// forward; at the ~51 TFLOP/s plain-f32 ceiling of an H200 that is >= 5.4 ms (measured: 12.3 ms
// forward, 36.9 ms backward, ~68% of an f32 training step with --tf32: hence version 2 for TF32).
#include <cstdint>
#include <type_traits>

#include "kernels/attention.hpp"
#include "kernels/attention_tc.cuh"
#include "kernels/bf16.cuh"
#include "kernels/cuda_launch.cuh"

namespace ddpm::kernels::cuda {
namespace {

using ddpm::cuda::grid_for;
using ddpm::cuda::kThreads;
using ddpm::cuda::stream;
using ddpm::cuda::to_f32;

constexpr int kTile = 64;   // streamed rows per shared-memory tile
constexpr int kChunk = 16;  // keys per online-softmax rescale in the forward

// A row of D floats is held by kSplit adjacent threads, each keeping kPart of its elements in
// registers: at D = 64 two threads share a row, so the backward's four row vectors still fit in
// 128 registers. Thread `part` holds the float4 words part, part + kSplit, part + 2 kSplit, ...
// of the row, so the lanes of a pair read adjacent words of a broadcast row (no bank conflict).
template <int D>
struct Rows {
  static constexpr int kSplit = D > 32 ? 2 : 1;
  static constexpr int kPart = D / kSplit;
  static constexpr int kThreads = kRows * kSplit;
  using Part = float[kPart];

  __device__ static int col(int part, int e) { return 4 * ((e / 4) * kSplit + part) + e % 4; }

  // This thread's slice of a global row of d <= D values (zeros past d, and when the row is past
  // the end), times `scale`.
  __device__ static void load(Part& x, const float* row, bool valid, int part, float scale, int d) {
#pragma unroll
    for (int e = 0; e < kPart; ++e) x[e] = valid && col(part, e) < d ? row[col(part, e)] * scale : 0.0f;
  }
  __device__ static void store(const Part& x, float* row, int part, float scale, int d) {
#pragma unroll
    for (int e = 0; e < kPart; ++e)
      if (col(part, e) < d) row[col(part, e)] = x[e] * scale;
  }
  // x . y for a row y in shared memory (16-byte aligned), summed over the kSplit threads.
  __device__ static float dot(const Part& x, const float* y, int part) {
    const float4* y4 = reinterpret_cast<const float4*>(y);
    float s = 0.0f;
#pragma unroll
    for (int w = 0; w < kPart / 4; ++w) {
      float4 v = y4[w * kSplit + part];
      s = fmaf(x[4 * w], v.x, fmaf(x[4 * w + 1], v.y, fmaf(x[4 * w + 2], v.z, fmaf(x[4 * w + 3], v.w, s))));
    }
#pragma unroll
    for (int o = 1; o < kSplit; o <<= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    return s;
  }
  // acc += a * y for a row y in shared memory.
  __device__ static void axpy(Part& acc, float a, const float* y, int part) {
    const float4* y4 = reinterpret_cast<const float4*>(y);
#pragma unroll
    for (int w = 0; w < kPart / 4; ++w) {
      float4 v = y4[w * kSplit + part];
      acc[4 * w] = fmaf(a, v.x, acc[4 * w]);
      acc[4 * w + 1] = fmaf(a, v.y, acc[4 * w + 1]);
      acc[4 * w + 2] = fmaf(a, v.z, acc[4 * w + 2]);
      acc[4 * w + 3] = fmaf(a, v.w, acc[4 * w + 3]);
    }
  }
};

// Where a thread sits: its block's (batch, head), its own row and its part of that row.
struct Place {
  int b, h, bh, row, part;
  int64_t C, ld;  // channels and the qkv row length 3C
};

template <int D>
__device__ Place place(int L, int heads, int d) {
  const int tiles = (L + kRows - 1) / kRows, bh = blockIdx.x / tiles;
  const int row = (blockIdx.x % tiles) * kRows + threadIdx.x / Rows<D>::kSplit;
  const int64_t C = int64_t(heads) * d;
  return {bh / heads, bh % heads, bh, row, int(threadIdx.x % Rows<D>::kSplit), C, 3 * C};
}

// Copies rows [t0, t0 + kTile) of a matrix with row stride ld (d columns from src) into dst
// [kTile][D], zeros past row L and past column d, so masked rows never feed NaN into a product
// and padded columns add nothing to it.
template <int D>
__device__ void load_tile(float* dst, const float* src, int64_t ld, int t0, int L, int d) {
  for (int idx = threadIdx.x; idx < kTile * D; idx += blockDim.x) {
    const int r = idx / D, c = idx % D, t = t0 + r;
    dst[idx] = t < L && c < d ? src[int64_t(t) * ld + c] : 0.0f;
  }
}

template <int D>
__global__ void __launch_bounds__(Rows<D>::kThreads)
    attention_fwd_k(const float* qkv, float* out, float* lse, int L, int heads, int d) {
  using R = Rows<D>;
  __shared__ __align__(16) float ks[kTile * D];
  __shared__ __align__(16) float vs[kTile * D];
  const Place p = place<D>(L, heads, d);
  const float* base = qkv + int64_t(p.b) * L * p.ld + p.h * d;  // q of (b, token 0, head h)
  float q[R::kPart], o[R::kPart] = {};
  R::load(q, base + int64_t(p.row) * p.ld, p.row < L, p.part, kLog2e * rsqrtf(float(d)), d);
  float m = -INFINITY, l = 0.0f;
  for (int j0 = 0; j0 < L; j0 += kTile) {
    __syncthreads();
    load_tile<D>(ks, base + p.C, p.ld, j0, L, d);
    load_tile<D>(vs, base + 2 * p.C, p.ld, j0, L, d);
    __syncthreads();
    for (int c = 0; c < kTile && j0 + c < L; c += kChunk) {
      float s[kChunk], m_new = m;
#pragma unroll
      for (int u = 0; u < kChunk; ++u) {
        float d = R::dot(q, ks + (c + u) * D, p.part);  // every lane: dot() shuffles
        s[u] = j0 + c + u < L ? d : -INFINITY;
        m_new = fmaxf(m_new, s[u]);
      }
      const float corr = exp2f(m - m_new);  // 0 on the first chunk, where m = -inf
      l *= corr;
#pragma unroll
      for (int e = 0; e < R::kPart; ++e) o[e] *= corr;
#pragma unroll
      for (int u = 0; u < kChunk; ++u) {
        const float pu = exp2f(s[u] - m_new);
        l += pu;
        R::axpy(o, pu, vs + (c + u) * D, p.part);
      }
      m = m_new;
    }
  }
  if (p.row >= L) return;
  R::store(o, out + (int64_t(p.b) * L + p.row) * p.C + p.h * d, p.part, 1.0f / l, d);
  if (p.part == 0) lse[int64_t(p.bh) * L + p.row] = (m + log2f(l)) / kLog2e;
}

// delta[b, h, i] = dout_i . out_i over head h's D columns; one thread per (b, i, h).
template <class T>
__global__ void attention_delta_k(const T* out, const T* dout, float* delta, int64_t rows, int L, int heads, int D) {
  DDPM_GRID_LOOP(r, rows) {
    const int64_t bi = r / heads, b = bi / L, i = bi % L, h = r % heads, at = r * D;
    float acc = 0.0f;
    for (int d = 0; d < D; ++d) acc = fmaf(to_f32(out[at + d]), to_f32(dout[at + d]), acc);
    delta[(b * heads + h) * L + i] = acc;
  }
}

// dq_i = scale * sum_j P_ij (dP_ij - delta_i) k_j over own queries i, streaming K and V.
template <int D>
__global__ void __launch_bounds__(Rows<D>::kThreads)
    attention_dq_k(const float* qkv, const float* dout, const float* lse, const float* delta, float* dqkv, int L,
                   int heads, int d) {
  using R = Rows<D>;
  __shared__ __align__(16) float ks[kTile * D];
  __shared__ __align__(16) float vs[kTile * D];
  const Place p = place<D>(L, heads, d);
  const bool valid = p.row < L;
  const int64_t q_at = int64_t(p.b) * L * p.ld + p.h * d;  // q of (b, token 0, head h)
  float q[R::kPart], go[R::kPart], dq[R::kPart] = {};
  R::load(q, qkv + q_at + int64_t(p.row) * p.ld, valid, p.part, kLog2e * rsqrtf(float(d)), d);
  R::load(go, dout + (int64_t(p.b) * L + p.row) * p.C + p.h * d, valid, p.part, 1.0f, d);
  const float lse2 = valid ? lse[int64_t(p.bh) * L + p.row] * kLog2e : 0.0f;
  const float dl = valid ? delta[int64_t(p.bh) * L + p.row] : 0.0f;
  for (int j0 = 0; j0 < L; j0 += kTile) {
    __syncthreads();
    load_tile<D>(ks, qkv + q_at + p.C, p.ld, j0, L, d);
    load_tile<D>(vs, qkv + q_at + 2 * p.C, p.ld, j0, L, d);
    __syncthreads();
    const int n = min(kTile, L - j0);
    for (int j = 0; j < n; ++j) {
      const float pj = exp2f(R::dot(q, ks + j * D, p.part) - lse2);
      const float ds = pj * (R::dot(go, vs + j * D, p.part) - dl);
      R::axpy(dq, ds, ks + j * D, p.part);
    }
  }
  if (valid) R::store(dq, dqkv + q_at + int64_t(p.row) * p.ld, p.part, rsqrtf(float(d)), d);
}

// dv_j = sum_i P_ij dout_i and dk_j = scale * sum_i dS_ij q_i over own keys j, streaming Q and dout.
template <int D>
__global__ void __launch_bounds__(Rows<D>::kThreads)
    attention_dkv_k(const float* qkv, const float* dout, const float* lse, const float* delta, float* dqkv, int L,
                    int heads, int d) {
  using R = Rows<D>;
  __shared__ __align__(16) float qs[kTile * D];
  __shared__ __align__(16) float gs[kTile * D];
  __shared__ float lse2s[kTile], dls[kTile];
  const Place p = place<D>(L, heads, d);
  const bool valid = p.row < L;
  const int64_t q_at = int64_t(p.b) * L * p.ld + p.h * d;
  const int64_t k_row = q_at + int64_t(p.row) * p.ld + p.C;  // k of (b, own key, head h)
  float k[R::kPart], v[R::kPart], dk[R::kPart] = {}, dv[R::kPart] = {};
  R::load(k, qkv + k_row, valid, p.part, kLog2e * rsqrtf(float(d)), d);
  R::load(v, qkv + k_row + p.C, valid, p.part, 1.0f, d);
  for (int i0 = 0; i0 < L; i0 += kTile) {
    __syncthreads();
    load_tile<D>(qs, qkv + q_at, p.ld, i0, L, d);
    load_tile<D>(gs, dout + int64_t(p.b) * L * p.C + p.h * d, p.C, i0, L, d);
    for (int r = threadIdx.x; r < kTile; r += blockDim.x) {
      const bool in = i0 + r < L;
      lse2s[r] = in ? lse[int64_t(p.bh) * L + i0 + r] * kLog2e : 0.0f;
      dls[r] = in ? delta[int64_t(p.bh) * L + i0 + r] : 0.0f;
    }
    __syncthreads();
    const int n = min(kTile, L - i0);
    for (int i = 0; i < n; ++i) {
      const float pi = exp2f(R::dot(k, qs + i * D, p.part) - lse2s[i]);
      R::axpy(dv, pi, gs + i * D, p.part);
      const float ds = pi * (R::dot(v, gs + i * D, p.part) - dls[i]);
      R::axpy(dk, ds, qs + i * D, p.part);
    }
  }
  if (!valid) return;
  R::store(dk, dqkv + k_row, p.part, rsqrtf(float(d)), d);
  R::store(dv, dqkv + k_row + p.C, p.part, 1.0f, d);
}


// Calls f(std::integral_constant<int, D>) with the compiled width D in {16, 32, 64} that holds
// head dim d: smaller head dims (tiny test models) run zero-padded to 16 in registers and shared
// memory, which leaves every dot product and output unchanged.
template <class F>
void with_head_dim(int64_t d, F&& f) {
  DDPM_CHECK(cuda_head_dim_supported(d), "attention", "the CUDA kernels take head dims 1 to 64, got ", d);
  if (d <= 16) return f(std::integral_constant<int, 16>());
  if (d <= 32) return f(std::integral_constant<int, 32>());
  return f(std::integral_constant<int, 64>());
}

// Blocks of `rows` own rows each for every (batch, head).
unsigned blocks_for(const AttnDims& a, int rows = kRows) {
  const int64_t blocks = a.batch * a.heads * ((a.tokens + rows - 1) / rows);
  // The kernels index tokens in int and step past L by a tile (j0 + 64).
  DDPM_CHECK(a.tokens <= INT32_MAX - kTile && blocks < INT32_MAX, "attention", "too large for the CUDA kernels: B ", a.batch,
             ", heads ", a.heads, ", L ", a.tokens);
  return unsigned(blocks);
}

// delta_i = dout_i . out_i, the first step of both backwards.
template <class T>
void attention_delta(const T* out, const T* dout, float* delta, const AttnDims& a) {
  const int64_t rows = a.batch * a.tokens * a.heads;
  attention_delta_k<<<grid_for(rows), kThreads, 0, stream()>>>(out, dout, delta, rows, int(a.tokens), int(a.heads),
                                                                int(a.head_dim));
  CUDA_CHECK_LAUNCH("attention_delta_k");
}

// Launches a version-2 kernel with `bytes` of dynamic shared memory; the kernel's limit (48 KiB
// unless raised) is set to `bytes` once, on its first launch. The attribute is per device: once is
// enough because the engine runs on one device (kernels/cuda_context.cu).
template <auto kernel, int MT, class... Args>
void launch_tc(const char* name, const AttnDims& a, int bytes, Args... args) {
  static const bool limit_set = [bytes] {
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    return true;
  }();
  (void)limit_set;
  kernel<<<blocks_for(a, tc::kBlockRows<MT>), tc::kWarps * 32, bytes, stream()>>>(args...);
  CUDA_CHECK_LAUNCH(name);
}

// Row tiles of 16 that each warp of a version-2 kernel owns (MT, kernels/attention_tc.cuh), as
// measured on an H200 (docs/kernels.md, "two row tiles per warp"): two for bf16 wherever registers
// allow, which is all but the dK/dV kernel at head dim 64 (it would spill 632 bytes); one for TF32,
// whose f32 tiles and fragments leave no room.
template <class Ops, int D> struct Tiles {
  static constexpr bool kBf16 = std::is_same_v<Ops, tc::Bf16Ops>;
  static constexpr int kFwd = kBf16 ? 2 : 1, kDq = kBf16 ? 2 : 1, kDkv = kBf16 && D <= 32 ? 2 : 1;
};

// Calls f(std::integral_constant<int, MT>), or with 1 when the tokens fit one block of 1-tile warps.
template <int MT, class F> void with_tiles(int64_t tokens, F&& f) {
  if constexpr (MT > 1)
    if (tokens > tc::kBlockRows<1>) return f(std::integral_constant<int, MT>());
  f(std::integral_constant<int, 1>());
}

// Version 2 for operand type Ops (tc::Bf16Ops for bf16 data, tc::Tf32Ops for f32 data with TF32).
template <class Ops>
void tc_fwd(const typename Ops::T* qkv, typename Ops::T* out, float* lse, const AttnDims& a) {
  with_head_dim(a.head_dim, [&](auto dim) {
    constexpr int D = decltype(dim)::value;
    with_tiles<Tiles<Ops, D>::kFwd>(a.tokens, [&](auto tiles) {
      constexpr int MT = decltype(tiles)::value;
      launch_tc<tc::attention_fwd_k<Ops, D, MT>, MT>("tc::attention_fwd_k", a, tc::Smem<Ops, D>::kFwd, qkv, out, lse,
                                                     int(a.tokens), int(a.heads), int(a.head_dim));
    });
  });
}
template <class Ops>
void tc_bwd(const typename Ops::T* qkv, const typename Ops::T* dout, const float* lse, const float* delta,
            typename Ops::T* dqkv, const AttnDims& a) {
  with_head_dim(a.head_dim, [&](auto dim) {
    constexpr int D = decltype(dim)::value;
    using S = tc::Smem<Ops, D>;
    const int L = int(a.tokens), heads = int(a.heads), d = int(a.head_dim);
    with_tiles<Tiles<Ops, D>::kDkv>(a.tokens, [&](auto tiles) {
      constexpr int MT = decltype(tiles)::value;
      launch_tc<tc::attention_dkv_k<Ops, D, MT>, MT>("tc::attention_dkv_k", a, S::kDkv, qkv, dout, lse, delta, dqkv, L,
                                                     heads, d);
    });
    with_tiles<Tiles<Ops, D>::kDq>(a.tokens, [&](auto tiles) {
      constexpr int MT = decltype(tiles)::value;
      launch_tc<tc::attention_dq_k<Ops, D, MT>, MT>("tc::attention_dq_k", a, S::kDq, qkv, dout, lse, delta, dqkv, L,
                                                    heads, d);
    });
  });
}

}  // namespace

// f32 data: version 2 on TF32 tensor cores when the run allows TF32, else version 1 (exact f32).
void attention_fwd(const float* qkv, float* out, float* lse, const AttnDims& a) {
  if (ddpm::cuda::allow_tf32()) return tc_fwd<tc::Tf32Ops>(qkv, out, lse, a);
  with_head_dim(a.head_dim, [&](auto dim) {
    constexpr int D = decltype(dim)::value;
    attention_fwd_k<D><<<blocks_for(a), Rows<D>::kThreads, 0, stream()>>>(qkv, out, lse, int(a.tokens), int(a.heads),
                                                                           int(a.head_dim));
    CUDA_CHECK_LAUNCH("attention_fwd_k");
  });
}
void attention_fwd(const bf16* qkv, bf16* out, float* lse, const AttnDims& a) { tc_fwd<tc::Bf16Ops>(qkv, out, lse, a); }
void attention_bwd(const float* qkv, const float* out, const float* lse, const float* dout, float* delta,
                   float* dqkv, const AttnDims& a) {
  attention_delta(out, dout, delta, a);
  if (ddpm::cuda::allow_tf32()) return tc_bwd<tc::Tf32Ops>(qkv, dout, lse, delta, dqkv, a);
  with_head_dim(a.head_dim, [&](auto dim) {
    constexpr int D = decltype(dim)::value;
    const int L = int(a.tokens), heads = int(a.heads), d = int(a.head_dim);
    attention_dkv_k<D><<<blocks_for(a), Rows<D>::kThreads, 0, stream()>>>(qkv, dout, lse, delta, dqkv, L, heads, d);
    CUDA_CHECK_LAUNCH("attention_dkv_k");
    attention_dq_k<D><<<blocks_for(a), Rows<D>::kThreads, 0, stream()>>>(qkv, dout, lse, delta, dqkv, L, heads, d);
    CUDA_CHECK_LAUNCH("attention_dq_k");
  });
}
void attention_bwd(const bf16* qkv, const bf16* out, const float* lse, const bf16* dout, float* delta, bf16* dqkv,
                   const AttnDims& a) {
  attention_delta(out, dout, delta, a);
  tc_bwd<tc::Bf16Ops>(qkv, dout, lse, delta, dqkv, a);
}

}  // namespace ddpm::kernels::cuda
