// q_sample and reverse_step against naive loops, and their use of the generator.
#include <algorithm>
#include <cmath>

#include "engine/noise.hpp"
#include "helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

namespace {

// Per-timestep tables like a schedule's: sqrt(abar) and sqrt(1 - abar) for a random decreasing abar.
struct Tables {
  Tensor sqrt_abar, sqrt_1m;
};
Tables tables(int64_t T, Generator& gen) {
  std::vector<float> u = Tensor::rand({T}, gen).to_floats(), a, b;
  double abar = 1.0;
  for (float x : u) {
    abar *= 1.0 - 0.05 * x;
    a.push_back(float(std::sqrt(abar)));
    b.push_back(float(std::sqrt(1.0 - abar)));
  }
  return {Tensor::from_floats(a, {T}), Tensor::from_floats(b, {T})};
}

Tensor random_t(int64_t n, int64_t T, Generator& gen) {
  std::vector<int64_t> t;
  for (float u : Tensor::rand({n}, gen).to_floats()) t.push_back(std::min<int64_t>(int64_t(u * float(T)), T - 1));
  return Tensor::from_ints(t, {n});
}

// x_prev by the documented formula, in double, with z given.
std::vector<float> naive_reverse(const std::vector<float>& x, const std::vector<float>& ec, const std::vector<float>* eu,
                                 const ReverseCoefficients& c, const std::vector<float>* z) {
  std::vector<float> out;
  for (size_t j = 0; j < x.size(); ++j) {
    double eps = eu ? (*eu)[j] + double(c.guidance) * (double(ec[j]) - (*eu)[j]) : ec[j];
    double x0 = double(c.x0_c_x) * x[j] - double(c.x0_c_eps) * eps;
    if (c.clip_x0) x0 = std::clamp(x0, -1.0, 1.0);
    double y = double(c.c_x0) * x0 + double(c.c_xt) * x[j] + (z ? double(c.sigma) * (*z)[j] : 0.0);
    out.push_back(float(c.clamp ? std::clamp(y, -1.0, 1.0) : y));
  }
  return out;
}

}  // namespace

TEST_CASE("q_sample noises each sample with its own timestep", "[noise]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  const int64_t T = 50;
  Tables tab = tables(T, gen);
  for (Shape s : {Shape{3, 5, 7, 3}, Shape{1, 1, 1, 1}, Shape{2, 4, 4, 1}}) {
    CAPTURE(shape_str(s));
    Tensor x0 = randn(s, gen), t = random_t(s[0], T, gen);
    Generator g(gen.seed() + 1, 123), replay = g;
    NoisedBatch nb = q_sample(x0, t, tab.sqrt_abar, tab.sqrt_1m, g);
    CHECK(g.offset() == 123 + uint64_t(x0.numel()));
    // eps is exactly what randn draws at the same (seed, offset).
    CHECK(nb.eps.to_floats() == Tensor::randn(s, replay).to_floats());
    // Per element, within f32 rounding of the two terms (their sum may cancel to near zero).
    std::vector<float> x = x0.to_floats(), e = nb.eps.to_floats(), a = tab.sqrt_abar.to_floats(),
                       b = tab.sqrt_1m.to_floats(), xt = nb.x_t.to_floats();
    std::vector<int64_t> tv = t.to_ints();
    const size_t per = size_t(x0.numel() / s[0]);
    for (size_t j = 0; j < x.size(); ++j) {
      size_t ti = size_t(tv[j / per]);
      double u = double(a[ti]) * x[j], w = double(b[ti]) * e[j];
      CHECK(std::abs(xt[j] - (u + w)) <= 4e-7 * (std::abs(u) + std::abs(w)));
    }
  }
}

TEST_CASE("q_sample rejects bad timesteps and shapes", "[noise][errors]") {
  Generator gen = fresh_generator();
  Tables tab = tables(10, gen);
  Tensor x0 = randn({2, 3, 3, 1}, gen);
  uint64_t before = gen.offset();
  CHECK_THROWS_WITH(q_sample(x0, Tensor::from_ints({0, 10}, {2}), tab.sqrt_abar, tab.sqrt_1m, gen),
                    Catch::Contains("q_sample") && Catch::Contains("10"));
  CHECK_THROWS_AS(q_sample(x0, Tensor::from_ints({-1, 0}, {2}), tab.sqrt_abar, tab.sqrt_1m, gen), Error);
  CHECK(gen.offset() == before);  // nothing drawn by a rejected call
  CHECK_THROWS_AS(q_sample(x0, Tensor::from_ints({0, 1, 2}, {3}), tab.sqrt_abar, tab.sqrt_1m, gen), Error);
  CHECK_THROWS_AS(q_sample(x0, Tensor::from_floats({0, 1}, {2}), tab.sqrt_abar, tab.sqrt_1m, gen), Error);
  CHECK_THROWS_AS(q_sample(x0, Tensor::from_ints({0, 1}, {2}), tab.sqrt_abar, randn({9}, gen), gen), Error);
  CHECK_THROWS_AS(q_sample(x0, Tensor::from_ints({0, 1}, {2}), tab.sqrt_abar, Tensor(), gen), Error);
}

TEST_CASE("reverse_step matches the formula with and without guidance", "[noise]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  const Shape s{2, 3, 5, 3};
  Tensor x = randn(s, gen), ec = randn(s, gen), eu = randn(s, gen);
  std::vector<float> xv = x.to_floats(), ecv = ec.to_floats(), euv = eu.to_floats();
  for (bool guided : {false, true}) {
    CAPTURE(guided);
    ReverseCoefficients c{1.3f, 0.4f, 0.2f, 0.75f, 0.15f, 3.0f, false, false};
    Tensor y = x.clone();
    Generator g(gen.seed() + 7, 1000), replay = g;
    reverse_step(y, ec, guided ? eu : Tensor(), c, g);
    CHECK(g.offset() == 1000 + uint64_t(x.numel()));
    std::vector<float> z = Tensor::randn(s, replay).to_floats();
    CHECK(rel_err(y, naive_reverse(xv, ecv, guided ? &euv : nullptr, c, &z)) < 1e-6);
  }
}

TEST_CASE("reverse_step with sigma 0 draws nothing, and clamps", "[noise]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  const Shape s{3, 2, 2, 5};
  Tensor x = randn(s, gen, 2.0f), ec = randn(s, gen);
  std::vector<float> xv = x.to_floats(), ecv = ec.to_floats();
  ReverseCoefficients c{1.5f, 0.5f, 0.6f, 0.5f, 0.0f};
  Tensor y = x.clone();
  Generator g(gen.seed(), 55);
  reverse_step(y, ec, Tensor(), c, g);
  CHECK(g.offset() == 55);
  CHECK(rel_err(y, naive_reverse(xv, ecv, nullptr, c, nullptr)) < 1e-6);

  c.clip_x0 = true;  // x0 of scale ~3: most of it clamps, and the result differs from unclipped
  Tensor yc = x.clone();
  reverse_step(yc, ec, Tensor(), c, g);
  CHECK(rel_err(yc, naive_reverse(xv, ecv, nullptr, c, nullptr)) < 1e-6);
  CHECK(rel_err(yc, y) > 0.1);
  c.clip_x0 = false;

  c.clamp = true;  // inputs of scale 2 so many values leave [-1, 1]
  y = x.clone();
  reverse_step(y, ec, Tensor(), c, g);
  std::vector<float> yv = y.to_floats(), ref = naive_reverse(xv, ecv, nullptr, c, nullptr);
  CHECK(rel_err(yv, ref) < 1e-6);
  CHECK(std::count(yv.begin(), yv.end(), 1.0f) + std::count(yv.begin(), yv.end(), -1.0f) > 0);
  for (float v : yv) CHECK((v >= -1.0f && v <= 1.0f));

  // A NaN from a diverged network stays NaN through both clamps: a sample must not turn it into a
  // plausible -1 (a black image).
  c.clip_x0 = true;
  std::vector<float> bad = ecv;
  bad[7] = NAN;
  y = x.clone();
  reverse_step(y, Tensor::from_floats(bad, s), Tensor(), c, g);
  yv = y.to_floats();
  CHECK(std::isnan(yv[7]));
  CHECK(std::count_if(yv.begin(), yv.end(), [](float v) { return std::isnan(v); }) == 1);
}

TEST_CASE("reverse_step rejects mismatched inputs", "[noise][errors]") {
  Generator gen = fresh_generator();
  Tensor x = randn({2, 2, 2, 3}, gen);
  ReverseCoefficients c{1.0f, 0.1f, 1.0f, 0.0f, 0.1f};
  CHECK_THROWS_WITH(reverse_step(x, randn({2, 2, 2, 4}, gen), Tensor(), c, gen),
                    Catch::Contains("reverse_step") && Catch::Contains("[2, 2, 2, 4]"));
  CHECK_THROWS_AS(reverse_step(x, randn({2, 2, 2, 3}, gen), randn({2, 2, 3, 2}, gen), c, gen), Error);
  Tensor empty;
  CHECK_THROWS_AS(reverse_step(empty, randn({2}, gen), Tensor(), c, gen), Error);
}
