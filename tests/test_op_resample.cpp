// concat_channels, max_pool2x2, upsample2x (bilinear, align_corners=True) and embedding: forward
// against naive loops, backward against finite differences, edge shapes and bad input.
#include <algorithm>
#include <numeric>

#include "helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

namespace {

// Distinct values 0.1 apart in random order: no window has a near-tie, so a finite-difference
// step of 1e-2 never changes which element is the maximum.
Tensor permutation(const Shape& s, Generator& gen) {
  Tensor keys = Tensor::rand(s, gen);
  std::vector<float> k = keys.to_floats(), v(k.size());
  std::vector<size_t> order(k.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return k[a] < k[b]; });
  for (size_t r = 0; r < order.size(); ++r) v[order[r]] = 0.1f * float(r) - 0.05f * float(order.size());
  return Tensor::from_floats(v, s);
}

std::vector<float> naive_upsample(const Tensor& x) {
  const int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  const std::vector<float> xv = x.to_floats();
  auto src = [](int64_t i, int64_t in) { return double(i) * double(in - 1) / double(2 * in - 1); };
  std::vector<float> y;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < 2 * H; ++i)
      for (int64_t j = 0; j < 2 * W; ++j)
        for (int64_t c = 0; c < C; ++c) {
          const double sy = src(i, H), sx = src(j, W);
          const int64_t y0 = int64_t(sy), x0 = int64_t(sx), y1 = std::min(y0 + 1, H - 1), x1 = std::min(x0 + 1, W - 1);
          const double fy = sy - double(y0), fx = sx - double(x0);
          auto at = [&](int64_t yy, int64_t xx) { return double(xv[size_t(((n * H + yy) * W + xx) * C + c)]); };
          y.push_back(float((1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1)) +
                            fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1))));
        }
  return y;
}

}  // namespace

TEST_CASE("concat_channels matches a naive loop", "[op][resample]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (auto [Ca, Cb] : {std::pair<int64_t, int64_t>{3, 5}, {4, 8}, {1, 13}}) {
    Tensor a = randn({2, 3, 2, Ca}, gen), b = randn({2, 3, 2, Cb}, gen);
    std::vector<float> av = a.to_floats(), bv = b.to_floats(), want;
    for (int64_t r = 0; r < 12; ++r) {
      for (int64_t c = 0; c < Ca; ++c) want.push_back(av[size_t(r * Ca + c)]);
      for (int64_t c = 0; c < Cb; ++c) want.push_back(bv[size_t(r * Cb + c)]);
    }
    Tensor out = concat_channels(a, b);
    CHECK(out.shape() == Shape{2, 3, 2, Ca + Cb});
    CHECK(out.to_floats() == want);
  }
  check_gradients([](const std::vector<Tensor>& in) { return concat_channels(in[0], in[1]); },
                  {randn({2, 2, 1, 3}, gen), randn({2, 2, 1, 5}, gen)}, gen);
}

TEST_CASE("max_pool2x2 matches a naive loop and routes gradients to the first maximum", "[op][resample]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (Shape s : {Shape{2, 4, 6, 3}, Shape{1, 2, 2, 1}, Shape{3, 6, 2, 13}}) {
    Tensor x = randn(s, gen);
    const int64_t N = s[0], H = s[1], W = s[2], C = s[3];
    std::vector<float> xv = x.to_floats(), want;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < H / 2; ++i)
        for (int64_t j = 0; j < W / 2; ++j)
          for (int64_t c = 0; c < C; ++c) {
            float m = -INFINITY;
            for (int64_t dy = 0; dy < 2; ++dy)
              for (int64_t dx = 0; dx < 2; ++dx)
                m = std::max(m, xv[size_t(((n * H + 2 * i + dy) * W + 2 * j + dx) * C + c)]);
            want.push_back(m);
          }
    Tensor y = max_pool2x2(x);
    CHECK(y.shape() == Shape{N, H / 2, W / 2, C});
    CHECK(y.to_floats() == want);
  }
  check_gradients([](const std::vector<Tensor>& in) { return max_pool2x2(in[0]); }, {permutation({2, 4, 6, 3}, gen)},
                  gen);
  // Ties: the first maximum in row-major window order takes the gradient, as in PyTorch.
  Tensor x = Tensor::from_floats({1, 3, 3, 2, 5, 5, 5, 5}, {2, 2, 2, 1}).set_requires_grad();
  max_pool2x2(x).backward(Tensor::from_floats({10, 20}, {2, 1, 1, 1}));
  CHECK(x.grad().to_floats() == std::vector<float>{0, 10, 0, 0, 20, 0, 0, 0});
  // A NaN in a window wins, as in PyTorch.
  CHECK(std::isnan(max_pool2x2(Tensor::from_floats({1, NAN, 3, 2}, {1, 2, 2, 1})).item()));
}

TEST_CASE("upsample2x matches bilinear interpolation with align_corners", "[op][resample]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  // in == 1 on both axes (the output repeats the pixel), on one axis, and general odd sizes.
  for (Shape s : {Shape{2, 3, 4, 5}, Shape{1, 1, 1, 3}, Shape{1, 1, 5, 2}, Shape{2, 4, 3, 13}, Shape{1, 7, 9, 4}}) {
    CAPTURE(shape_str(s));
    Tensor x = randn(s, gen);
    Tensor y = upsample2x(x);
    CHECK(y.shape() == Shape{s[0], 2 * s[1], 2 * s[2], s[3]});
    CHECK(rel_err(y, naive_upsample(x)) < 1e-6);
  }
  for (Shape s : {Shape{2, 3, 4, 2}, Shape{1, 1, 1, 3}, Shape{1, 2, 1, 5}})
    check_gradients([](const std::vector<Tensor>& in) { return upsample2x(in[0]); }, {randn(s, gen)}, gen);
}

TEST_CASE("embedding gathers rows and scatter-adds repeated ids", "[op][resample]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  Tensor table = randn({5, 7}, gen);
  Tensor ids = Tensor::from_ints({3, 0, 3, 4, 3}, {5});
  std::vector<float> tv = table.to_floats(), want;
  for (int64_t id : ids.to_ints())
    for (int64_t d = 0; d < 7; ++d) want.push_back(tv[size_t(id * 7 + d)]);
  Tensor out = embedding(ids, table);
  CHECK(out.shape() == Shape{5, 7});
  CHECK(out.to_floats() == want);
  check_gradients([&](const std::vector<Tensor>& in) { return embedding(ids, in[0]); }, {randn({5, 7}, gen)}, gen);
}

TEST_CASE("resample ops reject bad input", "[op][resample][errors]") {
  Generator gen = fresh_generator();
  Tensor x = randn({2, 4, 4, 3}, gen);
  CHECK_THROWS_WITH(concat_channels(x, randn({2, 4, 3, 3}, gen)),
                    Catch::Contains("concat_channels") && Catch::Contains("[2, 4, 3, 3]"));
  CHECK_THROWS_AS(concat_channels(x, randn({2, 4, 4}, gen)), Error);
  CHECK_THROWS_AS(concat_channels(x, Tensor::zeros({2, 4, 4, 0})), Error);
  CHECK_THROWS_AS(concat_channels(x, Tensor::zeros({2, 4, 4, 3}, DType::I64)), Error);
  CHECK_THROWS_WITH(max_pool2x2(randn({1, 3, 4, 2}, gen)), Catch::Contains("max_pool2x2") && Catch::Contains("even"));
  CHECK_THROWS_AS(max_pool2x2(randn({1, 4, 5, 2}, gen)), Error);
  CHECK_THROWS_AS(max_pool2x2(randn({4, 4, 2}, gen)), Error);
  CHECK_THROWS_AS(max_pool2x2(Tensor::zeros({1, 0, 4, 2})), Error);
  CHECK_THROWS_AS(upsample2x(randn({4, 4}, gen)), Error);
  CHECK_THROWS_AS(upsample2x(Tensor::zeros({1, 2, 2, 0})), Error);
  Tensor table = randn({10, 4}, gen);
  CHECK_THROWS_WITH(embedding(Tensor::from_ints({1, 12, 2}, {3}), table),
                    Catch::Contains("embedding") && Catch::Contains("id 12") && Catch::Contains("[10, 4]"));
  CHECK_THROWS_WITH(embedding(Tensor::from_ints({-1}, {1}), table), Catch::Contains("id -1"));
  CHECK_THROWS_WITH(embedding(Tensor::from_ints({1, 2}, {2}).to(DType::I32), table), Catch::Contains("i64"));
  CHECK_THROWS_WITH(embedding(randn({2}, gen), table), Catch::Contains("i64"));
  CHECK_THROWS_AS(embedding(Tensor::from_ints({}, {0}), table), Error);
  CHECK_THROWS_AS(embedding(Tensor::from_ints({1, 2}, {1, 2}), table), Error);
  CHECK_THROWS_AS(embedding(Tensor::from_ints({1}, {1}), randn({10}, gen)), Error);
  CHECK_THROWS_AS(embedding(Tensor(), table), Error);
}
