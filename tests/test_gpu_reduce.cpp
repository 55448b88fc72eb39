// sum, mean and mse_loss on the GPU against the CPU (values and gradients), from one element to
// many chunks, at the training loss's shape, and bit-for-bit reproducibility.
#include "gpu_helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

TEST_CASE("gpu: sum, mean and mse_loss match the CPU", "[gpu][reduce]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (Shape s : {Shape{1}, Shape{7}, Shape{4097}, Shape{300001}, Shape{64, 32, 32, 1}, Shape{64, 64, 64, 3}}) {
    CAPTURE(shape_str(s));
    Tensor a = randn(s, gen), b = randn(s, gen);
    compare_backends([](const std::vector<Tensor>& in) { return sum(in[0]); }, {a}, gen);
    compare_backends([](const std::vector<Tensor>& in) { return mean(in[0]); }, {a}, gen);
    compare_backends([](const std::vector<Tensor>& in) { return mse_loss(in[0], in[1]); }, {a, b}, gen);
  }
}

TEST_CASE("gpu: mse_loss with a constant target gives only the prediction a gradient", "[gpu][reduce]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  Tensor pred = randn({64, 32, 32, 1}, gen), target = randn({64, 32, 32, 1}, gen);
  Tensor pc = pred.clone().set_requires_grad(), pg = pred.to(Device::CUDA).set_requires_grad();
  mse_loss(pc, target).backward();
  Tensor tg = target.to(Device::CUDA);
  mse_loss(pg, tg).backward();
  CHECK(rel_err(pg.grad(), pc.grad()) < kTolF32);
  CHECK_FALSE(tg.grad().defined());
}

TEST_CASE("gpu: reductions are reproducible bit for bit", "[gpu][reduce]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  Tensor a = randn({3000017}, gen).to(Device::CUDA), b = randn({3000017}, gen).to(Device::CUDA);
  const float s = sum(a).item(), l = mse_loss(a, b).item();
  for (int run = 0; run < 3; ++run) {
    CHECK(sum(a).item() == s);
    CHECK(mse_loss(a, b).item() == l);
  }
}
