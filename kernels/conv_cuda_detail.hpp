// Private to the CUDA convolution (kernels/conv_cuda.cu, kernels/conv_igemm_cuda.cu): what the two
// backends behind kernels/conv.hpp's cuda:: functions share.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/conv.hpp"

namespace ddpm::kernels::cuda::conv_detail {

// One device buffer of at least `bytes`, shared by cuDNN's algorithms and our split-K partial
// sums (conv_cuda.cu). A buffer it outgrows is kept, not freed: a recorded CUDA graph may still
// use it.
void* workspace(size_t bytes);

// Split-K for our GEMMs (conv_igemm_cuda.cu): into how many parts to split K for an M x N x K
// product in `tiles` output tiles of bm x bn, when `resident` blocks run at once and at most
// `max_splits` parts are allowed. Blocks run in waves of `resident`, and a wave takes as long as
// its blocks, busy or idle, so s parts cost ceil(tiles s / resident) waves of 2 bm bn K / s FLOPs
// per resident block, plus the partial sums (s + 1 passes of M N floats, written and read by
// reduce_splits) at kFlopsPerByte, roughly a Hopper GPU's tensor rate over its memory bandwidth.
// The cheapest s wins (the smaller on a tie). Too few parts leave SMs idle when the tiles are
// few (the filter gradient: K is the pixels, M N only the weights); too many pay in memory; and a
// last, partly empty wave is paid in full either way. Beyond 4 waves more parts only add memory
// traffic (the waves' cost is then within 25% of its floor), so the search stops there.
inline int64_t split_count(int64_t m, int64_t n, int64_t k, int64_t bm, int64_t bn, int64_t resident,
                           int64_t max_splits) {
  constexpr double kFlopsPerByte = 150;
  const int64_t tiles = ((m + bm - 1) / bm) * ((n + bn - 1) / bn);
  const int64_t last = std::min(max_splits, (4 * resident + tiles - 1) / tiles);
  int64_t best = 1;
  double best_cost = 0;
  for (int64_t s = 1; s <= last; ++s) {
    const int64_t waves = (tiles * s + resident - 1) / resident;
    const double cost = double(waves) * double(resident) * 2.0 * double(bm * bn) * double(k) / double(s) +
                        (s > 1 ? double(s + 1) * 4.0 * double(m) * double(n) * kFlopsPerByte : 0.0);
    if (s == 1 || cost < best_cost) best = s, best_cost = cost;
  }
  return best;
}

// Our implicit-GEMM kernels (conv_igemm_cuda.cu): f32 data in TF32, and bf16 data.
void igemm_fwd(const ConvShape& s, const float* x, const float* w, const float* b, float* y);
void igemm_bwd_data(const ConvShape& s, const float* dy, const float* w, float* dx);
void igemm_bwd_filter(const ConvShape& s, const float* x, const float* dy, float* dw);
void igemm_fwd(const ConvShape& s, const bf16* x, const bf16* w, const bf16* b, bf16* y);
void igemm_bwd_data(const ConvShape& s, const bf16* dy, const bf16* w, bf16* dx);
void igemm_bwd_filter(const ConvShape& s, const bf16* x, const bf16* dy, bf16* dw);

// Our direct kernels for thin layers (conv_thin_cuda.cu): the three passes of a convolution with
// at most 4 channels on one side. thin_fits says whether they take a pass.
bool thin_fits(const ConvShape& s, ConvDir dir);
void thin_fwd(const ConvShape& s, const float* x, const float* w, const float* b, float* y);
void thin_bwd_data(const ConvShape& s, const float* dy, const float* w, float* dx);
void thin_bwd_filter(const ConvShape& s, const float* x, const float* dy, float* dw);
void thin_fwd(const ConvShape& s, const bf16* x, const bf16* w, const bf16* b, bf16* y);
void thin_bwd_data(const ConvShape& s, const bf16* dy, const bf16* w, bf16* dx);
void thin_bwd_filter(const ConvShape& s, const bf16* x, const bf16* dy, bf16* dw);

}  // namespace ddpm::kernels::cuda::conv_detail
