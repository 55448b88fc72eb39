// A small bf16 training loop, run with and without AdamW's weight copies (engine/optim.hpp): what
// the CPU test (bit for bit) and the GPU test (against the CPU) compare. A bf16 linear layer whose
// weight and bias reach it through cast(), and an f32 scale used as is (like a norm's weight),
// trained for a few AdamW steps on fresh random data each step.
#pragma once
#include <memory>
#include <optional>

#include "engine/ops.hpp"
#include "engine/optim.hpp"
#include "helpers.hpp"

namespace ddpm::test {

struct Bf16Run {
  std::vector<Tensor> params;  // w [6, 9], b [6], s [6]
  std::unique_ptr<AdamW> opt;
};

// `steps` steps from the initial values drawn from `seed`; with `copies`, the casts go through the
// optimizer's weight copies, otherwise each forward casts and each backward casts back.
inline Bf16Run train_bf16_linear(uint64_t seed, Device device, bool copies, int steps) {
  Generator gen(seed);
  Bf16Run run;
  for (const Shape& s : std::vector<Shape>{{6, 9}, {6}, {6}})
    run.params.push_back(randn(s, gen).to(device).set_requires_grad(true));
  run.opt = std::make_unique<AdamW>(run.params, AdamWConfig{0.02f, 0.9f, 0.999f, 1e-8f, 0.1f});
  for (int t = 0; t < steps; ++t) {
    Tensor x = randn({4, 9}, gen).to(DType::BF16).to(device), target = randn({4, 6}, gen).to(device);
    std::optional<CastCache::Use> use;
    if (copies) use.emplace(run.opt->weight_copies());
    const std::vector<Tensor>& p = run.params;
    Tensor y = cast(linear(x, cast(p[0], DType::BF16), cast(p[1], DType::BF16)), DType::F32);
    Tensor loss = mse_loss(mul(y, p[2]), target);
    run.opt->zero_grad();
    loss.backward();
    use.reset();
    run.opt->step();
  }
  return run;
}

}  // namespace ddpm::test
