// Reductions to one value (sum, mean) and the mean squared error loss with its gradient.
//
// Conventions (both backends): float32 inputs of n elements, contiguous; the result is one float
// written to out[0] on the backend's device. Sums accumulate in double over reduce_parts(n)
// contiguous chunks of reduce_chunk(n) elements; the chunk sums go to `work` (reduce_parts(n)
// doubles of caller-provided scratch) and are then added in chunk order. Both backends split the
// same way and use no atomics, so a result is reproducible bit for bit from run to run.
// Gradients take g, the one-element upstream gradient, as a device pointer (no host sync).
#pragma once
#include <algorithm>
#include <cstdint>

namespace ddpm::kernels {

// At most 1024 chunks (one 256-thread block each on the GPU), at least 4096 elements each.
inline int64_t reduce_chunk(int64_t n) { return std::max<int64_t>(4096, (n + 1023) / 1024); }
inline int64_t reduce_parts(int64_t n) { return (n + reduce_chunk(n) - 1) / reduce_chunk(n); }

namespace cpu {
void sum(const float* x, int64_t n, double scale, float* out, double* work);  // out[0] = scale * sum(x)
void mse(const float* a, const float* b, int64_t n, float* out, double* work);  // out[0] = sum((a - b)^2) / n
// da = (a - b) * (2 g[0] / n); db = -da unless db is null.
void mse_bwd(const float* a, const float* b, const float* g, int64_t n, float* da, float* db);
void fill_scaled(const float* g, float scale, float* out, int64_t n);  // out[i] = g[0] * scale
}  // namespace cpu

#ifdef DDPM_HAVE_CUDA
namespace cuda {
void sum(const float* x, int64_t n, double scale, float* out, double* work);
void mse(const float* a, const float* b, int64_t n, float* out, double* work);
void mse_bwd(const float* a, const float* b, const float* g, int64_t n, float* da, float* db);
void fill_scaled(const float* g, float scale, float* out, int64_t n);
}  // namespace cuda
#endif

}  // namespace ddpm::kernels
