// Samplers: the per-step coefficients against the formulas they implement (the seed's DDPM loop,
// respacing, DDIM), and sample() on a tiny U-Net: shapes, range, determinism, guidance.
#include <cmath>

#include "diffusion/sampler.hpp"
#include "diffusion_helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

TEST_CASE("respaced timesteps are distinct, ascending and span [1, T-1]", "[diffusion][sampler]") {
  for (int64_t T : {10, 1000})
    for (int64_t S : {int64_t(2), int64_t(3), int64_t(7), T / 2, T - 2, T - 1}) {
      CAPTURE(T, S);
      std::vector<int64_t> ts = respaced_timesteps(T, S);
      REQUIRE(ts.size() == size_t(S));
      CHECK(ts.front() == 1);
      CHECK(ts.back() == T - 1);
      for (size_t k = 1; k < ts.size(); ++k) CHECK(ts[k] > ts[k - 1]);
    }
  std::vector<int64_t> all = respaced_timesteps(50, 49);
  for (int64_t k = 0; k < 49; ++k) CHECK(all[size_t(k)] == k + 1);
  CHECK(respaced_timesteps(1000, 1) == std::vector<int64_t>{999});
  CHECK_THROWS_AS(respaced_timesteps(1000, 1000), Error);
  CHECK_THROWS_AS(respaced_timesteps(1000, 0), Error);
}

namespace {

// Without clipping a step is x_prev = c_x x_t - c_eps eps + sigma z: the coefficients through x0.
double c_x(const ReverseCoefficients& u) { return double(u.c_x0) * u.x0_c_x + u.c_xt; }
double c_eps(const ReverseCoefficients& u) { return double(u.c_x0) * u.x0_c_eps; }

SamplerConfig unclipped(SamplerKind kind = SamplerKind::DDPM, int64_t steps = 0) {
  SamplerConfig c;
  c.kind = kind;
  c.steps = steps;
  c.clip_x0 = false;
  return c;
}

}  // namespace

TEST_CASE("the full DDPM plan is the seed's loop", "[diffusion][sampler]") {
  for (ScheduleKind kind : {ScheduleKind::Linear, ScheduleKind::Cosine}) {
    Schedule s = make_schedule(kind, 1000);
    std::vector<SamplerStep> plan = sampler_plan(s, unclipped());
    REQUIRE(plan.size() == 999);
    for (size_t i = 0; i < plan.size(); ++i) {
      const int64_t t = 999 - int64_t(i);  // for i = 999 down to 1
      const double alpha = s.alpha[size_t(t)], abar = s.alpha_bar[size_t(t)], beta = s.beta[size_t(t)];
      const SamplerStep& st = plan[i];
      CAPTURE(t);
      REQUIRE(st.t == t);
      // x = 1/sqrt(alpha) (x - (1 - alpha)/sqrt(1 - abar) eps) + sqrt(beta) z, z = 0 at the end
      CHECK(c_x(st.update) == Approx(1 / std::sqrt(alpha)).epsilon(1e-5));
      CHECK(c_eps(st.update) == Approx((1 - alpha) / std::sqrt(1 - abar) / std::sqrt(alpha)).epsilon(1e-4));
      if (t == 1) CHECK(st.update.sigma == 0.0f);
      else CHECK(st.update.sigma == Approx(std::sqrt(beta)).epsilon(1e-5));
      CHECK(st.update.clamp == (t == 1));
      CHECK_FALSE(st.update.clip_x0);
      CHECK(st.update.x0_c_x == Approx(1 / std::sqrt(abar)).epsilon(1e-5));
      CHECK(st.update.x0_c_eps == Approx(std::sqrt(1 - abar) / std::sqrt(abar)).epsilon(1e-5));
    }
  }
}

TEST_CASE("respaced DDPM steps compose to the original alpha_bar", "[diffusion][sampler]") {
  Schedule s = make_schedule(ScheduleKind::Linear, 1000);
  std::vector<SamplerStep> plan = sampler_plan(s, unclipped(SamplerKind::DDPM, 25));
  REQUIRE(plan.size() == 25);
  // alpha'_k = 1 / c_x^2; walking up from the last step, alpha_bar[0] * prod alpha' = alpha_bar[t_k].
  double prod = s.alpha_bar[0];
  for (size_t i = plan.size(); i-- > 0;) {
    const double alpha = 1.0 / (c_x(plan[i].update) * c_x(plan[i].update));
    prod *= alpha;
    CHECK(prod == Approx(s.alpha_bar[size_t(plan[i].t)]).epsilon(1e-4));
    if (i + 1 < plan.size())  // sigma^2 = beta' = 1 - alpha'
      CHECK(double(plan[i].update.sigma) * plan[i].update.sigma == Approx(1 - alpha).epsilon(1e-3));
  }
}

TEST_CASE("DDIM steps move a noised x0 along q(x_t | x0) and predict x0 exactly", "[diffusion][sampler]") {
  // With the true eps, x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, and eta = 0, a DDIM step
  // must land on sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps, and x0 coefficients give x0.
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (ScheduleKind kind : {ScheduleKind::Linear, ScheduleKind::Cosine}) {
    Schedule s = make_schedule(kind, 1000);
    SamplerConfig c = unclipped(SamplerKind::DDIM, 20);
    std::vector<SamplerStep> plan = sampler_plan(s, c);
    std::vector<float> u = Tensor::rand({2}, gen).to_floats();
    const double x0 = 2 * u[0] - 1, eps = 2 * u[1] - 1;
    for (size_t i = 0; i < plan.size(); ++i) {
      const double abar = s.alpha_bar[size_t(plan[i].t)];
      const double abar_prev = s.alpha_bar[size_t(i + 1 < plan.size() ? plan[i + 1].t : 0)];
      const double xt = std::sqrt(abar) * x0 + std::sqrt(1 - abar) * eps;
      const double next = c_x(plan[i].update) * xt - c_eps(plan[i].update) * eps;
      CHECK(next == Approx(std::sqrt(abar_prev) * x0 + std::sqrt(1 - abar_prev) * eps).margin(1e-3));
      CHECK(plan[i].update.sigma == 0.0f);
      const ReverseCoefficients& u = plan[i].update;
      CHECK(u.x0_c_x * xt - u.x0_c_eps * eps == Approx(x0).margin(2e-3 * u.x0_c_x));
    }
    // eta = 1: sigma^2 is the posterior variance (1 - abar_prev) / (1 - abar_t) beta'.
    c.eta = 1.0f;
    plan = sampler_plan(s, c);
    for (size_t i = 0; i + 1 < plan.size(); ++i) {
      const double abar = s.alpha_bar[size_t(plan[i].t)], abar_prev = s.alpha_bar[size_t(plan[i + 1].t)];
      const double beta = 1 - abar / abar_prev;
      CHECK(double(plan[i].update.sigma) * plan[i].update.sigma ==
            Approx((1 - abar_prev) / (1 - abar) * beta).epsilon(1e-4));
    }
  }
  CHECK_THROWS_AS(parse_sampler("euler"), Error);
}

TEST_CASE("clipping x0: the same plan, and each step mixes the clamped x0 with x_t", "[diffusion][sampler]") {
  // A step through x0 must equal the textbook update written with that x0: DDPM's posterior mean
  // sqrt(abar_prev) beta / (1 - abar) x0 + sqrt(alpha) (1 - abar_prev) / (1 - abar) x_t, and DDIM's
  // sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps(x0), for an x0 outside [-1, 1] after clamping.
  Schedule s = make_schedule(ScheduleKind::Linear, 1000);
  for (SamplerKind kind : {SamplerKind::DDPM, SamplerKind::DDIM}) {
    SamplerConfig clip = unclipped(kind, 10), none = clip;
    clip.clip_x0 = true;
    std::vector<SamplerStep> a = sampler_plan(s, clip), b = sampler_plan(s, none);
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      const ReverseCoefficients &u = a[i].update, &v = b[i].update;
      CHECK(u.clip_x0);
      CHECK((u.x0_c_x == v.x0_c_x && u.c_x0 == v.c_x0 && u.c_xt == v.c_xt && u.sigma == v.sigma));
      const double abar = s.alpha_bar[size_t(a[i].t)];
      const double abar_prev = s.alpha_bar[size_t(i + 1 < a.size() ? a[i + 1].t : 0)];
      const double x0 = 1.0, xt = std::sqrt(abar) * 1.7 + std::sqrt(1 - abar) * 0.3;  // data-range x0 = 1.7 clamps to 1
      double want;
      if (kind == SamplerKind::DDPM) {
        const double alpha = abar / abar_prev;
        want = std::sqrt(abar_prev) * (1 - alpha) / (1 - abar) * x0 + std::sqrt(alpha) * (1 - abar_prev) / (1 - abar) * xt;
      } else {
        want = std::sqrt(abar_prev) * x0 + std::sqrt(1 - abar_prev) * (xt - std::sqrt(abar) * x0) / std::sqrt(1 - abar);
      }
      CAPTURE(i);
      CHECK(u.c_x0 * x0 + u.c_xt * xt == Approx(want).margin(1e-5));
    }
  }
}

namespace {

UNet tiny_unet(int64_t classes, uint64_t seed) {
  Generator g(seed);
  return UNet(tiny_config(classes), g);
}

}  // namespace

TEST_CASE("sample: shapes, range and determinism for each sampler", "[diffusion][sampler][model]") {
  Generator init = fresh_generator();
  CAPTURE(init.seed());
  UNet model = tiny_unet(3, init.seed());
  Schedule s = make_schedule(ScheduleKind::Linear, 20);  // a short chain keeps this fast
  Tensor y = Tensor::from_ints({0, 2, 1}, {3});
  SamplerConfig ddpm_full, respaced, ddim, ddim_eta, guided;
  respaced.steps = 5;
  ddim.kind = ddim_eta.kind = SamplerKind::DDIM;
  ddim.steps = ddim_eta.steps = 6;
  ddim_eta.eta = 0.5f;
  guided.guidance = 3.0f;
  for (const SamplerConfig& c : {ddpm_full, respaced, ddim, ddim_eta, guided}) {
    CAPTURE(int(c.kind), c.steps, c.eta, c.guidance);
    int64_t calls = 0;
    SampleHooks hooks;
    hooks.progress = [&](int64_t done, int64_t total) {
      CHECK(done == ++calls);
      CHECK(total == int64_t(sampler_plan(s, c).size()));
    };
    Generator g1(init.seed()), g2(init.seed()), g3(init.seed() + 1);
    Tensor a = sample(model, s, c, y, 0, 8, g1, Device::CPU, hooks);
    Tensor b = sample(model, s, c, y, 0, 8, g2, Device::CPU);
    Tensor d = sample(model, s, c, y, 0, 8, g3, Device::CPU);
    CHECK(calls == int64_t(sampler_plan(s, c).size()));
    REQUIRE(a.shape() == Shape{3, 8, 8, 1});
    CHECK(a.to_floats() == b.to_floats());  // same seed: bit-identical
    CHECK(a.to_floats() != d.to_floats());
    for (float v : a.to_floats()) REQUIRE((v >= -1.0f && v <= 1.0f));  // clamped at the end
  }
}

TEST_CASE("sample converts a bf16 model's weights once per chain, not once per step", "[diffusion][sampler][model]") {
  Generator init = fresh_generator();
  CAPTURE(init.seed());
  UNet model = tiny_unet(3, init.seed());
  model.set_compute_dtype(DType::BF16);
  Schedule s = make_schedule(ScheduleKind::Linear, 20);
  Tensor y = Tensor::from_ints({0, 2}, {2});
  auto copies = [&](int64_t steps) {
    SamplerConfig c;
    c.steps = steps;
    c.guidance = 3.0f;  // two forwards a step
    Generator g(init.seed());
    const int64_t before = CastCache::copies_made();
    (void)sample(model, s, c, y, 0, 8, g, Device::CPU);
    return CastCache::copies_made() - before;
  };
  const int64_t one = copies(1);
  CHECK(one > 0);
  CHECK(copies(5) == one);
}

TEST_CASE("guidance: s = 1 equals conditional sampling, s = 3 differs; traces see every step",
          "[diffusion][sampler][model]") {
  Generator init = fresh_generator();
  CAPTURE(init.seed());
  UNet model = tiny_unet(2, init.seed());
  Schedule s = make_schedule(ScheduleKind::Cosine, 16);
  Tensor y = Tensor::from_ints({1, 0}, {2});
  SamplerConfig c;
  c.kind = SamplerKind::DDIM;
  auto run = [&](float scale) {
    c.guidance = scale;
    Generator g(init.seed());
    return sample(model, s, c, y, 0, 8, g, Device::CPU);
  };
  Tensor plain = run(0.0f), one = run(1.0f), three = run(3.0f);
  CHECK(rel_err(one, plain) < 1e-4);  // eps_u + 1 (eps_c - eps_u) = eps_c
  CHECK(rel_err(three, plain) > 1e-3);

  std::vector<int64_t> seen;
  SampleHooks hooks;
  hooks.trace = [&](const StepView& v) {
    seen.push_back(v.t);
    CHECK(v.x_t.shape() == Shape{2, 8, 8, 1});
    for (float x : v.x0.to_floats()) REQUIRE((x >= -1.0f && x <= 1.0f));
  };
  c.guidance = 0.0f;
  Generator g(init.seed());
  Tensor traced = sample(model, s, c, y, 0, 8, g, Device::CPU, hooks);
  CHECK(traced.to_floats() == plain.to_floats());  // the trace pass does not disturb sampling
  std::vector<SamplerStep> plan = sampler_plan(s, c);
  REQUIRE(seen.size() == plan.size());
  for (size_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == plan[i].t);
}

TEST_CASE("guided sampling in one forward of 2n images gives the two forwards' chain", "[diffusion][sampler][model]") {
  Generator init = fresh_generator();
  CAPTURE(init.seed());
  UNet model = tiny_unet(3, init.seed());
  Schedule s = make_schedule(ScheduleKind::Linear, 12);
  Tensor y = Tensor::from_ints({2, 0, 1}, {3});
  SamplerConfig c;
  c.steps = 4;
  c.guidance = 2.5f;
  Generator g1(init.seed()), g2(init.seed());
  const Tensor got = sample(model, s, c, y, 0, 8, g1, Device::CPU);
  // The chain written out the plain way: the conditional and unconditional forwards one by one.
  NoGradGuard no_grad;
  Tensor x = Tensor::randn({3, 8, 8, 1}, g2);
  for (const SamplerStep& step : sampler_plan(s, c)) {
    const Tensor t = Tensor::from_ints(std::vector<int64_t>(3, step.t), {3});
    const Tensor eps_c = model.forward_embedded(x, model.embed(t, y, Device::CPU));
    const Tensor eps_u = model.forward_embedded(x, model.embed(t, Tensor(), Device::CPU));
    reverse_step(x, eps_c, eps_u, step.update, g2);
  }
  // Each image's arithmetic is the same either way; only a GEMM's blocking may differ with the
  // batch, so float rounding is all that may separate them.
  CHECK(rel_err(got, x) < 1e-5);
  CHECK(rel_err(got, sample(model, s, SamplerConfig{.steps = 4}, y, 0, 8, init, Device::CPU)) > 1e-3);
}

TEST_CASE("sample rejects bad requests", "[diffusion][sampler][errors]") {
  UNet cond = tiny_unet(3, 1), uncond = tiny_unet(0, 1);
  Schedule s = make_schedule(ScheduleKind::Linear, 10);
  Generator g(1);
  Tensor y = Tensor::from_ints({0}, {1});
  CHECK_THROWS_WITH(sample(uncond, s, {}, y, 0, 8, g, Device::CPU), Catch::Contains("unconditional"));
  CHECK_THROWS_WITH(sample(cond, s, {}, Tensor(), 2, 8, g, Device::CPU), Catch::Contains("needs labels"));
  CHECK_THROWS_WITH(sample(cond, s, {}, y, 0, 12, g, Device::CPU), Catch::Contains("multiple of 8"));
  CHECK_THROWS_AS(sample(uncond, s, {}, Tensor(), 0, 8, g, Device::CPU), Error);
  SamplerConfig too_many;
  too_many.steps = 10;
  CHECK_THROWS_WITH(sample(cond, s, too_many, y, 0, 8, g, Device::CPU), Catch::Contains("steps"));
  Tensor x = sample(uncond, s, {}, Tensor(), 2, 8, g, Device::CPU);
  CHECK(x.shape() == Shape{2, 8, 8, 1});
}
