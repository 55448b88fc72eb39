// CPU reference for kernels/optim.hpp: tensor by tensor, OpenMP over each tensor's elements.
#include <vector>

#include "kernels/elementwise.hpp"
#include "kernels/optim.hpp"

namespace ddpm::kernels::cpu {

void adamw(const AdamWSlot* slots, int64_t count, const AdamWStep& s) {
  std::vector<float> wide;  // one buffer for the whole list
  for (int64_t k = 0; k < count; ++k) {
    const AdamWSlot& t = slots[k];
    // A bf16 gradient is widened first (and added to the f32 one where both are given), so the
    // update is one straight loop that the compiler vectorises.
    const float* g = t.g;
    if (t.g_low) {
      wide.resize(size_t(t.n));
      bf16_to_f32(t.g_low, wide.data(), t.n);
      if (t.g)
        for (int64_t i = 0; i < t.n; ++i) wide[size_t(i)] = t.g[i] + wide[size_t(i)];
      g = wide.data();
    }
#pragma omp parallel for schedule(static) if (t.n > 65536)
    for (int64_t i = 0; i < t.n; ++i) adamw_update(t.p[i], g[i], t.m[i], t.v[i], s);
    if (t.copy) f32_to_bf16(t.p, t.copy, t.n);
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
