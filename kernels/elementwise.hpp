// Elementwise kernels: activations, broadcast arithmetic, fills, conversions.
//
// Conventions (both backends): float32, and the same functions for bf16 data (f32 arithmetic,
// each output rounded once to bf16: kernels/widen.hpp); n is the element count; all
// pointers are contiguous and on the backend's device; outputs are fully overwritten (no
// accumulation) unless the name says accumulate. GELU is the exact erf form,
// 0.5 x (1 + erf(x / sqrt 2)); SiLU is x * sigmoid(x).
#pragma once
#include <cstdint>

#include <cmath>
#include <type_traits>

#include "kernels/bf16.hpp"
#include "kernels/cpu_math.hpp"
#include "kernels/hd.hpp"

namespace ddpm::kernels {

enum class Act { None, GELU, SiLU };
enum class BinOp { Add, Sub, Mul };

// b broadcast against a: out has a's shape (at most 4 dims, left-padded with 1s to 4);
// b_stride[d] is b's element stride in dimension d, or 0 where b has size 1 there.
struct Broadcast {
  int64_t shape[4];
  int64_t b_stride[4];
  DDPM_HD int64_t numel() const { return shape[0] * shape[1] * shape[2] * shape[3]; }
  DDPM_HD int64_t b_numel() const {
    int64_t n = 1;
    for (int d = 0; d < 4; ++d) n *= b_stride[d] ? shape[d] : 1;
    return n;
  }
};

// Scalar forms shared by both backends' kernels (and by fused kernels elsewhere). On the GPU exp
// and Phi come from CUDA's expf and erfcf; on the host from kernels/cpu_math.hpp, which GCC can
// vectorise (libm's calls are scalar and were 12% of a CPU training step). Against a double
// reference the host Phi is within 2.1e-6 relative for |x| <= 5 and gelu' within 2.1e-7 absolute,
// well inside the f32 tolerances of the tests and reference checks. Phi(x) = erfc(-x / sqrt 2) / 2 rather than (1 + erf(x / sqrt 2)) / 2: the
// latter cancels for negative x and loses most of float's digits there.
DDPM_HD float exp_f(float x) {
#ifdef __CUDA_ARCH__
  return expf(x);
#else
  return cpu::vexp_any(x);
#endif
}
DDPM_HD float normal_cdf(float x) {
#ifdef __CUDA_ARCH__
  return 0.5f * erfcf(-x * 0.70710678118654752f);
#else
  return cpu::normal_cdf(x);
#endif
}
DDPM_HD float gelu(float x) { return x * normal_cdf(x); }
DDPM_HD float gelu_grad(float x) {  // d/dx [x Phi(x)] = Phi(x) + x phi(x)
  return normal_cdf(x) + x * 0.39894228040143268f * exp_f(-0.5f * x * x);
}
DDPM_HD float silu(float x) { return x / (1.0f + exp_f(-x)); }
DDPM_HD float silu_grad(float x) {
  float s = 1.0f / (1.0f + exp_f(-x));
  return s * (1.0f + x * (1.0f - s));
}
DDPM_HD float activate(Act act, float x) { return act == Act::GELU ? gelu(x) : act == Act::SiLU ? silu(x) : x; }
DDPM_HD float activate_grad(Act act, float x) {
  return act == Act::GELU ? gelu_grad(x) : act == Act::SiLU ? silu_grad(x) : 1.0f;
}

// The typed kernels of both backends (elementwise_cpu.cpp, elementwise_cuda.cu), declared once for
// T = float and T = bf16:
// - accumulate: out += src; scale: x *= s;
// - act_fwd / act_bwd: y = act(x), dx = dy * act'(x);
// - add_act_fwd / add_act_bwd: y = act(a + b) and d(a + b) = dy * act'(a + b) (the ResNet block's
//   residual);
// - binary: out = a op b, b broadcast as bc says; reduce_to_b: gb = sum of g over the dimensions
//   where b was broadcast (gb has b's element count).
#define DDPM_ELEMENTWISE_KERNELS(T)                                                  \
  void accumulate(T* out, const T* src, int64_t n);                                 \
  void scale(T* x, int64_t n, float s);                                             \
  void act_fwd(Act act, const T* x, T* y, int64_t n);                               \
  void act_bwd(Act act, const T* x, const T* dy, T* dx, int64_t n);                 \
  void add_act_fwd(Act act, const T* a, const T* b, T* y, int64_t n);               \
  void add_act_bwd(Act act, const T* a, const T* b, const T* dy, T* dsum, int64_t n); \
  void binary(BinOp op, const T* a, const T* b, T* out, const Broadcast& bc);       \
  void reduce_to_b(const T* g, T* gb, const Broadcast& bc);

namespace cpu {
// Calls fn with the activation as a compile-time constant: activate(A, x) then folds to a single
// formula, the loop body has no branch, and GCC vectorises it (with a run-time Act it does not).
template <class Fn>
void with_act(Act act, Fn fn) {
  switch (act) {
    case Act::GELU: return fn(std::integral_constant<Act, Act::GELU>{});
    case Act::SiLU: return fn(std::integral_constant<Act, Act::SiLU>{});
    case Act::None: return fn(std::integral_constant<Act, Act::None>{});
  }
}

void fill(float* x, int64_t n, float value);
void f32_to_bf16(const float* x, bf16* y, int64_t n);
void bf16_to_f32(const bf16* x, float* y, int64_t n);
DDPM_ELEMENTWISE_KERNELS(float)
DDPM_ELEMENTWISE_KERNELS(bf16)
}  // namespace cpu

#ifdef DDPM_HAVE_CUDA
namespace cuda {
void fill(float* x, int64_t n, float value);
void f32_to_bf16(const float* x, bf16* y, int64_t n);
void bf16_to_f32(const bf16* x, float* y, int64_t n);
DDPM_ELEMENTWISE_KERNELS(float)
DDPM_ELEMENTWISE_KERNELS(bf16)
}  // namespace cuda
#endif
#undef DDPM_ELEMENTWISE_KERNELS

}  // namespace ddpm::kernels
