// attention and multi_head_attention on the GPU against the CPU kernels: outputs and gradients.
//
// Tolerance: kTolF32 = 1e-5, relative over the whole tensor. Both backends compute in f32 and
// differ only in summation order (one thread per row summing keys in sequence on the GPU, sgemm
// blocks on the CPU) and in exp (exp2f against a polynomial, each within 2 ulp). A sum over L
// terms then differs by about sqrt(L) * 6e-8 relative: with the kernels emulated on the host,
// out and dqkv differed from the CPU by 1.6e-6 at L = 4096 and 5e-7 at L = 200. A wrong index,
// mask or rescale is off by O(1).
#include "gpu_helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

namespace {
auto attention_with(int64_t heads) {
  return [heads](const std::vector<Tensor>& in) { return attention(in[0], heads); };
}
}  // namespace

TEST_CASE("gpu: attention and its qkv gradient match the CPU", "[gpu][attention]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  // Token counts below, at and far past the 64-row tile, and not multiples of it (the masked
  // tail); 3 heads so C is no power of two. At 4096 tokens one batch of 2 heads keeps the CPU
  // reference short.
  for (int64_t L : {1, 7, 64, 1000, 4096})
    for (int64_t D : {16, 32, 64}) {
      const int64_t B = L == 4096 ? 1 : 2, heads = L == 4096 ? 2 : 3;
      CAPTURE(L, D, B, heads);
      compare_backends(attention_with(heads), {randn({B, L, 3 * heads * D}, gen)}, gen);
    }
}

TEST_CASE("gpu: attention is stable for peaked softmaxes", "[gpu][attention]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  // Scores spread ~16 (maxima near 50): the online softmax rescales often; a score error of eps32 * 50
  // that relative error in the weights, hence the looser bound.
  compare_backends(attention_with(2), {randn({2, 300, 3 * 2 * 32}, gen, 4.0f)}, gen, true, 1e-4);
}

TEST_CASE("gpu: the attention backward is deterministic", "[gpu][attention]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  Tensor qkv = randn({2, 333, 3 * 4 * 16}, gen).to(Device::CUDA);
  Tensor r = randn({2, 333, 4 * 16}, gen).to(Device::CUDA);
  qkv.set_requires_grad(true);
  std::vector<std::vector<float>> grads;
  for (int run = 0; run < 2; ++run) {
    qkv.zero_grad();
    attention(qkv, 4).backward(r);
    grads.push_back(qkv.grad().to_floats());
  }
  CHECK(grads[0] == grads[1]);  // bit-identical: no atomics
}

TEST_CASE("gpu: multi_head_attention matches the CPU at the model's shapes", "[gpu][attention]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  // The six SelfAttention layers of the seed U-Net (base 64, 4 heads) at 64x64 images: tokens
  // H*W and channels C of sa1..sa6. Batch 2.
  struct Shape2 {
    int64_t L, C;
  };
  for (Shape2 s : {Shape2{1024, 128}, Shape2{256, 256}, Shape2{64, 256}, Shape2{256, 128}, Shape2{1024, 64},
                   Shape2{4096, 64}}) {
    CAPTURE(s.L, s.C);
    const float ws = 1.0f / std::sqrt(float(s.C));  // PyTorch-like init keeps the scores O(1)
    compare_backends(
        [](const std::vector<Tensor>& in) { return multi_head_attention(in[0], in[1], in[2], in[3], in[4], 4); },
        {randn({2, s.L, s.C}, gen), randn({3 * s.C, s.C}, gen, ws), randn({3 * s.C}, gen, 0.1f),
         randn({s.C, s.C}, gen, ws), randn({s.C}, gen, 0.1f)},
        gen);
  }
}

TEST_CASE("gpu: attention rejects head dims without a CUDA kernel", "[gpu][attention][errors]") {
  Generator gen = fresh_generator();
  Tensor qkv = randn({1, 4, 3 * 2 * 5}, gen);
  CHECK_NOTHROW(attention(qkv, 2));  // the CPU path takes any head dim
  CHECK_THROWS_WITH(attention(qkv.to(Device::CUDA), 2),
                    Catch::Contains("attention") && Catch::Contains("16, 32 or 64"));
}
