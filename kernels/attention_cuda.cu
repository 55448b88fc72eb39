// CUDA twin of kernels/attention_cpu.cpp. Version 1: flash-attention in plain f32 FMA (a later
// version moves the products onto tensor cores).
//
// The backward kernels also take bf16 data (qkv, out, dout, dqkv), widened on load into the same f32
// registers and shared-memory tiles and rounded once on store: only the global traffic halves. The
// bf16 forward is version 2 below (tensor cores).
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
// forward; at the ~51 TFLOP/s plain-f32 ceiling of an H200 that is >= 5.4 ms.
#include <cstdint>
#include <type_traits>

#include "kernels/attention.hpp"
#include "kernels/bf16.cuh"
#include "kernels/cuda_launch.cuh"
#include "kernels/tensor_core.cuh"

namespace ddpm::kernels::cuda {
namespace {

using ddpm::cuda::from_f32;
using ddpm::cuda::grid_for;
using ddpm::cuda::kThreads;
using ddpm::cuda::stream;
using ddpm::cuda::to_f32;

constexpr int kRows = 64;   // own rows per block
constexpr int kTile = 64;   // streamed rows per shared-memory tile
constexpr int kChunk = 16;  // keys per online-softmax rescale in the forward
constexpr float kLog2e = 1.4426950408889634f;

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
  template <class T> __device__ static void load(Part& x, const T* row, bool valid, int part, float scale, int d) {
#pragma unroll
    for (int e = 0; e < kPart; ++e) x[e] = valid && col(part, e) < d ? to_f32(row[col(part, e)]) * scale : 0.0f;
  }
  template <class T> __device__ static void store(const Part& x, T* row, int part, float scale, int d) {
#pragma unroll
    for (int e = 0; e < kPart; ++e)
      if (col(part, e) < d) row[col(part, e)] = from_f32<T>(x[e] * scale);
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
template <int D, class T>
__device__ void load_tile(float* dst, const T* src, int64_t ld, int t0, int L, int d) {
  for (int idx = threadIdx.x; idx < kTile * D; idx += blockDim.x) {
    const int r = idx / D, c = idx % D, t = t0 + r;
    dst[idx] = t < L && c < d ? to_f32(src[int64_t(t) * ld + c]) : 0.0f;
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
template <int D, class T>
__global__ void __launch_bounds__(Rows<D>::kThreads)
    attention_dq_k(const T* qkv, const T* dout, const float* lse, const float* delta, T* dqkv, int L, int heads,
                   int d) {
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
template <int D, class T>
__global__ void __launch_bounds__(Rows<D>::kThreads)
    attention_dkv_k(const T* qkv, const T* dout, const float* lse, const float* delta, T* dqkv, int L, int heads,
                    int d) {
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

// Version 2 of the forward, for bf16 data: the same online-softmax flash forward on tensor cores
// (mma.sync m16n8k16, bf16 operands, f32 accumulation; kernels/tensor_core.cuh has the fragment
// layouts). A block of 4 warps owns kRows = 64 query rows of one (batch, head), 16 per warp, and
// streams 64-key tiles through shared memory: K row-major (a key's D values are the B operand of
// S = Q K^T) and V transposed (a dimension's 64 values are the B operand of O += P V). Each warp
// keeps its Q fragments, its 16 x 64 S tile and its 16 x D output in registers. P = exp2(S - m),
// rounded to bf16, goes straight back in as the A operand: the accumulator layout of two adjacent
// 8-key S tiles is the A layout of one 16-key k step, so P never touches shared memory.
// Rows past L read zeros and are not stored; keys past L get -inf scores.
// Napkin math at L = 4096, D = 16, 4 heads, batch 64: 275 GFLOP per forward, ~0.35 ms at the
// H200's 796 TFLOP/s bf16 dense peak, but 4.3e9 exp2f at ~16 per clock per SM (~4e12/s) take
// >= ~1 ms: at D = 16 the exponentials, not the products, bound it (v1 measured 12.8 ms). The
// tile fill (scalar loads, no cp.async, the transposing store into vt) is the next thing to
// measure and improve. Shared memory rows are padded by 8 bf16 (16 bytes), so the 32-bit fragment
// loads of a warp hit 32 different banks.
// NOT YET RUN on hardware.
namespace tc {
constexpr int kWarps = 4, kKeys = 64, kPad = 8;
static_assert(kWarps * 16 == kRows, "a block owns kRows query rows, 16 per warp");

__device__ __forceinline__ uint32_t pack(bf16 lo, bf16 hi) { return uint32_t(lo.bits) | uint32_t(hi.bits) << 16; }
__device__ __forceinline__ uint32_t pack(float lo, float hi) { return pack(from_f32<bf16>(lo), from_f32<bf16>(hi)); }
__device__ __forceinline__ uint32_t load32(const bf16* p) { return *reinterpret_cast<const uint32_t*>(p); }

template <int D>
__global__ void __launch_bounds__(kWarps * 32)
    attention_fwd_k(const bf16* qkv, bf16* out, float* lse, int L, int heads, int d) {
  __shared__ __align__(16) bf16 ks[kKeys * (D + kPad)];
  __shared__ __align__(16) bf16 vt[D * (kKeys + kPad)];
  const int tiles = (L + kRows - 1) / kRows, bh = blockIdx.x / tiles, b = bh / heads, h = bh % heads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int row0 = (blockIdx.x % tiles) * kRows + warp * 16;  // this warp's first query row
  const int64_t C = int64_t(heads) * d, ld = 3 * C;
  const bf16* base = qkv + int64_t(b) * L * ld + int64_t(h) * d;  // q of (b, token 0, head h)
  const bf16 zero{0};
  auto q_at = [&](int r, int c) { return r < L && c < d ? base[int64_t(r) * ld + c] : zero; };
  uint32_t qa[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const int c = 16 * kk + 2 * t;
    qa[kk][0] = pack(q_at(row0 + g, c), q_at(row0 + g, c + 1));
    qa[kk][1] = pack(q_at(row0 + g + 8, c), q_at(row0 + g + 8, c + 1));
    qa[kk][2] = pack(q_at(row0 + g, c + 8), q_at(row0 + g, c + 9));
    qa[kk][3] = pack(q_at(row0 + g + 8, c + 8), q_at(row0 + g + 8, c + 9));
  }
  const float scale = kLog2e * rsqrtf(float(d));  // scores in log2 units, as version 1
  float o[D / 8][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // rows g and g + 8; l over this thread's keys
  for (int j0 = 0; j0 < L; j0 += kKeys) {
    __syncthreads();  // the previous tile is no longer read
    for (int idx = threadIdx.x; idx < kKeys * D; idx += blockDim.x) {
      const int key = idx / D, c = idx % D;
      const bool in = j0 + key < L && c < d;
      const int64_t at = int64_t(j0 + key) * ld + c;
      ks[key * (D + kPad) + c] = in ? base[C + at] : zero;
      vt[c * (kKeys + kPad) + key] = in ? base[2 * C + at] : zero;
    }
    __syncthreads();
    float s[kKeys / 8][4];
#pragma unroll
    for (int nb = 0; nb < kKeys / 8; ++nb) {
      s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.0f;
      const bf16* krow = ks + (nb * 8 + g) * (D + kPad) + 2 * t;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const uint32_t kb[2] = {load32(krow + 16 * kk), load32(krow + 16 * kk + 8)};
        ddpm::cuda::ptx::mma_bf16(s[nb], qa[kk], kb);
      }
    }
    float mx[2] = {m[0], m[1]};
#pragma unroll
    for (int nb = 0; nb < kKeys / 8; ++nb)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        s[nb][r] = j0 + nb * 8 + 2 * t + r % 2 < L ? s[nb][r] * scale : -INFINITY;
        mx[r / 2] = fmaxf(mx[r / 2], s[nb][r]);
      }
#pragma unroll
    for (int i = 0; i < 2; ++i) {  // the four lanes of a quad hold one row's keys
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
      const float corr = exp2f(m[i] - mx[i]);  // 0 on the first tile, where m = -inf
      m[i] = mx[i];
      l[i] *= corr;
#pragma unroll
      for (int nb = 0; nb < D / 8; ++nb) o[nb][2 * i] *= corr, o[nb][2 * i + 1] *= corr;
    }
#pragma unroll
    for (int j = 0; j < kKeys / 16; ++j) {
      float p[2][4];
#pragma unroll
      for (int half = 0; half < 2; ++half)
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          p[half][r] = exp2f(s[2 * j + half][r] - m[r / 2]);
          l[r / 2] += p[half][r];
        }
      const uint32_t pa[4] = {pack(p[0][0], p[0][1]), pack(p[0][2], p[0][3]), pack(p[1][0], p[1][1]),
                              pack(p[1][2], p[1][3])};
#pragma unroll
      for (int nb = 0; nb < D / 8; ++nb) {
        const bf16* vrow = vt + (nb * 8 + g) * (kKeys + kPad) + 16 * j + 2 * t;
        const uint32_t vb[2] = {load32(vrow), load32(vrow + 8)};
        ddpm::cuda::ptx::mma_bf16(o[nb], pa, vb);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
    const int row = row0 + g + 8 * i;
    if (row >= L) continue;
    bf16* orow = out + (int64_t(b) * L + row) * C + int64_t(h) * d;
#pragma unroll
    for (int nb = 0; nb < D / 8; ++nb)
#pragma unroll
      for (int e = 0; e < 2; ++e)
        if (nb * 8 + 2 * t + e < d) orow[nb * 8 + 2 * t + e] = from_f32<bf16>(o[nb][2 * i + e] / l[i]);
    if (t == 0) lse[int64_t(bh) * L + row] = (m[i] + log2f(l[i])) / kLog2e;
  }
}
}  // namespace tc

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

unsigned blocks_for(const AttnDims& a) {
  const int64_t blocks = a.batch * a.heads * ((a.tokens + kRows - 1) / kRows);
  DDPM_CHECK(a.tokens < INT32_MAX && blocks < INT32_MAX, "attention", "too large for the CUDA kernels: B ", a.batch,
             ", heads ", a.heads, ", L ", a.tokens);
  return unsigned(blocks);
}

template <class T>
void attention_bwd_t(const T* qkv, const T* out, const float* lse, const T* dout, float* delta, T* dqkv,
                     const AttnDims& a) {
  const int64_t rows = a.batch * a.tokens * a.heads;
  attention_delta_k<<<grid_for(rows), kThreads, 0, stream()>>>(out, dout, delta, rows, int(a.tokens), int(a.heads),
                                                                int(a.head_dim));
  CUDA_CHECK_LAUNCH("attention_delta_k");
  with_head_dim(a.head_dim, [&](auto dim) {
    constexpr int D = decltype(dim)::value;
    const int L = int(a.tokens), heads = int(a.heads), d = int(a.head_dim);
    attention_dkv_k<D><<<blocks_for(a), Rows<D>::kThreads, 0, stream()>>>(qkv, dout, lse, delta, dqkv, L, heads, d);
    CUDA_CHECK_LAUNCH("attention_dkv_k");
    attention_dq_k<D><<<blocks_for(a), Rows<D>::kThreads, 0, stream()>>>(qkv, dout, lse, delta, dqkv, L, heads, d);
    CUDA_CHECK_LAUNCH("attention_dq_k");
  });
}

}  // namespace

void attention_fwd(const float* qkv, float* out, float* lse, const AttnDims& a) {
  with_head_dim(a.head_dim, [&](auto dim) {
    constexpr int D = decltype(dim)::value;
    attention_fwd_k<D><<<blocks_for(a), Rows<D>::kThreads, 0, stream()>>>(qkv, out, lse, int(a.tokens), int(a.heads),
                                                                           int(a.head_dim));
    CUDA_CHECK_LAUNCH("attention_fwd_k");
  });
}
void attention_fwd(const bf16* qkv, bf16* out, float* lse, const AttnDims& a) {
  with_head_dim(a.head_dim, [&](auto dim) {
    constexpr int D = decltype(dim)::value;
    tc::attention_fwd_k<D><<<blocks_for(a), tc::kWarps * 32, 0, stream()>>>(qkv, out, lse, int(a.tokens),
                                                                           int(a.heads), int(a.head_dim));
    CUDA_CHECK_LAUNCH("tc::attention_fwd_k");
  });
}
void attention_bwd(const float* qkv, const float* out, const float* lse, const float* dout, float* delta,
                   float* dqkv, const AttnDims& a) {
  attention_bwd_t(qkv, out, lse, dout, delta, dqkv, a);
}
void attention_bwd(const bf16* qkv, const bf16* out, const float* lse, const bf16* dout, float* delta, bf16* dqkv,
                   const AttnDims& a) {
  attention_bwd_t(qkv, out, lse, dout, delta, dqkv, a);
}

}  // namespace ddpm::kernels::cuda
