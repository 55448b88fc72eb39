// CPU reference for kernels/rng.hpp.
#include "kernels/rng.hpp"

namespace ddpm::kernels::cpu {

void fill_uniform(float* x, int64_t n, uint64_t seed, uint64_t offset) {
#pragma omp parallel for schedule(static) if (n > 16384)
  for (int64_t i = 0; i < n; ++i) x[i] = philox_uniform(seed, offset + uint64_t(i));
}

void fill_normal(float* x, int64_t n, uint64_t seed, uint64_t offset) {
#pragma omp parallel for schedule(static) if (n > 16384)
  for (int64_t i = 0; i < n; ++i) x[i] = philox_normal(seed, offset + uint64_t(i));
}

}  // namespace ddpm::kernels::cpu
