// Noise schedules against their closed forms, and the forward process: iterating
// q(x_t | x_{t-1}) step by step has the moments of the closed form q(x_t | x_0) (DDPM eq. 4),
// which is also what the engine's q_sample draws.
#include <cmath>
#include <numbers>

#include "diffusion/schedule.hpp"
#include "engine/noise.hpp"
#include "helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

TEST_CASE("linear schedule: beta evenly spaced 1e-4..0.02, alpha_bar its running product", "[diffusion][schedule]") {
  for (int64_t T : {2, 10, 1000}) {
    Schedule s = make_schedule(ScheduleKind::Linear, T);
    REQUIRE(s.T == T);
    REQUIRE(s.beta.size() == size_t(T));
    CHECK(s.beta.front() == Approx(1e-4).epsilon(1e-12));
    CHECK(s.beta.back() == Approx(0.02).epsilon(1e-12));
    double prod = 1.0;
    for (int64_t t = 0; t < T; ++t) {
      const double beta = 1e-4 + t * (0.02 - 1e-4) / double(T - 1);
      prod *= 1.0 - beta;
      CHECK(s.beta[size_t(t)] == Approx(beta).epsilon(1e-12));
      CHECK(s.alpha[size_t(t)] == Approx(1.0 - beta).epsilon(1e-12));
      CHECK(s.alpha_bar[size_t(t)] == Approx(prod).epsilon(1e-10));
      CHECK(s.sqrt_abar[size_t(t)] == Approx(std::sqrt(prod)).epsilon(1e-10));
      CHECK(s.sqrt_1m_abar[size_t(t)] == Approx(std::sqrt(1.0 - prod)).epsilon(1e-10));
    }
  }
  // The seed's T = 1000 ends close to pure noise: alpha_bar_999 = prod(1 - beta) ~ 4e-5.
  CHECK(make_schedule(ScheduleKind::Linear, 1000).alpha_bar.back() == Approx(4.04e-5).epsilon(0.01));
}

TEST_CASE("cosine schedule: alpha_bar follows cos^2 with s = 0.008, betas clipped at 0.999", "[diffusion][schedule]") {
  for (int64_t T : {4, 50, 1000}) {
    Schedule s = make_schedule(ScheduleKind::Cosine, T);
    auto f = [&](double t) {
      const double c = std::cos((t / double(T) + 0.008) / 1.008 * std::numbers::pi / 2);
      return c * c;
    };
    double prod = 1.0;
    for (int64_t t = 0; t < T; ++t) {
      const double closed = f(double(t + 1)) / f(0.0);  // alpha_bar after step t, unclipped
      const double beta = std::min(1.0 - f(double(t + 1)) / f(double(t)), 0.999);
      prod *= 1.0 - beta;
      CHECK(s.beta[size_t(t)] == Approx(beta).epsilon(1e-12));
      CHECK(s.alpha_bar[size_t(t)] == Approx(prod).epsilon(1e-10));
      if (beta < 0.999) CHECK(s.alpha_bar[size_t(t)] == Approx(closed).epsilon(1e-9).margin(1e-12));
      CHECK(s.sqrt_1m_abar[size_t(t)] == Approx(std::sqrt(1.0 - prod)).epsilon(1e-10));
    }
    CHECK(s.beta.back() == Approx(0.999));  // f(T) = cos^2(pi/2) = 0: the last beta is clipped
  }
}

TEST_CASE("schedule errors and names", "[diffusion][schedule][errors]") {
  CHECK(parse_schedule("linear") == ScheduleKind::Linear);
  CHECK(parse_schedule("cosine") == ScheduleKind::Cosine);
  CHECK(std::string(schedule_name(ScheduleKind::Cosine)) == "cosine");
  CHECK_THROWS_WITH(parse_schedule("quadratic"), Catch::Contains("quadratic"));
  CHECK_THROWS_AS(make_schedule(ScheduleKind::Linear, 1), Error);
  Tensor table = Schedule::tensor(make_schedule(ScheduleKind::Linear, 7).sqrt_abar, Device::CPU);
  CHECK(table.shape() == Shape{7});
}

namespace {

struct Moments {
  double mean, var, slope;  // of r = x_t - sqrt(abar) x0, and the regression slope of x_t on x0
};

Moments moments(const std::vector<float>& xt, const std::vector<float>& x0, double sqrt_abar) {
  double sr = 0, srr = 0, sxy = 0, sxx = 0;
  const double m = double(xt.size());
  for (size_t i = 0; i < xt.size(); ++i) {
    const double r = double(xt[i]) - sqrt_abar * double(x0[i]);
    sr += r;
    srr += r * r;
    sxy += double(xt[i]) * double(x0[i]);
    sxx += double(x0[i]) * double(x0[i]);
  }
  return {sr / m, srr / m - (sr / m) * (sr / m), sxy / sxx};
}

// The moments of x_t given x0 should be those of N(sqrt(abar) x0, (1 - abar) I). Bounds are 6
// standard errors: the mean of M draws errs by sqrt(var / M), a variance by var sqrt(2 / M).
void check_moments(const Moments& got, double sqrt_abar, double var, double m, double sum_x0_sq) {
  CHECK(std::abs(got.mean) < 6 * std::sqrt(var / m));
  CHECK(std::abs(got.var - var) < 6 * var * std::sqrt(2.0 / m));
  CHECK(std::abs(got.slope - sqrt_abar) < 6 * std::sqrt(var / sum_x0_sq));
}

}  // namespace

TEST_CASE("iterating q(x_t | x_{t-1}) matches the closed form and q_sample", "[diffusion][schedule][forward]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  const int64_t M = 16384;
  for (auto [kind, t] : {std::pair{ScheduleKind::Linear, int64_t(150)}, std::pair{ScheduleKind::Linear, int64_t(999)},
                         std::pair{ScheduleKind::Cosine, int64_t(500)}}) {
    CAPTURE(schedule_name(kind), t);
    Schedule s = make_schedule(kind, 1000);
    std::vector<float> x0 = Tensor::rand({M}, gen).to_floats();
    double sum_x0_sq = 0;
    for (float& v : x0) {
      v = 2 * v - 1;  // data-like values in [-1, 1]
      sum_x0_sq += double(v) * v;
    }
    // x_s = sqrt(1 - beta_s) x_{s-1} + sqrt(beta_s) z for s = 0..t, in double.
    std::vector<double> x(x0.begin(), x0.end());
    for (int64_t step = 0; step <= t; ++step) {
      std::vector<float> z = Tensor::randn({M}, gen).to_floats();
      const double b = s.beta[size_t(step)];
      for (int64_t i = 0; i < M; ++i) x[size_t(i)] = std::sqrt(1 - b) * x[size_t(i)] + std::sqrt(b) * z[size_t(i)];
    }
    const double sqrt_abar = s.sqrt_abar[size_t(t)], var = 1.0 - s.alpha_bar[size_t(t)];
    check_moments(moments(std::vector<float>(x.begin(), x.end()), x0, sqrt_abar), sqrt_abar, var, double(M), sum_x0_sq);

    // The engine's closed-form draw: x0 as [M/16, 4, 4, 1] images, all at timestep t.
    Tensor images = Tensor::from_floats(x0, {M / 16, 4, 4, 1});
    Tensor ts = Tensor::from_ints(std::vector<int64_t>(size_t(M / 16), t), {M / 16});
    NoisedBatch q = q_sample(images, ts, Schedule::tensor(s.sqrt_abar, Device::CPU),
                             Schedule::tensor(s.sqrt_1m_abar, Device::CPU), gen);
    check_moments(moments(q.x_t.to_floats(), x0, sqrt_abar), sqrt_abar, var, double(M), sum_x0_sq);
    // And q_sample's x_t is exactly the formula applied to the eps it returns.
    std::vector<float> xt = q.x_t.to_floats(), eps = q.eps.to_floats(), ref;
    for (int64_t i = 0; i < M; ++i)
      ref.push_back(float(sqrt_abar * x0[size_t(i)] + s.sqrt_1m_abar[size_t(t)] * eps[size_t(i)]));
    CHECK(rel_err(xt, ref) < 1e-6);
  }
}
