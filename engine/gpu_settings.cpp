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

const std::vector<std::string>& conv_impl_names() {
  static const std::vector<std::string> names{"cudnn", "ours", "measured", "auto"};
  return names;
}

ConvImpl parse_conv_impl(const std::string& name) {
  if (name == "ours") return ConvImpl::Ours;
  if (name == "measured") return ConvImpl::Measured;
  if (name == "auto") return ConvImpl::Auto;
  DDPM_CHECK(name == "cudnn", "gpu settings", "unknown convolution implementation '", name,
             "' (cudnn, ours, measured or auto)");
  return ConvImpl::CuDNN;
}

void set_gpu_settings(const GpuSettings& s) {
  DDPM_CHECK(s.tf32 || s.bf16_data || s.conv != ConvImpl::Ours, "gpu settings",
             "--conv ours needs --tf32 (or --precision bf16): our convolution kernels have no exact f32 path");
#ifdef DDPM_HAVE_CUDA
  ddpm::cuda::set_allow_tf32(s.tf32);
  kernels::cuda::set_conv_backend(s.conv == ConvImpl::Ours       ? kernels::ConvBackend::Ours
                                  : s.conv == ConvImpl::Measured ? kernels::ConvBackend::Measured
                                  : s.conv == ConvImpl::Auto     ? kernels::ConvBackend::Auto
                                                                 : kernels::ConvBackend::CuDNN);
#endif
  g_settings = s;
}

GpuSettings gpu_settings() { return g_settings; }

}  // namespace ddpm
