// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011):
// a counter-based generator, so number i of a stream is a pure function of (seed, i) and any
// thread on any device can draw it without shared state.
//
// Convention (both backends): element j of a draw at stream offset `offset` uses the counter
// (offset + j) as the 64-bit pair (c0, c1) = (low, high) with c2 = c3 = 0 and key = seed.
// uniform: ((word0 >> 9) + 0.5) * 2^-23, in (0, 1): 23 random bits plus a half step is exact in
// float32 (24 bits would round the top value up to 1.0), identical bits on CPU and GPU.
// normal: Box-Muller on (word0, word1); libm's log/cos may differ in the last ulp between devices.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/hd.hpp"


namespace ddpm::kernels {

struct Philox4 {
  uint32_t v[4];
};

// The full generator: a 128-bit counter and a 64-bit key in, 128 random bits out.
DDPM_HD Philox4 philox4x32_10(Philox4 c, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = uint64_t(0xD2511F53u) * c.v[0];
    uint64_t p1 = uint64_t(0xCD9E8D57u) * c.v[2];
    c = Philox4{{uint32_t(p1 >> 32) ^ c.v[1] ^ k0, uint32_t(p1), uint32_t(p0 >> 32) ^ c.v[3] ^ k1, uint32_t(p0)}};
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return c;
}

DDPM_HD Philox4 philox_at(uint64_t seed, uint64_t index) {
  return philox4x32_10(Philox4{{uint32_t(index), uint32_t(index >> 32), 0u, 0u}}, uint32_t(seed), uint32_t(seed >> 32));
}

// 32 random bits -> a float in (0, 1), never 0 (log-safe) and never 1.
DDPM_HD float philox_unit(uint32_t bits) { return (float(bits >> 9) + 0.5f) * (1.0f / 8388608.0f); }

DDPM_HD float philox_uniform(uint64_t seed, uint64_t index) {
  return philox_unit(philox_at(seed, index).v[0]);
}

DDPM_HD float philox_normal(uint64_t seed, uint64_t index) {
  Philox4 r = philox_at(seed, index);
  float u1 = philox_unit(r.v[0]), u2 = philox_unit(r.v[1]);
  return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}

namespace cpu {
void fill_uniform(float* x, int64_t n, uint64_t seed, uint64_t offset);
void fill_normal(float* x, int64_t n, uint64_t seed, uint64_t offset);
}  // namespace cpu

#ifdef DDPM_HAVE_CUDA
namespace cuda {
void fill_uniform(float* x, int64_t n, uint64_t seed, uint64_t offset);
void fill_normal(float* x, int64_t n, uint64_t seed, uint64_t offset);
}  // namespace cuda
#endif

}  // namespace ddpm::kernels
