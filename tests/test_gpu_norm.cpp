// group_norm and layer_norm on the GPU against the CPU (outputs and gradients of x, w, b): odd
// sizes that do not fill a block or a float4, group layouts that split a float4, and the seed
// model's shapes; plus run-to-run determinism of the split reductions.
#include "gpu_helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

namespace {

void compare_group_norm(const Shape& s, int64_t groups, Act act, Generator& gen) {
  CAPTURE(shape_str(s), groups, int(act));
  const int64_t C = s.back();
  compare_backends(
      [groups, act](const std::vector<Tensor>& in) { return group_norm(in[0], groups, in[1], in[2], 1e-5f, act); },
      {randn(s, gen, 2.0f), randn({C}, gen), randn({C}, gen)}, gen);
}

}  // namespace

TEST_CASE("gpu: group_norm matches the CPU at odd sizes", "[gpu][norm]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  compare_group_norm({1, 1, 1, 5}, 1, Act::GELU, gen);      // 1x1 spatial, batch 1
  compare_group_norm({2, 3, 3, 13}, 13, Act::SiLU, gen);    // one channel per group, scalar path
  compare_group_norm({3, 5, 7, 12}, 3, Act::GELU, gen);     // Cg = 4: float4 path with groups
  compare_group_norm({3, 5, 7, 12}, 4, Act::None, gen);     // Cg = 3: float4 column sums straddle groups
  compare_group_norm({2, 9, 11, 3}, 1, Act::GELU, gen);     // C = 3
  compare_group_norm({1, 17, 19, 136}, 2, Act::SiLU, gen);  // two channel tiles, several splits
  compare_group_norm({5, 16, 16, 32}, 32, Act::GELU, gen);  // many small groups
}

TEST_CASE("gpu: group_norm matches the CPU at the model's shapes", "[gpu][norm]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  compare_group_norm({2, 64, 64, 64}, 1, Act::GELU, gen);  // GroupNorm(1, 64) + GELU at 64x64
  compare_group_norm({4, 8, 8, 512}, 1, Act::None, gen);   // the bottleneck's last norm
  compare_group_norm({16, 32, 32, 128}, 1, Act::GELU, gen);
}

TEST_CASE("gpu: group_norm with a per-sample shift matches the CPU", "[gpu][norm]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  // The U-Net's last norm of Down and Up, with the embedding folded in; and odd sizes.
  for (auto [s, act] : {std::pair{Shape{2, 16, 16, 128}, Act::None}, std::pair{Shape{3, 5, 7, 12}, Act::GELU},
                        std::pair{Shape{2, 3, 3, 5}, Act::None}}) {
    CAPTURE(shape_str(s), int(act));
    const int64_t C = s.back();
    compare_backends(
        [act](const std::vector<Tensor>& in) { return group_norm(in[0], 1, in[1], in[2], 1e-5f, act, in[3]); },
        {randn(s, gen, 2.0f), randn({C}, gen), randn({C}, gen), randn({s[0], C}, gen)}, gen);
  }
}

TEST_CASE("gpu: group_norm with a residual before its GELU matches the CPU", "[gpu][norm]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  // The U-Net's residual DoubleConv at 32x32, and odd sizes (the one-value path).
  for (const Shape& s : {Shape{2, 32, 32, 64}, Shape{3, 5, 7, 5}}) {
    CAPTURE(shape_str(s));
    const int64_t C = s.back();
    compare_backends(
        [](const std::vector<Tensor>& in) {
          return group_norm(in[0], 1, in[1], in[2], 1e-5f, Act::GELU, Tensor(), in[3]);
        },
        {randn(s, gen, 2.0f), randn({C}, gen), randn({C}, gen), randn(s, gen)}, gen);
  }
}

TEST_CASE("gpu: layer_norm matches the CPU", "[gpu][norm]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (Shape s :
       {Shape{3, 7, 13}, Shape{5, 3}, Shape{300, 36}, Shape{2, 1024, 128}, Shape{2, 4096, 64}, Shape{4, 3, 1000}}) {
    CAPTURE(shape_str(s));
    const int64_t C = s.back();
    compare_backends([](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], in[2]); },
                     {randn(s, gen, 3.0f), randn({C}, gen), randn({C}, gen)}, gen);
  }
}

TEST_CASE("gpu: bf16 norms of a view off a 16-byte boundary match the CPU", "[gpu][norm][bf16]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  // Rows of 4 bf16 values (8 bytes): slice0(1, 3) starts 8 bytes in, where the 4-wide path's
  // alignment check must send the kernels down their one-value path (forward only: slice0 has no
  // gradient). The CPU emulator cannot catch a wrong check: x86 loads misaligned data silently.
  const Tensor x = randn({3, 1, 1, 4}, gen).to(DType::BF16), w = randn({4}, gen), b = randn({4}, gen);
  compare_backends([](const std::vector<Tensor>& in) { return group_norm(in[0].slice0(1, 3), 2, in[1], in[2]); },
                   {x, w, b}, gen, false, kTolBF16);
  compare_backends([](const std::vector<Tensor>& in) { return layer_norm(in[0].slice0(1, 3), in[1], in[2]); },
                   {x.reshape({3, 4}), w, b}, gen, false, kTolBF16);
}

TEST_CASE("gpu: norms are deterministic from run to run", "[gpu][norm]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  Tensor x = randn({8, 32, 32, 64}, gen).to(Device::CUDA).set_requires_grad();
  Tensor w = randn({64}, gen).to(Device::CUDA).set_requires_grad(), b = randn({64}, gen).to(Device::CUDA);
  Tensor g = randn({8, 32, 32, 64}, gen).to(Device::CUDA);
  std::vector<std::vector<float>> runs[2];
  for (auto& run : runs) {
    x.zero_grad();
    w.zero_grad();
    Tensor y = group_norm(x, 1, w, b, 1e-5f, Act::GELU);
    y.backward(g);
    run = {y.to_floats(), x.grad().to_floats(), w.grad().to_floats()};
  }
  CHECK(runs[0] == runs[1]);
}
