// The fused diffusion updates (engine/noise.hpp): noising a batch for training and one reverse
// step of sampling, each one pass over the images.
//
// Conventions (both backends): f32 images, contiguous, sample i covering elements
// [i * per_sample, (i + 1) * per_sample) (NHWC: per_sample = H * W * C); t is i64 [batch] and
// already checked to index the tables. Random numbers are drawn in-kernel with the Philox formula
// of kernels/rng.hpp: element j uses stream index offset + j, exactly what Tensor::randn would
// draw at the same (seed, offset), so both backends and a separate randn agree.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/hd.hpp"
#include "kernels/rng.hpp"

namespace ddpm::kernels {

// x0 = x0_c_x * x - x0_c_eps * eps, clamped to [-1, 1] when clip_x0; then
// x_prev = c_x0 * x0 + c_xt * x + sigma * z (z drawn only when sigma != 0), clamped when clamp.
// With guidance, eps = eps_u + guidance * (eps_c - eps_u).
struct ReverseStep {
  float x0_c_x, x0_c_eps, c_x0, c_xt, sigma, guidance;
  bool clip_x0, clamp;
};

DDPM_HD float guided_eps(float eps_c, const float* eps_u, int64_t j, float s) {
  return eps_u ? eps_u[j] + s * (eps_c - eps_u[j]) : eps_c;
}

// Clamps to [-1, 1] but lets NaN through (fminf/fmaxf would turn it into -1): a diverged model's
// samples must stay visibly broken, not become a black image.
DDPM_HD float clamp_unit(float v) { return v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v); }

DDPM_HD float reverse_value(float x, float eps, const ReverseStep& c, uint64_t seed, uint64_t index) {
  float x0 = c.x0_c_x * x - c.x0_c_eps * eps;
  if (c.clip_x0) x0 = clamp_unit(x0);
  float y = c.c_x0 * x0 + c.c_xt * x;
  if (c.sigma != 0.0f) y += c.sigma * philox_normal(seed, index);
  return c.clamp ? clamp_unit(y) : y;
}

namespace cpu {
// eps[j] = normal at (seed, offset + j); x_t[j] = sqrt_abar[t[i]] * x0[j] + sqrt_1m_abar[t[i]] * eps[j]
// for j in sample i. Reads x0 and t, writes x_t and eps.
void q_sample(const float* x0, const int64_t* t, const float* sqrt_abar, const float* sqrt_1m_abar, float* x_t,
              float* eps, int64_t batch, int64_t per_sample, uint64_t seed, uint64_t offset);
// x updated in place over n elements; eps_u null without guidance; z[j] at (seed, offset + j).
void reverse_step(float* x, const float* eps_c, const float* eps_u, const ReverseStep& c, int64_t n, uint64_t seed,
                  uint64_t offset);
}  // namespace cpu

#ifdef DDPM_HAVE_CUDA
namespace cuda {
void q_sample(const float* x0, const int64_t* t, const float* sqrt_abar, const float* sqrt_1m_abar, float* x_t,
              float* eps, int64_t batch, int64_t per_sample, uint64_t seed, uint64_t offset);
void reverse_step(float* x, const float* eps_c, const float* eps_u, const ReverseStep& c, int64_t n, uint64_t seed,
                  uint64_t offset);
}  // namespace cuda
#endif

}  // namespace ddpm::kernels
