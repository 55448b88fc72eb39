// Private to the CUDA convolution (kernels/conv_cuda.cu, kernels/conv_igemm_cuda.cu): what the two
// backends behind kernels/conv.hpp's cuda:: functions share.
#pragma once
#include <cstddef>

#include "kernels/conv.hpp"

namespace ddpm::kernels::cuda::conv_detail {

// One device buffer of at least `bytes`, shared by cuDNN's algorithms and our split-K partial
// sums (conv_cuda.cu). Growing it first waits for the stream, so no queued kernel still uses the
// old buffer when it is freed.
void* workspace(size_t bytes);

// Our implicit-GEMM kernels (conv_igemm_cuda.cu): f32 data in TF32, and bf16 data.
void igemm_fwd(const ConvShape& s, const float* x, const float* w, const float* b, float* y);
void igemm_bwd_data(const ConvShape& s, const float* dy, const float* w, float* dx);
void igemm_bwd_filter(const ConvShape& s, const float* x, const float* dy, float* dw);
void igemm_fwd(const ConvShape& s, const bf16* x, const bf16* w, const bf16* b, bf16* y);
void igemm_bwd_data(const ConvShape& s, const bf16* dy, const bf16* w, bf16* dx);
void igemm_bwd_filter(const ConvShape& s, const bf16* x, const bf16* dy, bf16* dw);

}  // namespace ddpm::kernels::cuda::conv_detail
