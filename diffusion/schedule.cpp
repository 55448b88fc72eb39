#include "diffusion/schedule.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace ddpm {

ScheduleKind parse_schedule(const std::string& name) {
  if (name == "linear") return ScheduleKind::Linear;
  if (name == "cosine") return ScheduleKind::Cosine;
  detail::fail("schedule", "unknown schedule '", name, "' (expected linear or cosine)");
}

const char* schedule_name(ScheduleKind kind) { return kind == ScheduleKind::Linear ? "linear" : "cosine"; }

Tensor Schedule::tensor(const std::vector<double>& table, Device device) {
  std::vector<float> f(table.begin(), table.end());
  return Tensor::from_floats(f, {int64_t(f.size())}, device);
}

Schedule make_schedule(ScheduleKind kind, int64_t T) {
  DDPM_CHECK(T >= 2 && T <= kMaxT, "schedule", "T must be in [2, ", kMaxT, "], got ", T);
  Schedule s;
  s.kind = kind;
  s.T = T;
  s.beta.resize(size_t(T));
  if (kind == ScheduleKind::Linear) {
    // torch.linspace(1e-4, 0.02, T)
    for (int64_t t = 0; t < T; ++t) s.beta[size_t(t)] = 1e-4 + (0.02 - 1e-4) * double(t) / double(T - 1);
  } else {
    const double offset = 0.008;
    auto f = [&](double t) {
      double c = std::cos((t / double(T) + offset) / (1.0 + offset) * std::numbers::pi / 2.0);
      return c * c;
    };
    for (int64_t t = 0; t < T; ++t) s.beta[size_t(t)] = std::min(1.0 - f(double(t + 1)) / f(double(t)), 0.999);
  }
  double prod = 1.0;
  for (double b : s.beta) {
    prod *= 1.0 - b;
    s.alpha.push_back(1.0 - b);
    s.alpha_bar.push_back(prod);
    s.sqrt_abar.push_back(std::sqrt(prod));
    s.sqrt_1m_abar.push_back(std::sqrt(1.0 - prod));
  }
  return s;
}

}  // namespace ddpm
