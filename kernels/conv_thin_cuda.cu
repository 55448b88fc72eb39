// Backend Ours for thin layers: the launches of kernels/conv_thin.cuh's direct kernels on the GPU
// (the filter gradient's partial sums in the shared convolution workspace).
#include "kernels/conv_cuda_detail.hpp"
#include "kernels/conv_thin.cuh"

namespace ddpm::kernels::cuda::conv_detail {

using ddpm::cuda::DeviceLaunch;

bool thin_fits(const ConvShape& s, ConvDir dir) { return thin::fits(s, dir); }

#define FOR_FLOAT_AND_BF16(T)                                                                           \
  void thin_fwd(const ConvShape& s, const T* x, const T* w, const T* b, T* y) {                         \
    thin::run(DeviceLaunch{}, thin::forward(s, x, w, b, y));                                            \
  }                                                                                                     \
  void thin_bwd_data(const ConvShape& s, const T* dy, const T* w, T* dx) {                              \
    thin::run(DeviceLaunch{}, thin::data_gradient(s, dy, w, dx));                                       \
  }                                                                                                     \
  void thin_bwd_filter(const ConvShape& s, const T* x, const T* dy, T* dw) {                            \
    thin::Filter<T> a = thin::filter_gradient(s, x, dy, dw, nullptr);                                   \
    a.work = static_cast<float*>(workspace(size_t(thin::filter_work(a)) * sizeof(float)));              \
    thin::run(DeviceLaunch{}, a);                                                                       \
  }
FOR_FLOAT_AND_BF16(float)
FOR_FLOAT_AND_BF16(bf16)
#undef FOR_FLOAT_AND_BF16

}  // namespace ddpm::kernels::cuda::conv_detail
