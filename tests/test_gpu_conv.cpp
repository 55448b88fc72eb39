// conv2d on the GPU (cuDNN for now) against the CPU (im2col + OpenBLAS): output and the three
// gradients, at odd sizes and at the seed model's real shapes; TF32 mode; device mismatches.
#include "gpu_helpers.hpp"
#ifdef DDPM_HAVE_CUDA
#include "kernels/cuda_context.hpp"
#endif

using namespace ddpm;
using namespace ddpm::test;

namespace {

void compare_conv(int64_t n, int64_t h, int64_t w, int64_t cin, int64_t cout, int64_t k, bool bias, Generator& gen,
                  double tol = kTolF32) {
  CAPTURE(n, h, w, cin, cout, k, bias);
  std::vector<Tensor> in{randn({n, h, w, cin}, gen), randn({cout, k, k, cin}, gen)};
  if (bias) in.push_back(randn({cout}, gen));
  compare_backends(
      [bias](const std::vector<Tensor>& t) { return bias ? conv2d(t[0], t[1], t[2]) : conv2d(t[0], t[1]); }, in,
      gen, true, tol);
}

}  // namespace

TEST_CASE("gpu: conv2d matches the CPU at odd sizes", "[gpu][conv]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (bool bias : {false, true}) {
    compare_conv(1, 1, 1, 3, 5, 3, bias, gen);  // 1x1 spatial
    compare_conv(2, 2, 2, 5, 3, 3, bias, gen);  // all border
    compare_conv(1, 5, 7, 13, 3, 3, bias, gen);
    compare_conv(3, 9, 11, 7, 13, 3, bias, gen);
    compare_conv(1, 1, 1, 5, 3, 1, bias, gen);
    compare_conv(3, 9, 11, 7, 13, 1, bias, gen);
  }
}

TEST_CASE("gpu: conv2d matches the CPU at the seed model's shapes", "[gpu][conv]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  compare_conv(2, 64, 64, 3, 64, 3, false, gen);     // inc at 64x64, RGB in
  compare_conv(2, 32, 32, 128, 128, 3, false, gen);  // down1's DoubleConv at H/2
  compare_conv(2, 8, 8, 256, 512, 3, false, gen);    // bot1 at H/8
  compare_conv(2, 64, 64, 128, 64, 3, false, gen);   // up3 after the skip concat
  compare_conv(2, 64, 64, 64, 3, 1, true, gen);      // outc: 1x1 with bias
  compare_conv(2, 32, 32, 32, 1, 1, true, gen);      // outc of a 32x32 grayscale model, b = 32
}

#ifdef DDPM_HAVE_CUDA
TEST_CASE("gpu: conv2d in TF32 mode stays within TF32 rounding of the CPU", "[gpu][conv][tf32]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  struct Tf32On {  // restores FP32 even when a check throws
    Tf32On() { cuda::set_allow_tf32(true); }
    ~Tf32On() { cuda::set_allow_tf32(false); }
  } on;
  const double tol = 5e-3;  // TF32 keeps 10 mantissa bits
  compare_conv(2, 32, 32, 128, 128, 3, false, gen, tol);
  compare_conv(2, 64, 64, 64, 3, 1, true, gen, tol);
  compare_conv(3, 9, 11, 7, 13, 3, true, gen, tol);
}
#endif

TEST_CASE("gpu: conv2d rejects tensors on different devices", "[gpu][conv][errors]") {
  Generator gen = fresh_generator();
  Tensor x = randn({1, 4, 4, 3}, gen), w = randn({5, 3, 3, 3}, gen), b = randn({5}, gen);
  CHECK_THROWS_WITH(conv2d(x, w.to(Device::CUDA)), Catch::Contains("conv2d") && Catch::Contains("device"));
  CHECK_THROWS_AS(conv2d(x.to(Device::CUDA), w.to(Device::CUDA), b), Error);
}
