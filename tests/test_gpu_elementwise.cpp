// Elementwise kernels and the RNG on the GPU against the CPU, at sizes that do not fill a block.
#include "gpu_helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

TEST_CASE("gpu: activations, broadcast arithmetic and add_gelu match the CPU", "[gpu][elementwise]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (int64_t n : {1, 7, 1000, 100003}) {
    Tensor x = randn({n}, gen, 2.0f);
    compare_backends([](const std::vector<Tensor>& in) { return gelu(in[0]); }, {x}, gen);
    compare_backends([](const std::vector<Tensor>& in) { return silu(in[0]); }, {x}, gen);
  }
  Tensor a = randn({3, 5, 7, 9}, gen), e = randn({3, 1, 1, 9}, gen), same = randn({3, 5, 7, 9}, gen);
  for (auto op : {add, sub, mul}) {
    compare_backends([op](const std::vector<Tensor>& in) { return op(in[0], in[1]); }, {a, e}, gen);
    compare_backends([op](const std::vector<Tensor>& in) { return op(in[0], in[1]); }, {a, same}, gen);
  }
  // b's gradient sums over the broadcast dimensions: every kind of pattern (kept and summed
  // dimensions inner, outer, alternating, b smaller than a warp), and the embedding add's shape
  // with more positions per b element than a block has rows.
  for (const Shape& b : {Shape{9}, Shape{3, 5, 1, 1}, Shape{5, 1, 9}, Shape{3, 1, 7, 1}, Shape{1, 1, 1, 1},
                         Shape{3, 1, 1, 1}}) {
    compare_backends([](const std::vector<Tensor>& in) { return add(in[0], in[1]); }, {a, randn(b, gen)}, gen);
  }
  compare_backends([](const std::vector<Tensor>& in) { return add(in[0], in[1]); },
                   {randn({4, 33, 31, 80}, gen), randn({4, 1, 1, 80}, gen)}, gen);
  compare_backends([](const std::vector<Tensor>& in) { return add_gelu(in[0], in[1]); }, {a, same}, gen);
}

TEST_CASE("gpu: bf16 conversion and the Philox stream match the CPU", "[gpu][rng]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  Tensor x = randn({12345}, gen, 10.0f);
  CHECK(x.to(DType::BF16).to_floats() == x.to(Device::CUDA).to(DType::BF16).to_floats());  // bit-identical
  Generator c(gen.seed(), 17), g(gen.seed(), 17);
  Tensor uc = Tensor::rand({4097}, c), ug = Tensor::rand({4097}, g, Device::CUDA);
  CHECK(uc.to_floats() == ug.to_floats());  // uniform: exact
  Tensor nc = Tensor::randn({4097}, c), ng = Tensor::randn({4097}, g, Device::CUDA);
  CHECK(rel_err(ng, nc) < 1e-6);  // normal: libm log/cos may differ in the last ulp
}
