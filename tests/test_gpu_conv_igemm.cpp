// Our implicit-GEMM convolution kernels (kernels/conv_igemm.cuh and, in bf16 on an H100/H200,
// kernels/conv_wgmma.cuh; backend Ours) against the CPU
// (im2col + OpenBLAS in f32): forward (with and without bias), data gradient, filter gradient and
// the bias gradient, in TF32 through the engine's conv2d and in bf16 through the kernels' bf16
// functions (ours, and cuDNN's bf16 behind the same functions); bit-identical results from run to
// run; the exact-f32 route when TF32 is off.
//
// Tolerances, as ||gpu - cpu|| / ||cpu|| over a whole tensor:
// - TF32 (5e-3): each operand is rounded to 10 mantissa bits, a relative error of at most 2^-11
//   (rms ~2^-11/sqrt(3)) per operand, so ~4e-4 rms per product. On random-sign data a sum of K
//   products has magnitude ~sqrt(K)*s and its rounding error ~sqrt(K)*4e-4*s: both grow with
//   sqrt(K), so the norm-wise relative error stays near 4e-4 whatever K (f32 accumulation adds
//   ~1e-7*sqrt(K)). 5e-3 leaves a 10x margin and still fails any wrong index (errors of O(1)).
// - bf16 (1e-2, kTolBF16): inputs are exactly bf16 (the CPU gets the same rounded values), products
//   are exact in f32 and sums are f32, so the error is the final rounding of each output to bf16:
//   at most 2^-8 relative, rms ~1.1e-3.
#include "gpu_helpers.hpp"
#ifdef DDPM_HAVE_CUDA
#include "kernels/conv.hpp"
#include "kernels/cuda_context.hpp"

using namespace ddpm;
using namespace ddpm::test;
using kernels::ConvBackend;
using kernels::ConvShape;

namespace {

constexpr double kTolTF32 = 5e-3;

// Backend `use` (Ours unless named) with TF32 `on` and our bf16 kernels' v6 (wgmma, where it can
// run) or v4 for one test; restores the previous settings (v6 being the default) even when a check
// throws.
struct UseOurs {
  ConvBackend backend = kernels::cuda::conv_backend();
  bool tf32 = cuda::allow_tf32();
  explicit UseOurs(bool on = true, ConvBackend use = ConvBackend::Ours, bool wgmma = true) {
    kernels::cuda::set_conv_backend(use);
    cuda::set_allow_tf32(on);
    kernels::cuda::set_conv_wgmma(wgmma);
  }
  ~UseOurs() {
    kernels::cuda::set_conv_backend(backend);
    cuda::set_allow_tf32(tf32);
    kernels::cuda::set_conv_wgmma(true);
  }
};

// y and the gradients of x, w (and b) for output gradient r, on `device`, as host floats.
std::vector<std::vector<float>> conv_run(const std::vector<Tensor>& inputs, const Tensor& r, Device device) {
  std::vector<Tensor> in;
  for (const Tensor& t : inputs) in.push_back(t.to(device).set_requires_grad(true));
  Tensor y = in.size() > 2 ? conv2d(in[0], in[1], in[2]) : conv2d(in[0], in[1]);
  y.backward(r.to(device));
  std::vector<std::vector<float>> out{y.to_floats()};
  for (const Tensor& t : in) out.push_back(t.grad().to_floats());
  return out;
}

// conv2d and its gradients on the GPU (twice: the runs must agree bit for bit) against the CPU.
void check_conv(int64_t n, int64_t h, int64_t w, int64_t cin, int64_t cout, int64_t k, bool bias, Generator& gen,
                double tol = kTolTF32) {
  CAPTURE(n, h, w, cin, cout, k, bias);
  std::vector<Tensor> in{randn({n, h, w, cin}, gen), randn({cout, k, k, cin}, gen)};
  if (bias) in.push_back(randn({cout}, gen));
  Tensor r = randn({n, h, w, cout}, gen);
  const auto cpu = conv_run(in, r, Device::CPU), gpu = conv_run(in, r, Device::CUDA),
             again = conv_run(in, r, Device::CUDA);
  const char* what[] = {"y", "dx", "dw", "db"};
  for (size_t i = 0; i < cpu.size(); ++i) {
    INFO(what[i]);
    CHECK(rel_err(gpu[i], cpu[i]) < tol);
    CHECK(gpu[i] == again[i]);
  }
}

// The bf16 kernels on bf16-rounded random data against the CPU's f32 kernels on the same values:
// forward (+ bias), data gradient, filter gradient; each run twice (bit-identical).
void check_bf16(const ConvShape& s, bool bias, Generator& gen) {
  CAPTURE(s.n, s.h, s.w, s.cin, s.cout, s.k, bias);
  const Shape xs{s.n, s.h, s.w, s.cin}, ys{s.n, s.h, s.w, s.cout}, ws{s.cout, s.k, s.k, s.cin};
  // Rounded once: the CPU reference reads exactly the values the GPU reads.
  Tensor x = randn(xs, gen).to(DType::BF16).to(DType::F32), w = randn(ws, gen).to(DType::BF16).to(DType::F32),
         dy = randn(ys, gen).to(DType::BF16).to(DType::F32),
         b = bias ? randn({s.cout}, gen).to(DType::BF16).to(DType::F32) : Tensor();
  Tensor y = Tensor::empty(ys), dx = Tensor::empty(xs), dw = Tensor::empty(ws);
  kernels::cpu::conv2d_fwd(s, x.data<float>(), w.data<float>(), bias ? b.data<float>() : nullptr, y.data<float>());
  kernels::cpu::conv2d_bwd_data(s, dy.data<float>(), w.data<float>(), dx.data<float>());
  kernels::cpu::conv2d_bwd_filter(s, x.data<float>(), dy.data<float>(), dw.data<float>());

  auto gpu = [](const Tensor& t) { return t.to(DType::BF16).to(Device::CUDA); };
  Tensor gx = gpu(x), gw = gpu(w), gdy = gpu(dy), gb = bias ? gpu(b) : Tensor();
  auto run = [&] {  // y, dx, dw as host floats
    Tensor gy = Tensor::empty(ys, DType::BF16, Device::CUDA), gdx = Tensor::empty(xs, DType::BF16, Device::CUDA),
           gdw = Tensor::empty(ws, DType::BF16, Device::CUDA);
    kernels::cuda::conv2d_fwd(s, gx.data<bf16>(), gw.data<bf16>(), bias ? gb.data<bf16>() : nullptr, gy.data<bf16>());
    kernels::cuda::conv2d_bwd_data(s, gdy.data<bf16>(), gw.data<bf16>(), gdx.data<bf16>());
    kernels::cuda::conv2d_bwd_filter(s, gx.data<bf16>(), gdy.data<bf16>(), gdw.data<bf16>());
    return std::vector<std::vector<float>>{gy.to_floats(), gdx.to_floats(), gdw.to_floats()};
  };
  const auto first = run(), second = run();
  const std::vector<float> ref[] = {y.to_floats(), dx.to_floats(), dw.to_floats()};
  const char* what[] = {"y", "dx", "dw"};
  for (size_t i = 0; i < 3; ++i) {
    INFO(what[i]);
    CHECK(rel_err(first[i], ref[i]) < kTolBF16);
    CHECK(first[i] == second[i]);
  }
}

}  // namespace

TEST_CASE("gpu igemm: TF32 conv2d and its gradients match the CPU at the seed model's shapes", "[gpu][conv]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  UseOurs ours;
  check_conv(2, 64, 64, 3, 64, 3, false, gen);     // inc: RGB in, Cin = 3 (element-wise loads)
  check_conv(2, 64, 64, 64, 64, 3, false, gen);    // inc / up3 at 64x64
  check_conv(2, 32, 32, 128, 128, 3, false, gen);  // down1 at H/2
  check_conv(2, 16, 16, 256, 256, 3, false, gen);  // down2 at H/4
  check_conv(2, 8, 8, 512, 256, 3, false, gen);    // bot3 at H/8 (split K in every direction)
  check_conv(2, 64, 64, 64, 3, 1, true, gen);      // outc: 1x1 with bias, Cout = 3
}

// The other tests use batch 2. At a training batch the filter gradient's sums are long (65,536
// terms here, split over blocks into f32 partial sums) and the split counts differ: the TF32
// argument above (the norm-wise error stays ~4e-4 whatever K) is checked where it matters.
TEST_CASE("gpu igemm: TF32 conv2d matches the CPU at a full training batch", "[gpu][conv]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  UseOurs ours;
  check_conv(64, 32, 32, 128, 128, 3, false, gen);  // down1 of a 64x64 step: 19.3 GFLOP a pass
}

TEST_CASE("gpu igemm: TF32 conv2d matches the CPU at awkward sizes", "[gpu][conv]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  UseOurs ours;
  for (bool bias : {false, true}) {
    check_conv(1, 1, 1, 5, 13, 3, bias, gen);    // 1x1 spatial: every tap but the centre is padding
    check_conv(2, 2, 2, 13, 5, 3, bias, gen);    // all border
    check_conv(1, 5, 7, 70, 13, 3, bias, gen);   // channels not a multiple of 4 or of a tile
    check_conv(3, 9, 11, 13, 70, 3, bias, gen);
    check_conv(1, 9, 15, 64, 136, 3, bias, gen); // M tail (135 pixels), two N tiles, 16-byte loads
    check_conv(1, 1, 1, 70, 5, 1, bias, gen);
    check_conv(3, 9, 11, 5, 13, 1, bias, gen);
    check_conv(1, 3, 3, 64, 64, 1, bias, gen);
  }
}

TEST_CASE("gpu: backends Measured (a fixed rule) and Auto (timed once) match the CPU and keep their choice",
          "[gpu][conv]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  const ConvBackend backend = GENERATE(ConvBackend::Measured, ConvBackend::Auto);
  CAPTURE(backend == ConvBackend::Measured ? "measured" : "auto");
  UseOurs use(true, backend);
  // check_conv runs each shape twice on the GPU and requires identical bits: the second run must
  // reuse the first run's choice rather than time again. The first and last shapes are where
  // Measured runs ours (the filter gradient of Cin = 3; the 1x1 to 3 channels only in bf16, in the
  // bf16 test below).
  check_conv(2, 64, 64, 3, 64, 3, false, gen);
  check_conv(2, 8, 8, 512, 256, 3, false, gen);
  check_conv(1, 9, 15, 64, 136, 3, true, gen);
  check_conv(2, 16, 16, 64, 3, 1, true, gen);
}

TEST_CASE("gpu igemm: with TF32 off, backend Ours stays exact f32 (cuDNN's FMA path)", "[gpu][conv]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  UseOurs ours(false);
  REQUIRE(kernels::cuda::conv_backend() == ConvBackend::Ours);
  check_conv(2, 9, 11, 13, 70, 3, true, gen, kTolF32);
  check_conv(2, 16, 16, 64, 64, 3, false, gen, kTolF32);
}

TEST_CASE("gpu: bf16 convolutions (ours and cuDNN's) match the CPU on bf16-rounded inputs", "[gpu][conv][bf16]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  const ConvBackend backend = GENERATE(ConvBackend::Ours, ConvBackend::CuDNN, ConvBackend::Measured);
  const bool wgmma = GENERATE(true, false);  // ours: v6 where it can run, else v4; then v4
  CAPTURE(backend == ConvBackend::Ours ? "ours" : backend == ConvBackend::CuDNN ? "cudnn" : "measured",
          wgmma && kernels::cuda::conv_wgmma_available() ? "v6" : "v4");
  UseOurs use(true, backend, wgmma);
  check_bf16({.n = 2, .h = 64, .w = 64, .cin = 3, .cout = 64, .k = 3}, false, gen);
  check_bf16({.n = 2, .h = 64, .w = 64, .cin = 64, .cout = 64, .k = 3}, false, gen);
  check_bf16({.n = 2, .h = 32, .w = 32, .cin = 128, .cout = 128, .k = 3}, false, gen);
  check_bf16({.n = 2, .h = 16, .w = 16, .cin = 256, .cout = 256, .k = 3}, false, gen);
  check_bf16({.n = 2, .h = 8, .w = 8, .cin = 512, .cout = 256, .k = 3}, false, gen);
  check_bf16({.n = 2, .h = 64, .w = 64, .cin = 64, .cout = 3, .k = 1}, true, gen);
  for (bool bias : {false, true}) {
    check_bf16({.n = 1, .h = 1, .w = 1, .cin = 5, .cout = 13, .k = 3}, bias, gen);
    check_bf16({.n = 2, .h = 2, .w = 2, .cin = 13, .cout = 5, .k = 3}, bias, gen);
    check_bf16({.n = 3, .h = 9, .w = 11, .cin = 70, .cout = 13, .k = 3}, bias, gen);
    check_bf16({.n = 1, .h = 9, .w = 15, .cin = 64, .cout = 136, .k = 3}, bias, gen);
    check_bf16({.n = 1, .h = 5, .w = 7, .cin = 13, .cout = 70, .k = 1}, bias, gen);
  }
}

#endif
