// Philox-4x32-10 against the published known-answer vectors, and the generator's statistics.
#include <cmath>

#include "helpers.hpp"
#include "kernels/rng.hpp"

using namespace ddpm;
using namespace ddpm::kernels;

TEST_CASE("philox4x32-10 reproduces the Random123 known-answer vectors", "[rng]") {
  // From the Random123 distribution's kat_vectors (philox4x32 10 rounds).
  Philox4 r = philox4x32_10(Philox4{{0, 0, 0, 0}}, 0, 0);
  CHECK(r.v[0] == 0x6627e8d5u);
  CHECK(r.v[1] == 0xe169c58du);
  CHECK(r.v[2] == 0xbc57ac4cu);
  CHECK(r.v[3] == 0x9b00dbd8u);
  r = philox4x32_10(Philox4{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu);
  CHECK(r.v[0] == 0x408f276du);
  CHECK(r.v[1] == 0x41c83b0eu);
  CHECK(r.v[2] == 0xa20bc7c6u);
  CHECK(r.v[3] == 0x6d5451fdu);
  r = philox4x32_10(Philox4{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u, 0x299f31d0u);
  CHECK(r.v[0] == 0xd16cfe09u);
  CHECK(r.v[1] == 0x94fdccebu);
  CHECK(r.v[2] == 0x5001e420u);
  CHECK(r.v[3] == 0x24126ea1u);
}

TEST_CASE("the generator's numbers depend only on (seed, offset)", "[rng]") {
  Generator a(1234), b(1234, 5);
  Tensor x = Tensor::randn({10}, a);
  Tensor y = Tensor::randn({5}, b);  // indices 5..9 of the same stream
  std::vector<float> xv = x.to_floats(), yv = y.to_floats();
  for (int i = 0; i < 5; ++i) CHECK(xv[size_t(5 + i)] == yv[size_t(i)]);
  CHECK(a.offset() == 10);
  // Stored values: uniform is exact in float32, so these bits are the same on every device.
  Generator u(42);
  std::vector<float> uv = Tensor::rand({3}, u).to_floats();
  for (int i = 0; i < 3; ++i) {
    Philox4 r = philox_at(42, uint64_t(i));
    CHECK(uv[size_t(i)] == (float(r.v[0] >> 9) + 0.5f) / 8388608.0f);
  }
  Generator other(1235);
  CHECK(Tensor::randn({10}, other).to_floats() != xv);
  // The extremes of the 32-bit word map strictly inside (0, 1).
  CHECK(philox_unit(0u) > 0.0f);
  CHECK(philox_unit(0xffffffffu) < 1.0f);
}

TEST_CASE("normal samples have mean 0 and variance 1, uniform ones mean 1/2", "[rng]") {
  Generator gen = test::fresh_generator();
  CAPTURE(gen.seed());
  const int64_t n = 1 << 20;
  std::vector<float> v = Tensor::randn({n}, gen).to_floats();
  double m = 0, m2 = 0, m4 = 0;
  for (float x : v) m += x;
  m /= double(n);
  for (float x : v) {
    m2 += (x - m) * (x - m);
    m4 += std::pow(x - m, 4);
  }
  m2 /= double(n);
  m4 /= double(n);
  // Standard errors: mean 1/sqrt(n) ~ 1e-3, variance sqrt(2/n) ~ 1.4e-3; bounds at 6 sigma.
  CHECK(std::abs(m) < 6e-3);
  CHECK(std::abs(m2 - 1.0) < 9e-3);
  CHECK(std::abs(m4 - 3.0) < 0.05);  // Gaussian kurtosis
  std::vector<float> u = Tensor::rand({n}, gen).to_floats();
  double mu = 0;
  int64_t outside = 0;
  for (float x : u) {
    outside += !(x > 0.0f && x < 1.0f);
    mu += x;
  }
  CHECK(outside == 0);
  CHECK(std::abs(mu / double(n) - 0.5) < 2e-3);  // sigma = 0.29/sqrt(n) ~ 2.8e-4
}
