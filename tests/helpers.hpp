// Test helpers: fresh random inputs, relative errors, and a finite-difference gradient check.
//
// Every run draws new inputs from a seed taken from the clock (printed on failure by CAPTURE);
// DDPM_TEST_SEED=<n> replays one run.
#pragma once
#include <catch2/catch.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <vector>

#include "engine/autograd.hpp"
#include "engine/ops.hpp"
#include "engine/rng.hpp"

namespace ddpm::test {

inline uint64_t fresh_seed() {
  if (const char* s = std::getenv("DDPM_TEST_SEED")) return std::strtoull(s, nullptr, 10);
  static uint64_t counter = 0;
  return uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()) + 7919 * ++counter;
}

// A generator with a fresh seed; CAPTURE(gen.seed()) in the test so a failure can be replayed.
inline Generator fresh_generator() { return Generator(fresh_seed()); }

inline Tensor randn(const Shape& s, Generator& g, float scale = 1.0f) {
  Tensor t = Tensor::randn(s, g);
  if (scale != 1.0f) {
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] *= scale;
  }
  return t;
}

// n class labels uniform in [0, k), as an i64 tensor.
inline Tensor random_labels(int64_t n, int64_t k, Generator& gen) {
  std::vector<int64_t> y;
  for (float u : Tensor::rand({n}, gen).to_floats()) y.push_back(std::min(k - 1, int64_t(u * float(k))));
  return Tensor::from_ints(y, {n});
}

// ||a - b|| / ||b|| in double.
inline double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    double d = double(a[i]) - double(b[i]);
    num += d * d;
    den += double(b[i]) * double(b[i]);
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}
inline double norm(const std::vector<float>& a) {
  double s = 0;
  for (float v : a) s += double(v) * double(v);
  return std::sqrt(s);
}
// ||a - b||, infinite when a holds a NaN or infinity.
inline double diff_norm(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    s += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  }
  return std::sqrt(s);
}
inline double rel_err(const Tensor& a, const std::vector<float>& b) { return rel_err(a.to_floats(), b); }
inline double rel_err(const Tensor& a, const Tensor& b) { return rel_err(a.to_floats(), b.to_floats()); }

// Checks the gradients of f at `inputs` (f32 CPU leaves) against central finite differences of
// L = sum(f(inputs) * R) for a fixed random R, evaluated in double on the host.
//
// Tolerance for float32: with step h the central difference has truncation error O(h^2 f''') and
// rounding error about eps32 * |L| / h. With h = 1e-2 on O(1) inputs both are near 1e-4..1e-3
// relative, so `tol` = 1e-2 on the relative error over all checked elements passes a right
// gradient and fails any wrong rule (those are off by O(1)). At most `max_checks` elements of each
// input are probed (spread evenly), to keep big convolutions fast.
inline void check_gradients(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> inputs,
                            Generator& gen, double tol = 1e-2, float h = 1e-2f, int64_t max_checks = 48) {
  for (Tensor& t : inputs) t.set_requires_grad(true);
  Tensor out = f(inputs);
  Tensor r = Tensor::randn(out.shape(), gen);
  std::vector<float> rv = r.to_floats();
  auto loss = [&](const std::vector<Tensor>& in) {
    NoGradGuard ng;
    std::vector<float> o = f(in).to_floats();
    double s = 0;
    for (size_t i = 0; i < o.size(); ++i) s += double(o[i]) * rv[i];
    return s;
  };
  out.backward(r);
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor& x = inputs[k];
    REQUIRE(x.grad().defined());
    std::vector<float> analytic = x.grad().to_floats();
    std::vector<float> num, ana;
    int64_t n = x.numel(), step = std::max<int64_t>(1, n / max_checks);
    float* p = x.data<float>();
    for (int64_t i = 0; i < n; i += step) {
      float keep = p[i];
      p[i] = keep + h;
      double up = loss(inputs);
      p[i] = keep - h;
      double down = loss(inputs);
      p[i] = keep;
      num.push_back(float((up - down) / (2.0 * double(h))));
      ana.push_back(analytic[size_t(i)]);
    }
    INFO("input " << k << " " << x.desc());
    CHECK(rel_err(ana, num) < tol);
  }
}

}  // namespace ddpm::test
