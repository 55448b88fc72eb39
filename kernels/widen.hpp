// How the CPU backend runs bf16 data: every CPU bf16 kernel is its f32 twin on widened copies.
//
//   void act_fwd(Act act, const bf16* x, bf16* y, int64_t n) { act_fwd(act, Wide(x, n), Narrow(y, n), n); }
//
// Wide(x, n) is a float copy of x's n values; Narrow(y, n) a float buffer that is rounded into y
// (nearest even) when the full expression ends, i.e. right after the f32 kernel returned. So a bf16
// kernel is defined as "the f32 kernel on the bf16 inputs, each output rounded once": exact
// semantics to test the CUDA bf16 kernels against (they load bf16, compute in f32, round on
// store). This costs two conversions and a buffer per operand, so bf16 is for checking on the
// CPU, not for speed: it pays on the GPU (half the bytes, twice the tensor-core rate of TF32).
// Null pointers (an absent bias, an output not asked for) stay null.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/bf16.hpp"
#include "kernels/elementwise.hpp"

namespace ddpm::kernels::cpu {

class Wide {
 public:
  Wide(const bf16* p, int64_t n) : v_(p ? size_t(n) : 0) {
    if (p) bf16_to_f32(p, v_.data(), n);
  }
  operator const float*() const { return v_.empty() ? nullptr : v_.data(); }

 private:
  std::vector<float> v_;
};

// keep = true also widens dst's current values first, for outputs the kernel accumulates into.
class Narrow {
 public:
  Narrow(bf16* dst, int64_t n, bool keep = false) : dst_(dst), v_(dst ? size_t(n) : 0) {
    if (dst && keep) bf16_to_f32(dst, v_.data(), n);
  }
  Narrow(const Narrow&) = delete;
  Narrow& operator=(const Narrow&) = delete;
  ~Narrow() {
    if (dst_) f32_to_bf16(v_.data(), dst_, int64_t(v_.size()));
  }
  operator float*() { return dst_ ? v_.data() : nullptr; }

 private:
  bf16* dst_;
  std::vector<float> v_;
};

}  // namespace ddpm::kernels::cpu
