// CPU reference for kernels/optim.hpp: tensor by tensor, OpenMP over each tensor's elements.
#include "kernels/optim.hpp"

namespace ddpm::kernels::cpu {

void adamw(const AdamWSlot* slots, int64_t count, const AdamWStep& s) {
  for (int64_t k = 0; k < count; ++k) {
    const AdamWSlot& t = slots[k];
#pragma omp parallel for schedule(static) if (t.n > 65536)
    for (int64_t i = 0; i < t.n; ++i) {
      adamw_update(t.p[i], adamw_grad(t, i, t.g_low ? bf16_to_float(t.g_low[i]) : 0.0f), t.m[i], t.v[i], s);
      if (t.copy) t.copy[i] = float_to_bf16(t.p[i]);
    }
  }
}

void ema(const EmaSlot* slots, int64_t count, const EmaStep& s) {
  for (int64_t k = 0; k < count; ++k) {
    const EmaSlot& t = slots[k];
#pragma omp parallel for schedule(static) if (t.n > 65536)
    for (int64_t i = 0; i < t.n; ++i) t.shadow[i] = ema_update(t.shadow[i], t.p[i], s);
  }
}

}  // namespace ddpm::kernels::cpu
