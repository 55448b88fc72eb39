// Elementary functions for the CPU kernels, written so that GCC vectorises the loops that call them
// (libm's expf and erfcf are scalar calls, which keep a loop scalar). Plain float arithmetic and
// bit casts only; no tables. Used by the attention softmax and, on the host side, by the GELU and
// SiLU formulas of kernels/elementwise.hpp.
#pragma once
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

namespace ddpm::kernels::cpu {

// exp(x) for finite x, within 2 ulp down to 2^-126 (0 below: no denormals), in plain arithmetic
// that GCC vectorises (in the attention softmax at D = 16, libm's scalar expf would cost more than
// the products). exp(x) = 2^n exp(r) with n = round(x / ln2), r = x - n ln2 in [-0.35, 0.35],
// exp(r) by its degree-7 Taylor polynomial. Adding 1.5 * 2^23 rounds x / ln2 to an integer and
// leaves n in the low mantissa bits of t, read back as an integer (no float-to-int conversion, no
// float comparison: either would keep GCC from vectorising without -fno-trapping-math).
inline float vexp(float x) {
  const float t = x * 1.44269504f + 12582912.0f;
  const float n = t - 12582912.0f;
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-6f;  // ln2 in two parts, n*hi exact
  float p = 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // 2^n from its exponent bits; n clamped to [-127, 128] gives 0 and inf at the ends.
  const int32_t e = std::min(std::max(int32_t(std::bit_cast<uint32_t>(t) - 0x4B400000u), -127), 128);
  return p * std::bit_cast<float>(uint32_t(e + 127) << 23);
}

// exp(x) for any x: arguments below -104 (where expf underflows to 0) are clamped there, so even
// -inf gives 0; a NaN argument also gives 0, but every caller multiplies by its NaN input.
inline float vexp_any(float x) { return vexp(std::max(x, -104.0f)); }

// The standard normal CDF, Phi(x) = erfc(-x / sqrt 2) / 2, with erfc(z) for z >= 0 from the
// Chebyshev fit erfc(z) ~ t exp(-z^2 - 1.26551223 + t P(t)), t = 1 / (1 + z / 2), of Press et al.
// (Numerical Recipes, sec. 6.2; fractional error below 1.2e-7 for every z >= 0), and
// erfc(-z) = 2 - erfc(z). Relative, not absolute, accuracy: the tail Phi(-8) = 6e-16 is right too.
inline float normal_cdf(float x) {
  const float z = std::fabs(x) * 0.70710678118654752f;
  const float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  const float half_erfc = 0.5f * t * vexp_any(-z * z - 1.26551223f + t * p);
  return x < 0.0f ? half_erfc : 1.0f - half_erfc;
}

}  // namespace ddpm::kernels::cpu
