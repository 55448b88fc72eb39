// CPU reference for kernels/noise.hpp: one loop over the elements.
#include "kernels/noise.hpp"

namespace ddpm::kernels::cpu {

void q_sample(const float* x0, const int64_t* t, const float* sqrt_abar, const float* sqrt_1m_abar, float* x_t,
              float* eps, int64_t batch, int64_t per_sample, uint64_t seed, uint64_t offset) {
#pragma omp parallel for schedule(static) if (batch * per_sample > 16384)
  for (int64_t i = 0; i < batch; ++i) {
    const float a = sqrt_abar[t[i]], b = sqrt_1m_abar[t[i]];
    for (int64_t j = i * per_sample; j < (i + 1) * per_sample; ++j) {
      eps[j] = philox_normal(seed, offset + uint64_t(j));
      x_t[j] = a * x0[j] + b * eps[j];
    }
  }
}

void reverse_step(float* x, const float* eps_c, const float* eps_u, const ReverseStep& c, int64_t n, uint64_t seed,
                  uint64_t offset) {
#pragma omp parallel for schedule(static) if (n > 16384)
  for (int64_t j = 0; j < n; ++j)
    x[j] = reverse_value(x[j], guided_eps(eps_c[j], eps_u, j, c.guidance), c, seed, offset + uint64_t(j));
}

}  // namespace ddpm::kernels::cpu
