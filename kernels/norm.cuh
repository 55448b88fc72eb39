// Group norm and layer norm on the GPU: the kernels and their launch sequences, which
// kernels/norm_cuda.cu runs on the GPU (its header has the napkin math) and
// tests/test_norm_emulated.cpp runs as host C++ (CI has no GPU). Private to the norm kernels; the
// conventions are kernels/norm.hpp's.
//
// Version 2: every loop that streams data issues kBatch loads per thread before it uses the first.
// Version 1 loaded one position (or row) per loop turn; a pass that also stores could not have its
// next loads hoisted by the compiler (the store may alias them), so each thread had one 8-byte
// (bf16) load in flight, and on an H200 the passes ran at 20-36% of the copy bandwidth
// (bench_kernels at fc776d5: group norm + GELU at [64, 64, 64, 128] bf16, 139 us forward against
// ~32 us of bytes).
#pragma once
#include "kernels/memory_bound.cuh"
#include "kernels/norm.hpp"

namespace ddpm::kernels::cuda::norm {

using ddpm::cuda::aligned16;
using ddpm::cuda::block_sum;
using ddpm::cuda::from_f32;
using ddpm::cuda::kThreads;
using ddpm::cuda::lanes_sum;
using ddpm::cuda::load_vec;
using ddpm::cuda::store_vec;
using ddpm::cuda::to_f32;
using ddpm::cuda::Vec;

// Loads per thread in flight: 4 x 8 bytes (bf16, V = 4), with about 1,000 threads per SM: ~32 KB
// per SM, about what an H100/H200 SM needs in flight to keep its share of DRAM busy (bandwidth x
// latency / SMs ~ 4.8 TB/s x 0.7 us / 132).
constexpr int kBatch = 4;

// Arguments of the group norm kernels (and of layer norm's dw, db sums, with N = 1, G = 1 and
// statistics per position: per_row).
// T is the data's type (float or bf16); parameters and statistics are always float.
template <class T>
struct NormArgs {
  Act act;
  const T *x, *dy;
  const float *mean, *rstd, *w, *b;  // b may be null when act is None
  const T* shift;                    // [N, C] or null
  const T* res;                      // x's shape, or null
  const double* coef;                // dx pass: (c1, c2) per (sample, group)
  T* out;                            // elementwise passes: y or dx
  T* dres;                           // dx pass: the residual's gradient du, or null
  int64_t N, P;
  int C, G;
  bool per_row;
};

// Block (n, s, tile) of an [N, S, tiles] grid (launched with at least 4 blocks per SM, so the
// ~512 blocks of norm_splits run in one wave on 132 SMs) covers the positions of split s of
// sample n and up to 32 vectors of V channels: 256 threads = `lanes` positions side by side x
// `tile_cols` vectors, so a warp reads consecutive vectors of a row (coalesced). A thread keeps the
// same channels c0 .. c0 + V - 1 throughout, so their parameters and statistics stay in registers,
// and visits every lanes-th position: no index division in the loop.
struct Tile {
  int tile_cols, lanes, lane, c0;
  bool active;
  int64_t p0, p1;
};
template <int V> __device__ Tile tile_of(int64_t P, int C) {
  Tile t;
  const int cols = C / V;
  t.tile_cols = cols < 32 ? cols : 32;
  t.lanes = kThreads / t.tile_cols;
  t.lane = int(threadIdx.x) / t.tile_cols;
  const int col = int(blockIdx.z) * t.tile_cols + int(threadIdx.x) % t.tile_cols;
  t.c0 = col * V;
  t.active = t.lane < t.lanes && col < cols;
  t.p0 = P * blockIdx.y / gridDim.y, t.p1 = P * (blockIdx.y + 1) / gridDim.y;
  return t;
}

// The grid of the group norm kernels: (sample, split, tile of 32 vectors of V channels).
inline uint3 tile_grid(int64_t N, int64_t S, int C, int V) {
  return {unsigned(N), unsigned(S), unsigned((C / V + 31) / 32)};
}

// The biases of channels c0 .. c0 + V - 1 in sample n: b[c] + shift[n, c], either may be absent.
template <int V, class T> __device__ void load_bias(const NormArgs<T>& a, int64_t n, int c0, float b[V]) {
  for (int k = 0; k < V; ++k)
    b[k] = (a.b ? a.b[c0 + k] : 0.0f) + (a.shift ? to_f32(a.shift[n * a.C + c0 + k]) : 0.0f);
}

// Statistics of channels c0 .. c0 + V - 1 at `base` (sample n: n G; layer norm row p: p).
template <int V, class T>
__device__ void load_stats(const NormArgs<T>& a, int64_t base, int c0, float m[V], float r[V]) {
  const int Cg = a.C / a.G;
  for (int k = 0; k < V; ++k) {
    const int64_t i = base + (c0 + k) / Cg;
    m[k] = a.mean[i], r[k] = a.rstd[i];
  }
}

// Calls f(p, offset, x values, dy values, res values) for the tile's positions p of sample n in the
// thread's order (t.p0 + t.lane, then every t.lanes-th), about kBatch loads at a time: kBatch
// positions of x, kBatch / 2 of x and one more stream (dy when kDy, res when kRes), one of all
// three (more would not fit the 64 registers that four blocks per SM leave a thread). A batch's
// loads are all issued before f sees the first.
template <int V, bool kDy, bool kRes, class T, class F>
__device__ __forceinline__ void for_positions(const Tile& t, const NormArgs<T>& a, int64_t n, F f) {
  constexpr int kStreams = 1 + kDy + kRes, kPositions = kBatch / kStreams > 0 ? kBatch / kStreams : 1;
  for (int64_t p = t.p0 + t.lane; p < t.p1; p += kPositions * t.lanes) {
    Vec<V> xv[kPositions] = {}, dv[kPositions] = {}, rv[kPositions] = {};
#pragma unroll
    for (int i = 0; i < kPositions; ++i) {
      const int64_t q = p + i * t.lanes, off = (n * a.P + q) * a.C + t.c0;
      if (q >= t.p1) continue;
      xv[i] = load_vec<V>(a.x + off);
      if constexpr (kDy) dv[i] = load_vec<V>(a.dy + off);
      if constexpr (kRes) rv[i] = load_vec<V>(a.res + off);
    }
#pragma unroll
    for (int i = 0; i < kPositions; ++i) {
      const int64_t q = p + i * t.lanes;
      if (q < t.p1) f(q, (n * a.P + q) * a.C + t.c0, xv[i], dv[i], rv[i]);
    }
  }
}

// part[n][s][c] = sums over the tile's positions of (x, x^2), or of (du, du z) when kGrad (kRes:
// with the residual in u). Each thread accumulates its channels, then the lanes of a column combine
// in a fixed tree order.
template <int V, bool kGrad, bool kRes, class T>
__global__ void __launch_bounds__(kThreads, 4) column_sums_k(NormArgs<T> a, double* part) {
  const Tile t = tile_of<V>(a.P, a.C);
  const int64_t n = blockIdx.x;
  double sa[V] = {}, sb[V] = {};
  if (t.active) {
    float m[V] = {}, r[V] = {}, w[V], b[V];  // m, r: one of the two load_stats below sets them (zeroed for GCC)
    if (kGrad) {
      for (int k = 0; k < V; ++k) w[k] = a.w[t.c0 + k];
      load_bias<V>(a, n, t.c0, b);
      if (!a.per_row) load_stats<V>(a, n * a.G, t.c0, m, r);
    }
    auto add = [&](int64_t p, int64_t, const Vec<V>& xv, const Vec<V>& dv, const Vec<V>& rv) {
      if constexpr (kGrad) {
        if (a.per_row) load_stats<V>(a, p, t.c0, m, r);
        for (int k = 0; k < V; ++k) {
          const float bk = b[k] + (kRes ? rv.v[k] : 0.0f);
          NormGradAt q = norm_grad_at(a.act, xv.v[k], dv.v[k], m[k], r[k], w[k], bk);
          sa[k] += q.du, sb[k] += double(q.du) * q.z;
        }
      } else {
        for (int k = 0; k < V; ++k) sa[k] += xv.v[k], sb[k] += double(xv.v[k]) * xv.v[k];
      }
    };
    for_positions<V, kGrad, kRes>(t, a, n, add);
  }
  // Sum-major ([2V][threads]): a warp's 32 threads touch 32 consecutive doubles, no bank conflict
  // (thread-major rows of 2V doubles put 16 threads on each bank).
  __shared__ double sh[2 * V][kThreads];
  for (int k = 0; k < V; ++k) sh[k][threadIdx.x] = sa[k], sh[V + k][threadIdx.x] = sb[k];
  __syncthreads();
  int top = 1;
  while (top < t.lanes) top *= 2;
  for (int stride = top / 2; stride > 0; stride /= 2) {
    if (t.active && t.lane < stride && t.lane + stride < t.lanes)
      for (int q = 0; q < 2 * V; ++q) sh[q][threadIdx.x] += sh[q][threadIdx.x + stride * t.tile_cols];
    __syncthreads();
  }
  if (t.active && t.lane == 0) {
    double* out = part + ((n * gridDim.y + blockIdx.y) * a.C + t.c0) * 2;
    for (int k = 0; k < V; ++k) out[2 * k] = sh[k][threadIdx.x], out[2 * k + 1] = sh[V + k][threadIdx.x];
  }
}

// One block per (sample, group): sums its S x Cg partial pairs (weighted by w[c] if given) and
// divides by M. kStats: the pair is (E[x], E[x^2]) -> mean, rstd. Else it is (c1, c2) -> coef.
template <bool kStats>
__global__ void group_totals_k(const double* part, const float* w, int64_t S, int C, int G, double M, float eps,
                               float* mean, float* rstd, double* coef) {
  const int64_t ng = blockIdx.x, n = ng / G;
  const int g = int(ng % G), Cg = C / G;
  double a = 0, b = 0;
  for (int64_t t = threadIdx.x; t < S * Cg; t += blockDim.x) {
    const int64_t s = t / Cg, c = g * Cg + t % Cg;
    const double* q = part + ((n * S + s) * C + c) * 2;
    const double wc = w ? w[c] : 1.0;
    a += wc * q[0], b += wc * q[1];
  }
  a = block_sum(a);
  b = block_sum(b);
  if (threadIdx.x != 0) return;
  a /= M, b /= M;
  if constexpr (kStats) {
    mean[ng] = float(a);
    rstd[ng] = float(1.0 / sqrt(fmax(b - a * a, 0.0) + double(eps)));
  } else {
    coef[2 * ng] = a, coef[2 * ng + 1] = b;
  }
}

// One block per channel: db[c] = sum of a, dw[c] = sum of b over the `rows` partial rows. (static:
// this header may be compiled into more than one file.)
static __global__ void channel_totals_k(const double* part, int64_t rows, int C, float* dw, float* db) {
  const int c = blockIdx.x;
  double a = 0, b = 0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    const double* q = part + (r * C + c) * 2;
    a += q[0], b += q[1];
  }
  a = block_sum(a);
  b = block_sum(b);
  if (threadIdx.x == 0) db[c] = float(a), dw[c] = float(b);
}

// dshift[n, c] = the first of the partial pair, summed over sample n's S splits in order.
template <class T> __global__ void shift_totals_k(const double* part, int64_t N, int64_t S, int C, T* dshift) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= N * C) return;
  const int64_t n = i / C, c = i % C;
  double a = 0;
  for (int64_t s = 0; s < S; ++s) a += part[((n * S + s) * C + c) * 2];
  dshift[i] = from_f32<T>(float(a));
}

// The elementwise group norm pass over the same tiles: y = act(z w + b (+ res)), or dx =
// norm_dx(...) (and dres = du).
template <int V, bool kBackward, bool kRes, class T>
__global__ void __launch_bounds__(kThreads, 4) gn_pass_k(NormArgs<T> a) {
  const Tile t = tile_of<V>(a.P, a.C);
  if (!t.active) return;
  const int64_t n = blockIdx.x;
  float m[V], r[V], w[V], b[V], c1[V] = {}, c2[V] = {};
  load_stats<V>(a, n * a.G, t.c0, m, r);
  load_bias<V>(a, n, t.c0, b);
  for (int k = 0; k < V; ++k) {
    w[k] = a.w[t.c0 + k];
    if constexpr (kBackward) {
      const int64_t ng = n * a.G + (t.c0 + k) / (a.C / a.G);
      c1[k] = float(a.coef[2 * ng]), c2[k] = float(a.coef[2 * ng + 1]);
    }
  }
  for_positions<V, kBackward, kRes>(t, a, n, [&](int64_t, int64_t off, const Vec<V>& xv, const Vec<V>& dv,
                                                   const Vec<V>& rv) {
    Vec<V> o, du;
    for (int k = 0; k < V; ++k) {
      const float bk = b[k] + (kRes ? rv.v[k] : 0.0f);
      if constexpr (kBackward) {
        const NormGradAt q = norm_grad_at(a.act, xv.v[k], dv.v[k], m[k], r[k], w[k], bk);
        o.v[k] = norm_dx(r[k], w[k], q, c1[k], c2[k]);
        if constexpr (kRes) du.v[k] = q.du;
      } else {
        o.v[k] = activate(a.act, (xv.v[k] - m[k]) * r[k] * w[k] + bk);
      }
    }
    store_vec<V>(a.out + off, o);
    if constexpr (kBackward && kRes) store_vec<V>(a.dres + off, du);
  });
}

// Layer norm: a row goes to L lanes (the smallest power of two covering its C / V vectors, at
// most a warp), so short rows do not leave half a warp idle (C = 64: two rows per warp), and each
// group of L lanes takes kBatch consecutive rows, so every pass over the rows has kBatch loads per
// lane in flight. Lanes past the last row still join the shuffles. Float sums: a row is short (C / L
// values per lane) and the two-pass variance does not cancel; double math per row (shuffles,
// division, sqrt) would make these kernels instruction-bound. The passes after the first re-read
// the rows from L1 (a block's rows are 8-32 KB at the model's widths).
struct Rows {
  int64_t r0;  // the group's first row
  int sub;     // the lane's place in its group
};
__device__ inline Rows rows_of(int L) {
  return {(int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / L * kBatch, int(threadIdx.x) % L};
}
// v[i] = the V values at column c of row r0 + i, for the rows that exist.
template <int V, class T> __device__ __forceinline__ void load_rows(Vec<V> (&v)[kBatch], const T* base, Rows g,
                                                                    int64_t R, int C, int c) {
#pragma unroll
  for (int i = 0; i < kBatch; ++i)
    if (g.r0 + i < R) v[i] = load_vec<V>(base + (g.r0 + i) * C + c);
}

// Lanes per row: the smallest power of two covering its C / V vectors, at most a warp.
inline int lanes_per_row(int64_t C, int V) {
  int L = 1;
  while (L < 32 && L * V < C) L *= 2;
  return L;
}
// Blocks of kThreads threads for R rows, kBatch rows to each group of L lanes; at least one, as a
// grid of 0 blocks is a launch error (R = 0: the kernels skip rows past R).
inline unsigned row_blocks(int64_t R, int L) {
  return unsigned(std::max<int64_t>(1, ((R + kBatch - 1) / kBatch * L + kThreads - 1) / kThreads));
}

template <int V, class T>
__global__ void ln_fwd_k(const T* x, const float* w, const float* b, T* y, float* mean, float* rstd, int64_t R,
                         int C, int L, float eps) {
  const Rows g = rows_of(L);
  float m[kBatch] = {}, rs[kBatch] = {};
  for (int c = g.sub * V; c < C; c += L * V) {
    Vec<V> v[kBatch] = {};
    load_rows(v, x, g, R, C, c);
    for (int i = 0; i < kBatch; ++i)
      for (int k = 0; k < V; ++k) m[i] += v[i].v[k];
  }
  for (int i = 0; i < kBatch; ++i) m[i] = lanes_sum(m[i], L) / float(C);
  for (int c = g.sub * V; c < C; c += L * V) {
    Vec<V> v[kBatch] = {};
    load_rows(v, x, g, R, C, c);
    for (int i = 0; i < kBatch; ++i)
      for (int k = 0; k < V; ++k) rs[i] += (v[i].v[k] - m[i]) * (v[i].v[k] - m[i]);
  }
  for (int i = 0; i < kBatch; ++i) {
    rs[i] = 1.0f / sqrtf(lanes_sum(rs[i], L) / float(C) + eps);
    if (g.sub == 0 && g.r0 + i < R) mean[g.r0 + i] = m[i], rstd[g.r0 + i] = rs[i];
  }
  for (int c = g.sub * V; c < C; c += L * V) {
    Vec<V> v[kBatch] = {};
    load_rows(v, x, g, R, C, c);
    for (int i = 0; i < kBatch; ++i) {
      if (g.r0 + i >= R) break;
      for (int k = 0; k < V; ++k) v[i].v[k] = (v[i].v[k] - m[i]) * rs[i] * w[c + k] + b[c + k];
      store_vec<V>(y + (g.r0 + i) * C + c, v[i]);
    }
  }
}

// Layer norm dx, rows as above; c1, c2 are the row means of w du and w du z.
template <int V, class T>
__global__ void ln_dx_k(const T* x, const float* w, const float* mean, const float* rstd, const T* dy, T* dx,
                        int64_t R, int C, int L) {
  const Rows g = rows_of(L);
  float m[kBatch] = {}, rs[kBatch] = {}, c1[kBatch] = {}, c2[kBatch] = {};
  for (int i = 0; i < kBatch; ++i)
    if (g.r0 + i < R) m[i] = mean[g.r0 + i], rs[i] = rstd[g.r0 + i];
  for (int c = g.sub * V; c < C; c += L * V) {
    Vec<V> xv[kBatch] = {}, dv[kBatch] = {};
    load_rows(xv, x, g, R, C, c);
    load_rows(dv, dy, g, R, C, c);
    for (int i = 0; i < kBatch; ++i)
      for (int k = 0; k < V; ++k) {
        NormGradAt t = norm_grad_at(Act::None, xv[i].v[k], dv[i].v[k], m[i], rs[i], w[c + k], 0.0f);
        c1[i] += w[c + k] * t.du, c2[i] += w[c + k] * t.du * t.z;
      }
  }
  for (int i = 0; i < kBatch; ++i) c1[i] = lanes_sum(c1[i], L) / float(C), c2[i] = lanes_sum(c2[i], L) / float(C);
  for (int c = g.sub * V; c < C; c += L * V) {
    Vec<V> xv[kBatch] = {}, dv[kBatch] = {};
    load_rows(xv, x, g, R, C, c);
    load_rows(dv, dy, g, R, C, c);
    for (int i = 0; i < kBatch; ++i) {
      if (g.r0 + i >= R) break;
      Vec<V> o;
      for (int k = 0; k < V; ++k)
        o.v[k] = norm_dx(rs[i], w[c + k],
                         norm_grad_at(Act::None, xv[i].v[k], dv[i].v[k], m[i], rs[i], w[c + k], 0.0f), c1[i], c2[i]);
      store_vec<V>(dx + (g.r0 + i) * C + c, o);
    }
  }
}

// The launch sequences, written once for both callers: norm_cuda.cu launches on the GPU
// (ddpm::cuda::DeviceLaunch), and tests/test_norm_emulated.cpp runs the same sequence on the host
// (emu::Launcher). `launch(name, grid, kernel, args...)` runs kernel(args...) on grid blocks of
// kThreads threads, in order.
template <class T> bool vec4(const NormArgs<T>& a) {
  return a.C % 4 == 0 && aligned16({a.x, a.dy, a.out, a.res, a.dres});
}

template <bool kGrad, bool kRes, class T, class Launch>
void column_sums_v(const Launch& launch, const NormArgs<T>& a, int64_t S, double* part) {
  if (vec4(a)) launch("column_sums_k", tile_grid(a.N, S, a.C, 4), column_sums_k<4, kGrad, kRes, T>, a, part);
  else launch("column_sums_k", tile_grid(a.N, S, a.C, 1), column_sums_k<1, kGrad, kRes, T>, a, part);
}
// (The statistics of the forward do not see the residual.)
template <bool kGrad, class T, class Launch>
void column_sums(const Launch& launch, const NormArgs<T>& a, int64_t S, double* part) {
  if (kGrad && a.res) column_sums_v<kGrad, kGrad>(launch, a, S, part);
  else column_sums_v<kGrad, false>(launch, a, S, part);
}

template <bool kBackward, bool kRes, class T, class Launch>
void gn_pass_v(const Launch& launch, const NormArgs<T>& a, int64_t S) {
  if (vec4(a)) launch("gn_pass_k", tile_grid(a.N, S, a.C, 4), gn_pass_k<4, kBackward, kRes, T>, a);
  else launch("gn_pass_k", tile_grid(a.N, S, a.C, 1), gn_pass_k<1, kBackward, kRes, T>, a);
}
template <bool kBackward, class T, class Launch> void gn_pass(const Launch& launch, const NormArgs<T>& a, int64_t S) {
  if (a.res) gn_pass_v<kBackward, true>(launch, a, S);
  else gn_pass_v<kBackward, false>(launch, a, S);
}

inline uint3 blocks(int64_t n) { return {unsigned(n), 1, 1}; }

template <class T, class Launch>
void group_norm_fwd(const Launch& launch, Act act, const T* x, const float* w, const float* b, const T* shift,
                    const T* res, T* y, float* mean, float* rstd, int64_t N, int64_t P, int64_t C, int64_t G, float eps,
                    double* work) {
  const int64_t S = norm_splits(N, P, C);
  NormArgs<T> a{act, x, nullptr, mean, rstd, w, b, shift, res, nullptr, y, nullptr, N, P, int(C), int(G), false};
  column_sums<false>(launch, a, S, work);
  launch("group_totals_k", blocks(N * G), group_totals_k<true>, work, nullptr, S, int(C), int(G), double(P * (C / G)),
         eps, mean, rstd, nullptr);
  gn_pass<false>(launch, a, S);
}

template <class T, class Launch>
void group_norm_bwd(const Launch& launch, Act act, const T* x, const float* w, const float* b, const T* shift,
                    const T* res, const float* mean, const float* rstd, const T* dy, T* dx, float* dw, float* db,
                    T* dshift, T* dres, int64_t N, int64_t P, int64_t C, int64_t G, double* work) {
  const int64_t S = norm_splits(N, P, C);
  double* coef = work + N * S * C * 2;
  NormArgs<T> a{act, x, dy, mean, rstd, w, b, shift, res, coef, dx, dres, N, P, int(C), int(G), false};
  column_sums<true>(launch, a, S, work);
  launch("channel_totals_k", blocks(C), channel_totals_k, work, N * S, int(C), dw, db);
  if (dshift)
    launch("shift_totals_k", blocks((N * C + kThreads - 1) / kThreads), shift_totals_k<T>, work, N, S, int(C), dshift);
  launch("group_totals_k", blocks(N * G), group_totals_k<false>, work, w, S, int(C), int(G), double(P * (C / G)),
         0.0f, nullptr, nullptr, coef);
  gn_pass<true>(launch, a, S);
}

template <class T, class Launch>
void layer_norm_fwd(const Launch& launch, const T* x, const float* w, const float* b, T* y, float* mean, float* rstd,
                    int64_t R, int64_t C, float eps) {
  const bool vec = C % 4 == 0 && aligned16({x, y});
  const int L = lanes_per_row(C, vec ? 4 : 1);
  const uint3 grid = blocks(row_blocks(R, L));
  if (vec) launch("ln_fwd_k", grid, ln_fwd_k<4, T>, x, w, b, y, mean, rstd, R, int(C), L, eps);
  else launch("ln_fwd_k", grid, ln_fwd_k<1, T>, x, w, b, y, mean, rstd, R, int(C), L, eps);
}

template <class T, class Launch>
void layer_norm_bwd(const Launch& launch, const T* x, const float* w, const float* mean, const float* rstd, const T* dy,
                    T* dx, float* dw, float* db, int64_t R, int64_t C, double* work) {
  const bool vec = C % 4 == 0 && aligned16({x, dy, dx});
  const int L = lanes_per_row(C, vec ? 4 : 1);
  const uint3 grid = blocks(row_blocks(R, L));
  if (vec) launch("ln_dx_k", grid, ln_dx_k<4, T>, x, w, mean, rstd, dy, dx, R, int(C), L);
  else launch("ln_dx_k", grid, ln_dx_k<1, T>, x, w, mean, rstd, dy, dx, R, int(C), L);
  const int64_t S = norm_splits(1, R, C);
  const NormArgs<T> rows{Act::None, x,       dy,      mean, rstd,   w, nullptr, nullptr, nullptr,
                         nullptr,   nullptr, nullptr, 1,    R,      int(C), 1, true};
  column_sums<true>(launch, rows, S, work);
  launch("channel_totals_k", blocks(C), channel_totals_k, work, S, int(C), dw, db);
}

}  // namespace ddpm::kernels::cuda::norm
