// CUDA twin of kernels/elementwise_cpu.cpp. Memory-bound: bytes = (inputs + outputs) * 4 * n, so
// the target is the copy bandwidth. Version 2: each thread moves V = 4 floats with 16-byte loads
// when the pointers are aligned and n is a multiple of 4 (the U-Net's tensors always are), else
// V = 1; grid-stride loops over vectors. (Version 1 moved one float per thread.)
#include "kernels/elementwise.hpp"
#include "kernels/memory_bound.cuh"

namespace ddpm::kernels::cuda {
namespace {

using ddpm::cuda::aligned16;
using ddpm::cuda::grid_for;
using ddpm::cuda::kThreads;
using ddpm::cuda::load_vec;
using ddpm::cuda::stream;
using ddpm::cuda::store_vec;
using ddpm::cuda::Vec;

// One elementwise map over nv vectors of V floats: out = f(in0, in1, in2) per element. Unused
// inputs are null and read as 0.
template <int V, class F>
__global__ void map_k(F f, float* out, const float* in0, const float* in1, const float* in2, int64_t nv) {
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

template <class F>
void map(const char* name, F f, float* out, int64_t n, const float* in0 = nullptr, const float* in1 = nullptr,
         const float* in2 = nullptr) {
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
template <int V>
__global__ void binary_k(BinOp op, const float* a, const float* b, float* out, Broadcast bc) {
  DDPM_GRID_LOOP(i, bc.numel() / V) {
    const int64_t base = b_index(bc, i * V);
    Vec<V> x = load_vec<V>(a + i * V), r;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      float y = b[base + k * bc.b_stride[3]];
      r.v[k] = op == BinOp::Add ? x.v[k] + y : op == BinOp::Sub ? x.v[k] - y : x.v[k] * y;
    }
    store_vec<V>(out + i * V, r);
  }
}

// One thread per b element sums the positions that map to it: b is small (biases, embeddings),
// the sum runs over a's elements in order, so the result does not depend on scheduling.
__global__ void reduce_to_b_k(const float* g, float* gb, Broadcast bc, int64_t nb) {
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
            acc += g[((c0 * bc.shape[1] + c1) * bc.shape[2] + c2) * bc.shape[3] + c3];
          }
    gb[j] = acc;
  }
}

__global__ void f32_to_bf16_k(const float* x, bf16* y, int64_t n) {
  DDPM_GRID_LOOP(i, n) {
    uint32_t u = __float_as_uint(x[i]);
    bool nan = (u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu);
    y[i].bits = nan ? uint16_t((u >> 16) | 0x40) : uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
}
__global__ void bf16_to_f32_k(const bf16* x, float* y, int64_t n) {
  DDPM_GRID_LOOP(i, n) y[i] = __uint_as_float(uint32_t(x[i].bits) << 16);
}

}  // namespace

#define LAUNCH(kernel, n, ...)                                   \
  do {                                                           \
    kernel<<<grid_for(n), kThreads, 0, stream()>>>(__VA_ARGS__); \
    CUDA_CHECK_LAUNCH(#kernel);                                  \
  } while (0)

void fill(float* x, int64_t n, float v) {
  map("fill", [v] __device__(float, float, float) { return v; }, x, n);
}
void accumulate(float* out, const float* src, int64_t n) {
  map("accumulate", [] __device__(float o, float s, float) { return o + s; }, out, n, out, src);
}
void scale(float* x, int64_t n, float s) {
  map("scale", [s] __device__(float v, float, float) { return v * s; }, x, n, x);
}
void act_fwd(Act act, const float* x, float* y, int64_t n) {
  map("act_fwd", [act] __device__(float v, float, float) { return activate(act, v); }, y, n, x);
}
void act_bwd(Act act, const float* x, const float* dy, float* dx, int64_t n) {
  map("act_bwd", [act] __device__(float v, float g, float) { return g * activate_grad(act, v); }, dx, n, x, dy);
}
void add_act_fwd(Act act, const float* a, const float* b, float* y, int64_t n) {
  map("add_act_fwd", [act] __device__(float u, float v, float) { return activate(act, u + v); }, y, n, a, b);
}
void add_act_bwd(Act act, const float* a, const float* b, const float* dy, float* d, int64_t n) {
  map("add_act_bwd", [act] __device__(float u, float v, float g) { return g * activate_grad(act, u + v); }, d, n,
      a, b, dy);
}
void binary(BinOp op, const float* a, const float* b, float* out, const Broadcast& bc) {
  if (bc.shape[3] % 4 == 0 && aligned16({a, out})) LAUNCH(binary_k<4>, bc.numel() / 4, op, a, b, out, bc);
  else LAUNCH(binary_k<1>, bc.numel(), op, a, b, out, bc);
}
void reduce_to_b(const float* g, float* gb, const Broadcast& bc) {
  int64_t nb = 1;
  for (int d = 0; d < 4; ++d)
    if (bc.b_stride[d]) nb *= bc.shape[d];
  LAUNCH(reduce_to_b_k, nb, g, gb, bc, nb);
}
void f32_to_bf16(const float* x, bf16* y, int64_t n) { LAUNCH(f32_to_bf16_k, n, x, y, n); }
void bf16_to_f32(const bf16* x, float* y, int64_t n) { LAUNCH(bf16_to_f32_k, n, x, y, n); }

}  // namespace ddpm::kernels::cuda
