// conv2d: forward and all three gradients against direct convolution loops in double, the
// gradients also against finite differences, and the error paths.
#include <random>

#include "helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

namespace {

struct Case {
  int64_t n, h, w, cin, cout, k;
  bool bias;
};

// Visits every (output pixel, tap, input channel, output channel) of the convolution with the
// flat indices of x [N,H,W,Cin], w [Cout,k,k,Cin] and y [N,H,W,Cout]; taps that fall in the zero
// padding are skipped.
template <class F>
void for_each_tap(const Case& c, F&& f) {
  const int64_t pad = (c.k - 1) / 2;
  for (int64_t n = 0; n < c.n; ++n)
    for (int64_t h = 0; h < c.h; ++h)
      for (int64_t w = 0; w < c.w; ++w)
        for (int64_t ky = 0; ky < c.k; ++ky)
          for (int64_t kx = 0; kx < c.k; ++kx) {
            const int64_t hy = h + ky - pad, wx = w + kx - pad;
            if (hy < 0 || hy >= c.h || wx < 0 || wx >= c.w) continue;
            for (int64_t co = 0; co < c.cout; ++co)
              for (int64_t ci = 0; ci < c.cin; ++ci)
                f(((n * c.h + hy) * c.w + wx) * c.cin + ci, ((co * c.k + ky) * c.k + kx) * c.cin + ci,
                  ((n * c.h + h) * c.w + w) * c.cout + co);
          }
}

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

struct Reference {
  std::vector<float> y, dx, dw, db;
};

// Direct convolution and its gradients for the output gradient g, accumulated in double.
Reference naive_conv(const Case& c, const std::vector<float>& x, const std::vector<float>& w,
                     const std::vector<float>& b, const std::vector<float>& g) {
  std::vector<double> y(g.size(), 0.0), dx(x.size(), 0.0), dw(w.size(), 0.0), db(size_t(c.cout), 0.0);
  for_each_tap(c, [&](int64_t xi, int64_t wi, int64_t yi) {
    y[size_t(yi)] += double(x[size_t(xi)]) * w[size_t(wi)];
    dx[size_t(xi)] += double(g[size_t(yi)]) * w[size_t(wi)];
    dw[size_t(wi)] += double(g[size_t(yi)]) * x[size_t(xi)];
  });
  for (size_t i = 0; i < y.size(); ++i) {
    if (c.bias) y[i] += b[i % size_t(c.cout)];
    db[i % size_t(c.cout)] += g[i];
  }
  return {to_float(y), to_float(dx), to_float(dw), to_float(db)};
}

// Runs conv2d forward and backward on fresh inputs and compares everything with naive_conv.
void check_against_naive(const Case& c, Generator& gen, double tol = 1e-5) {
  CAPTURE(c.n, c.h, c.w, c.cin, c.cout, c.k, c.bias);
  Tensor x = randn({c.n, c.h, c.w, c.cin}, gen).set_requires_grad();
  Tensor w = randn({c.cout, c.k, c.k, c.cin}, gen).set_requires_grad();
  Tensor b = c.bias ? randn({c.cout}, gen).set_requires_grad() : Tensor();
  Tensor g = randn({c.n, c.h, c.w, c.cout}, gen);
  Reference ref = naive_conv(c, x.to_floats(), w.to_floats(), c.bias ? b.to_floats() : std::vector<float>(),
                             g.to_floats());
  Tensor y = conv2d(x, w, b);
  REQUIRE(y.shape() == Shape{c.n, c.h, c.w, c.cout});
  CHECK(rel_err(y, ref.y) < tol);
  y.backward(g);
  CHECK(rel_err(x.grad(), ref.dx) < tol);
  CHECK(rel_err(w.grad(), ref.dw) < tol);
  if (c.bias) CHECK(rel_err(b.grad(), ref.db) < tol);
}

}  // namespace

TEST_CASE("conv2d forward and backward match direct convolution at edge-case shapes", "[op][conv]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (Case c : {Case{1, 1, 1, 3, 5, 3, false},  // 1x1 spatial: only the centre tap sees data
                 Case{2, 2, 2, 5, 3, 3, true},   // 2x2 spatial: every pixel is on the border
                 Case{1, 5, 7, 13, 3, 3, true},  // non-square, odd channels
                 Case{3, 4, 3, 3, 13, 3, false},
                 Case{1, 1, 1, 5, 3, 1, true},   // 1x1 conv: a per-pixel linear map
                 Case{2, 3, 5, 13, 5, 1, false},
                 Case{2, 6, 6, 5, 3, 1, true}})
    check_against_naive(c, gen);
}

TEST_CASE("conv2d matches direct convolution at random shapes", "[op][conv]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  std::mt19937_64 rng(gen.seed());
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int i = 0; i < 6; ++i)
    check_against_naive({pick(1, 3), pick(1, 9), pick(1, 9), pick(1, 17), pick(1, 17), i % 3 ? 3 : 1, pick(0, 1) == 1},
                        gen);
}

TEST_CASE("conv2d is right across the kernel's pixel chunks", "[op][conv]") {
  // With Cin = 700 a 3x3 patch is 6300 floats, so the CPU kernel splits the 2*23*23 = 1058 output
  // pixels into chunks of 665 (16 MiB of patches): the chunk boundary falls mid-row in the second
  // image, which exercises the halo of the data gradient's col2im across chunks.
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  check_against_naive({2, 23, 23, 700, 3, 3, true}, gen, 2e-5);
}

TEST_CASE("conv2d gradients match finite differences", "[op][conv][grad]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  auto with_bias = [](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], in[2]); };
  auto no_bias = [](const std::vector<Tensor>& in) { return conv2d(in[0], in[1]); };
  check_gradients(with_bias, {randn({2, 3, 4, 3}, gen), randn({5, 3, 3, 3}, gen), randn({5}, gen)}, gen);
  check_gradients(no_bias, {randn({1, 1, 1, 5}, gen), randn({3, 3, 3, 5}, gen)}, gen);
  check_gradients(with_bias, {randn({2, 2, 3, 5}, gen), randn({3, 1, 1, 5}, gen), randn({3}, gen)}, gen);
  check_gradients(no_bias, {randn({1, 3, 3, 4}, gen), randn({2, 1, 1, 4}, gen)}, gen);
}

TEST_CASE("conv2d rejects bad input", "[op][conv][errors]") {
  Generator gen = fresh_generator();
  Tensor x = randn({2, 4, 4, 3}, gen), w = randn({5, 3, 3, 3}, gen), b = randn({5}, gen);
  CHECK_NOTHROW(conv2d(x, w, b));
  CHECK_THROWS_WITH(conv2d(x, randn({5, 3, 3, 4}, gen)),  // wrong Cin
                    Catch::Contains("conv2d") && Catch::Contains("[5, 3, 3, 4]") && Catch::Contains("[2, 4, 4, 3]"));
  CHECK_THROWS_AS(conv2d(x, randn({5, 5, 5, 3}, gen)), Error);  // k = 5
  CHECK_THROWS_AS(conv2d(x, randn({5, 2, 2, 3}, gen)), Error);  // k = 2
  CHECK_THROWS_AS(conv2d(x, randn({5, 3, 1, 3}, gen)), Error);  // not square
  CHECK_THROWS_AS(conv2d(x, randn({5, 27}, gen)), Error);       // w not 4-D
  CHECK_THROWS_AS(conv2d(randn({4, 4, 3}, gen), w), Error);     // x not 4-D
  CHECK_THROWS_WITH(conv2d(x, w, randn({3}, gen)), Catch::Contains("[3]"));  // b wrong size
  CHECK_THROWS_AS(conv2d(x, w, randn({1, 5}, gen)), Error);
  CHECK_THROWS_AS(conv2d(Tensor::zeros({2, 4, 4, 3}, DType::I64), w), Error);  // non-f32
  CHECK_THROWS_AS(conv2d(x, w.to(DType::BF16)), Error);
  CHECK_THROWS_AS(conv2d(x, w, b.to(DType::BF16)), Error);
  CHECK_THROWS_AS(conv2d(Tensor::zeros({0, 4, 4, 3}), w), Error);  // empty
  CHECK_THROWS_AS(conv2d(Tensor::zeros({2, 0, 4, 3}), w), Error);
  CHECK_THROWS_AS(conv2d(x, Tensor::zeros({0, 3, 3, 3})), Error);
  CHECK_THROWS_AS(conv2d(Tensor(), w), Error);
}
