// CPU reference for kernels/xent.hpp: one row at a time, OpenMP over rows.
#include <algorithm>
#include <cmath>

#include "kernels/xent.hpp"

namespace ddpm::kernels::cpu {

void xent_fwd(const float* logits, const int64_t* labels, int64_t n, int64_t k, float* lse, float* out,
              double* work) {
#pragma omp parallel for schedule(static) if (n * k > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float* row = logits + i * k;
    const float m = *std::max_element(row, row + k);
    double s = 0;
    for (int64_t j = 0; j < k; ++j) s += double(std::exp(row[j] - m));
    lse[i] = m + float(std::log(s));
    work[i] = double(lse[i]) - double(row[labels[i]]);
  }
  double total = 0;
  for (int64_t i = 0; i < n; ++i) total += work[i];
  out[0] = float(total / double(n));
}

void xent_bwd(const float* logits, const int64_t* labels, const float* lse, const float* g, int64_t n, int64_t k,
              float* dlogits) {
  const float s = g[0] / float(n);
#pragma omp parallel for schedule(static) if (n * k > 65536)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) {
      const float p = std::exp(logits[i * k + j] - lse[i]);
      dlogits[i * k + j] = s * (p - (j == labels[i] ? 1.0f : 0.0f));
    }
}

}  // namespace ddpm::kernels::cpu
