// CUDA twin of kernels/resample_cpu.cpp. One thread per output vector of V channels (16 bytes: 4 f32
// or 8 bf16, when the channel counts and pointers allow), grid-stride; all memory-bound, no atomics.
// Napkin math per output element, f32:
// - copy_channels: 8 B (read + write); concat of [N,H,W,Ca] and [N,H,W,Cb] moves 8 B per output.
// - max_pool2x2: forward reads the 4 inputs and writes 1: 20 B per output. The backward
//   recomputes the argmax from x instead of saving indices: x is alive anyway (the U-Net keeps it
//   as the skip connection), so this costs no memory; it reads x (16 B) and dy (4 B) and writes
//   the four dx (16 B) per output, and the windows are disjoint, so no two threads write the same
//   dx.
// - upsample2x: forward reads a 2x2 neighbourhood (mostly L1/L2 hits: neighbouring outputs share
//   it) and writes 4 B: ~5 B per output from DRAM. The backward is a gather: each input pixel
//   sums its <= 4x4 weighted contributions from dy (upsample_taps recomputed for 6 candidate
//   rows and columns around 2y, 2x), ~4 B of dy per dx element from DRAM plus 4 B written,
//   deterministic and atomic-free.
// - embedding: forward copies rows (8 B per element). The backward gives each table element
//   to one thread that scans the B ids in order: O(num * B) id reads, fine for class tables
//   (num ~ 10..1000, B ~ 64); a large vocabulary would want a sort-based scatter instead.
// bf16 data halves every byte count above (values are widened to f32 in registers).
// Measured (f32) on an H200 (device copy of the output-sized tensor ~34 us at 67 MB): max_pool at
// [64, 64, 64, 64] 24 us forward, 40 us backward; upsample [64, 32, 32, 64] 37 us, 44 us.
#include "kernels/memory_bound.cuh"
#include "kernels/resample.hpp"

namespace ddpm::kernels::cuda {
namespace {

using ddpm::cuda::aligned16;
using ddpm::cuda::grid_for;
using ddpm::cuda::kThreads;
using ddpm::cuda::kVec16;
using ddpm::cuda::load_vec;
using ddpm::cuda::stream;
using ddpm::cuda::store_vec;
using ddpm::cuda::Vec;

// 32-bit flat indices: splitting an index into coordinates takes a few divisions per thread,
// and in 64 bits those dominate the instruction count of these kernels. The wrappers check that
// every tensor has fewer than 2^30 elements.
#define GRID_LOOP32(i, n) \
  for (int i = int(blockIdx.x * blockDim.x + threadIdx.x); i < (n); i += int(gridDim.x * blockDim.x))

template <int V, class T>
__global__ void copy_channels_k(const T* src, int src_C, int src_off, T* dst, int dst_C, int dst_off, int rows,
                                int width_v) {
  GRID_LOOP32(e, rows * width_v) {
    const int r = e / width_v, c = (e - r * width_v) * V;
    store_vec<V>(dst + r * dst_C + dst_off + c, load_vec<V>(src + r * src_C + src_off + c));
  }
}

// Output vector e of [N, Ho, Wo, C / V]: fills the offsets of the window's four inputs.
template <int V> __device__ __forceinline__ void pool_window(int e, int H, int W, int C, int at[4]) {
  const int Cv = C / V, Wo = W / 2, Ho = H / 2;
  const int q = e / Cv, c = (e - q * Cv) * V, j = q % Wo, i = (q / Wo) % Ho, n = q / (Wo * Ho);
  at[0] = ((n * H + 2 * i) * W + 2 * j) * C + c;
  at[1] = at[0] + C, at[2] = at[0] + W * C, at[3] = at[2] + C;
}

template <int V, bool kBackward, class T>
__global__ void max_pool_k(const T* x, const T* dy, T* out, int N, int H, int W, int C) {
  GRID_LOOP32(e, N * (H / 2) * (W / 2) * (C / V)) {
    int at[4];
    pool_window<V>(e, H, W, C, at);
    Vec<V> v[4];
    for (int q = 0; q < 4; ++q) v[q] = load_vec<V>(x + at[q]);
    int best[V];
    for (int k = 0; k < V; ++k) {
      const float w[4] = {v[0].v[k], v[1].v[k], v[2].v[k], v[3].v[k]};
      best[k] = pool_argmax(w);
    }
    if constexpr (kBackward) {
      const Vec<V> g = load_vec<V>(dy + e * V);
      for (int q = 0; q < 4; ++q) {
        Vec<V> d;
        for (int k = 0; k < V; ++k) d.v[k] = best[k] == q ? g.v[k] : 0.0f;
        store_vec<V>(out + at[q], d);
      }
    } else {
      Vec<V> y;
      for (int k = 0; k < V; ++k) y.v[k] = v[best[k]].v[k];
      store_vec<V>(out + e * V, y);
    }
  }
}

template <int V, class T>
__global__ void upsample_fwd_k(const T* x, T* y, int N, int H, int W, int C) {
  const int Cv = C / V;
  GRID_LOOP32(e, N * 2 * H * 2 * W * Cv) {
    const int q = e / Cv, c = (e - q * Cv) * V, j = q % (2 * W), i = (q / (2 * W)) % (2 * H), n = q / (4 * W * H);
    const UpsampleTaps a = upsample_taps(i, H), b = upsample_taps(j, W);
    const T* r0 = x + (n * H + int(a.lo)) * W * C + c;
    const T* r1 = x + (n * H + int(a.hi)) * W * C + c;
    const Vec<V> v00 = load_vec<V>(r0 + b.lo * C), v01 = load_vec<V>(r0 + b.hi * C);
    const Vec<V> v10 = load_vec<V>(r1 + b.lo * C), v11 = load_vec<V>(r1 + b.hi * C);
    Vec<V> o;
    for (int k = 0; k < V; ++k) {
      const float top = (1 - b.frac) * v00.v[k] + b.frac * v01.v[k];
      const float bottom = (1 - b.frac) * v10.v[k] + b.frac * v11.v[k];
      o.v[k] = (1 - a.frac) * top + a.frac * bottom;
    }
    store_vec<V>(y + e * V, o);
  }
}

// Output index i reads input y (lo or hi tap) only for i in [2y - 1, 2y + 2]: src = i (in-1) /
// (2in-1) lies within (y - 1, y + 1) there and at least 1/(2in-1) outside it elsewhere. The six
// candidates [2y - 2, 2y + 3] keep a margin for float rounding; out-of-range ones weigh 0.
constexpr int kCandidates = 6;
__device__ __forceinline__ void gather_weights(int y, int in, float w[kCandidates]) {
  for (int k = 0; k < kCandidates; ++k) {
    const int i = 2 * y - 2 + k;
    w[k] = i >= 0 && i < 2 * in ? upsample_weight(upsample_taps(i, in), y) : 0.0f;
  }
}

template <int V, class T>
__global__ void upsample_bwd_k(const T* dy, T* dx, int N, int H, int W, int C) {
  const int Cv = C / V;
  GRID_LOOP32(e, N * H * W * Cv) {
    const int q = e / Cv, c = (e - q * Cv) * V, x = q % W, y = (q / W) % H, n = q / (W * H);
    float wy[kCandidates], wx[kCandidates];
    gather_weights(y, H, wy);
    gather_weights(x, W, wx);
    float acc[V] = {};
#pragma unroll
    for (int a = 0; a < kCandidates; ++a) {
      if (wy[a] == 0.0f) continue;
      const T* row = dy + (n * 2 * H + 2 * y - 2 + a) * 2 * W * C + c;
#pragma unroll
      for (int b = 0; b < kCandidates; ++b) {
        if (wx[b] == 0.0f) continue;
        const Vec<V> g = load_vec<V>(row + (2 * x - 2 + b) * C);
        for (int k = 0; k < V; ++k) acc[k] += wy[a] * wx[b] * g.v[k];
      }
    }
    Vec<V> o;
    for (int k = 0; k < V; ++k) o.v[k] = acc[k];
    store_vec<V>(dx + e * V, o);
  }
}

template <int V, class T>
__global__ void embedding_fwd_k(const int64_t* ids, const T* table, T* out, int B, int D) {
  GRID_LOOP32(e, B * (D / V)) {
    const int i = e / (D / V), d = (e - i * (D / V)) * V;
    store_vec<V>(out + i * D + d, load_vec<V>(table + ids[i] * D + d));
  }
}

template <int V, class T>
__global__ void embedding_bwd_k(const int64_t* ids, const T* dout, T* dtable, int B, int num, int D) {
  GRID_LOOP32(e, num * (D / V)) {
    const int r = e / (D / V), d = (e - r * (D / V)) * V;
    Vec<V> acc = {};
    for (int i = 0; i < B; ++i) {
      if (ids[i] != r) continue;
      const Vec<V> g = load_vec<V>(dout + i * D + d);
      for (int k = 0; k < V; ++k) acc.v[k] += g.v[k];
    }
    store_vec<V>(dtable + r * D + d, acc);
  }
}

void check_32bit(std::initializer_list<int64_t> sizes) {
  for (int64_t n : sizes)
    DDPM_CHECK(n < (int64_t(1) << 30), "resample (cuda)", "a tensor of ", n, " elements exceeds 32-bit indexing");
}

// Launches kernel<kVec16<T>, T> when `vec` (16 bytes of channels per access: 4 f32 or 8 bf16),
// else kernel<1, T>, over n / V threads.
#define LAUNCH_V(kernel, T, vec, n, ...)                                                                      \
  do {                                                                                                        \
    constexpr int V_ = kVec16<T>;                                                                             \
    if (vec) kernel<V_, T><<<grid_for((n) / V_), kThreads, 0, stream()>>>(__VA_ARGS__);                        \
    else kernel<1, T><<<grid_for(n), kThreads, 0, stream()>>>(__VA_ARGS__);                                   \
    CUDA_CHECK_LAUNCH(#kernel);                                                                               \
  } while (0)

template <bool kBackward, class T>
void max_pool(const T* x, const T* dy, T* out, int64_t N, int64_t H, int64_t W, int64_t C) {
  check_32bit({N * H * W * C});
  const int64_t n = N * (H / 2) * (W / 2) * C;
  if (C % kVec16<T> == 0 && aligned16({x, dy, out}))
    max_pool_k<kVec16<T>, kBackward, T>
        <<<grid_for(n / kVec16<T>), kThreads, 0, stream()>>>(x, dy, out, int(N), int(H), int(W), int(C));
  else max_pool_k<1, kBackward, T><<<grid_for(n), kThreads, 0, stream()>>>(x, dy, out, int(N), int(H), int(W), int(C));
  CUDA_CHECK_LAUNCH("max_pool_k");
}

template <class T>
void copy_channels_t(const T* src, int64_t src_C, int64_t src_off, T* dst, int64_t dst_C, int64_t dst_off, int64_t rows,
                     int64_t width) {
  check_32bit({rows * src_C, rows * dst_C});
  const bool vec = (src_C | src_off | dst_C | dst_off | width) % kVec16<T> == 0 && aligned16({src, dst});
  const int V = vec ? kVec16<T> : 1;
  LAUNCH_V(copy_channels_k, T, vec, rows * width, src, int(src_C), int(src_off), dst, int(dst_C), int(dst_off),
           int(rows), int(width / V));
}

template <class T> void upsample2x_fwd_t(const T* x, T* y, int64_t N, int64_t H, int64_t W, int64_t C) {
  check_32bit({N * 4 * H * W * C});
  LAUNCH_V(upsample_fwd_k, T, C % kVec16<T> == 0 && aligned16({x, y}), N * 4 * H * W * C, x, y, int(N), int(H),
           int(W), int(C));
}

template <class T> void upsample2x_bwd_t(const T* dy, T* dx, int64_t N, int64_t H, int64_t W, int64_t C) {
  check_32bit({N * 4 * H * W * C});
  LAUNCH_V(upsample_bwd_k, T, C % kVec16<T> == 0 && aligned16({dy, dx}), N * H * W * C, dy, dx, int(N), int(H),
           int(W), int(C));
}

}  // namespace

// The same functions for f32 and bf16 data.
#define FOR_FLOAT_AND_BF16(T)                                                                                    \
  void copy_channels(const T* src, int64_t src_C, int64_t src_off, T* dst, int64_t dst_C, int64_t dst_off,    \
                     int64_t rows, int64_t width) {                                                           \
    copy_channels_t(src, src_C, src_off, dst, dst_C, dst_off, rows, width);                                    \
  }                                                                                                            \
  void max_pool2x2_fwd(const T* x, T* y, int64_t N, int64_t H, int64_t W, int64_t C) {                        \
    max_pool<false, T>(x, nullptr, y, N, H, W, C);                                                             \
  }                                                                                                            \
  void max_pool2x2_bwd(const T* x, const T* dy, T* dx, int64_t N, int64_t H, int64_t W, int64_t C) {          \
    max_pool<true, T>(x, dy, dx, N, H, W, C);                                                                  \
  }                                                                                                            \
  void upsample2x_fwd(const T* x, T* y, int64_t N, int64_t H, int64_t W, int64_t C) {                         \
    upsample2x_fwd_t(x, y, N, H, W, C);                                                                        \
  }                                                                                                            \
  void upsample2x_bwd(const T* dy, T* dx, int64_t N, int64_t H, int64_t W, int64_t C) {                       \
    upsample2x_bwd_t(dy, dx, N, H, W, C);                                                                      \
  }
FOR_FLOAT_AND_BF16(float)
FOR_FLOAT_AND_BF16(bf16)
#undef FOR_FLOAT_AND_BF16

void embedding_fwd(const int64_t* ids, const float* table, float* out, int64_t B, int64_t D) {
  check_32bit({B * D});
  LAUNCH_V(embedding_fwd_k, float, D % 4 == 0 && aligned16({table, out}), B * D, ids, table, out, int(B), int(D));
}

void embedding_bwd(const int64_t* ids, const float* dout, float* dtable, int64_t B, int64_t num, int64_t D) {
  check_32bit({B * D, num * D});
  LAUNCH_V(embedding_bwd_k, float, D % 4 == 0 && aligned16({dout, dtable}), num * D, ids, dout, dtable, int(B),
           int(num), int(D));
}

}  // namespace ddpm::kernels::cuda
