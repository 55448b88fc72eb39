// The bf16 path of every op the U-Net uses, GPU against CPU (kernels/widen.hpp defines the CPU's
// bf16 results: the f32 kernel, each output rounded once). Both compute in f32 and round once per
// stored value, so they differ only where a different summation order moves a value across a
// rounding boundary: one bf16 ulp (2^-8 relative) on a few elements. The exception is attention
// (version 2, tensor cores), which also rounds P to bf16 before P V, and in the backward P and dS
// before P^T dout, dS K and dS^T Q: about 1e-3 relative more (2e-3 to 3e-3 in all against a
// double reference, emulated on the host). kTolBF16 (1e-2) covers both. Shapes
// cover the 16-byte vector paths (8 bf16 values: channels a multiple of 8) and the one-value ones
// (odd channels, 12 channels, views off a 16-byte boundary), plus the model's own sizes for conv
// and attention.
#include <cstring>

#include "gpu_helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

namespace {

Tensor bf16_randn(const Shape& s, Generator& gen) { return Tensor::randn(s, gen).to(DType::BF16); }

}  // namespace

TEST_CASE("gpu: bf16 ops match the CPU's bf16 ops", "[gpu][bf16]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  using V = const std::vector<Tensor>&;
  struct Case {
    const char* name;
    std::vector<Shape> data, params;  // bf16 inputs, then f32 ones (norm parameters)
    std::function<Tensor(V)> f;
  };
  const Case cases[] = {
      {"gelu", {{4, 8, 8, 16}}, {}, [](V in) { return gelu(in[0]); }},
      {"silu, odd size", {{3, 7, 5}}, {}, [](V in) { return silu(in[0]); }},
      {"add, per-channel broadcast", {{4, 8, 8, 32}, {4, 1, 1, 32}}, {}, [](V in) { return add(in[0], in[1]); }},
      {"add, odd channels", {{2, 5, 3, 7}, {2, 1, 1, 7}}, {}, [](V in) { return add(in[0], in[1]); }},
      {"mul", {{6, 20}, {6, 20}}, {}, [](V in) { return mul(in[0], in[1]); }},
      {"add_gelu", {{4, 8, 8, 16}, {4, 8, 8, 16}}, {}, [](V in) { return add_gelu(in[0], in[1]); }},
      {"used twice", {{64, 33}}, {}, [](V in) { return add(gelu(in[0]), in[0]); }},
      {"linear", {{4, 100, 64}, {192, 64}, {192}}, {}, [](V in) { return linear(in[0], in[1], in[2]); }},
      {"linear, odd sizes", {{3, 7, 13}, {5, 13}, {5}}, {}, [](V in) { return linear(in[0], in[1], in[2]); }},
      {"linear + residual", {{2, 256, 128}, {128, 128}, {128}, {2, 256, 128}}, {},
       [](V in) { return linear(in[0], in[1], in[2], in[3]); }},
      {"bmm", {{3, 17, 9}, {3, 9, 11}}, {}, [](V in) { return bmm(in[0], in[1]); }},
      {"conv2d 3x3 64->64 at 32x32", {{4, 32, 32, 64}, {64, 3, 3, 64}}, {}, [](V in) { return conv2d(in[0], in[1]); }},
      {"conv2d 3x3, Cin 3", {{2, 16, 16, 3}, {64, 3, 3, 3}}, {}, [](V in) { return conv2d(in[0], in[1]); }},
      {"conv2d 1x1 with bias, Cout 1", {{2, 16, 16, 64}, {1, 1, 1, 64}, {1}}, {},
       [](V in) { return conv2d(in[0], in[1], in[2]); }},
      {"group_norm(1) + GELU", {{4, 16, 16, 64}}, {{64}, {64}},
       [](V in) { return group_norm(in[0], 1, in[1], in[2], 1e-5f, Act::GELU); }},
      {"group_norm, odd channels", {{2, 5, 3, 9}}, {{9}, {9}}, [](V in) { return group_norm(in[0], 3, in[1], in[2]); }},
      {"group_norm(1) + GELU with a per-sample shift", {{4, 8, 8, 64}, {4, 64}}, {{64}, {64}},
       [](V in) { return group_norm(in[0], 1, in[2], in[3], 1e-5f, Act::GELU, in[1]); }},
      {"group_norm(1) + residual + GELU", {{4, 8, 8, 64}, {4, 8, 8, 64}}, {{64}, {64}},
       [](V in) { return group_norm(in[0], 1, in[2], in[3], 1e-5f, Act::GELU, Tensor(), in[1]); }},
      {"layer_norm", {{4, 256, 128}}, {{128}, {128}}, [](V in) { return layer_norm(in[0], in[1], in[2]); }},
      {"layer_norm, odd channels", {{3, 7, 13}}, {{13}, {13}}, [](V in) { return layer_norm(in[0], in[1], in[2]); }},
      {"concat_channels", {{2, 8, 8, 32}, {2, 8, 8, 64}}, {}, [](V in) { return concat_channels(in[0], in[1]); }},
      {"concat_channels, odd", {{2, 3, 3, 5}, {2, 3, 3, 3}}, {}, [](V in) { return concat_channels(in[0], in[1]); }},
      {"max_pool2x2", {{4, 16, 16, 64}}, {}, [](V in) { return max_pool2x2(in[0]); }},
      {"max_pool2x2, odd channels", {{2, 6, 4, 3}}, {}, [](V in) { return max_pool2x2(in[0]); }},
      {"upsample2x", {{4, 8, 8, 128}}, {}, [](V in) { return upsample2x(in[0]); }},
      {"upsample2x, odd channels", {{2, 3, 5, 3}}, {}, [](V in) { return upsample2x(in[0]); }},
      // 12 channels: rows of 24 bytes, where the 16-byte paths must step aside.
      {"add, per-channel broadcast, 12 channels", {{2, 4, 4, 12}, {2, 1, 1, 12}}, {},
       [](V in) { return add(in[0], in[1]); }},
      {"concat_channels, 12 ++ 4", {{2, 4, 4, 12}, {2, 4, 4, 4}}, {}, [](V in) { return concat_channels(in[0], in[1]); }},
      {"max_pool2x2, 12 channels", {{2, 4, 6, 12}}, {}, [](V in) { return max_pool2x2(in[0]); }},
      {"upsample2x, 12 channels", {{2, 3, 5, 12}}, {}, [](V in) { return upsample2x(in[0]); }},
      {"attention L 1024, D 32", {{2, 1024, 384}}, {}, [](V in) { return attention(in[0], 4); }},
      {"attention L 7, D 16", {{3, 7, 96}}, {}, [](V in) { return attention(in[0], 2); }},
      // The bf16 forward is version 2 (tensor cores): a key-tile tail, one token, the 64x64 shape.
      {"attention L 65, D 64", {{2, 65, 384}}, {}, [](V in) { return attention(in[0], 2); }},
      {"attention L 1, D 32", {{3, 1, 96}}, {}, [](V in) { return attention(in[0], 1); }},
      {"attention L 4096, D 16", {{1, 4096, 192}}, {}, [](V in) { return attention(in[0], 4); }},
      {"attention L 33, head dim 5 (odd, padded to 16)", {{2, 33, 30}}, {}, [](V in) { return attention(in[0], 2); }},
      {"attention L 100, head dim 40 (padded to 64)", {{2, 100, 120}}, {}, [](V in) { return attention(in[0], 1); }},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    std::vector<Tensor> in;
    for (const Shape& s : c.data) in.push_back(bf16_randn(s, gen));
    for (const Shape& s : c.params) in.push_back(Tensor::randn(s, gen));
    compare_backends(c.f, in, gen, true, kTolBF16);
  }
}

TEST_CASE("gpu: the bf16 attention gradients dq, dk and dv each match the CPU", "[gpu][bf16][attention]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  // The bf16 backward is two kernels (dk and dv from one, dq from the other), so each third of dqkv
  // is compared on its own: compared together, a wrong dq could hide under right dk and dv.
  // Token counts: one token, below a 16-row chunk, tile tails and whole tiles, the model's 4096;
  // head dims 5 and 40 run zero-padded to 16 and 64. Tolerance kTolBF16 as above: P and dS are
  // rounded to bf16 before the second products, and each gradient once more on store.
  struct Shape3 {
    int64_t B, L, heads, d;
  };
  for (Shape3 s : {Shape3{3, 1, 1, 32}, Shape3{3, 7, 2, 16}, Shape3{2, 33, 2, 5}, Shape3{2, 64, 2, 64},
                   Shape3{2, 65, 2, 64}, Shape3{2, 100, 1, 40}, Shape3{2, 1000, 2, 32}, Shape3{1, 4096, 4, 16}}) {
    CAPTURE(s.B, s.L, s.heads, s.d);
    const int64_t C = s.heads * s.d;
    Tensor cpu = bf16_randn({s.B, s.L, 3 * C}, gen), r = bf16_randn({s.B, s.L, C}, gen);
    Tensor gpu = cpu.to(Device::CUDA);
    cpu.set_requires_grad(true);
    gpu.set_requires_grad(true);
    attention(cpu, s.heads).backward(r);
    attention(gpu, s.heads).backward(r.to(Device::CUDA));
    const std::vector<float> gc = cpu.grad().to_floats(), gg = gpu.grad().to_floats();
    for (int64_t part = 0; part < 3; ++part) {
      // At L = 1, P = 1 and dS = dout . v - dout . out = 0 up to rounding: dq and dk are rounding
      // noise in both backends, nothing to compare.
      if (s.L == 1 && part < 2) continue;
      INFO("d" << "qkv"[part]);
      std::vector<float> g, c;
      for (size_t i = 0; i < gc.size(); ++i)
        if (int64_t(i) % (3 * C) / C == part) g.push_back(gg[i]), c.push_back(gc[i]);
      CHECK(rel_err(g, c) < kTolBF16);  // NaN-poisoned memory left unwritten fails here too
    }
  }
}

TEST_CASE("gpu: bf16 elementwise ops on views off a 16-byte boundary match the CPU", "[gpu][bf16]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  using V = const std::vector<Tensor>&;
  // Rows of 12 values: slice0(1, 9) starts 24 bytes in, so the kernels must take their one-value
  // path although the sizes are multiples of 8 (forward only: slice0 has no gradient).
  const std::pair<const char*, std::function<Tensor(V)>> views[] = {
      {"gelu", [](V in) { return gelu(in[0].slice0(1, 9)); }},
      // Rows of 8 (reshaped views keep the offset), so only the alignment check can refuse the vectors.
      {"add", [](V in) { return add(in[0].slice0(1, 9).reshape({12, 8}), in[1].slice0(1, 9).reshape({12, 8})); }},
      {"cast to f32", [](V in) { return cast(in[0].slice0(1, 9), DType::F32); }},
  };
  for (const auto& [name, f] : views) {
    INFO(name);
    compare_backends(f, {bf16_randn({9, 12}, gen), bf16_randn({9, 12}, gen)}, gen, false, kTolBF16);
  }
}

TEST_CASE("gpu: cast between f32 and bf16 gives the CPU's bits", "[gpu][bf16]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  std::vector<float> v = Tensor::randn({1001}, gen).to_floats();
  // The edges of rounding: ties to even (1 + 2^-8 down, 1 + 3 * 2^-8 up), FLT_MAX up to infinity,
  // infinities, a subnormal, signed zero, NaN.
  for (float e : {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 3.4028235e38f, -3.4028235e38f, INFINITY, -INFINITY, 1e-40f,
                  -0.0f, NAN})
    v.push_back(e);
  // 1010 values take the one-value path; 1016, a multiple of 8, the 16-byte one.
  for (size_t n : {v.size(), v.size() + 6}) {
    CAPTURE(n);
    v.resize(n, 0.5f);
    const Tensor x = Tensor::from_floats(v, {int64_t(n)});
    const Tensor gpu = cast(x.to(Device::CUDA), DType::BF16).to(Device::CPU), cpu = cast(x, DType::BF16);
    const bf16 *g = gpu.data<bf16>(), *c = cpu.data<bf16>();
    for (size_t i = 0; i < n; ++i) {
      INFO(i << ": " << v[i]);
      CHECK(g[i].bits == c[i].bits);
    }
    // And back: every bf16 widens exactly (bits compared: NaN is among them).
    const std::vector<float> wg = cast(gpu.to(Device::CUDA), DType::F32).to_floats(), wc = cast(cpu, DType::F32).to_floats();
    CHECK(std::memcmp(wg.data(), wc.data(), n * sizeof(float)) == 0);
  }
}
