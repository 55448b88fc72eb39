// Run-wide choices for the CUDA backend; they change nothing on the CPU.
//
// - tf32: f32 convolutions and matrix products on TF32 tensor cores (inputs rounded to 10-bit
//   mantissas, f32 accumulation: about 1e-3 relative error, what PyTorch does for convolutions by
//   default). Off: exact f32 (FMA) everywhere, matching the CPU to ~1e-6.
// - conv: which convolution implementation runs, cuDNN or ours (kernels/conv_igemm*). Ours is a
//   TF32 tensor-core kernel, so it needs tf32 on; set_gpu_settings refuses otherwise.
#pragma once
#include <string>

namespace ddpm {

enum class ConvImpl { CuDNN, Ours };

struct GpuSettings {
  bool tf32 = false;
  ConvImpl conv = ConvImpl::CuDNN;
};

ConvImpl parse_conv_impl(const std::string& name);  // "cudnn" or "ours"
void set_gpu_settings(const GpuSettings& settings);
GpuSettings gpu_settings();

}  // namespace ddpm
