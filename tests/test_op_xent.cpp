// cross_entropy: forward against a naive double loop (including logits large enough to overflow
// a plain exp), backward against finite differences and against the softmax formula, error paths.
#include <cmath>

#include "helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

namespace {

// Row i's log-sum-exp in double, shifted by the row maximum.
double naive_lse(const std::vector<float>& z, int64_t i, int64_t k) {
  double m = z[size_t(i * k)];
  for (int64_t j = 1; j < k; ++j) m = std::max(m, double(z[size_t(i * k + j)]));
  double s = 0;
  for (int64_t j = 0; j < k; ++j) s += std::exp(double(z[size_t(i * k + j)]) - m);
  return m + std::log(s);
}

double naive_xent(const Tensor& logits, const Tensor& labels) {
  const int64_t n = logits.size(0), k = logits.size(1);
  std::vector<float> z = logits.to_floats();
  std::vector<int64_t> y = labels.to_ints();
  double total = 0;
  for (int64_t i = 0; i < n; ++i) total += naive_lse(z, i, k) - double(z[size_t(i * k + y[size_t(i)])]);
  return total / double(n);
}

}  // namespace

TEST_CASE("cross_entropy matches a naive double loop", "[op][xent]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (int64_t n : {1, 7, 130})
    for (int64_t k : {1, 2, 10, 37}) {
      CAPTURE(n, k);
      Tensor z = randn({n, k}, gen, 3.0f), y = random_labels(n, k, gen);
      Tensor loss = cross_entropy(z, y);
      CHECK(loss.shape() == Shape{1});
      const double ref = naive_xent(z, y);
      CHECK(std::abs(double(loss.item()) - ref) <= 1e-6 * std::max(1.0, std::abs(ref)));
    }
}

TEST_CASE("cross_entropy is stable for logits whose exp overflows float", "[op][xent]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  // Offsets of +-1000 make exp(z) overflow (or vanish) in float; the result must stay finite and
  // equal to the loss of the unshifted logits (the loss is shift-invariant per row).
  Tensor z = randn({5, 10}, gen, 4.0f), y = random_labels(5, 10, gen);
  const double ref = naive_xent(z, y);
  for (float shift : {1000.0f, -1000.0f}) {
    std::vector<float> zv = z.to_floats();
    for (float& v : zv) v += shift;
    const float loss = cross_entropy(Tensor::from_floats(zv, {5, 10}), y).item();
    CAPTURE(shift);
    REQUIRE(std::isfinite(loss));
    CHECK(std::abs(double(loss) - ref) < 1e-3 * std::max(1.0, ref));  // 1000 + z keeps ~4 decimals of z
  }
  // A confident right answer costs ~0, a confident wrong one costs the logit gap.
  Tensor sure = Tensor::from_floats({200.0f, 0.0f, 0.0f}, {1, 3});
  CHECK(cross_entropy(sure, Tensor::from_ints({0}, {1})).item() == Approx(0.0).margin(1e-6));
  CHECK(cross_entropy(sure, Tensor::from_ints({2}, {1})).item() == Approx(200.0).epsilon(1e-6));
}

TEST_CASE("cross_entropy gradient is (softmax - onehot) / n and matches finite differences", "[op][xent][grad]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (auto [n, k] : {std::pair<int64_t, int64_t>{1, 1}, {1, 10}, {6, 3}, {9, 37}}) {
    CAPTURE(n, k);
    Tensor y = random_labels(n, k, gen);
    check_gradients([y](const std::vector<Tensor>& in) { return cross_entropy(in[0], y); }, {randn({n, k}, gen, 2.0f)},
                    gen);
    // The analytic form in double, seeded with an upstream gradient other than 1.
    Tensor z = randn({n, k}, gen, 2.0f);
    z.set_requires_grad(true);
    cross_entropy(z, y).backward(Tensor::from_floats({0.7f}, {1}));
    std::vector<float> zv = z.to_floats(), ref;
    std::vector<int64_t> yv = y.to_ints();
    for (int64_t i = 0; i < n; ++i) {
      const double lse = naive_lse(zv, i, k);
      for (int64_t j = 0; j < k; ++j)
        ref.push_back(float(0.7 / double(n) *
                            (std::exp(double(zv[size_t(i * k + j)]) - lse) - (j == yv[size_t(i)] ? 1.0 : 0.0))));
    }
    CHECK(rel_err(z.grad(), ref) < 1e-5);
  }
}

TEST_CASE("cross_entropy rejects bad input", "[op][xent][errors]") {
  Generator gen = fresh_generator();
  Tensor z = randn({4, 3}, gen);
  CHECK_THROWS_WITH(cross_entropy(z, Tensor::from_ints({0, 1, 3, 2}, {4})),
                    Catch::Contains("cross_entropy") && Catch::Contains("label 3 out of range [0, 3)"));
  CHECK_THROWS_WITH(cross_entropy(z, Tensor::from_ints({0, -1, 2, 2}, {4})), Catch::Contains("label -1"));
  CHECK_THROWS_WITH(cross_entropy(z, Tensor::from_ints({0, 1, 2}, {3})),
                    Catch::Contains("cross_entropy") && Catch::Contains("[4, 3]") && Catch::Contains("i64[3]"));
  CHECK_THROWS_AS(cross_entropy(z, Tensor::from_ints({0, 1, 2, 0}, {2, 2})), Error);
  CHECK_THROWS_WITH(cross_entropy(z, randn({4}, gen)), Catch::Contains("i64"));
  CHECK_THROWS_WITH(cross_entropy(randn({12}, gen), Tensor::from_ints({0}, {1})), Catch::Contains("[N, K]"));
  CHECK_THROWS_AS(cross_entropy(randn({2, 2, 3}, gen), Tensor::from_ints({0, 1}, {2})), Error);
  CHECK_THROWS_AS(cross_entropy(Tensor::zeros({0, 3}), Tensor::zeros({0}, DType::I64)), Error);
  CHECK_THROWS_AS(cross_entropy(Tensor(), Tensor::from_ints({0}, {1})), Error);
  CHECK_THROWS_AS(cross_entropy(z, Tensor()), Error);
}
