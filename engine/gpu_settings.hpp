// Run-wide choices for the CUDA backend; they change nothing on the CPU.
//
// - tf32: f32 convolutions, matrix products and attention on TF32 tensor cores (inputs rounded to
//   10-bit mantissas, f32 accumulation: about 1e-3 relative error, what PyTorch does for
//   convolutions by default). Off: exact f32 (FMA) everywhere, matching the CPU to ~1e-6.
// - conv: which convolution implementation runs: cuDNN, ours (kernels/conv_igemm*), measured
//   (per shape, dtype and direction the one bench_conv measured faster: a fixed rule,
//   kernels/conv.hpp's ours_measured_faster), or auto (the faster of the two, timed on first use;
//   the choice depends on timing, so runs may differ in the last bits). Ours has no exact f32
//   path: f32 data runs it in TF32, so `ours` needs tf32 on unless the run's network computes in
//   bf16 (set_gpu_settings refuses otherwise, rather than quietly running cuDNN), and `measured`
//   and `auto` without tf32 only choose for bf16 data.
// - bf16_data: the run's network computes in bf16 (--precision bf16); only that rule reads it.
#pragma once
#include <string>
#include <vector>

namespace ddpm {

enum class ConvImpl { CuDNN, Ours, Measured, Auto };

struct GpuSettings {
  bool tf32 = false;
  ConvImpl conv = ConvImpl::CuDNN;
  bool bf16_data = false;
};

const std::vector<std::string>& conv_impl_names();  // "cudnn", "ours", "measured", "auto"
ConvImpl parse_conv_impl(const std::string& name);  // one of conv_impl_names()
void set_gpu_settings(const GpuSettings& settings);
GpuSettings gpu_settings();

}  // namespace ddpm
