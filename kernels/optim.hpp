// Optimizer kernels: the AdamW update and the EMA of the weights (engine/optim.hpp).
//
// Conventions (both backends): f32, except the bf16 gradients and weight copies of a
// mixed-precision run (AdamWSlot); every pointer is contiguous and on the backend's device;
// parameters, moments and shadows are updated in place. A call covers a list of tensors given as
// slots, one per tensor, in order, `start` being the tensor's first index in the concatenation
// of all the list's elements (so slots[k].start = n_0 + ... + n_{k-1}).
// - CPU: `slots` is a host array; the kernel loops tensor by tensor.
// - CUDA: `slots` is a DEVICE array and the whole list is one launch ("multi-tensor apply"):
//   blocks walk fixed-size chunks of the concatenated range [0, total), and a chunk that spans
//   tensor boundaries updates a piece of each tensor it covers. One launch instead of one per
//   tensor matters: the seed U-Net has ~200 parameter tensors, most of them tiny.
// Scalars that PyTorch computes in double on the host (bias corrections, 1 - lr * wd) are
// computed the same way by the caller and passed as floats.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/bf16.hpp"
#include "kernels/hd.hpp"

namespace ddpm::kernels {

// A parameter's gradient is g, or g_low (the gradient of its bf16 copy, widened), or their sum
// when both are given; `copy`, when given, receives the updated p rounded to bf16 (nearest even):
// the weight copies of a mixed-precision run are written by the same pass (engine/optim.hpp).
struct AdamWSlot {
  float* p;
  const float* g;      // or null
  const bf16* g_low;   // or null
  bf16* copy;          // or null
  float* m;
  float* v;
  int64_t n;
  int64_t start;
  bool operator==(const AdamWSlot&) const = default;
};

struct EmaSlot {
  float* shadow;
  const float* p;
  int64_t n;
  int64_t start;
  bool operator==(const EmaSlot&) const = default;
};

// One AdamW step's scalars, for step t: decay = 1 - lr * wd; step_size = lr / (1 - beta1^t);
// bc2_sqrt = sqrt(1 - beta2^t); one_minus_beta1 = 1 - beta1 (likewise beta2).
struct AdamWStep {
  float decay, beta2, one_minus_beta1, one_minus_beta2, step_size, bc2_sqrt, eps;
};

// torch.optim.AdamW's element update, in its operation order: decoupled decay, m by lerp toward
// g, v by mul + addcmul, then p -= step_size * m / (sqrt(v) / bc2_sqrt + eps).
DDPM_HD void adamw_update(float& p, float g, float& m, float& v, const AdamWStep& s) {
  p *= s.decay;
  m += s.one_minus_beta1 * (g - m);
  v = v * s.beta2 + s.one_minus_beta2 * g * g;
  p -= s.step_size * (m / (sqrtf(v) / s.bc2_sqrt + s.eps));
}

// The seed's EMA: e = decay * e + (1 - decay) * p; copy (the warm-up) sets e = p exactly.
struct EmaStep {
  float decay, one_minus_decay;
  bool copy;
};

DDPM_HD float ema_update(float e, float p, const EmaStep& s) {
  return s.copy ? p : e * s.decay + s.one_minus_decay * p;
}

namespace cpu {
void adamw(const AdamWSlot* slots, int64_t count, const AdamWStep& s);
void ema(const EmaSlot* slots, int64_t count, const EmaStep& s);
}  // namespace cpu

#ifdef DDPM_HAVE_CUDA
namespace cuda {
// `slots` on the device, `total` = the summed element count of the list.
void adamw(const AdamWSlot* slots, int64_t count, int64_t total, const AdamWStep& s);
void ema(const EmaSlot* slots, int64_t count, int64_t total, const EmaStep& s);
}  // namespace cuda
#endif

}  // namespace ddpm::kernels
