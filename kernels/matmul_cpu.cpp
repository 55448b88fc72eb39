// CPU matrix products for kernels/matmul.hpp: OpenBLAS sgemm, one call per matrix of the batch.
// OpenBLAS threads each call itself, so nothing here opens an OpenMP region around it (nesting
// the two thread pools would oversubscribe the cores).
#include <cblas.h>

#include <climits>
#include <vector>

#include "kernels/error.hpp"
#include "kernels/matmul.hpp"

namespace ddpm::kernels::cpu {

void gemm(const Gemm& g, const float* a, const float* b, float* c) {
  DDPM_CHECK(g.m <= INT_MAX && g.n <= INT_MAX && g.k <= INT_MAX, "gemm", "dimensions ", g.m, "x", g.n, "x", g.k,
             " exceed the 32-bit BLAS interface");
  const int m = int(g.m), n = int(g.n), k = int(g.k);
  // Leading dimensions of the stored (row-major) operands: their number of columns.
  const int lda = g.trans_a ? m : k, ldb = g.trans_b ? k : n;
  const CBLAS_TRANSPOSE ta = g.trans_a ? CblasTrans : CblasNoTrans, tb = g.trans_b ? CblasTrans : CblasNoTrans;
  for (int64_t i = 0; i < g.batch; ++i)
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1.0f, a + i * g.m * g.k, lda, b + i * g.k * g.n, ldb,
                g.accumulate ? 1.0f : 0.0f, c + i * g.m * g.n, n);
}

void bias_fill(float* y, const float* b, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) y[r * cols + c] = b[c];
}

void bias_grad(const float* dy, float* db, int64_t rows, int64_t cols) {
  // Serial: biases sit on small outputs (linear layers, the last 1x1 conv), so this is cheap next
  // to the GEMMs around it; double accumulation keeps long sums exact enough.
  std::vector<double> acc(size_t(cols), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) acc[size_t(c)] += dy[r * cols + c];
  for (int64_t c = 0; c < cols; ++c) db[c] = float(acc[size_t(c)]);
}

}  // namespace ddpm::kernels::cpu
