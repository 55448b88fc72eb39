// Noise schedules of the forward process q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I).
//
// A schedule is the list beta_0 .. beta_{T-1}; everything else follows from it:
//   alpha_t = 1 - beta_t,  alpha_bar_t = alpha_0 * ... * alpha_t,
//   q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)    (DDPM eq. 4)
// Timestep t indexes these tables directly, as in the seed: training draws t in [1, T-1] and the
// sampler walks t = T-1 down to 1 (t = 0 is never used by the network).
//
// - linear: beta evenly spaced from 1e-4 to 0.02 (Ho et al. 2020; T = 1000 in the seed).
// - cosine: alpha_bar(t) = f(t) / f(0) with f(t) = cos^2(((t / T + s) / (1 + s)) * pi / 2), s = 0.008,
//   and beta_t = min(1 - alpha_bar(t + 1) / alpha_bar(t), 0.999) (Nichol & Dhariwal 2021).
// Host tables are double (the samplers derive their coefficients from them); q_sample wants
// f32 tensors on the data's device.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.hpp"

namespace ddpm {

enum class ScheduleKind { Linear, Cosine };
ScheduleKind parse_schedule(const std::string& name);  // "linear" | "cosine", else ddpm::Error
const char* schedule_name(ScheduleKind kind);

struct Schedule {
  ScheduleKind kind = ScheduleKind::Linear;
  int64_t T = 0;
  std::vector<double> beta, alpha, alpha_bar, sqrt_abar, sqrt_1m_abar;

  // One of the tables above as an f32 tensor [T] on `device`.
  static Tensor tensor(const std::vector<double>& table, Device device);
};

// T in [2, kMaxT]: far past any useful chain (the seed uses 1000), and a bound on the tables a
// corrupt checkpoint's T could ask for.
constexpr int64_t kMaxT = 100000;
Schedule make_schedule(ScheduleKind kind, int64_t T = 1000);

}  // namespace ddpm
