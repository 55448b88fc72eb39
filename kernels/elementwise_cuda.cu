// CUDA twin of kernels/elementwise_cpu.cpp. Version 1: one element per thread, grid-stride.
// These are memory-bound: bytes = (inputs + outputs) * 4 * n; the target is the copy bandwidth.
#include "kernels/cuda_launch.cuh"
#include "kernels/elementwise.hpp"

namespace ddpm::kernels::cuda {
namespace {

using ddpm::cuda::grid_for;
using ddpm::cuda::kThreads;
using ddpm::cuda::stream;

__global__ void fill_k(float* x, int64_t n, float v) { DDPM_GRID_LOOP(i, n) x[i] = v; }
__global__ void accumulate_k(float* out, const float* src, int64_t n) { DDPM_GRID_LOOP(i, n) out[i] += src[i]; }
__global__ void scale_k(float* x, int64_t n, float s) { DDPM_GRID_LOOP(i, n) x[i] *= s; }
__global__ void act_fwd_k(Act act, const float* x, float* y, int64_t n) { DDPM_GRID_LOOP(i, n) y[i] = activate(act, x[i]); }
__global__ void act_bwd_k(Act act, const float* x, const float* dy, float* dx, int64_t n) {
  DDPM_GRID_LOOP(i, n) dx[i] = dy[i] * activate_grad(act, x[i]);
}
__global__ void add_act_fwd_k(Act act, const float* a, const float* b, float* y, int64_t n) {
  DDPM_GRID_LOOP(i, n) y[i] = activate(act, a[i] + b[i]);
}
__global__ void add_act_bwd_k(Act act, const float* a, const float* b, const float* dy, float* d, int64_t n) {
  DDPM_GRID_LOOP(i, n) d[i] = dy[i] * activate_grad(act, a[i] + b[i]);
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

__global__ void binary_k(BinOp op, const float* a, const float* b, float* out, Broadcast bc) {
  DDPM_GRID_LOOP(i, bc.numel()) {
    float x = a[i], y = b[b_index(bc, i)];
    out[i] = op == BinOp::Add ? x + y : op == BinOp::Sub ? x - y : x * y;
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

#define LAUNCH(kernel, n, ...)                                          \
  do {                                                                  \
    kernel<<<grid_for(n), kThreads, 0, stream()>>>(__VA_ARGS__);        \
    CUDA_CHECK_LAUNCH(#kernel);                                         \
  } while (0)

void fill(float* x, int64_t n, float v) { LAUNCH(fill_k, n, x, n, v); }
void accumulate(float* out, const float* src, int64_t n) { LAUNCH(accumulate_k, n, out, src, n); }
void scale(float* x, int64_t n, float s) { LAUNCH(scale_k, n, x, n, s); }
void act_fwd(Act act, const float* x, float* y, int64_t n) { LAUNCH(act_fwd_k, n, act, x, y, n); }
void act_bwd(Act act, const float* x, const float* dy, float* dx, int64_t n) { LAUNCH(act_bwd_k, n, act, x, dy, dx, n); }
void add_act_fwd(Act act, const float* a, const float* b, float* y, int64_t n) {
  LAUNCH(add_act_fwd_k, n, act, a, b, y, n);
}
void add_act_bwd(Act act, const float* a, const float* b, const float* dy, float* d, int64_t n) {
  LAUNCH(add_act_bwd_k, n, act, a, b, dy, d, n);
}
void binary(BinOp op, const float* a, const float* b, float* out, const Broadcast& bc) {
  LAUNCH(binary_k, bc.numel(), op, a, b, out, bc);
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
