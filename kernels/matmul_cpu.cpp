// CPU matrix products for kernels/matmul.hpp: OpenBLAS sgemm.
//
// Threading: all CPU parallelism of the engine runs on one OpenMP thread pool. OpenBLAS (the
// pthreads build) would bring a second pool, and on a 2-core machine the two fight: an OpenMP
// region right before a GEMM left its threads spinning while OpenBLAS's threads worked, and the
// convolutions ran 3-5x slower. So OpenBLAS is set to one thread and gemm splits the work itself:
// one matrix of the batch per thread, or, with fewer matrices than threads, each matrix's longer
// output side cut into one block per thread.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <climits>

#include "kernels/error.hpp"
#include "kernels/matmul.hpp"
#include "kernels/widen.hpp"

namespace ddpm::kernels::cpu {
namespace {

// Products below this many FLOPs stay on one thread (waking the pool would cost more).
constexpr double kParallelFlops = 1 << 20;

// One row-major sgemm with explicit leading dimensions (sub-blocks of the caller's matrices).
void sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
           int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k),
              1.0f, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

}  // namespace

void gemm(const Gemm& g, const float* a, const float* b, float* c) {
  static const bool single_threaded_blas = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)single_threaded_blas;
  DDPM_CHECK(g.m <= INT_MAX && g.n <= INT_MAX && g.k <= INT_MAX, "gemm", "dimensions ", g.m, "x", g.n, "x", g.k,
             " exceed the 32-bit BLAS interface");
  // Leading dimensions of the stored (row-major) operands: their number of columns.
  const int64_t lda = g.trans_a ? g.m : g.k, ldb = g.trans_b ? g.k : g.n;
  const float beta = g.accumulate ? 1.0f : 0.0f;
  const bool parallel = 2.0 * double(g.batch) * double(g.m) * double(g.n) * double(g.k) >= kParallelFlops;
  const int threads = parallel ? omp_get_max_threads() : 1;
  if (g.batch >= threads) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t i = 0; i < g.batch; ++i)
      sgemm(g.trans_a, g.trans_b, g.m, g.n, g.k, a + i * g.m * g.k, lda, b + i * g.k * g.n, ldb, beta,
            c + i * g.m * g.n, g.n);
    return;
  }
  // Rows of c come from rows of op(a), columns of c from columns of op(b); a block of either is
  // the stored operand at an offset with the same leading dimension.
  const bool split_m = g.m >= g.n;
  const int64_t len = split_m ? g.m : g.n;
  for (int64_t i = 0; i < g.batch; ++i) {
    const float *ai = a + i * g.m * g.k, *bi = b + i * g.k * g.n;
    float* ci = c + i * g.m * g.n;
#pragma omp parallel for schedule(static) if (parallel)
    for (int t = 0; t < threads; ++t) {
      const int64_t lo = len * t / threads, hi = len * (t + 1) / threads;
      if (lo == hi) continue;
      if (split_m)
        sgemm(g.trans_a, g.trans_b, hi - lo, g.n, g.k, ai + (g.trans_a ? lo : lo * lda), lda, bi, ldb, beta,
              ci + lo * g.n, g.n);
      else
        sgemm(g.trans_a, g.trans_b, g.m, hi - lo, g.k, ai, lda, bi + (g.trans_b ? lo * ldb : lo), ldb, beta, ci + lo,
              g.n);
    }
  }
}

void bias_fill(float* y, const float* b, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) y[r * cols + c] = b[c];
}

void bias_grad(const float* dy, float* db, int64_t rows, int64_t cols, double* work) {
  // The GPU's row slices (bias_grad_splits), summed in parallel into work, then each column's
  // slices in order: the same result whatever the thread count. Double keeps long sums exact enough.
  const int64_t splits = bias_grad_splits(rows);
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
  for (int64_t s = 0; s < splits; ++s) {
    double* part = work + s * cols;
    std::fill(part, part + cols, 0.0);
    for (int64_t r = rows * s / splits; r < rows * (s + 1) / splits; ++r)
      for (int64_t c = 0; c < cols; ++c) part[c] += dy[r * cols + c];
  }
  for (int64_t c = 0; c < cols; ++c) {
    double sum = 0.0;
    for (int64_t s = 0; s < splits; ++s) sum += work[s * cols + c];
    db[c] = float(sum);
  }
}

// bf16: the f32 kernels on widened copies (kernels/widen.hpp).
void gemm(const Gemm& g, const bf16* a, const bf16* b, bf16* c) {
  gemm(g, Wide(a, g.batch * g.m * g.k), Wide(b, g.batch * g.k * g.n), Narrow(c, g.batch * g.m * g.n, g.accumulate));
}
void bias_fill(bf16* y, const bf16* b, int64_t rows, int64_t cols) { bias_fill(Narrow(y, rows * cols), Wide(b, cols), rows, cols); }
void bias_grad(const bf16* dy, bf16* db, int64_t rows, int64_t cols, double* work) {
  bias_grad(Wide(dy, rows * cols), Narrow(db, cols), rows, cols, work);
}

void gemm_bias(const Gemm& g, const float* a, const float* b, const float* bias, const float* r, float* c) {
  DDPM_CHECK(g.batch == 1 && !g.accumulate, "gemm_bias", "takes one product that overwrites c");
  bias_fill(c, bias, g.m, g.n);
  if (r) accumulate(c, r, g.m * g.n);
  Gemm acc = g;
  acc.accumulate = true;
  gemm(acc, a, b, c);
}
void gemm_bias(const Gemm& g, const bf16* a, const bf16* b, const bf16* bias, const bf16* r, bf16* c) {
  gemm_bias(g, Wide(a, g.m * g.k), Wide(b, g.k * g.n), Wide(bias, g.n), Wide(r, g.m * g.n), Narrow(c, g.m * g.n));
}

}  // namespace ddpm::kernels::cpu
