// CUDA twin of kernels/rng_cpu.cpp: the same Philox formula (kernels/rng.hpp) per element.
#include "kernels/cuda_launch.cuh"
#include "kernels/rng.hpp"

namespace ddpm::kernels::cuda {
namespace {
__global__ void uniform_k(float* x, int64_t n, uint64_t seed, uint64_t offset) {
  DDPM_GRID_LOOP(i, n) x[i] = philox_uniform(seed, offset + uint64_t(i));
}
__global__ void normal_k(float* x, int64_t n, uint64_t seed, uint64_t offset) {
  DDPM_GRID_LOOP(i, n) x[i] = philox_normal(seed, offset + uint64_t(i));
}
}  // namespace

void fill_uniform(float* x, int64_t n, uint64_t seed, uint64_t offset) {
  uniform_k<<<ddpm::cuda::grid_for(n), ddpm::cuda::kThreads, 0, ddpm::cuda::stream()>>>(x, n, seed, offset);
  CUDA_CHECK_LAUNCH("uniform_k");
}
void fill_normal(float* x, int64_t n, uint64_t seed, uint64_t offset) {
  normal_k<<<ddpm::cuda::grid_for(n), ddpm::cuda::kThreads, 0, ddpm::cuda::stream()>>>(x, n, seed, offset);
  CUDA_CHECK_LAUNCH("normal_k");
}
}  // namespace ddpm::kernels::cuda
