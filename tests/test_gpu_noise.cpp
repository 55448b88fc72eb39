// q_sample and reverse_step on the GPU against the CPU: the same noise drawn in-kernel on both.
#include <algorithm>
#include <cmath>

#include "engine/noise.hpp"
#include "gpu_helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

namespace {

// Tables from a linear beta schedule (T = 1000, 1e-4 .. 0.02) as the seed's.
std::pair<Tensor, Tensor> seed_tables() {
  std::vector<float> a, b;
  double abar = 1.0;
  for (int i = 0; i < 1000; ++i) {
    abar *= 1.0 - (1e-4 + (0.02 - 1e-4) * i / 999.0);
    a.push_back(float(std::sqrt(abar)));
    b.push_back(float(std::sqrt(1.0 - abar)));
  }
  return {Tensor::from_floats(a, {1000}), Tensor::from_floats(b, {1000})};
}

// Odd shapes, batch 1 and 1x1, and the seed's real ones: (64x64 RGB, batch 64), (32x32 gray, batch 128).
const std::vector<Shape> kShapes{{3, 5, 7, 3}, {1, 1, 1, 1}, {2, 9, 9, 5}, {64, 64, 64, 3}, {128, 32, 32, 1}};

// Element by element within f32 rounding of the terms (values here are O(1) to O(10)): a single
// element that cancels to near zero is not held to a relative bound, a wrong formula is off by far more.
void check_close(const Tensor& gpu, const Tensor& cpu) {
  REQUIRE(gpu.device() == Device::CUDA);
  std::vector<float> g = gpu.to_floats(), c = cpu.to_floats();
  float worst = 0.0f;
  for (size_t i = 0; i < c.size(); ++i) worst = std::max(worst, std::isfinite(g[i]) ? std::abs(g[i] - c[i]) : INFINITY);
  CHECK(worst < 1e-5f);
  if (c.size() >= 100) CHECK(rel_err(g, c) < 1e-6);  // over many elements the norm does not cancel
}

}  // namespace

TEST_CASE("gpu: q_sample draws the same eps as the CPU and the same x_t", "[gpu][noise]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  auto [a, b] = seed_tables();
  Tensor ga = a.to(Device::CUDA), gb = b.to(Device::CUDA);
  for (const Shape& s : kShapes) {
    CAPTURE(shape_str(s));
    Tensor x0 = randn(s, gen);
    std::vector<int64_t> tv;
    for (float u : Tensor::rand({s[0]}, gen).to_floats()) tv.push_back(std::min<int64_t>(int64_t(u * 1000), 999));
    Tensor t = Tensor::from_ints(tv, {s[0]});
    Generator c(gen.seed() + 3, 77), g = c, replay = c;
    NoisedBatch on_cpu = q_sample(x0, t, a, b, c);
    NoisedBatch on_gpu = q_sample(x0.to(Device::CUDA), t.to(Device::CUDA), ga, gb, g);
    REQUIRE(on_gpu.x_t.device() == Device::CUDA);
    CHECK(g.offset() == c.offset());
    CHECK(rel_err(on_gpu.eps, on_cpu.eps) < 1e-6);  // libm log/cos may differ in the last ulp
    check_close(on_gpu.x_t, on_cpu.x_t);
    // On the GPU, eps is bit for bit what randn draws there at the same position.
    CHECK(on_gpu.eps.to_floats() == Tensor::randn(s, replay, Device::CUDA).to_floats());
  }
}

TEST_CASE("gpu: reverse_step matches the CPU with and without guidance, noise, x0 clipping and clamp", "[gpu][noise]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (const Shape& s : kShapes) {
    CAPTURE(shape_str(s));
    Tensor x = randn(s, gen, 1.5f), ec = randn(s, gen), eu = randn(s, gen);
    for (bool guided : {false, true})
      for (float sigma : {0.0f, 0.2f})
        for (bool clamp : {false, true}) {
          CAPTURE(guided, sigma, clamp);
          ReverseCoefficients coef{1.4f, 0.4f, 0.3f, 0.7f, sigma, 3.0f, clamp, clamp};  // clip x0 with the clamp
          Tensor xc = x.clone(), xg = x.to(Device::CUDA);
          Generator c(gen.seed() + 5, 9), g = c;
          reverse_step(xc, ec, guided ? eu : Tensor(), coef, c);
          reverse_step(xg, ec.to(Device::CUDA), guided ? eu.to(Device::CUDA) : Tensor(), coef, g);
          CHECK(g.offset() == c.offset());
          check_close(xg, xc);
        }
  }
}

TEST_CASE("gpu: q_sample checks GPU timesteps on the host, and devices", "[gpu][noise][errors]") {
  Generator gen = fresh_generator();
  auto [a, b] = seed_tables();
  Tensor ga = a.to(Device::CUDA), gb = b.to(Device::CUDA);
  Tensor x0 = randn({2, 4, 4, 3}, gen).to(Device::CUDA);
  CHECK_THROWS_WITH(q_sample(x0, Tensor::from_ints({3, 1000}, {2}, Device::CUDA), ga, gb, gen),
                    Catch::Contains("q_sample") && Catch::Contains("1000"));
  CHECK_THROWS_WITH(q_sample(x0, Tensor::from_ints({3, 1000}, {2}), ga, gb, gen), Catch::Contains("1000"));
  // t on the host (as the trainer keeps it) gives what the same t on the GPU gives.
  Generator g1(gen.seed() + 5, 0), g2 = g1;
  NoisedBatch host_t = q_sample(x0, Tensor::from_ints({3, 4}, {2}), ga, gb, g1);
  NoisedBatch dev_t = q_sample(x0, Tensor::from_ints({3, 4}, {2}, Device::CUDA), ga, gb, g2);
  CHECK(host_t.x_t.to_floats() == dev_t.x_t.to_floats());
  CHECK_THROWS_AS(q_sample(x0, Tensor::from_ints({3, 4}, {2}, Device::CUDA), a, b, gen), Error);
  CHECK_THROWS_WITH(q_sample(x0.to(Device::CPU), Tensor::from_ints({3, 4}, {2}, Device::CUDA), a, b, gen),
                    Catch::Contains("on the host or on x0's device"));
  Tensor x = randn({2, 4, 4, 3}, gen).to(Device::CUDA);
  CHECK_THROWS_AS(reverse_step(x, randn({2, 4, 4, 3}, gen), Tensor(), ReverseCoefficients{1, 0.1f, 1, 0, 0}, gen), Error);
}
