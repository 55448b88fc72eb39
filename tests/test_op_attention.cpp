// attention and multi_head_attention: forward against a naive double-precision softmax loop,
// backward against finite differences, and the error paths.
#include <cmath>

#include "helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

namespace {

// Full-softmax attention over packed qkv [B, L, 3C] in double: the definition, nothing clever.
std::vector<float> naive_attention(const std::vector<float>& qkv, int64_t B, int64_t L, int64_t heads, int64_t D) {
  const int64_t C = heads * D;
  std::vector<float> out(size_t(B * L * C));
  std::vector<double> s(static_cast<size_t>(L));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < L; ++i) {
        auto at = [&](int64_t token, int64_t part, int64_t d) {
          return double(qkv[size_t((b * L + token) * 3 * C + part * C + h * D + d)]);
        };
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < L; ++j) {
          s[size_t(j)] = 0;
          for (int64_t d = 0; d < D; ++d) s[size_t(j)] += at(i, 0, d) * at(j, 1, d);
          s[size_t(j)] /= std::sqrt(double(D));
          mx = std::max(mx, s[size_t(j)]);
        }
        for (int64_t j = 0; j < L; ++j) sum += std::exp(s[size_t(j)] - mx);
        for (int64_t d = 0; d < D; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < L; ++j) acc += std::exp(s[size_t(j)] - mx) * at(j, 2, d);
          out[size_t((b * L + i) * C + h * D + d)] = float(acc / sum);
        }
      }
  return out;
}

// y = x w^T + bias over the last dimension, in double.
std::vector<float> naive_linear(const std::vector<float>& x, const std::vector<float>& w,
                                const std::vector<float>& bias, int64_t rows, int64_t in, int64_t out) {
  std::vector<float> y(size_t(rows * out));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double acc = bias[size_t(o)];
      for (int64_t i = 0; i < in; ++i) acc += double(x[size_t(r * in + i)]) * w[size_t(o * in + i)];
      y[size_t(r * out + o)] = float(acc);
    }
  return y;
}

struct Case {
  int64_t B, heads, D;
};

}  // namespace

TEST_CASE("attention matches a naive softmax loop", "[op][attention]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  // Head dims of the CUDA kernels and an odd one (the CPU path takes any D); 300 tokens span
  // several 64-row query blocks with a partial last one.
  for (int64_t L : {1, 7, 64, 300})
    for (Case c : {Case{1, 1, 16}, Case{2, 2, 32}, Case{1, 4, 64}, Case{2, 4, 16}, Case{2, 2, 5}, Case{1, 1, 1}}) {
      CAPTURE(L, c.B, c.heads, c.D);
      Tensor qkv = randn({c.B, L, 3 * c.heads * c.D}, gen);
      CHECK(rel_err(attention(qkv, c.heads), naive_attention(qkv.to_floats(), c.B, L, c.heads, c.D)) < 1e-5);
    }
}

TEST_CASE("attention is stable for peaked softmaxes", "[op][attention]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  // Scores of order 100: exp() would overflow f32 without the row-max shift. A score error of
  // eps32 * 100 ~ 1e-5 becomes that relative error in the weights, hence the looser bound.
  Tensor qkv = randn({2, 70, 3 * 2 * 16}, gen, 10.0f);
  std::vector<float> ref = naive_attention(qkv.to_floats(), 2, 70, 2, 16);
  Tensor out = attention(qkv, 2);
  CHECK(rel_err(out, ref) < 1e-4);
}

TEST_CASE("attention gradients match finite differences", "[op][attention][grad]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  auto f = [](int64_t heads) {
    return [heads](const std::vector<Tensor>& in) { return attention(in[0], heads); };
  };
  check_gradients(f(2), {randn({2, 5, 3 * 2 * 3}, gen)}, gen);
  check_gradients(f(1), {randn({1, 1, 3 * 4}, gen)}, gen);  // one token: out = v, dq = dk = 0
  // 70 tokens span two query blocks of the CPU kernel (dk, dv accumulate across them) and, at
  // D = 64, two key blocks (dq accumulates across those).
  check_gradients(f(4), {randn({1, 70, 3 * 4 * 2}, gen)}, gen, 1e-2, 1e-2f, 96);
  check_gradients(f(1), {randn({1, 70, 3 * 64}, gen)}, gen, 1e-2, 1e-2f, 96);
}

TEST_CASE("multi_head_attention matches in-projection, attention, out-projection", "[op][attention]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (Case c : {Case{2, 2, 4}, Case{1, 4, 3}}) {
    const int64_t L = 9, C = c.heads * c.D;
    CAPTURE(c.B, c.heads, C);
    const float ws = 1.0f / std::sqrt(float(C));
    Tensor x = randn({c.B, L, C}, gen), in_w = randn({3 * C, C}, gen, ws), in_b = randn({3 * C}, gen, 0.5f);
    Tensor out_w = randn({C, C}, gen, ws), out_b = randn({C}, gen, 0.5f);
    std::vector<float> qkv = naive_linear(x.to_floats(), in_w.to_floats(), in_b.to_floats(), c.B * L, C, 3 * C);
    std::vector<float> a = naive_attention(qkv, c.B, L, c.heads, c.D);
    std::vector<float> ref = naive_linear(a, out_w.to_floats(), out_b.to_floats(), c.B * L, C, C);
    CHECK(rel_err(multi_head_attention(x, in_w, in_b, out_w, out_b, c.heads), ref) < 1e-5);
  }
}

TEST_CASE("multi_head_attention gradients match finite differences", "[op][attention][grad]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  const int64_t C = 6;
  check_gradients(
      [](const std::vector<Tensor>& in) { return multi_head_attention(in[0], in[1], in[2], in[3], in[4], 2); },
      {randn({2, 5, C}, gen), randn({3 * C, C}, gen, 0.5f), randn({3 * C}, gen), randn({C, C}, gen, 0.5f),
       randn({C}, gen)},
      gen);
}

TEST_CASE("attention ops reject bad input", "[op][attention][errors]") {
  Generator gen = fresh_generator();
  CHECK_THROWS_WITH(attention(randn({1, 4, 9}, gen), 2),
                    Catch::Contains("attention") && Catch::Contains("[1, 4, 9]") && Catch::Contains("divisible"));
  CHECK_THROWS_WITH(attention(randn({1, 4, 8}, gen), 1), Catch::Contains("attention") && Catch::Contains("[1, 4, 8]"));
  CHECK_THROWS_AS(attention(randn({4, 12}, gen), 2), Error);
  CHECK_THROWS_AS(attention(randn({1, 2, 4, 12}, gen), 2), Error);
  CHECK_THROWS_AS(attention(Tensor::zeros({1, 0, 12}), 2), Error);
  CHECK_THROWS_AS(attention(Tensor::zeros({0, 3, 12}), 2), Error);
  CHECK_THROWS_AS(attention(randn({1, 3, 12}, gen), 0), Error);
  CHECK_THROWS_AS(attention(Tensor::zeros({1, 3, 12}, DType::I64), 2), Error);
  CHECK_THROWS_AS(attention(Tensor(), 2), Error);

  const int64_t C = 8;
  Tensor x = randn({2, 3, C}, gen), in_w = randn({3 * C, C}, gen), in_b = randn({3 * C}, gen);
  Tensor out_w = randn({C, C}, gen), out_b = randn({C}, gen);
  CHECK_NOTHROW(multi_head_attention(x, in_w, in_b, out_w, out_b, 4));
  CHECK_THROWS_WITH(multi_head_attention(x, in_w, in_b, out_w, out_b, 3),
                    Catch::Contains("multi_head_attention") && Catch::Contains("divisible"));
  CHECK_THROWS_WITH(multi_head_attention(x, randn({3 * C, C + 1}, gen), in_b, out_w, out_b, 4),
                    Catch::Contains("multi_head_attention") && Catch::Contains("[24, 9]"));
  CHECK_THROWS_AS(multi_head_attention(x, in_w, randn({C}, gen), out_w, out_b, 4), Error);
  CHECK_THROWS_AS(multi_head_attention(x, in_w, in_b, randn({C, 2 * C}, gen), out_b, 4), Error);
  CHECK_THROWS_AS(multi_head_attention(x, in_w, in_b, out_w, Tensor(), 4), Error);
  CHECK_THROWS_AS(multi_head_attention(x.reshape({6, C}), in_w, in_b, out_w, out_b, 4), Error);
}
