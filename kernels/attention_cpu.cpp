// CPU reference for kernels/attention.hpp, flash-attention style: queries in blocks of kRows,
// keys in blocks of key_block(D), so one block pair's scores fill a kRows x key_block buffer
// (64 KiB at D = 16) whatever L is. Products go through cblas_sgemm, reading q, k, v straight from
// the packed layout (leading dimension 3C); the softmax in between keeps a running max and sum per
// row (online softmax), rescaling the partial output when the max grows.
//
// Threading: OpenMP over (b, h, query block) forward and (b, h) backward, sgemm called inside the
// parallel region. Every product has m*n*k <= kRows * key_block * D <= 2^18, the size below which
// OpenBLAS (Debian's default is its pthreads build, which cannot see OpenMP) computes on the
// calling thread: measured, letting it start its own pool inside ours was 20x slower.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/attention.hpp"
#include "kernels/cpu_math.hpp"
#include "kernels/widen.hpp"

namespace ddpm::kernels::cpu {
namespace {

constexpr int64_t kRows = 64;

// At most L: a short sequence (a tiny test model's) needs no larger buffer, allocated per call.
int64_t key_block(int64_t d, int64_t L) { return std::min(std::max<int64_t>(16, 4096 / d), L); }

// The maximum of m and x[0, n). GCC does not vectorise a plain running max (max is not associative
// once NaNs are taken into account), so eight lanes go through a GCC/Clang vector type by hand:
// the softmax's row max was the single hottest loop of CPU sampling before this.
inline float row_max(const float* x, int64_t n, float m) {
  typedef float v8 __attribute__((vector_size(32)));
  v8 lanes = {m, m, m, m, m, m, m, m};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    v8 v;
    std::memcpy(&v, x + j, sizeof v);
    lanes = v > lanes ? v : lanes;
  }
  for (; j < n; ++j) m = x[j] > m ? x[j] : m;
  for (int k = 0; k < 8; ++k) m = lanes[k] > m ? lanes[k] : m;
  return m;
}

// Head h of batch b: pointers at token 0 and the leading dimensions of qkv rows and out rows.
struct Head {
  const float *q, *k, *v;
  int64_t ld, ld_out, out_offset;  // out_offset: of (b, token 0, head h) in [B, L, C] tensors
};

Head head_of(const float* qkv, const AttnDims& a, int64_t b, int64_t h) {
  const int64_t C = a.channels(), ld = 3 * C;
  const float* base = qkv + b * a.tokens * ld + h * a.head_dim;
  return {base, base + C, base + 2 * C, ld, C, b * a.tokens * C + h * a.head_dim};
}

// Row-major c (m x n, leading dimension ldc) = alpha * op(a) op(b) + beta * c.
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k),
              alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

// s (m x n, leading dimension n) = q[i0, i0+m) k[j0, j0+n)^T / sqrt(D).
void scores(const Head& hd, int64_t i0, int64_t m, int64_t j0, int64_t n, int64_t D, float* s) {
  gemm(false, true, m, n, D, 1.0f / std::sqrt(float(D)), hd.q + i0 * hd.ld, hd.ld, hd.k + j0 * hd.ld, hd.ld, 0.0f,
       s, n);
}

}  // namespace

void attention_fwd(const float* qkv, float* out, float* lse, const AttnDims& a) {
  const int64_t L = a.tokens, D = a.head_dim, nk = key_block(D, L), blocks = (L + kRows - 1) / kRows;
  const int64_t tasks = a.batch * a.heads * blocks;
#pragma omp parallel if (tasks > 1)
  {
    std::vector<float> s(size_t(kRows * nk)), o(size_t(kRows * D)), mx(kRows);
    std::vector<double> sum(kRows);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t bh = t / blocks, i0 = (t % blocks) * kRows, m = std::min(kRows, L - i0);
      const Head hd = head_of(qkv, a, bh / a.heads, bh % a.heads);
      std::fill(mx.begin(), mx.end(), -INFINITY);
      std::fill(sum.begin(), sum.end(), 0.0);
      for (int64_t j0 = 0; j0 < L; j0 += nk) {
        const int64_t n = std::min(nk, L - j0);
        scores(hd, i0, m, j0, n, D, s.data());
        for (int64_t r = 0; r < m; ++r) {
          float *row = s.data() + r * n, *orow = o.data() + r * D, block_sum = 0.0f;
          const float new_max = row_max(row, n, mx[size_t(r)]);
#pragma omp simd reduction(+ : block_sum)
          for (int64_t j = 0; j < n; ++j) {
            row[j] = vexp(row[j] - new_max);
            block_sum += row[j];
          }
          // Rescale what earlier key blocks summed to the new max (on the first block there is
          // nothing yet: o is overwritten by the product below, with beta 0).
          if (j0 > 0) {
            const float corr = vexp(mx[size_t(r)] - new_max);
            for (int64_t d = 0; d < D; ++d) orow[d] *= corr;
            sum[size_t(r)] *= corr;
          }
          sum[size_t(r)] += block_sum;
          mx[size_t(r)] = new_max;
        }
        gemm(false, false, m, D, n, 1.0f, s.data(), n, hd.v + j0 * hd.ld, hd.ld, j0 == 0 ? 0.0f : 1.0f, o.data(), D);
      }
      for (int64_t r = 0; r < m; ++r) {
        float* dst = out + hd.out_offset + (i0 + r) * hd.ld_out;
        for (int64_t d = 0; d < D; ++d) dst[d] = float(o[size_t(r * D + d)] / sum[size_t(r)]);
        lse[bh * L + i0 + r] = mx[size_t(r)] + float(std::log(sum[size_t(r)]));
      }
    }
  }
}

// Parallel over (b, h) only: dk and dv of a key block sum over all query blocks, which run in order
// on one thread (deterministic, no atomics). B * heads is >= the core count when training.
void attention_bwd(const float* qkv, const float* out, const float* lse, const float* dout, float* delta,
                   float* dqkv, const AttnDims& a) {
  const int64_t L = a.tokens, D = a.head_dim, C = a.channels(), nk = key_block(D, L), bhs = a.batch * a.heads;
  const float scale = 1.0f / std::sqrt(float(D));
#pragma omp parallel for schedule(static) if (bhs * L * D > 65536)
  for (int64_t r = 0; r < a.batch * L * a.heads; ++r) {  // r = (b * L + i) * heads + h
    const int64_t h = r % a.heads, bi = r / a.heads, b = bi / L, i = bi % L;
    double acc = 0;
    for (int64_t d = 0; d < D; ++d) acc += double(out[bi * C + h * D + d]) * dout[bi * C + h * D + d];
    delta[(b * a.heads + h) * L + i] = float(acc);
  }
#pragma omp parallel if (bhs > 1)
  {
    std::vector<float> p(size_t(kRows * nk)), ds(p.size());
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < bhs; ++bh) {
      const Head hd = head_of(qkv, a, bh / a.heads, bh % a.heads);
      float *dq = dqkv + (hd.q - qkv), *dk = dqkv + (hd.k - qkv), *dv = dqkv + (hd.v - qkv);
      const float* go = dout + hd.out_offset;
      for (int64_t i0 = 0; i0 < L; i0 += kRows) {
        const int64_t m = std::min(kRows, L - i0);
        for (int64_t j0 = 0; j0 < L; j0 += nk) {
          const int64_t n = std::min(nk, L - j0);
          scores(hd, i0, m, j0, n, D, p.data());
          gemm(false, true, m, n, D, 1.0f, go + i0 * hd.ld_out, hd.ld_out, hd.v + j0 * hd.ld, hd.ld, 0.0f, ds.data(),
               n);  // dP = dout v^T
          for (int64_t r = 0; r < m; ++r) {
            const float l = lse[bh * L + i0 + r], dl = delta[bh * L + i0 + r];
            float *pr = p.data() + r * n, *dr = ds.data() + r * n;
#pragma omp simd
            for (int64_t j = 0; j < n; ++j) {
              const float pj = vexp(pr[j] - l);
              pr[j] = pj;
              dr[j] = pj * (dr[j] - dl);
            }
          }
          // The first block along each sum overwrites (beta 0), later ones add.
          gemm(false, false, m, D, n, scale, ds.data(), n, hd.k + j0 * hd.ld, hd.ld, j0 == 0 ? 0.0f : 1.0f,
               dq + i0 * hd.ld, hd.ld);
          gemm(true, false, n, D, m, scale, ds.data(), n, hd.q + i0 * hd.ld, hd.ld, i0 == 0 ? 0.0f : 1.0f,
               dk + j0 * hd.ld, hd.ld);
          gemm(true, false, n, D, m, 1.0f, p.data(), n, go + i0 * hd.ld_out, hd.ld_out, i0 == 0 ? 0.0f : 1.0f,
               dv + j0 * hd.ld, hd.ld);
        }
      }
    }
  }
}

// bf16: the f32 kernels on widened copies (kernels/widen.hpp).
void attention_fwd(const bf16* qkv, bf16* out, float* lse, const AttnDims& a) {
  const int64_t rows = a.batch * a.tokens;
  attention_fwd(Wide(qkv, rows * 3 * a.channels()), Narrow(out, rows * a.channels()), lse, a);
}
void attention_bwd(const bf16* qkv, const bf16* out, const float* lse, const bf16* dout, float* delta, bf16* dqkv,
                   const AttnDims& a) {
  const int64_t rows = a.batch * a.tokens, C = a.channels();
  attention_bwd(Wide(qkv, rows * 3 * C), Wide(out, rows * C), lse, Wide(dout, rows * C), delta,
                Narrow(dqkv, rows * 3 * C), a);
}

}  // namespace ddpm::kernels::cpu
