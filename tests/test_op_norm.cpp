// group_norm (with fused activations) and layer_norm: forward against naive double loops,
// backward against finite differences, edge shapes and bad input.
#include <cmath>

#include "helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

namespace {

double naive_act(Act act, double u) {
  if (act == Act::GELU) return 0.5 * u * std::erfc(-u / std::sqrt(2.0));  // erfc: no cancellation for u << 0
  if (act == Act::SiLU) return u / (1.0 + std::exp(-u));
  return u;
}

// x [N, ..., C] viewed as [N, P, C]; statistics per (sample, group) in double, two passes; shift
// [N, C] and residual (x's shape), if given, added before the activation.
std::vector<float> naive_group_norm(const Tensor& x, int64_t G, const Tensor& w, const Tensor& b, double eps, Act act,
                                    const Tensor& shift = Tensor(), const Tensor& residual = Tensor()) {
  const std::vector<float> xv = x.to_floats(), wv = w.to_floats(), bv = b.to_floats();
  const int64_t N = x.size(0), C = x.size(-1), P = x.numel() / (N * C), Cg = C / G;
  const std::vector<float> sv = shift.defined() ? shift.to_floats() : std::vector<float>(size_t(N * C), 0.0f);
  const std::vector<float> rv = residual.defined() ? residual.to_floats() : std::vector<float>(xv.size(), 0.0f);
  std::vector<float> y(xv.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < G; ++g) {
      auto at = [&](int64_t p, int64_t c) { return size_t((n * P + p) * C + g * Cg + c); };
      double s = 0, ss = 0;
      for (int64_t p = 0; p < P; ++p)
        for (int64_t c = 0; c < Cg; ++c) s += xv[at(p, c)];
      const double m = s / double(P * Cg);
      for (int64_t p = 0; p < P; ++p)
        for (int64_t c = 0; c < Cg; ++c) ss += (xv[at(p, c)] - m) * (xv[at(p, c)] - m);
      const double r = 1.0 / std::sqrt(ss / double(P * Cg) + eps);
      for (int64_t p = 0; p < P; ++p)
        for (int64_t c = 0; c < Cg; ++c)
          y[at(p, c)] = float(naive_act(act, (xv[at(p, c)] - m) * r * wv[size_t(g * Cg + c)] + bv[size_t(g * Cg + c)] +
                                                 sv[size_t(n * C + g * Cg + c)] + rv[at(p, c)]));
    }
  return y;
}

// A fresh input with an offset, so the variance is not just E[x^2].
Tensor shifted(const Shape& s, Generator& gen, float offset) {
  Tensor x = randn(s, gen, 2.0f);
  float* p = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) p[i] += offset;
  return x;
}

}  // namespace

TEST_CASE("group_norm matches a naive loop", "[op][norm]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  struct Case {
    Shape shape;
    int64_t groups;
  };
  // 1x1 spatial, batch 1, C = 3, 5, 13, groups 1 / several / C, C > 128 (two channel tiles),
  // enough positions for several splits (16x16), and a group of 3 channels inside float4s.
  const Case cases[] = {{{1, 1, 1, 5}, 1},   {{1, 1, 1, 6}, 2},   {{2, 3, 4, 3}, 1},   {{2, 3, 4, 3}, 3},
                        {{3, 2, 5, 13}, 1},  {{3, 2, 5, 13}, 13}, {{2, 4, 3, 12}, 4},  {{2, 4, 3, 12}, 3},
                        {{2, 16, 16, 8}, 2}, {{1, 8, 8, 136}, 1}, {{2, 16, 16, 64}, 1}};
  for (const Case& k : cases)
    for (Act act : {Act::None, Act::GELU, Act::SiLU}) {
      CAPTURE(shape_str(k.shape), k.groups, int(act));
      const int64_t C = k.shape.back();
      Tensor x = shifted(k.shape, gen, 3.0f), w = randn({C}, gen), b = randn({C}, gen);
      const float eps = 1e-5f;
      CHECK(rel_err(group_norm(x, k.groups, w, b, eps, act), naive_group_norm(x, k.groups, w, b, eps, act)) < 1e-5);
    }
}

TEST_CASE("group_norm adds a per-sample shift before the activation", "[op][norm]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (Act act : {Act::None, Act::GELU}) {
    CAPTURE(int(act));
    Tensor x = shifted({3, 5, 4, 12}, gen, 1.0f), w = randn({12}, gen), b = randn({12}, gen);
    Tensor shift = randn({3, 12}, gen);
    CHECK(rel_err(group_norm(x, 3, w, b, 1e-5f, act, shift), naive_group_norm(x, 3, w, b, 1e-5, act, shift)) < 1e-5);
  }
}

TEST_CASE("group_norm adds a residual before the activation", "[op][norm]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (Act act : {Act::GELU, Act::None}) {
    CAPTURE(int(act));
    Tensor x = shifted({2, 4, 5, 8}, gen, -1.0f), w = randn({8}, gen), b = randn({8}, gen);
    Tensor r = randn({2, 4, 5, 8}, gen), shift = randn({2, 8}, gen);
    const std::vector<float> want = naive_group_norm(x, 1, w, b, 1e-5, act, Tensor(), r);
    CHECK(rel_err(group_norm(x, 1, w, b, 1e-5f, act, Tensor(), r), want) < 1e-5);
    CHECK(rel_err(group_norm(x, 2, w, b, 1e-5f, act, shift, r), naive_group_norm(x, 2, w, b, 1e-5, act, shift, r)) <
          1e-5);
  }
}

TEST_CASE("group_norm keeps precision when the mean dwarfs the spread", "[op][norm]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  Tensor x = randn({2, 8, 8, 16}, gen);
  float* p = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i)
    p[i] = 1000.0f + 0.1f * p[i];  // E[x^2] - mean^2 would cancel completely in float
  Tensor w = randn({16}, gen), b = randn({16}, gen);
  CHECK(rel_err(group_norm(x, 4, w, b), naive_group_norm(x, 4, w, b, 1e-5, Act::None)) < 1e-3);
}

TEST_CASE("group_norm gradients match finite differences", "[op][norm][grad]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  struct Case {
    Shape shape;
    int64_t groups;
    Act act;
  };
  const Case cases[] = {{{2, 2, 3, 6}, 2, Act::GELU},
                        {{2, 2, 3, 6}, 1, Act::None},
                        {{1, 1, 1, 13}, 1, Act::SiLU},
                        {{2, 3, 3, 12}, 3, Act::GELU},
                        {{1, 2, 2, 5}, 5, Act::None}};
  for (const Case& k : cases) {
    CAPTURE(shape_str(k.shape), k.groups, int(k.act));
    const int64_t C = k.shape.back();
    check_gradients(
        [&](const std::vector<Tensor>& in) { return group_norm(in[0], k.groups, in[1], in[2], 1e-5f, k.act); },
        {randn(k.shape, gen), randn({C}, gen), randn({C}, gen)}, gen);
  }
  // With the per-sample shift, whose gradient is du summed over the sample's positions, and with
  // the residual, whose gradient is du.
  for (Act act : {Act::None, Act::GELU}) {
    CAPTURE(int(act));
    check_gradients(
        [&](const std::vector<Tensor>& in) { return group_norm(in[0], 2, in[1], in[2], 1e-5f, act, in[3]); },
        {randn({2, 3, 2, 6}, gen), randn({6}, gen), randn({6}, gen), randn({2, 6}, gen)}, gen);
    check_gradients(
        [&](const std::vector<Tensor>& in) { return group_norm(in[0], 1, in[1], in[2], 1e-5f, act, Tensor(), in[3]); },
        {randn({2, 3, 2, 6}, gen), randn({6}, gen), randn({6}, gen), randn({2, 3, 2, 6}, gen)}, gen);
  }
}

TEST_CASE("layer_norm matches a naive loop", "[op][norm]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (Shape s :
       {Shape{3, 7}, Shape{2, 3, 16}, Shape{1, 1}, Shape{5, 13}, Shape{4, 136}, Shape{2, 256, 12}, Shape{9}}) {
    CAPTURE(shape_str(s));
    const int64_t C = s.back();
    Tensor x = shifted(s, gen, -2.0f), w = randn({C}, gen), b = randn({C}, gen);
    // Layer norm over the last dim is group norm with one group per row and one position.
    Tensor rows = x.reshape({x.numel() / C, 1, C});
    CHECK(rel_err(layer_norm(x, w, b), naive_group_norm(rows, 1, w, b, 1e-5, Act::None)) < 1e-5);
  }
}

TEST_CASE("layer_norm gradients match finite differences", "[op][norm][grad]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (Shape s : {Shape{3, 8}, Shape{2, 2, 5}, Shape{1, 13}}) {
    CAPTURE(shape_str(s));
    const int64_t C = s.back();
    check_gradients([](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], in[2]); },
                    {randn(s, gen), randn({C}, gen), randn({C}, gen)}, gen);
  }
  // Enough rows for several splits of the dw, db sums.
  check_gradients([](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], in[2]); },
                  {randn({200, 6}, gen), randn({6}, gen), randn({6}, gen)}, gen);
}

TEST_CASE("norms reject bad input", "[op][norm][errors]") {
  Generator gen = fresh_generator();
  Tensor x = randn({2, 3, 3, 6}, gen), w = randn({6}, gen), b = randn({6}, gen);
  CHECK_THROWS_WITH(group_norm(x, 4, w, b), Catch::Contains("group_norm") && Catch::Contains("4 groups"));
  CHECK_THROWS_AS(group_norm(x, 0, w, b), Error);
  CHECK_THROWS_WITH(group_norm(x, 2, randn({5}, gen), b), Catch::Contains("[5]") && Catch::Contains("[2, 3, 3, 6]"));
  CHECK_THROWS_AS(group_norm(x, 2, w, randn({6, 1}, gen)), Error);
  CHECK_THROWS_AS(group_norm(x, 2, w, Tensor()), Error);
  CHECK_THROWS_AS(group_norm(Tensor::zeros({0, 3, 3, 6}), 2, w, b), Error);
  CHECK_THROWS_AS(group_norm(randn({6}, gen), 1, w, b), Error);
  CHECK_THROWS_AS(group_norm(Tensor::zeros({2, 3, 3, 6}, DType::I64), 1, w, b), Error);
  CHECK_THROWS_WITH(group_norm(x, 2, w, b, 1e-5f, Act::None, randn({2, 5}, gen)),
                    Catch::Contains("shift") && Catch::Contains("[2, 6]"));
  CHECK_THROWS_AS(group_norm(x, 2, w, b, 1e-5f, Act::None, randn({2, 6}, gen).to(DType::BF16)), Error);
  CHECK_THROWS_WITH(group_norm(x, 2, w, b, 1e-5f, Act::GELU, Tensor(), randn({2, 3, 3, 5}, gen)),
                    Catch::Contains("residual") && Catch::Contains("[2, 3, 3, 5]"));
  CHECK_THROWS_WITH(layer_norm(randn({4, 5}, gen), w, b), Catch::Contains("layer_norm") && Catch::Contains("[4, 5]"));
  CHECK_THROWS_AS(layer_norm(Tensor::zeros({4, 0}), randn({0}, gen), randn({0}, gen)), Error);
  CHECK_THROWS_AS(layer_norm(Tensor(), w, b), Error);
}
