// gelu, silu, add/sub/mul with broadcasting, add_gelu: forward against naive loops, backward
// against finite differences.
#include <cmath>

#include "helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

namespace {
// erfc, not 1 + erf: below x = -8.3 the double erf rounds to -1, so 1 + erf(x / sqrt 2) would give
// 0 where the true value (and the kernels' result) is a tiny nonzero number.
double naive_gelu(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }
double naive_silu(double x) { return x / (1.0 + std::exp(-x)); }
}  // namespace

TEST_CASE("gelu and silu match the closed forms", "[op][elementwise]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (int64_t n : {1, 7, 1000}) {
    Tensor x = randn({n}, gen, 3.0f);
    std::vector<float> xv = x.to_floats(), g_ref, s_ref;
    for (float v : xv) {
      g_ref.push_back(float(naive_gelu(v)));
      s_ref.push_back(float(naive_silu(v)));
    }
    // float32 erfcf/expf are accurate to a few ulp; on a one-element vector that is ~1e-6
    // relative, so 1e-5 passes a right formula and fails a wrong one (off by O(1)).
    CHECK(rel_err(gelu(x), g_ref) < 1e-5);
    CHECK(rel_err(silu(x), s_ref) < 1e-5);
  }
}

TEST_CASE("activation gradients match finite differences", "[op][elementwise][grad]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  check_gradients([](const std::vector<Tensor>& in) { return gelu(in[0]); }, {randn({3, 5}, gen, 2.0f)}, gen);
  check_gradients([](const std::vector<Tensor>& in) { return silu(in[0]); }, {randn({3, 5}, gen, 2.0f)}, gen);
  check_gradients([](const std::vector<Tensor>& in) { return add_gelu(in[0], in[1]); },
                  {randn({2, 3, 3, 5}, gen), randn({2, 3, 3, 5}, gen)}, gen);
}

TEST_CASE("broadcast arithmetic matches a naive loop", "[op][elementwise]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  // The per-channel embedding add of the U-Net: [N, H, W, C] + [N, 1, 1, C], C not a multiple of 4.
  const int64_t N = 2, H = 3, W = 4, C = 5;
  Tensor a = randn({N, H, W, C}, gen), b = randn({N, 1, 1, C}, gen);
  std::vector<float> av = a.to_floats(), bv = b.to_floats(), add_ref, sub_ref, mul_ref;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t p = 0; p < H * W; ++p)
      for (int64_t c = 0; c < C; ++c) {
        float x = av[size_t((n * H * W + p) * C + c)], y = bv[size_t(n * C + c)];
        add_ref.push_back(x + y);
        sub_ref.push_back(x - y);
        mul_ref.push_back(x * y);
      }
  CHECK(rel_err(add(a, b), add_ref) < 1e-7);
  CHECK(rel_err(sub(a, b), sub_ref) < 1e-7);
  CHECK(rel_err(mul(a, b), mul_ref) < 1e-7);
  // Trailing-dimension broadcast (a bias [C]) and equal shapes.
  Tensor bias = randn({C}, gen);
  std::vector<float> biasv = bias.to_floats(), ref;
  for (size_t i = 0; i < av.size(); ++i) ref.push_back(av[i] + biasv[i % size_t(C)]);
  CHECK(rel_err(add(a, bias), ref) < 1e-7);
}

TEST_CASE("broadcast arithmetic gradients match finite differences", "[op][elementwise][grad]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (auto op : {add, sub, mul}) {
    check_gradients([op](const std::vector<Tensor>& in) { return op(in[0], in[1]); },
                    {randn({2, 3, 2, 5}, gen), randn({2, 1, 1, 5}, gen)}, gen);
    check_gradients([op](const std::vector<Tensor>& in) { return op(in[0], in[1]); },
                    {randn({1, 1, 1, 3}, gen), randn({1, 1, 1, 3}, gen)}, gen);
  }
}

TEST_CASE("elementwise ops reject bad input", "[op][elementwise][errors]") {
  Generator gen = fresh_generator();
  Tensor a = randn({2, 3}, gen), b = randn({3, 2}, gen);
  CHECK_THROWS_AS(add(a, b), Error);
  CHECK_THROWS_WITH(add(a, b), Catch::Contains("add") && Catch::Contains("[3, 2]") && Catch::Contains("[2, 3]"));
  CHECK_THROWS_AS(add_gelu(a, randn({6}, gen)), Error);
  CHECK_THROWS_AS(gelu(Tensor::zeros({0})), Error);
  CHECK_THROWS_AS(gelu(Tensor::zeros({2}, DType::I64)), Error);
  CHECK_THROWS_AS(gelu(Tensor()), Error);
}
