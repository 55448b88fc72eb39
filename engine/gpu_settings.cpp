#include "engine/gpu_settings.hpp"

#include "kernels/error.hpp"
#ifdef DDPM_HAVE_CUDA
#include "kernels/conv.hpp"
#include "kernels/cuda_context.hpp"
#endif

namespace ddpm {
namespace {
GpuSettings g_settings;
}

void set_gpu_settings(const GpuSettings& s) {
  DDPM_CHECK(s.tf32 || s.conv != ConvImpl::Ours, "gpu settings",
             "our convolution kernels run on TF32 tensor cores: turn TF32 on to use them (--tf32)");
#ifdef DDPM_HAVE_CUDA
  ddpm::cuda::set_allow_tf32(s.tf32);
  kernels::cuda::set_conv_backend(s.conv == ConvImpl::Ours ? kernels::ConvBackend::Ours : kernels::ConvBackend::CuDNN);
#endif
  g_settings = s;
}

GpuSettings gpu_settings() { return g_settings; }

}  // namespace ddpm
