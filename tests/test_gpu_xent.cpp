// cross_entropy on the GPU against the CPU: loss and logit gradients, at row counts that do not
// fill a block of warps, rows longer than a warp, the classifier's real shape (batch 256, 10
// classes) and logits far from zero; plus the device checks.
#include "gpu_helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

namespace {

auto xent_fn = [](const std::vector<Tensor>& in) { return cross_entropy(in[0], in[1]); };

}  // namespace

TEST_CASE("gpu: cross_entropy matches the CPU", "[gpu][xent]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (auto [n, k] : {std::pair<int64_t, int64_t>{1, 1}, {1, 10}, {7, 3}, {9, 33}, {37, 100}, {256, 10}, {2049, 10}}) {
    CAPTURE(n, k);
    compare_backends(xent_fn, {randn({n, k}, gen, 3.0f), random_labels(n, k, gen)}, gen);
  }
  // Logits around +500: the max shift must work the same way on both backends.
  std::vector<float> z = randn({33, 10}, gen, 2.0f).to_floats();
  for (float& v : z) v += 500.0f;
  compare_backends(xent_fn, {Tensor::from_floats(z, {33, 10}), random_labels(33, 10, gen)}, gen);
}

TEST_CASE("gpu: cross_entropy checks labels and devices", "[gpu][xent][errors]") {
  Generator gen = fresh_generator();
  Tensor z = randn({4, 3}, gen).to(Device::CUDA);
  CHECK_THROWS_WITH(cross_entropy(z, Tensor::from_ints({0, 1, 5, 2}, {4}, Device::CUDA)),
                    Catch::Contains("label 5 out of range"));
  CHECK_THROWS_WITH(cross_entropy(z, Tensor::from_ints({0, 1, 2, 2}, {4})), Catch::Contains("different devices"));
}
