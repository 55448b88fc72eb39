// CUDA twin of kernels/elementwise_cpu.cpp. Memory-bound: bytes = (inputs + outputs) * n * 4 for
// f32 data, * 2 for bf16 (computed in f32 in registers), so the target is the copy bandwidth.
// Version 2: each thread moves V = 4 values with one 16-byte (f32) or 8-byte (bf16) access when
// the pointers are aligned and n is a multiple of 4 (the U-Net's tensors always are), else V = 1;
// grid-stride loops over vectors. (Version 1 moved one float per thread.)
#include "kernels/elementwise.hpp"
#include "kernels/memory_bound.cuh"

namespace ddpm::kernels::cuda {
namespace {

using ddpm::cuda::aligned16;
using ddpm::cuda::from_f32;
using ddpm::cuda::grid_for;
using ddpm::cuda::kThreads;
using ddpm::cuda::load_vec;
using ddpm::cuda::stream;
using ddpm::cuda::store_vec;
using ddpm::cuda::to_f32;
using ddpm::cuda::Vec;

// One elementwise map over nv vectors of V values: out = f(in0, in1, in2) per element, in f32
// whatever T is. Unused inputs are null and read as 0.
template <int V, class T, class F>
__global__ void map_k(F f, T* out, const T* in0, const T* in1, const T* in2, int64_t nv) {
  DDPM_GRID_LOOP(i, nv) {
    Vec<V> a{}, b{}, c{}, r;
    if (in0) a = load_vec<V>(in0 + i * V);
    if (in1) b = load_vec<V>(in1 + i * V);
    if (in2) c = load_vec<V>(in2 + i * V);
#pragma unroll
    for (int k = 0; k < V; ++k) r.v[k] = f(a.v[k], b.v[k], c.v[k]);
    store_vec<V>(out + i * V, r);
  }
}

template <class T, class F>
void map(const char* name, F f, T* out, int64_t n, const T* in0 = nullptr, const T* in1 = nullptr,
         const T* in2 = nullptr) {
  if (n % 4 == 0 && aligned16({out, in0, in1, in2})) {
    map_k<4><<<grid_for(n / 4), kThreads, 0, stream()>>>(f, out, in0, in1, in2, n / 4);
  } else {
    map_k<1><<<grid_for(n), kThreads, 0, stream()>>>(f, out, in0, in1, in2, n);
  }
  CUDA_CHECK_LAUNCH(name);
}

__device__ int64_t b_index(const Broadcast& bc, int64_t i) {
  int64_t i3 = i % bc.shape[3];
  int64_t r = i / bc.shape[3];
  int64_t i2 = r % bc.shape[2];
  r /= bc.shape[2];
  int64_t i1 = r % bc.shape[1];
  int64_t i0 = r / bc.shape[1];
  return i0 * bc.b_stride[0] + i1 * bc.b_stride[1] + i2 * bc.b_stride[2] + i3 * bc.b_stride[3];
}

// V consecutive outputs share their first three coordinates (V divides shape[3]), so b's V
// values sit at base + k * b_stride[3]: one b_index per vector.
template <int V, class T>
__global__ void binary_k(BinOp op, const T* a, const T* b, T* out, Broadcast bc) {
  DDPM_GRID_LOOP(i, bc.numel() / V) {
    const int64_t base = b_index(bc, i * V);
    Vec<V> x = load_vec<V>(a + i * V), r;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      float y = to_f32(b[base + k * bc.b_stride[3]]);
      r.v[k] = op == BinOp::Add ? x.v[k] + y : op == BinOp::Sub ? x.v[k] - y : x.v[k] * y;
    }
    store_vec<V>(out + i * V, r);
  }
}

// One thread per b element sums the positions that map to it: b is small (biases, embeddings),
// the sum runs over a's elements in order, so the result does not depend on scheduling.
template <class T>
__global__ void reduce_to_b_k(const T* g, T* gb, Broadcast bc, int64_t nb) {
  DDPM_GRID_LOOP(j, nb) {
    // Decompose j into b's coordinates (dimensions with nonzero stride), then sum over the others.
    int64_t coord[4];
    int64_t rem = j;
    for (int d = 0; d < 4; ++d) coord[d] = 0;
    for (int d = 3; d >= 0; --d)
      if (bc.b_stride[d]) {
        coord[d] = rem % bc.shape[d];
        rem /= bc.shape[d];
      }
    int64_t span[4];
    for (int d = 0; d < 4; ++d) span[d] = bc.b_stride[d] ? 1 : bc.shape[d];
    float acc = 0.0f;
    for (int64_t i0 = 0; i0 < span[0]; ++i0)
      for (int64_t i1 = 0; i1 < span[1]; ++i1)
        for (int64_t i2 = 0; i2 < span[2]; ++i2)
          for (int64_t i3 = 0; i3 < span[3]; ++i3) {
            int64_t c0 = bc.b_stride[0] ? coord[0] : i0, c1 = bc.b_stride[1] ? coord[1] : i1;
            int64_t c2 = bc.b_stride[2] ? coord[2] : i2, c3 = bc.b_stride[3] ? coord[3] : i3;
            acc += to_f32(g[((c0 * bc.shape[1] + c1) * bc.shape[2] + c2) * bc.shape[3] + c3]);
          }
    gb[j] = from_f32<T>(acc);
  }
}

__global__ void f32_to_bf16_k(const float* x, bf16* y, int64_t n) {
  DDPM_GRID_LOOP(i, n) y[i] = from_f32<bf16>(x[i]);
}
__global__ void bf16_to_f32_k(const bf16* x, float* y, int64_t n) {
  DDPM_GRID_LOOP(i, n) y[i] = to_f32(x[i]);
}

// The bodies of the public functions, for T = float and bf16.
template <class T> void accumulate_t(T* out, const T* src, int64_t n) {
  map("accumulate", [] __device__(float o, float s, float) { return o + s; }, out, n, out, src);
}
template <class T> void scale_t(T* x, int64_t n, float s) {
  map("scale", [s] __device__(float v, float, float) { return v * s; }, x, n, x);
}
template <class T> void act_fwd_t(Act act, const T* x, T* y, int64_t n) {
  map("act_fwd", [act] __device__(float v, float, float) { return activate(act, v); }, y, n, x);
}
template <class T> void act_bwd_t(Act act, const T* x, const T* dy, T* dx, int64_t n) {
  map("act_bwd", [act] __device__(float v, float g, float) { return g * activate_grad(act, v); }, dx, n, x, dy);
}
template <class T> void add_act_fwd_t(Act act, const T* a, const T* b, T* y, int64_t n) {
  map("add_act_fwd", [act] __device__(float u, float v, float) { return activate(act, u + v); }, y, n, a, b);
}
template <class T> void add_act_bwd_t(Act act, const T* a, const T* b, const T* dy, T* d, int64_t n) {
  map("add_act_bwd", [act] __device__(float u, float v, float g) { return g * activate_grad(act, u + v); }, d, n,
      a, b, dy);
}
template <class T> void binary_t(BinOp op, const T* a, const T* b, T* out, const Broadcast& bc) {
  if (bc.shape[3] % 4 == 0 && aligned16({a, out})) {
    binary_k<4><<<grid_for(bc.numel() / 4), kThreads, 0, stream()>>>(op, a, b, out, bc);
  } else {
    binary_k<1><<<grid_for(bc.numel()), kThreads, 0, stream()>>>(op, a, b, out, bc);
  }
  CUDA_CHECK_LAUNCH("binary_k");
}
template <class T> void reduce_to_b_t(const T* g, T* gb, const Broadcast& bc) {
  const int64_t nb = bc.b_numel();
  reduce_to_b_k<<<grid_for(nb), kThreads, 0, stream()>>>(g, gb, bc, nb);
  CUDA_CHECK_LAUNCH("reduce_to_b_k");
}

}  // namespace

void fill(float* x, int64_t n, float v) {
  map("fill", [v] __device__(float, float, float) { return v; }, x, n);
}
void f32_to_bf16(const float* x, bf16* y, int64_t n) {
  f32_to_bf16_k<<<grid_for(n), kThreads, 0, stream()>>>(x, y, n);
  CUDA_CHECK_LAUNCH("f32_to_bf16_k");
}
void bf16_to_f32(const bf16* x, float* y, int64_t n) {
  bf16_to_f32_k<<<grid_for(n), kThreads, 0, stream()>>>(x, y, n);
  CUDA_CHECK_LAUNCH("bf16_to_f32_k");
}

// The same functions for f32 and bf16 data.
#define FOR_FLOAT_AND_BF16(T)                                                                                     \
  void accumulate(T* out, const T* src, int64_t n) { accumulate_t(out, src, n); }                                 \
  void scale(T* x, int64_t n, float s) { scale_t(x, n, s); }                                                      \
  void act_fwd(Act act, const T* x, T* y, int64_t n) { act_fwd_t(act, x, y, n); }                                 \
  void act_bwd(Act act, const T* x, const T* dy, T* dx, int64_t n) { act_bwd_t(act, x, dy, dx, n); }              \
  void add_act_fwd(Act act, const T* a, const T* b, T* y, int64_t n) { add_act_fwd_t(act, a, b, y, n); }          \
  void add_act_bwd(Act act, const T* a, const T* b, const T* dy, T* d, int64_t n) {                               \
    add_act_bwd_t(act, a, b, dy, d, n);                                                                           \
  }                                                                                                               \
  void binary(BinOp op, const T* a, const T* b, T* out, const Broadcast& bc) { binary_t(op, a, b, out, bc); }     \
  void reduce_to_b(const T* g, T* gb, const Broadcast& bc) { reduce_to_b_t(g, gb, bc); }
FOR_FLOAT_AND_BF16(float)
FOR_FLOAT_AND_BF16(bf16)
#undef FOR_FLOAT_AND_BF16

}  // namespace ddpm::kernels::cuda
