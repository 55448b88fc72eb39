// attention and multi_head_attention on the GPU against the CPU kernels: outputs and gradients,
// for f32 data with TF32 off (version 1, exact f32) and on (version 2 on TF32 tensor cores).
//
// Tolerances, relative over the whole tensor:
// - TF32 off: kTolF32 = 1e-5. Both backends compute in f32 and differ only in summation order (one
//   thread per row summing keys in sequence on the GPU, sgemm blocks on the CPU) and in exp (exp2f
//   against a polynomial, each within 2 ulp). A sum over L terms then differs by about
//   sqrt(L) * 6e-8 relative: with the kernels emulated on the host, out and dqkv differed from the
//   CPU by 1.6e-6 at L = 4096 and 5e-7 at L = 200. A wrong index, mask or rescale is off by O(1).
// - TF32 on: kTolTF32 = 5e-3. Q, K, V, dout, P and dS are rounded to 10 mantissa bits (at most
//   2^-11 relative each) before their products; the errors of the terms have random signs, so the
//   norm-wise error of out, dq, dk and dv stays near 1e-3 whatever L: 2e-4 to 1e-3 with the
//   kernels emulated on the host at scores of unit spread (L 7 to 4096, head dims 5 to 64). 5e-3
//   is a 5x margin that still fails any wrong index.
#include "gpu_helpers.hpp"
#ifdef DDPM_HAVE_CUDA
#include "kernels/cuda_context.hpp"
#endif

using namespace ddpm;
using namespace ddpm::test;

namespace {
auto attention_with(int64_t heads) {
  return [heads](const std::vector<Tensor>& in) { return attention(in[0], heads); };
}

constexpr double kTolTF32 = 5e-3;

// TF32 on or off for one test (f32 attention: version 2 on tensor cores, or version 1); restores
// the previous setting even when a check throws. Without CUDA nothing runs (the tests skip).
#ifdef DDPM_HAVE_CUDA
struct Tf32Mode {
  bool before = cuda::allow_tf32();
  explicit Tf32Mode(bool on) { cuda::set_allow_tf32(on); }
  ~Tf32Mode() { cuda::set_allow_tf32(before); }
};
#else
struct Tf32Mode {
  explicit Tf32Mode(bool) {}
};
#endif

// The output of attention(qkv, heads) on `device` and the gradient of qkv for output gradient r,
// split in the q, k and v thirds of each row ([B, L, 3C], C the last dim of r): {out, dq, dk, dv}, as
// host floats.
std::vector<std::vector<float>> out_and_grads(const Tensor& qkv, const Tensor& r, int64_t heads, Device device) {
  Tensor x = device == Device::CPU ? qkv.clone() : qkv.to(device);
  x.set_requires_grad(true);
  Tensor y = attention(x, heads);
  y.backward(r.to(device));
  std::vector<std::vector<float>> parts{y.to_floats(), {}, {}, {}};
  const std::vector<float> g = x.grad().to_floats();
  const size_t C = size_t(r.shape().back());
  for (size_t i = 0; i < g.size(); ++i) parts[1 + i % (3 * C) / C].push_back(g[i]);
  return parts;
}
}  // namespace

TEST_CASE("gpu: attention and its qkv gradient match the CPU", "[gpu][attention]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  const Tf32Mode exact(false);  // version 1, exact f32
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
  const Tf32Mode exact(false);
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
  for (bool tf32 : {false, true}) {  // version 1 and version 2
    CAPTURE(tf32);
    const Tf32Mode mode(tf32);
    std::vector<std::vector<float>> grads;
    for (int run = 0; run < 2; ++run) {
      qkv.zero_grad();
      attention(qkv, 4).backward(r);
      grads.push_back(qkv.grad().to_floats());
    }
    CHECK(grads[0] == grads[1]);  // bit-identical: no atomics
  }
}

TEST_CASE("gpu: multi_head_attention matches the CPU at the model's shapes", "[gpu][attention]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  const Tf32Mode exact(false);  // the projections too (cuBLAS without TF32)
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

TEST_CASE("gpu: head dims below a compiled width run zero-padded and match the CPU", "[gpu][attention]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  const Tf32Mode exact(false);
  // The tiny models of the reference files have head dims 1..8; 5, 17 and 40 are not multiples of
  // the float4 words the kernels read, so the padding of every word is exercised.
  for (int64_t D : {1, 2, 5, 8, 17, 40}) {
    CAPTURE(D);
    compare_backends(attention_with(3), {randn({2, 70, 3 * 3 * D}, gen)}, gen);
  }
}

TEST_CASE("gpu: with TF32 on, f32 attention and dq, dk, dv each stay within TF32 rounding of the CPU",
          "[gpu][attention][tf32]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  const Tf32Mode tf32(true);  // version 2: mma.sync m16n8k8 with TF32 operands
  // The backward is two kernels (dk and dv from one, dq from the other), so each third of dqkv is
  // compared on its own: compared together, a wrong dq could hide under right dk and dv. Token
  // counts: one token, below an 8-key step, tile tails and whole tiles, the model's 4096; head
  // dims 5 and 40 run zero-padded to 16 and 64. 3 heads so C is no power of two, fewer where L is
  // large to keep the CPU reference short.
  for (int64_t L : {1, 7, 33, 64, 65, 100, 1000, 4096})
    for (int64_t D : {5, 16, 32, 40, 64}) {
      const int64_t B = L >= 1000 ? 1 : 2, heads = L == 4096 ? 1 : L == 1000 ? 2 : 3;
      CAPTURE(L, D, B, heads);
      const Tensor qkv = randn({B, L, 3 * heads * D}, gen), r = randn({B, L, heads * D}, gen);
      const auto gpu = out_and_grads(qkv, r, heads, Device::CUDA), cpu = out_and_grads(qkv, r, heads, Device::CPU);
      for (int part = 0; part < 4; ++part) {
        // At L = 1, P = 1 and dS = dout . v - dout . out = 0 up to rounding: dq and dk are rounding
        // noise in both backends (TF32's ~1e-4 against f32's ~1e-7), nothing to compare.
        if (L == 1 && (part == 1 || part == 2)) continue;
        INFO((part == 0 ? "out" : part == 1 ? "dq" : part == 2 ? "dk" : "dv"));
        CHECK(rel_err(gpu[part], cpu[part]) < kTolTF32);  // NaN-poisoned memory left unwritten fails here too
      }
    }
}

TEST_CASE("gpu: attention rejects head dims without a CUDA kernel", "[gpu][attention][errors]") {
  Generator gen = fresh_generator();
  Tensor qkv = randn({1, 4, 3 * 1 * 65}, gen);
  CHECK_NOTHROW(attention(qkv, 1));  // the CPU path takes any head dim
  CHECK_THROWS_WITH(attention(qkv.to(Device::CUDA), 1),
                    Catch::Contains("attention") && Catch::Contains("1 to 64"));
}
