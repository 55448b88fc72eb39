// linear and bmm on the GPU (cuBLAS, cuBLASLt for linear's bias, the bias kernels) against the
// CPU (OpenBLAS): outputs and gradients, at odd sizes that fill no tile and at the seed model's
// real shapes; TF32 mode with its looser tolerance; that the seed model's shapes take cuBLASLt;
// device mismatches.
#include "gpu_helpers.hpp"
#ifdef DDPM_HAVE_CUDA
#include "kernels/cuda_context.hpp"
#include "kernels/matmul.hpp"
#endif

using namespace ddpm;
using namespace ddpm::test;

namespace {

auto linear_fn(bool bias) {
  return [bias](const std::vector<Tensor>& in) { return bias ? linear(in[0], in[1], in[2]) : linear(in[0], in[1]); };
}

void compare_linear(const Shape& x_shape, int64_t out, bool bias, Generator& gen, double tol = kTolF32) {
  CAPTURE(shape_str(x_shape), out, bias);
  std::vector<Tensor> in{randn(x_shape, gen), randn({out, x_shape.back()}, gen, 0.1f)};
  if (bias) in.push_back(randn({out}, gen));
  compare_backends(linear_fn(bias), in, gen, true, tol);
}

void compare_bmm(int64_t B, int64_t M, int64_t N, int64_t K, bool ta, bool tb, Generator& gen, double tol = kTolF32) {
  CAPTURE(B, M, N, K, ta, tb);
  compare_backends([ta, tb](const std::vector<Tensor>& in) { return bmm(in[0], in[1], ta, tb); },
                   {randn(ta ? Shape{B, K, M} : Shape{B, M, K}, gen), randn(tb ? Shape{B, N, K} : Shape{B, K, N}, gen)},
                   gen, true, tol);
}

}  // namespace

TEST_CASE("gpu: linear matches the CPU at odd sizes", "[gpu][matmul]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (bool bias : {false, true}) {
    compare_linear({1, 1}, 1, bias, gen);
    compare_linear({7, 13}, 5, bias, gen);
    compare_linear({2, 3, 5, 17}, 9, bias, gen);
    compare_linear({3001, 3}, 3, bias, gen);  // the bias gradient sums 3001 rows over a partial column tile
    compare_linear({5, 1000}, 33, bias, gen);
    compare_linear({40001, 7}, 37, bias, gen);  // 39 row slices of the bias gradient, the last one ragged
  }
}

TEST_CASE("gpu: linear with a residual matches the CPU", "[gpu][matmul]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  // The attention block's out-projection and feed-forward at 16x16, and odd sizes (bf16: test_gpu_bf16.cpp).
  for (const auto& [x_shape, out] : std::vector<std::pair<Shape, int64_t>>{{{2, 256, 128}, 128}, {{7, 13}, 5}}) {
    CAPTURE(shape_str(x_shape), out);
    Shape y_shape = x_shape;
    y_shape.back() = out;
    compare_backends([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2], in[3]); },
                     {randn(x_shape, gen), randn({out, x_shape.back()}, gen, 0.1f), randn({out}, gen),
                      randn(y_shape, gen)},
                     gen);
  }
}

TEST_CASE("gpu: bmm matches the CPU for all transpose combinations", "[gpu][matmul]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      compare_bmm(1, 1, 1, 1, ta, tb, gen);
      compare_bmm(3, 17, 33, 7, ta, tb, gen);
      compare_bmm(2, 65, 5, 129, ta, tb, gen);
    }
}

TEST_CASE("gpu: linear and bmm match the CPU at the seed model's shapes", "[gpu][matmul]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  compare_linear({64, 256}, 128, true, gen);       // emb_layer: time_dim 256 -> 2b, batch 64
  compare_linear({2, 256, 256}, 768, true, gen);   // mha in_proj at 16x16 tokens, C = 4b = 256
  compare_linear({2, 1024, 128}, 128, true, gen);  // ff_self at 32x32 tokens, C = 2b
  compare_linear({4, 4096, 64}, 64, true, gen);    // ff_self at 64x64 tokens, C = b: 16 row slices
  // Attention at 32x32 tokens, batch 2, 4 heads of 32: scores q k^T, then probabilities times v.
  compare_bmm(8, 1024, 1024, 32, false, true, gen);
  compare_bmm(8, 1024, 32, 1024, false, false, gen);
}

#ifdef DDPM_HAVE_CUDA
namespace {
// TF32 on or off for one scope; restores FP32 even when a check throws.
struct UseTf32 {
  explicit UseTf32(bool on) { cuda::set_allow_tf32(on); }
  ~UseTf32() { cuda::set_allow_tf32(false); }
};
}  // namespace

TEST_CASE("gpu: linear and bmm in TF32 mode stay within TF32 rounding of the CPU", "[gpu][matmul][tf32]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  UseTf32 on(true);
  // TF32 keeps 10 mantissa bits: each product is off by up to 2^-11 relative, about 1e-3 overall.
  const double tol = 5e-3;
  compare_linear({64, 256}, 128, true, gen, tol);
  compare_bmm(8, 1024, 1024, 32, false, true, gen, tol);
  compare_bmm(3, 17, 33, 7, true, true, gen, tol);
}

// The values of the cuBLASLt path are checked above (and its fallback gives the same ones); this
// checks that it is the path taken at the model's shapes, in every precision.
TEST_CASE("gpu: linear adds its bias in cuBLASLt's epilogue at the seed model's shapes", "[gpu][matmul]") {
  Generator gen = fresh_generator();
  const int64_t before = kernels::cuda::gemm_bias_fallbacks();
  for (bool tf32 : {false, true})
    for (DType dtype : {DType::F32, DType::BF16}) {
      UseTf32 use(tf32);
      CAPTURE(tf32, dtype == DType::BF16);
      for (const auto& [x_shape, out] : std::vector<std::pair<Shape, int64_t>>{
               {{64, 256}, 128}, {{64, 4096, 64}, 192}, {{64, 4096, 64}, 64}, {{64, 1024, 128}, 384}, {{64, 64, 256}, 768},
               {{64, 64, 256}, 256}}) {
        CAPTURE(shape_str(x_shape), out);
        const Tensor x = randn(x_shape, gen).to(Device::CUDA).to(dtype);
        const Tensor w = randn({out, x_shape.back()}, gen, 0.1f).to(Device::CUDA).to(dtype);
        const Tensor b = randn({out}, gen).to(Device::CUDA).to(dtype);
        (void)linear(x, w, b).to_floats();
        CHECK(kernels::cuda::gemm_bias_fallbacks() == before);
        if (out == x_shape.back()) {  // the layers followed by a residual: out-projection, feed-forward
          Shape y_shape = x_shape;
          (void)linear(x, w, b, randn(y_shape, gen).to(Device::CUDA).to(dtype)).to_floats();
          CHECK(kernels::cuda::gemm_bias_fallbacks() == before);
        }
      }
    }
}

// The first call of a shape times several cuBLASLt algorithms on its own buffers and keeps one
// (kernels/matmul_cuda.cu); what it returns must be the kept algorithm's result, the same bits as
// every later call's, forward and input gradient (a short-k gemm, also cuBLASLt).
TEST_CASE("gpu: linear gives the same bits on its first call as on later ones", "[gpu][matmul]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (DType dtype : {DType::F32, DType::BF16}) {
    CAPTURE(dtype == DType::BF16);
    // Shapes no other test runs, so this process has no plan for them yet.
    Tensor x = randn({3, 999, 72}, gen).to(Device::CUDA).to(dtype);
    x.set_requires_grad(true);
    const Tensor w = randn({200, 72}, gen, 0.1f).to(Device::CUDA).to(dtype);
    const Tensor b = randn({200}, gen).to(Device::CUDA).to(dtype);
    const Tensor dy = randn({3, 999, 200}, gen).to(Device::CUDA).to(dtype);
    std::vector<float> first_y, first_dx;
    for (int call = 0; call < 3; ++call) {
      x.zero_grad();
      const Tensor y = linear(x, w, b);
      y.backward(dy);
      const std::vector<float> ys = y.to_floats(), dx = x.grad().to_floats();
      if (call == 0) first_y = ys, first_dx = dx;
      CHECK(ys == first_y);
      CHECK(dx == first_dx);
    }
  }
}
#endif

TEST_CASE("gpu: linear and bmm reject tensors on different devices", "[gpu][matmul][errors]") {
  Generator gen = fresh_generator();
  Tensor x = randn({4, 5}, gen), w = randn({3, 5}, gen), b = randn({3}, gen);
  CHECK_THROWS_WITH(linear(x, w.to(Device::CUDA)), Catch::Contains("linear") && Catch::Contains("device"));
  CHECK_THROWS_AS(linear(x.to(Device::CUDA), w.to(Device::CUDA), b), Error);
  Tensor a = randn({2, 3, 4}, gen), c = randn({2, 4, 5}, gen);
  CHECK_THROWS_AS(bmm(a.to(Device::CUDA), c), Error);
}
