// CPU reference for kernels/reduce.hpp: OpenMP over the chunks, each summed in double, then the
// chunk sums added in order.
#include "kernels/reduce.hpp"

namespace ddpm::kernels::cpu {
namespace {

// scale * sum over i of (b ? (a[i] - b[i])^2 : a[i]).
float chunked_sum(const float* a, const float* b, int64_t n, double scale, double* work) {
  const int64_t chunk = reduce_chunk(n), parts = reduce_parts(n);
#pragma omp parallel for schedule(static) if (parts > 1)
  for (int64_t p = 0; p < parts; ++p) {
    double s = 0;
    for (int64_t i = p * chunk; i < std::min(n, (p + 1) * chunk); ++i) {
      const double v = b ? double(a[i] - b[i]) : double(a[i]);
      s += b ? v * v : v;
    }
    work[p] = s;
  }
  double total = 0;
  for (int64_t p = 0; p < parts; ++p) total += work[p];
  return float(total * scale);
}

}  // namespace

void sum(const float* x, int64_t n, double scale, float* out, double* work) {
  out[0] = chunked_sum(x, nullptr, n, scale, work);
}

void mse(const float* a, const float* b, int64_t n, float* out, double* work) {
  out[0] = chunked_sum(a, b, n, 1.0 / double(n), work);
}

void mse_bwd(const float* a, const float* b, const float* g, int64_t n, float* da, float* db) {
  const float s = 2.0f * g[0] / float(n);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    da[i] = (a[i] - b[i]) * s;
    if (db) db[i] = -da[i];
  }
}

void fill_scaled(const float* g, float scale, float* out, int64_t n) {
  const float v = g[0] * scale;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) out[i] = v;
}

}  // namespace ddpm::kernels::cpu
