// CUDA twin of kernels/norm_cpu.cpp. Version 1: split reductions plus elementwise passes.
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
// Measured (f32) on an H200 at [64, 64, 64, 64], 1 group + GELU: forward 76 us, backward 117 us (a
// device copy of the same tensor: 34 us); layer norm [262144, 64]: 63 us and 109 us. The
// column sums reach ~40% of DRAM bandwidth: short-lived blocks, room left for a later version.
//
// Column sums are in double: on H100/H200 the FP64 rate (~60 TFLOP/s) is far above what a
// 4 B/elem stream needs (~2 TFLOP/s at full bandwidth), and it keeps var = E[x^2] - mean^2
// exact enough when the mean dwarfs the spread.
#include "kernels/memory_bound.cuh"
#include "kernels/norm.hpp"

namespace ddpm::kernels::cuda {
namespace {

using ddpm::cuda::aligned16;
using ddpm::cuda::block_sum;
using ddpm::cuda::kThreads;
using ddpm::cuda::lanes_sum;
using ddpm::cuda::load_vec;
using ddpm::cuda::stream;
using ddpm::cuda::store_vec;
using ddpm::cuda::Vec;

// Arguments of the group norm kernels (and of layer norm's dw, db sums, with N = 1, G = 1 and
// statistics per position: per_row).
// T is the data's type (float or bf16); parameters and statistics are always float.
template <class T>
struct NormArgs {
  Act act;
  const T *x, *dy;
  const float *mean, *rstd, *w, *b;  // b may be null when act is None
  const double* coef;                // dx pass: (c1, c2) per (sample, group)
  T* out;                            // elementwise passes: y or dx
  int64_t N, P;
  int C, G;
  bool per_row;
};

// Block (n, s, tile) of an [N, S, tiles] grid (launched with at least 4 blocks per SM, so the
// ~512 blocks of norm_splits run in one wave on 132 SMs) covers the positions of split s of
// sample n and up to 32 vectors of V channels: 256 threads = `lanes` positions side by side x `tile_cols`
// vectors, so a warp reads consecutive vectors of a row (coalesced). A thread keeps the same
// channels c0 .. c0 + V - 1 throughout, so their parameters and statistics stay in registers,
// and visits every lanes-th position: no index division in the loop.
struct Tile {
  int tile_cols, lanes, lane, c0;
  bool active;
  int64_t p0, p1;
};
template <int V> __device__ Tile tile_of(int64_t P, int C) {
  Tile t;
  const int cols = C / V;
  t.tile_cols = min(cols, 32);
  t.lanes = kThreads / t.tile_cols;
  t.lane = threadIdx.x / t.tile_cols;
  const int col = blockIdx.z * t.tile_cols + threadIdx.x % t.tile_cols;
  t.c0 = col * V;
  t.active = t.lane < t.lanes && col < cols;
  t.p0 = P * blockIdx.y / gridDim.y, t.p1 = P * (blockIdx.y + 1) / gridDim.y;
  return t;
}
dim3 tile_grid(int64_t N, int64_t S, int C, int V) {
  return dim3(unsigned(N), unsigned(S), unsigned((C / V + 31) / 32));
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

// part[n][s][c] = sums over the tile's positions of (x, x^2), or of (du, du z) when kGrad. Each
// thread accumulates its channels, then the lanes of a column combine in a fixed tree order.
template <int V, bool kGrad, class T>
__global__ void __launch_bounds__(kThreads, 4) column_sums_k(NormArgs<T> a, double* part) {
  const Tile t = tile_of<V>(a.P, a.C);
  const int64_t n = blockIdx.x;
  double sa[V] = {}, sb[V] = {};
  if (t.active) {
    float m[V], r[V], w[V], b[V];
    if (kGrad) {
      for (int k = 0; k < V; ++k) w[k] = a.w[t.c0 + k], b[k] = a.b ? a.b[t.c0 + k] : 0.0f;
      if (!a.per_row) load_stats<V>(a, n * a.G, t.c0, m, r);
    }
#pragma unroll 4  // several rows in flight per thread: one load at a time leaves DRAM idle
    for (int64_t p = t.p0 + t.lane; p < t.p1; p += t.lanes) {
      const int64_t off = (n * a.P + p) * a.C + t.c0;
      const Vec<V> xv = load_vec<V>(a.x + off);
      if constexpr (kGrad) {
        const Vec<V> dv = load_vec<V>(a.dy + off);
        if (a.per_row) load_stats<V>(a, p, t.c0, m, r);
        for (int k = 0; k < V; ++k) {
          NormGradAt q = norm_grad_at(a.act, xv.v[k], dv.v[k], m[k], r[k], w[k], b[k]);
          sa[k] += q.du, sb[k] += double(q.du) * q.z;
        }
      } else {
        for (int k = 0; k < V; ++k) sa[k] += xv.v[k], sb[k] += double(xv.v[k]) * xv.v[k];
      }
    }
  }
  __shared__ double sh[kThreads][2 * V];
  for (int k = 0; k < V; ++k) sh[threadIdx.x][k] = sa[k], sh[threadIdx.x][V + k] = sb[k];
  __syncthreads();
  int top = 1;
  while (top < t.lanes) top *= 2;
  for (int stride = top / 2; stride > 0; stride /= 2) {
    if (t.active && t.lane < stride && t.lane + stride < t.lanes)
      for (int q = 0; q < 2 * V; ++q) sh[threadIdx.x][q] += sh[threadIdx.x + stride * t.tile_cols][q];
    __syncthreads();
  }
  if (t.active && t.lane == 0) {
    double* out = part + ((n * gridDim.y + blockIdx.y) * a.C + t.c0) * 2;
    for (int k = 0; k < V; ++k) out[2 * k] = sh[threadIdx.x][k], out[2 * k + 1] = sh[threadIdx.x][V + k];
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

// One block per channel: db[c] = sum of a, dw[c] = sum of b over the `rows` partial rows.
__global__ void channel_totals_k(const double* part, int64_t rows, int C, float* dw, float* db) {
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

// The elementwise group norm pass over the same tiles: y = act(z w + b), or dx = norm_dx(...).
template <int V, bool kBackward, class T>
__global__ void __launch_bounds__(kThreads, 4) gn_pass_k(NormArgs<T> a) {
  const Tile t = tile_of<V>(a.P, a.C);
  if (!t.active) return;
  const int64_t n = blockIdx.x;
  float m[V], r[V], w[V], b[V], c1[V] = {}, c2[V] = {};
  load_stats<V>(a, n * a.G, t.c0, m, r);
  for (int k = 0; k < V; ++k) {
    w[k] = a.w[t.c0 + k], b[k] = a.b[t.c0 + k];
    if constexpr (kBackward) {
      const int64_t ng = n * a.G + (t.c0 + k) / (a.C / a.G);
      c1[k] = float(a.coef[2 * ng]), c2[k] = float(a.coef[2 * ng + 1]);
    }
  }
#pragma unroll 4
  for (int64_t p = t.p0 + t.lane; p < t.p1; p += t.lanes) {
    const int64_t off = (n * a.P + p) * a.C + t.c0;
    const Vec<V> xv = load_vec<V>(a.x + off);
    Vec<V> o;
    if constexpr (kBackward) {
      const Vec<V> dv = load_vec<V>(a.dy + off);
      for (int k = 0; k < V; ++k)
        o.v[k] = norm_dx(r[k], w[k], norm_grad_at(a.act, xv.v[k], dv.v[k], m[k], r[k], w[k], b[k]), c1[k], c2[k]);
    } else {
      for (int k = 0; k < V; ++k) o.v[k] = activate(a.act, (xv.v[k] - m[k]) * r[k] * w[k] + b[k]);
    }
    store_vec<V>(a.out + off, o);
  }
}

// Layer norm: a row goes to L lanes (the smallest power of two covering its C / V vectors, at
// most a warp), so short rows do not leave half a warp idle (C = 64: two rows per warp).
// Lanes past the last row still join the shuffles. Float sums: a row is short (C / L values
// per lane) and the two-pass variance does not cancel; double math per row (shuffles, division,
// sqrt) would make these kernels instruction-bound.
int lanes_per_row(int64_t C, int V) {
  int L = 1;
  while (L < 32 && L * V < C) L *= 2;
  return L;
}

template <int V, class T>
__global__ void ln_fwd_k(const T* x, const float* w, const float* b, T* y, float* mean, float* rstd, int64_t R,
                         int C, int L, float eps) {
  const int64_t r = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / L;
  const int sub = threadIdx.x % L;
  const bool valid = r < R;
  const T* xr = x + r * C;
  float s = 0, ss = 0;
  if (valid)
    for (int c = sub * V; c < C; c += L * V) {
      const Vec<V> v = load_vec<V>(xr + c);
      for (int k = 0; k < V; ++k) s += v.v[k];
    }
  const float m = lanes_sum(s, L) / float(C);
  if (valid)
    for (int c = sub * V; c < C; c += L * V) {
      const Vec<V> v = load_vec<V>(xr + c);
      for (int k = 0; k < V; ++k) ss += (v.v[k] - m) * (v.v[k] - m);
    }
  const float rs = 1.0f / sqrtf(lanes_sum(ss, L) / float(C) + eps);
  if (!valid) return;
  if (sub == 0) mean[r] = m, rstd[r] = rs;
  for (int c = sub * V; c < C; c += L * V) {
    Vec<V> v = load_vec<V>(xr + c);
    for (int k = 0; k < V; ++k) v.v[k] = (v.v[k] - m) * rs * w[c + k] + b[c + k];
    store_vec<V>(y + r * C + c, v);
  }
}

// Layer norm dx, rows as above; c1, c2 are the row means of w du and w du z.
template <int V, class T>
__global__ void ln_dx_k(const T* x, const float* w, const float* mean, const float* rstd, const T* dy, T* dx,
                        int64_t R, int C, int L) {
  const int64_t r = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / L;
  const int sub = threadIdx.x % L;
  const bool valid = r < R;
  const float m = valid ? mean[r] : 0.0f, rs = valid ? rstd[r] : 0.0f;
  float s1 = 0, s2 = 0;
  if (valid)
    for (int c = sub * V; c < C; c += L * V) {
      const Vec<V> xv = load_vec<V>(x + r * C + c), dv = load_vec<V>(dy + r * C + c);
      for (int k = 0; k < V; ++k) {
        NormGradAt t = norm_grad_at(Act::None, xv.v[k], dv.v[k], m, rs, w[c + k], 0.0f);
        s1 += w[c + k] * t.du, s2 += w[c + k] * t.du * t.z;
      }
    }
  const float c1 = lanes_sum(s1, L) / float(C), c2 = lanes_sum(s2, L) / float(C);
  if (!valid) return;
  for (int c = sub * V; c < C; c += L * V) {
    const Vec<V> xv = load_vec<V>(x + r * C + c), dv = load_vec<V>(dy + r * C + c);
    Vec<V> o;
    for (int k = 0; k < V; ++k)
      o.v[k] = norm_dx(rs, w[c + k], norm_grad_at(Act::None, xv.v[k], dv.v[k], m, rs, w[c + k], 0.0f), c1, c2);
    store_vec<V>(dx + r * C + c, o);
  }
}

template <class T> bool vec4(const NormArgs<T>& a) { return a.C % 4 == 0 && aligned16({a.x, a.dy, a.out}); }

template <bool kGrad, class T> void column_sums(const NormArgs<T>& a, int64_t S, double* part) {
  if (vec4(a)) column_sums_k<4, kGrad, T><<<tile_grid(a.N, S, a.C, 4), kThreads, 0, stream()>>>(a, part);
  else column_sums_k<1, kGrad, T><<<tile_grid(a.N, S, a.C, 1), kThreads, 0, stream()>>>(a, part);
  CUDA_CHECK_LAUNCH("column_sums_k");
}

template <bool kBackward, class T> void gn_pass(const NormArgs<T>& a, int64_t S) {
  if (vec4(a)) gn_pass_k<4, kBackward, T><<<tile_grid(a.N, S, a.C, 4), kThreads, 0, stream()>>>(a);
  else gn_pass_k<1, kBackward, T><<<tile_grid(a.N, S, a.C, 1), kThreads, 0, stream()>>>(a);
  CUDA_CHECK_LAUNCH("gn_pass_k");
}

// Blocks for R rows of L lanes each.
unsigned row_blocks(int64_t R, int L) { return unsigned((R * L + kThreads - 1) / kThreads); }

template <class T>
void group_norm_fwd_t(Act act, const T* x, const float* w, const float* b, T* y, float* mean, float* rstd, int64_t N,
                      int64_t P, int64_t C, int64_t G, float eps, double* work) {
  const int64_t S = norm_splits(N, P, C);
  NormArgs<T> a{act, x, nullptr, mean, rstd, w, b, nullptr, y, N, P, int(C), int(G), false};
  column_sums<false>(a, S, work);
  group_totals_k<true><<<unsigned(N * G), kThreads, 0, stream()>>>(work, nullptr, S, int(C), int(G),
                                                                   double(P * (C / G)), eps, mean, rstd, nullptr);
  CUDA_CHECK_LAUNCH("group_totals_k");
  gn_pass<false>(a, S);
}

template <class T>
void group_norm_bwd_t(Act act, const T* x, const float* w, const float* b, const float* mean, const float* rstd,
                      const T* dy, T* dx, float* dw, float* db, int64_t N, int64_t P, int64_t C, int64_t G,
                      double* work) {
  const int64_t S = norm_splits(N, P, C);
  double* coef = work + N * S * C * 2;
  NormArgs<T> a{act, x, dy, mean, rstd, w, b, coef, dx, N, P, int(C), int(G), false};
  column_sums<true>(a, S, work);
  channel_totals_k<<<unsigned(C), kThreads, 0, stream()>>>(work, N * S, int(C), dw, db);
  CUDA_CHECK_LAUNCH("channel_totals_k");
  group_totals_k<false><<<unsigned(N * G), kThreads, 0, stream()>>>(work, w, S, int(C), int(G), double(P * (C / G)),
                                                                    0.0f, nullptr, nullptr, coef);
  CUDA_CHECK_LAUNCH("group_totals_k");
  gn_pass<true>(a, S);
}

template <class T>
void layer_norm_fwd_t(const T* x, const float* w, const float* b, T* y, float* mean, float* rstd, int64_t R, int64_t C,
                      float eps) {
  const bool vec = C % 4 == 0 && aligned16({x, y});
  const int L = lanes_per_row(C, vec ? 4 : 1);
  if (vec) ln_fwd_k<4, T><<<row_blocks(R, L), kThreads, 0, stream()>>>(x, w, b, y, mean, rstd, R, int(C), L, eps);
  else ln_fwd_k<1, T><<<row_blocks(R, L), kThreads, 0, stream()>>>(x, w, b, y, mean, rstd, R, int(C), L, eps);
  CUDA_CHECK_LAUNCH("ln_fwd_k");
}

template <class T>
void layer_norm_bwd_t(const T* x, const float* w, const float* mean, const float* rstd, const T* dy, T* dx, float* dw,
                      float* db, int64_t R, int64_t C, double* work) {
  const bool vec = C % 4 == 0 && aligned16({x, dy, dx});
  const int L = lanes_per_row(C, vec ? 4 : 1);
  if (vec) ln_dx_k<4, T><<<row_blocks(R, L), kThreads, 0, stream()>>>(x, w, mean, rstd, dy, dx, R, int(C), L);
  else ln_dx_k<1, T><<<row_blocks(R, L), kThreads, 0, stream()>>>(x, w, mean, rstd, dy, dx, R, int(C), L);
  CUDA_CHECK_LAUNCH("ln_dx_k");
  const int64_t S = norm_splits(1, R, C);
  column_sums<true>(NormArgs<T>{Act::None, x, dy, mean, rstd, w, nullptr, nullptr, nullptr, 1, R, int(C), 1, true}, S,
                    work);
  channel_totals_k<<<unsigned(C), kThreads, 0, stream()>>>(work, S, int(C), dw, db);
  CUDA_CHECK_LAUNCH("channel_totals_k");
}

}  // namespace

// The same functions for f32 and bf16 data.
#define FOR_FLOAT_AND_BF16(T)                                                                                      \
  void group_norm_fwd(Act act, const T* x, const float* w, const float* b, T* y, float* mean, float* rstd,         \
                      int64_t N, int64_t P, int64_t C, int64_t G, float eps, double* work) {                     \
    group_norm_fwd_t(act, x, w, b, y, mean, rstd, N, P, C, G, eps, work);                                        \
  }                                                                                                              \
  void group_norm_bwd(Act act, const T* x, const float* w, const float* b, const float* mean, const float* rstd,  \
                      const T* dy, T* dx, float* dw, float* db, int64_t N, int64_t P, int64_t C, int64_t G,       \
                      double* work) {                                                                            \
    group_norm_bwd_t(act, x, w, b, mean, rstd, dy, dx, dw, db, N, P, C, G, work);                                \
  }                                                                                                              \
  void layer_norm_fwd(const T* x, const float* w, const float* b, T* y, float* mean, float* rstd, int64_t R,     \
                      int64_t C, float eps) {                                                                    \
    layer_norm_fwd_t(x, w, b, y, mean, rstd, R, C, eps);                                                         \
  }                                                                                                              \
  void layer_norm_bwd(const T* x, const float* w, const float* mean, const float* rstd, const T* dy, T* dx,      \
                      float* dw, float* db, int64_t R, int64_t C, double* work) {                                \
    layer_norm_bwd_t(x, w, mean, rstd, dy, dx, dw, db, R, C, work);                                              \
  }
FOR_FLOAT_AND_BF16(float)
FOR_FLOAT_AND_BF16(bf16)
#undef FOR_FLOAT_AND_BF16

}  // namespace ddpm::kernels::cuda
