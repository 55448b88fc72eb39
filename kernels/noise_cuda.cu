// CUDA twin of kernels/noise_cpu.cpp: one thread per element, grid-stride, noise drawn in-kernel.
//
// Napkin math: q_sample reads x0 and writes x_t, eps (12 B per element); reverse_step reads x,
// eps_c (and eps_u) and writes x (12-16 B). A Philox normal is ~10 rounds of two 32x32->64
// multiplies plus log, cos and sqrt, about 100 instructions, so at 64x64x3 images these are a
// few microseconds each: launch latency, not bandwidth, is their cost.
#include "kernels/cuda_launch.cuh"
#include "kernels/noise.hpp"

namespace ddpm::kernels::cuda {
namespace {

__global__ void q_sample_k(const float* x0, const int64_t* t, const float* sqrt_abar, const float* sqrt_1m_abar,
                           float* x_t, float* eps, int64_t n, int64_t per_sample, uint64_t seed, uint64_t offset) {
  DDPM_GRID_LOOP(j, n) {
    int64_t ti = t[j / per_sample];
    float e = philox_normal(seed, offset + uint64_t(j));
    eps[j] = e;
    x_t[j] = sqrt_abar[ti] * x0[j] + sqrt_1m_abar[ti] * e;
  }
}

__global__ void reverse_step_k(float* x, const float* eps_c, const float* eps_u, ReverseStep c, int64_t n,
                               uint64_t seed, uint64_t offset) {
  DDPM_GRID_LOOP(j, n) x[j] = reverse_value(x[j], guided_eps(eps_c[j], eps_u, j, c.guidance), c, seed, offset + uint64_t(j));
}

}  // namespace

void q_sample(const float* x0, const int64_t* t, const float* sqrt_abar, const float* sqrt_1m_abar, float* x_t,
              float* eps, int64_t batch, int64_t per_sample, uint64_t seed, uint64_t offset) {
  int64_t n = batch * per_sample;
  q_sample_k<<<ddpm::cuda::grid_for(n), ddpm::cuda::kThreads, 0, ddpm::cuda::stream()>>>(
      x0, t, sqrt_abar, sqrt_1m_abar, x_t, eps, n, per_sample, seed, offset);
  CUDA_CHECK_LAUNCH("q_sample_k");
}

void reverse_step(float* x, const float* eps_c, const float* eps_u, const ReverseStep& c, int64_t n, uint64_t seed,
                  uint64_t offset) {
  reverse_step_k<<<ddpm::cuda::grid_for(n), ddpm::cuda::kThreads, 0, ddpm::cuda::stream()>>>(x, eps_c, eps_u, c, n,
                                                                                             seed, offset);
  CUDA_CHECK_LAUNCH("reverse_step_k");
}

}  // namespace ddpm::kernels::cuda
