// AdamW and EMA on the GPU (one launch over all tensors) against the CPU loops.
#include <algorithm>
#include <cmath>

#include "bf16_training.hpp"
#include "engine/ops.hpp"
#include "engine/optim.hpp"
#include "gpu_helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

namespace {

// Odd sizes, with tiny tensors between big ones so the kernel's 8192-element chunks straddle
// tensor boundaries (one chunk covering several tensors, one tensor spanning many chunks), and
// some of the seed U-Net's real parameter shapes (conv OHWI, attention in_proj, norms).
std::vector<Shape> odd_shapes() {
  return {{1},   {3},     {8191},       {5, 7},     {8193}, {1},          {512, 3, 3, 512}, {768, 256},
          {256}, {100003}, {13},        {64, 3, 3, 3}, {2, 9}, {256, 256}, {7}};
}

std::vector<float> cat(const std::vector<Tensor>& ts) {
  std::vector<float> out;
  for (const Tensor& t : ts)
    for (float x : t.to_floats()) out.push_back(x);
  return out;
}

float max_abs_diff(const Tensor& a, const Tensor& b) {
  std::vector<float> x = a.to_floats(), y = b.to_floats();
  float d = 0.0f;
  for (size_t i = 0; i < x.size(); ++i) d = std::max(d, std::isfinite(x[i]) ? std::abs(x[i] - y[i]) : INFINITY);
  return d;
}

// Each tensor close in absolute terms (a mis-mapped chunk is off by O(lr) or more) and the whole
// list close in relative terms (f32 rounding: FMA contraction on the GPU, ~1e-7).
void check_lists(const std::vector<Tensor>& gpu, const std::vector<Tensor>& cpu, const char* what) {
  INFO(what);
  for (size_t k = 0; k < cpu.size(); ++k) {
    INFO("tensor " << k << " " << cpu[k].desc());
    REQUIRE(gpu[k].device() == Device::CUDA);
    CHECK(max_abs_diff(gpu[k], cpu[k]) < 1e-5f);
  }
  CHECK(rel_err(cat(gpu), cat(cpu)) < 1e-6);
}

}  // namespace

TEST_CASE("gpu: AdamW over many odd-sized tensors matches the CPU for 3 steps", "[gpu][optim]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  AdamWConfig cfg{0.02f, 0.9f, 0.999f, 1e-8f, 0.1f};
  const size_t frozen = 5;  // gets no grad: skipped on both devices
  std::vector<Tensor> cpu, gpu;
  for (const Shape& s : odd_shapes()) {
    cpu.push_back(randn(s, gen));
    gpu.push_back(cpu.back().to(Device::CUDA));
  }
  std::vector<float> frozen0 = cpu[frozen].to_floats();
  AdamW cpu_opt(cpu, cfg), gpu_opt(gpu, cfg);
  for (int step = 1; step <= 3; ++step) {
    CAPTURE(step);
    for (size_t k = 0; k < cpu.size(); ++k) {
      if (k == frozen) continue;
      // New grad tensors every step: the GPU's cached slot list must follow their new addresses.
      Tensor g = randn(cpu[k].shape(), gen, 0.1f * float(step));
      cpu[k].set_grad(g);
      gpu[k].set_grad(g.to(Device::CUDA));
    }
    cpu_opt.step();
    gpu_opt.step();
    check_lists(gpu, cpu, "parameters");
    check_lists(gpu_opt.exp_avg(), cpu_opt.exp_avg(), "exp_avg");
    check_lists(gpu_opt.exp_avg_sq(), cpu_opt.exp_avg_sq(), "exp_avg_sq");
    CHECK(gpu[frozen].to_floats() == frozen0);
  }
  // The same grads again (an unchanged slot list, the cached one is reused).
  cpu_opt.step();
  gpu_opt.step();
  check_lists(gpu, cpu, "parameters after a step with unchanged grads");
  // A state moved from the GPU to a CPU optimizer continues identically to the CPU one.
  std::vector<Tensor> copy;
  for (const Tensor& p : gpu) copy.push_back(p.to(Device::CPU));
  AdamW resumed(copy, cfg);
  resumed.load_state(gpu_opt.exp_avg(), gpu_opt.exp_avg_sq(), gpu_opt.steps());
  CHECK(resumed.exp_avg()[0].device() == Device::CPU);
  check_lists(gpu_opt.exp_avg_sq(), resumed.exp_avg_sq(), "loaded exp_avg_sq");
}

TEST_CASE("gpu: AdamW with bf16 weight copies matches the CPU: gradients from copies, copies rewritten",
          "[gpu][optim][bf16]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  AdamWConfig cfg{0.02f, 0.9f, 0.999f, 1e-8f, 0.1f};
  std::vector<Tensor> cpu, gpu;
  for (const Shape& s : odd_shapes()) {
    cpu.push_back(randn(s, gen).set_requires_grad(true));
    gpu.push_back(cpu.back().to(Device::CUDA).set_requires_grad(true));
  }
  AdamW cpu_opt(cpu, cfg), gpu_opt(gpu, cfg);
  // Every third tensor is used as f32 (no copy); of the others, one gets gradients both ways.
  auto copied = [](size_t k) { return k % 3 != 0; };
  const size_t both = 4;
  std::vector<Tensor> cpu_copy(cpu.size()), gpu_copy(gpu.size());
  {
    CastCache::Use use_cpu(cpu_opt.weight_copies());
    for (size_t k = 0; k < cpu.size(); ++k)
      if (copied(k)) cpu_copy[k] = cast(cpu[k], DType::BF16);
  }
  {
    CastCache::Use use_gpu(gpu_opt.weight_copies());
    for (size_t k = 0; k < gpu.size(); ++k)
      if (copied(k)) gpu_copy[k] = cast(gpu[k], DType::BF16);
  }
  for (int step = 1; step <= 3; ++step) {
    CAPTURE(step);
    for (size_t k = 0; k < cpu.size(); ++k) {
      if (!copied(k) || k == both) {
        Tensor g = randn(cpu[k].shape(), gen, 0.1f * float(step));
        cpu[k].set_grad(g);
        gpu[k].set_grad(g.to(Device::CUDA));
      }
      if (copied(k)) {
        Tensor g = randn(cpu[k].shape(), gen, 0.1f * float(step)).to(DType::BF16);
        cpu_copy[k].set_grad(g);
        gpu_copy[k].set_grad(g.to(Device::CUDA));
      }
    }
    cpu_opt.step();
    gpu_opt.step();
    check_lists(gpu, cpu, "parameters");
    check_lists(gpu_opt.exp_avg(), cpu_opt.exp_avg(), "exp_avg");
    check_lists(gpu_opt.exp_avg_sq(), cpu_opt.exp_avg_sq(), "exp_avg_sq");
    for (size_t k = 0; k < gpu.size(); ++k) {
      if (!copied(k)) continue;
      CAPTURE(k);
      // Each copy is its own weight rounded (the weights may differ from the CPU's in the last bit).
      CHECK(gpu_copy[k].to_floats() == gpu[k].to(DType::BF16).to_floats());
      CHECK(gpu_opt.weight_copies().find(gpu[k]).same(gpu_copy[k]));
    }
  }
}

TEST_CASE("gpu: bf16 training through AdamW's weight copies gives the casting path's weights", "[gpu][optim][bf16]") {
  const uint64_t seed = fresh_seed();
  CAPTURE(seed);
  Bf16Run copied = train_bf16_linear(seed, Device::CUDA, true, 3);
  Bf16Run plain = train_bf16_linear(seed, Device::CUDA, false, 3), cpu = train_bf16_linear(seed, Device::CPU, false, 3);
  for (size_t k = 0; k < cpu.params.size(); ++k) {
    CAPTURE(k);
    // The same kernels in the same order but for where the bf16 gradient is widened.
    CHECK(rel_err(copied.params[k].to_floats(), plain.params[k].to_floats()) < kTolF32);
    // The CPU's bf16 products round their sums from another order.
    CHECK(rel_err(copied.params[k].to_floats(), cpu.params[k].to_floats()) < kTolBF16);
  }
  CHECK(copied.params[0].to_floats() != train_bf16_linear(seed, Device::CUDA, true, 0).params[0].to_floats());
}

TEST_CASE("gpu: EMA over many odd-sized tensors matches the CPU", "[gpu][optim][ema]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  std::vector<Tensor> cpu, gpu;
  for (const Shape& s : odd_shapes()) {
    cpu.push_back(randn(s, gen));
    gpu.push_back(cpu.back().to(Device::CUDA));
  }
  EMA cpu_ema(cpu, 0.9f, 2), gpu_ema(gpu, 0.9f, 2);
  for (int step = 0; step < 4; ++step) {
    CAPTURE(step);
    for (size_t k = 0; k < cpu.size(); ++k) {
      cpu[k].copy_from(randn(cpu[k].shape(), gen));
      gpu[k].copy_from(cpu[k]);
    }
    cpu_ema.update(cpu, step);
    gpu_ema.update(gpu, step);
    check_lists(gpu_ema.shadow(), cpu_ema.shadow(), "shadow");
    if (step < 2) CHECK(cat(gpu_ema.shadow()) == cat(cpu));  // warm-up copies exactly
  }
}

TEST_CASE("gpu: optimizers reject parameters and grads on different devices", "[gpu][optim][errors]") {
  Generator gen = fresh_generator();
  Tensor c = randn({4}, gen), g = randn({4}, gen).to(Device::CUDA);
  CHECK_THROWS_WITH(AdamW({c, g}), Catch::Contains("AdamW") && Catch::Contains("cuda") && Catch::Contains("cpu"));
  CHECK_THROWS_AS(EMA({g, c}), Error);
  AdamW opt({g});
  g.set_grad(randn({4}, gen));  // a CPU grad for a GPU parameter
  CHECK_THROWS_AS(opt.step(), Error);
  EMA ema({g});
  CHECK_THROWS_AS(ema.update({c}, 0), Error);
}
