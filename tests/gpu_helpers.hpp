// GPU-versus-CPU comparison helpers (ggml's backend-ops idea): run the same op on CPU tensors
// and on copies of them on the GPU, and compare outputs and gradients by relative error.
// The allocator poisons fresh GPU memory with NaN (gpu_main.cpp), so unwritten elements fail.
#pragma once
#include "helpers.hpp"

namespace ddpm::test {

// Tolerances: f32 kernels differ from the CPU only in summation order (about 1e-6 relative);
// bf16 rounding of stored values gives about 4e-3 per element.
constexpr double kTolF32 = 1e-5;
constexpr double kTolBF16 = 1e-2;

inline std::vector<Tensor> to_device(const std::vector<Tensor>& xs, Device d) {
  std::vector<Tensor> out;
  for (const Tensor& x : xs) out.push_back(x.to(d));
  return out;
}

// Runs f on `inputs` on the CPU and on the GPU; compares the outputs and, when `grads`, the
// gradients of every floating (f32 or bf16) input for the same random output gradient.
inline void compare_backends(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                             const std::vector<Tensor>& inputs, Generator& gen, bool grads = true,
                             double tol = kTolF32) {
  std::vector<Tensor> cpu_in, gpu_in;
  for (const Tensor& x : inputs) {
    Tensor c = x.clone(), g = x.to(Device::CUDA);
    if (grads && (x.dtype() == DType::F32 || x.dtype() == DType::BF16)) {
      c.set_requires_grad(true);
      g.set_requires_grad(true);
    }
    cpu_in.push_back(c);
    gpu_in.push_back(g);
  }
  Tensor cpu_out = f(cpu_in), gpu_out = f(gpu_in);
  REQUIRE(gpu_out.device() == Device::CUDA);
  REQUIRE(cpu_out.shape() == gpu_out.shape());
  CHECK(rel_err(gpu_out, cpu_out) < tol);
  if (!grads) return;
  Tensor r = Tensor::randn(cpu_out.shape(), gen).to(cpu_out.dtype());
  cpu_out.backward(r);
  gpu_out.backward(r.to(Device::CUDA));
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!cpu_in[i].requires_grad()) continue;
    INFO("gradient of input " << i << " " << inputs[i].desc());
    REQUIRE(gpu_in[i].grad().defined());
    CHECK(rel_err(gpu_in[i].grad(), cpu_in[i].grad()) < tol);
  }
}

}  // namespace ddpm::test
