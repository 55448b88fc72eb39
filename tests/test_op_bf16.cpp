// The bf16 path of every op the U-Net uses: the same op on the same (bf16-representable) inputs
// in f32 is the reference, forward and all gradients. Both paths compute in f32; the bf16 one
// rounds each stored output to 8 significant bits (relative error <= 2^-8 = 0.004 per rounding, ~0.001 on average),
// so one op lands within ~0.3% (L2-relative) of f32 and a composite of a few ops within ~1%.
// Also: outputs and gradients carry the data's dtype, norm parameters stay f32, and mixing
// dtypes is refused.
#include <algorithm>
#include <functional>

#include "helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

namespace {

// Random values rounded to bf16, held in f32: exactly what both paths see.
Tensor bf16_values(const Shape& s, Generator& gen, float scale = 1.0f) { return randn(s, gen, scale).to(DType::BF16).to(DType::F32); }

struct Case {
  const char* name;
  std::vector<Shape> data;    // inputs converted to bf16 on the bf16 path
  std::vector<Shape> params;  // inputs that stay f32 on both paths (norm weights), after the data
  std::function<Tensor(const std::vector<Tensor>&)> f;
  double tol = 1e-2;
};

void check_case(const Case& c, Generator& gen) {
  INFO(c.name);
  std::vector<Tensor> ref, low;
  for (const Shape& s : c.data) {
    ref.push_back(bf16_values(s, gen));
    low.push_back(ref.back().to(DType::BF16));
  }
  for (const Shape& s : c.params) {
    ref.push_back(bf16_values(s, gen));
    low.push_back(ref.back().clone());
  }
  for (size_t i = 0; i < ref.size(); ++i) {
    ref[i].set_requires_grad(true);
    low[i].set_requires_grad(true);
  }
  Tensor yr = c.f(ref), yl = c.f(low);
  REQUIRE(yl.dtype() == DType::BF16);
  REQUIRE(yl.shape() == yr.shape());
  CHECK(rel_err(yl, yr) < c.tol);

  Tensor r = bf16_values(yr.shape(), gen);
  yr.backward(r);
  yl.backward(r.to(DType::BF16));
  for (size_t i = 0; i < ref.size(); ++i) {
    INFO("gradient of input " << i << " " << ref[i].desc());
    REQUIRE(low[i].grad().defined());
    CHECK(low[i].grad().dtype() == low[i].dtype());
    CHECK(rel_err(low[i].grad(), ref[i].grad()) < c.tol);
  }
}

}  // namespace

TEST_CASE("every op of the U-Net matches f32 in bf16, forward and backward", "[op][bf16]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  using V = const std::vector<Tensor>&;
  const Case cases[] = {
      {"gelu", {{3, 5, 7, 4}}, {}, [](V in) { return gelu(in[0]); }},
      {"silu", {{2, 9, 5}}, {}, [](V in) { return silu(in[0]); }},
      {"add, per-channel broadcast", {{2, 4, 3, 6}, {2, 1, 1, 6}}, {}, [](V in) { return add(in[0], in[1]); }},
      {"sub", {{3, 7}, {3, 7}}, {}, [](V in) { return sub(in[0], in[1]); }},
      // The broadcast operand's gradient sums bf16-rounded products: with few entries, their
      // random signs can cancel the L2 norm down to where those roundings pass 1% (b [3, 1] did,
      // in 2 of 300 seeds); 16 entries keep the norm away from zero.
      {"mul, broadcast", {{4, 16, 5}, {16, 1}}, {}, [](V in) { return mul(in[0], in[1]); }},
      {"add_gelu", {{2, 3, 3, 5}, {2, 3, 3, 5}}, {}, [](V in) { return add_gelu(in[0], in[1]); }},
      {"a tensor used twice (bf16 gradient accumulation)", {{4, 6}}, {}, [](V in) { return add(gelu(in[0]), in[0]); }},
      {"linear with bias", {{2, 5, 12}, {7, 12}, {7}}, {}, [](V in) { return linear(in[0], in[1], in[2]); }},
      {"bmm, transposed", {{3, 4, 5}, {3, 6, 5}}, {}, [](V in) { return bmm(in[0], in[1], false, true); }},
      {"conv2d 3x3", {{2, 6, 5, 3}, {4, 3, 3, 3}}, {}, [](V in) { return conv2d(in[0], in[1]); }},
      {"conv2d 1x1 with bias", {{2, 4, 4, 5}, {3, 1, 1, 5}, {3}}, {}, [](V in) { return conv2d(in[0], in[1], in[2]); }},
      {"group_norm(1) + GELU", {{2, 4, 3, 8}}, {{8}, {8}},
       [](V in) { return group_norm(in[0], 1, in[1], in[2], 1e-5f, Act::GELU); }},
      {"group_norm(4)", {{2, 3, 3, 8}}, {{8}, {8}}, [](V in) { return group_norm(in[0], 4, in[1], in[2]); }},
      {"layer_norm", {{3, 5, 12}}, {{12}, {12}}, [](V in) { return layer_norm(in[0], in[1], in[2]); }},
      {"concat_channels", {{2, 3, 3, 5}, {2, 3, 3, 3}}, {}, [](V in) { return concat_channels(in[0], in[1]); }},
      {"max_pool2x2", {{2, 6, 4, 3}}, {}, [](V in) { return max_pool2x2(in[0]); }},
      {"upsample2x", {{2, 3, 5, 4}}, {}, [](V in) { return upsample2x(in[0]); }},
      {"attention", {{2, 9, 24}}, {}, [](V in) { return attention(in[0], 2); }},
      // Four ops in a chain, and the attention backward's dP - delta cancels; the key part of
      // in_b's gradient is zero in exact arithmetic (softmax ignores a shift of all scores), so
      // there the f32 and bf16 results are both rounding noise. Seen: up to 5% over 15 runs.
      {"multi_head_attention", {{2, 7, 8}, {24, 8}, {24}, {8, 8}, {8}}, {},
       [](V in) { return multi_head_attention(in[0], in[1], in[2], in[3], in[4], 2); }, 8e-2},
  };
  for (const Case& c : cases) check_case(c, gen);
}

TEST_CASE("cast rounds to nearest even, and its gradient is cast back", "[op][bf16]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  Tensor x = randn({5, 7}, gen, 3.0f).set_requires_grad(true);
  Tensor y = cast(x, DType::BF16);
  REQUIRE(y.dtype() == DType::BF16);
  const std::vector<float> xv = x.to_floats(), yv = y.to_floats();
  for (size_t i = 0; i < xv.size(); ++i) {
    CHECK(std::abs(yv[i] - xv[i]) <= std::abs(xv[i]) * 0x1p-8f);  // half an ulp of 8 significant bits
    CHECK(yv[i] == bf16_to_float(float_to_bf16(xv[i])));
  }
  CHECK(cast(x, DType::F32).same(x));  // no copy, no node when nothing changes
  // Ties go to the even neighbour (bf16 keeps 7 fraction bits: the ulp of 1 is 2^-7); FLT_MAX
  // rounds up to infinity; NaN stays NaN.
  const std::vector<float> edge =
      cast(Tensor::from_floats({1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -3.4028235e38f, NAN}, {4}), DType::BF16).to_floats();
  CHECK(edge[0] == 1.0f);
  CHECK(edge[1] == 1.0f + 0x1p-6f);
  CHECK(edge[2] == -INFINITY);
  CHECK(std::isnan(edge[3]));
  Tensor g = bf16_values({5, 7}, gen);
  cast(gelu(y), DType::F32).backward(g);
  REQUIRE(x.grad().dtype() == DType::F32);
  // d/dx gelu(x) at the rounded x, rounded to bf16 once (the gelu backward output).
  const std::vector<float> gx = x.grad().to_floats(), gv = g.to_floats();
  std::vector<float> want(gx.size());
  for (size_t i = 0; i < want.size(); ++i) want[i] = gv[i] * kernels::gelu_grad(yv[i]);
  CHECK(rel_err(gx, want) < 4e-3);
}

TEST_CASE("a CastCache converts each parameter once in inference, and nothing else", "[op][bf16]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  Tensor w = randn({5, 7}, gen).set_requires_grad(true), x = randn({5, 7}, gen);
  auto same_storage = [](const Tensor& a, const Tensor& b) { return a.data<bf16>() == b.data<bf16>(); };
  CastCache cache;
  {
    NoGradGuard no_grad;
    CHECK_FALSE(same_storage(cast(w, DType::BF16), cast(w, DType::BF16)));  // made but not in use: no cache
    CastCache::Use use(cache);
    const int64_t before = CastCache::copies_made();
    Tensor a = cast(w, DType::BF16), b = cast(w, DType::BF16);
    CHECK(same_storage(a, b));
    CHECK(same_storage(cache.find(w), a));
    CHECK_FALSE(cache.find(x).defined());
    CHECK(a.to_floats() == w.to(DType::BF16).to_floats());
    CHECK(CastCache::copies_made() == before + 1);
    CHECK_FALSE(same_storage(cast(x, DType::BF16), cast(x, DType::BF16)));  // activations: a copy each time
    {
      CastCache inner;  // nested: copies of its own, released at its end
      CastCache::Use use_inner(inner);
      CHECK_FALSE(same_storage(cast(w, DType::BF16), a));
    }
    CHECK(same_storage(cast(w, DType::BF16), a));  // the outer cache's again
  }
  {
    CastCache::Use use(cache);  // grad mode on: casts are recorded and not cached, so gradients flow
    Tensor a = cast(w, DType::BF16), b = cast(w, DType::BF16);
    CHECK_FALSE(same_storage(a, b));
    cast(a, DType::F32).backward(Tensor::full({5, 7}, 1.0f));
    CHECK(w.grad().defined());
  }
  // Out of use a changed weight is converted again.
  w.data<float>()[0] += 1.0f;
  NoGradGuard no_grad;
  CHECK(cast(w, DType::BF16).to_floats()[0] == bf16_to_float(float_to_bf16(w.data<float>()[0])));
}

TEST_CASE("a trainable CastCache leaves a weight's gradient on its copy: the cast's gradient, in bf16",
          "[op][bf16]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  Tensor w = randn({6, 9}, gen).set_requires_grad(true), b = randn({6}, gen).set_requires_grad(true);
  Tensor x = randn({4, 9}, gen).to(DType::BF16), target = randn({4, 6}, gen);
  auto loss = [&] { return mse_loss(cast(linear(x, cast(w, DType::BF16), cast(b, DType::BF16)), DType::F32), target); };
  loss().backward();  // the plain path: cast nodes, each gradient cast back to f32 onto the weight
  const std::vector<float> gw = w.grad().to_floats(), gb = b.grad().to_floats();
  w.zero_grad();
  b.zero_grad();

  CastCache cache({w, b});
  Tensor other = randn({6, 9}, gen).set_requires_grad(true);  // a leaf the cache does not serve
  {
    CastCache::Use use(cache);
    Tensor cw = cast(w, DType::BF16);
    CHECK(cw.requires_grad());
    CHECK(cw.data<bf16>() == cast(w, DType::BF16).data<bf16>());  // one copy, also with grad mode on
    CHECK(cw.to_floats() == w.to(DType::BF16).to_floats());
    loss().backward();
    Tensor co = cast(other, DType::BF16);
    CHECK(co.data<bf16>() != cast(other, DType::BF16).data<bf16>());
    cast(co, DType::F32).backward(Tensor::full({6, 9}, 1.0f));
    CHECK(other.grad().dtype() == DType::F32);  // through the recorded cast, as without a cache
    CHECK_FALSE(cache.find(other).defined());
  }
  CHECK_FALSE(w.grad().defined());
  CHECK_FALSE(b.grad().defined());
  Tensor cw = cache.find(w), cb = cache.find(b);
  REQUIRE(cw.grad().defined());
  REQUIRE(cb.grad().defined());
  CHECK(cw.grad().dtype() == DType::BF16);
  CHECK(cw.grad().to_floats() == gw);  // the same values: the product rounded them to bf16 either way
  CHECK(cb.grad().to_floats() == gb);
  CHECK(std::any_of(gw.begin(), gw.end(), [](float v) { return v != 0.0f; }));
}

TEST_CASE("ops refuse mixed f32 and bf16 data", "[op][bf16]") {
  Tensor a = Tensor::full({2, 3}, 1.0f), b = Tensor::full({2, 3}, 2.0f).to(DType::BF16);
  CHECK_THROWS_WITH(add(a, b), Catch::Contains("mixes dtypes") && Catch::Contains("cast"));
  CHECK_THROWS_WITH(linear(b, Tensor::full({4, 3}, 1.0f)), Catch::Contains("mixes dtypes"));
  CHECK_THROWS_WITH(cast(Tensor::from_ints({1, 2}, {2}), DType::BF16), Catch::Contains("f32 or bf16"));
  CHECK_THROWS_WITH(mse_loss(b, b), Catch::Contains("must be f32"));
}
