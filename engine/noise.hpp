// The two fused diffusion updates, as engine functions (no autograd: they act on data, not on
// the network). Kernels: kernels/noise.hpp. Images are NHWC f32 on any device.
//
// q_sample (DDPM eq. 4, training's noising): draws eps ~ N(0, I) from `gen` and writes
//   x_t = sqrt_abar[t_i] * x0 + sqrt_1m_abar[t_i] * eps   per sample i,
// in one pass. `sqrt_abar`, `sqrt_1m_abar` are per-timestep tables [T] on x0's device; t is i64 [N]
// with values in [0, T), on the host or on x0's device, checked on the host (a t on the GPU is
// copied back for that, which waits for the GPU; the trainer keeps its t on the host). eps is
// what Tensor::randn(x0.shape(), gen) would draw on the same device.
//
// reverse_step (one step of the reverse process, in one pass): with eps = eps_u + s (eps_c - eps_u)
// when guidance is on (eps_u defined) and eps_c otherwise,
//   x0     = x0_c_x * x - x0_c_eps * eps            (the predicted clean image; clamped to
//                                                    [-1, 1] when clip_x0)
//   x_prev = c_x0 * x0 + c_xt * x + sigma * z,      z ~ N(0, I) from gen (skipped when sigma == 0),
// optionally clamped to [-1, 1]. Written through x0 because every sampler here is "predict x0, then
// mix it with x_t", and clipping x0 on the way is what keeps an imperfect model's chain inside the
// data range. z is what Tensor::randn(x.shape(), gen) would draw there; with sigma == 0 nothing is
// drawn and gen is unchanged. The caller's sampler picks the coefficients for DDPM, respaced DDPM
// or DDIM (see diffusion/). x is updated in place.
#pragma once
#include "engine/rng.hpp"
#include "engine/tensor.hpp"

namespace ddpm {

struct NoisedBatch {
  Tensor x_t;
  Tensor eps;
};

NoisedBatch q_sample(const Tensor& x0, const Tensor& t, const Tensor& sqrt_abar, const Tensor& sqrt_1m_abar,
                     Generator& gen);

struct ReverseCoefficients {
  float x0_c_x, x0_c_eps;  // x0 from x and eps
  float c_x0, c_xt;        // x_prev from x0 and x
  float sigma;
  float guidance = 0.0f;  // s; used when eps_u is defined
  bool clip_x0 = false;
  bool clamp = false;
};

void reverse_step(Tensor& x, const Tensor& eps_c, const Tensor& eps_u, const ReverseCoefficients& c, Generator& gen);

}  // namespace ddpm
