// Tensor basics and the autograd tape: accumulation, no-grad, release after use, errors.
#include "helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

TEST_CASE("tensors: creation, views, conversions", "[tensor]") {
  Generator gen = fresh_generator();
  Tensor x = randn({2, 3, 4}, gen);
  CHECK(x.numel() == 24);
  CHECK(x.size(-1) == 4);
  Tensor r = x.reshape({6, -1});
  CHECK(r.shape() == Shape{6, 4});
  CHECK(r.raw() == x.raw());  // a view
  Tensor s = x.slice0(1, 2);
  CHECK(s.shape() == Shape{1, 3, 4});
  CHECK(s.to_floats()[0] == x.to_floats()[12]);
  // bf16 round trip keeps 8 significant bits.
  std::vector<float> back = x.to(DType::BF16).to(DType::F32).to_floats(), orig = x.to_floats();
  for (size_t i = 0; i < orig.size(); ++i) CHECK(std::abs(back[i] - orig[i]) <= std::abs(orig[i]) * (1.0f / 256));
  CHECK(float_to_bf16(1.0f).bits == 0x3f80);
  CHECK(float_to_bf16(1.00390625f).bits == 0x3f80);  // tie rounds to even
  Tensor c = x.clone();
  CHECK(c.raw() != x.raw());
  CHECK(c.to_floats() == x.to_floats());
  CHECK(Tensor::from_ints({3, 1}, {2}).to_ints() == std::vector<int64_t>{3, 1});
}

TEST_CASE("tensors reject bad calls with ddpm::Error", "[tensor][errors]") {
  Generator gen = fresh_generator();
  Tensor x = randn({2, 3}, gen);
  CHECK_THROWS_WITH(x.reshape({4, 2}), Catch::Contains("reshape") && Catch::Contains("[4, 2]"));
  CHECK_THROWS_AS(x.slice0(1, 3), Error);
  CHECK_THROWS_AS(x.size(2), Error);
  CHECK_THROWS_AS(x.data<int64_t>(), Error);
  CHECK_THROWS_AS(x.item(), Error);
  CHECK_THROWS_AS(Tensor::from_floats({1, 2, 3}, {2, 2}), Error);
  CHECK_THROWS_AS(Tensor::empty({-1}), Error);
  CHECK_THROWS_AS(Tensor().shape(), Error);
  if (!cuda_available()) CHECK_THROWS_AS(x.to(Device::CUDA), Error);
}

TEST_CASE("autograd accumulates across uses and across backward calls", "[autograd]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  Tensor x = randn({5}, gen).set_requires_grad();
  // y = x * x + x uses x three times: dy/dx = 2x + 1.
  Tensor y = add(mul(x, x), x);
  Tensor g = Tensor::full({5}, 1.0f);
  y.backward(g);
  std::vector<float> xv = x.to_floats(), gv = x.grad().to_floats(), ref;
  for (float v : xv) ref.push_back(2 * v + 1);
  CHECK(rel_err(gv, ref) < 1e-6);
  // A second graph adds into the same .grad.
  add(mul(x, x), x).backward(g);
  for (float& v : ref) v *= 2;
  CHECK(rel_err(x.grad(), ref) < 1e-6);
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("autograd: no-grad scope records nothing, graphs are walked once", "[autograd]") {
  Generator gen = fresh_generator();
  Tensor x = randn({3}, gen).set_requires_grad();
  {
    NoGradGuard ng;
    Tensor y = gelu(x);
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
  Tensor y = gelu(x);
  CHECK(y.requires_grad());
  std::weak_ptr<Node> node = y.grad_fn();
  y.backward(Tensor::full({3}, 1.0f));
  CHECK(node.lock()->backward == nullptr);  // saved activations released
  CHECK_THROWS_WITH(y.backward(Tensor::full({3}, 1.0f)), Catch::Contains("already walked"));
  Tensor z = randn({3}, gen);
  CHECK_THROWS_AS(gelu(z).backward(Tensor::full({3}, 1.0f)), Error);  // nothing requires grad
  CHECK_THROWS_AS(gelu(x).backward(), Error);                          // not a scalar, no gradient given
}

TEST_CASE("a dropped graph frees its saved activations", "[autograd]") {
  Generator gen = fresh_generator();
  Tensor x = randn({256, 256}, gen).set_requires_grad();
  size_t before = allocator_stats(Device::CPU).in_use;
  {
    Tensor y = gelu(gelu(x));
    CHECK(allocator_stats(Device::CPU).in_use > before);
  }
  CHECK(allocator_stats(Device::CPU).in_use == before);
}
