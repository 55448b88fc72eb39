// Softmax cross-entropy of classifier logits against integer labels, and its gradient.
//
// Conventions (both backends): logits f32 [n, k] row-major, labels i64 [n] each in [0, k) (the
// engine op checks the range before calling), all contiguous on the backend's device.
// - xent_fwd: lse[i] = log sum_j exp(logits[i, j]), computed as m + log sum_j exp(logits[i, j] - m)
//   with m the row's maximum, so no exp overflows and the largest term is exactly 1; the row sums
//   accumulate in double. loss_i = lse[i] - logits[i, labels[i]] goes to work[i] (n doubles of
//   caller-provided scratch), and out[0] = (sum over i of loss_i, in row order) / n.
// - xent_bwd: dlogits[i, j] = g[0] / n * (exp(logits[i, j] - lse[i]) - [j == labels[i]]),
//   overwritten; g is the one-element upstream gradient as a device pointer (no host sync).
// Both backends sum the rows in a fixed order and use no atomics: results are reproducible.
#pragma once
#include <cstdint>

namespace ddpm::kernels {

namespace cpu {
void xent_fwd(const float* logits, const int64_t* labels, int64_t n, int64_t k, float* lse, float* out, double* work);
void xent_bwd(const float* logits, const int64_t* labels, const float* lse, const float* g, int64_t n, int64_t k,
              float* dlogits);
}  // namespace cpu

#ifdef DDPM_HAVE_CUDA
namespace cuda {
void xent_fwd(const float* logits, const int64_t* labels, int64_t n, int64_t k, float* lse, float* out, double* work);
void xent_bwd(const float* logits, const int64_t* labels, const float* lse, const float* g, int64_t n, int64_t k,
              float* dlogits);
}  // namespace cuda
#endif

}  // namespace ddpm::kernels
