// The reverse process: from x_T ~ N(0, I) to an image, one network call (two with guidance) per step.
//
// Every sampler here is a sequence of steps "predict x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t),
// then x_prev = c_x0 x0 + c_xt x_t + sigma z" (engine reverse_step); they differ only in which
// timesteps they visit and in the coefficients.
//
// - DDPM (the seed's loop, Algorithm 2): t = T-1 down to 1,
//     x_prev = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t) + sqrt(beta_t) z,
//   z = 0 at the last step, then clamp to [-1, 1]. Through x0 that is the posterior mean
//   c_x0 = sqrt(abar_prev) beta_t / (1 - abar_t), c_xt = sqrt(alpha_t) (1 - abar_prev) / (1 - abar_t).
// - Respaced DDPM (Nichol & Dhariwal 2021, sec. 4): visit S timesteps t_1 < ... < t_S spread
//   over [1, T-1]; step k is the DDPM step of a schedule with alpha'_k = alpha_bar[t_k] / alpha_bar[t_{k-1}]
//   (alpha_bar[0] before the first), beta'_k = 1 - alpha'_k. With S = T-1 this is the seed's loop.
// - DDIM (Song et al. 2021, eq. 12): predict x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t), then
//     x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) eps + sigma z,
//   sigma = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev); eta = 0 is deterministic.
//   The eps in the second term is the one x0 implies, (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t).
// - Clipping x0 to [-1, 1] before it is used (Ho et al.'s code does, the seed's loop does not):
//   the x0 predicted at large t is x_t / sqrt(abar_t) ~ 150 x_t minus a nearly equal term, so a
//   small error in eps becomes a large one in x0, and an undertrained model's chain drifts out of
//   the data range (saturated, blotchy images). Clipped, the same model gives recognisable images.
//   Without clipping each sampler is exactly the formula above.
// - Classifier-free guidance (Ho & Salimans 2022) with scale s > 0: eps = eps_u + s (eps_c - eps_u),
//   eps_u from the network without labels; s = 0 uses eps_c alone (one call per step).
// The schedule is the sampler's own: it may differ from the one the model was trained with.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "diffusion/schedule.hpp"
#include "engine/noise.hpp"
#include "model/unet.hpp"

namespace ddpm {

enum class SamplerKind { DDPM, DDIM };
SamplerKind parse_sampler(const std::string& name);  // "ddpm" | "ddim"

struct SamplerConfig {
  SamplerKind kind = SamplerKind::DDPM;
  int64_t steps = 0;      // timesteps visited; 0 = all of T-1 .. 1
  float eta = 0.0f;       // DDIM's noise scale (0 = deterministic, 1 = DDPM's posterior variance)
  float guidance = 0.0f;  // classifier-free guidance scale s; 0 = conditional eps only
  bool clip_x0 = true;    // clamp the predicted x0 to [-1, 1] at every step
  bool graph = true;      // replay the network's device work as one graph per step (engine/graph.hpp);
                          // the same numbers, fewer launches on the GPU
};

// One step of a sampler, in sampling order: the network sees timestep t; `update` turns x_t into
// x_prev (its x0_c_x, x0_c_eps give the step's prediction of the clean image).
struct SamplerStep {
  int64_t t;
  ReverseCoefficients update;
};

// The S timesteps of a respaced sampler, ascending, evenly spread over [1, T-1] (S <= T-1).
std::vector<int64_t> respaced_timesteps(int64_t T, int64_t steps);
// The full plan, first step (largest t) first; its last step has sigma = 0 and clamps.
std::vector<SamplerStep> sampler_plan(const Schedule& schedule, const SamplerConfig& config);

// What a trace callback sees at each step: x_t before the update and the predicted x0 (clamped).
struct StepView {
  int64_t index;  // 0 .. plan size - 1
  int64_t t;
  const Tensor& x_t;
  const Tensor& x0;
};

struct SampleHooks {
  std::function<void(int64_t done, int64_t total)> progress;  // after each step
  std::function<void(const StepView&)> trace;                 // costs one extra pass per step
};

// Draws labels.size(0) images (or `count` when labels is undefined: an unconditional model)
// of size image_size x image_size with the model's current weights, under NoGradGuard. Returns
// [N, H, W, C] in [-1, 1] on `device`. Deterministic given gen's (seed, offset).
Tensor sample(const UNet& model, const Schedule& schedule, const SamplerConfig& config, const Tensor& labels,
              int64_t count, int64_t image_size, Generator& gen, Device device, const SampleHooks& hooks = {});

}  // namespace ddpm
