// sum, mean and mse_loss: forward against naive double sums (sizes from one element to several
// hundred chunks), backward against finite differences and the closed form, bad input.
#include "helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

TEST_CASE("sum, mean and mse_loss match naive double sums", "[op][reduce]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (int64_t n : {1, 7, 4096, 4097, 300001}) {
    CAPTURE(n);
    Tensor a = randn({n}, gen), b = randn({n}, gen);
    std::vector<float> av = a.to_floats(), bv = b.to_floats();
    double s = 0, sq = 0;
    for (size_t i = 0; i < av.size(); ++i) {
      s += av[i];
      sq += double(av[i] - bv[i]) * double(av[i] - bv[i]);
    }
    Tensor total = sum(a), avg = mean(a), loss = mse_loss(a, b);
    CHECK(total.shape() == Shape{1});
    CHECK(loss.shape() == Shape{1});
    CHECK(std::abs(total.item() - s) <= 1e-6 * std::max(1.0, std::abs(s)));
    CHECK(std::abs(avg.item() - s / double(n)) <= 1e-6 * std::max(1.0, std::abs(s / double(n))));
    CHECK(std::abs(loss.item() - sq / double(n)) <= 1e-6 * (sq / double(n)));
  }
  // Any shape reduces over all elements.
  Tensor x = randn({2, 3, 4, 5}, gen);
  double s = 0;
  for (float v : x.to_floats()) s += v;
  CHECK(std::abs(sum(x).item() - s) <= 1e-5);
}

TEST_CASE("reduction gradients match finite differences", "[op][reduce][grad]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  check_gradients([](const std::vector<Tensor>& in) { return sum(in[0]); }, {randn({3, 4}, gen)}, gen);
  check_gradients([](const std::vector<Tensor>& in) { return mean(in[0]); }, {randn({2, 1, 5}, gen)}, gen);
  check_gradients([](const std::vector<Tensor>& in) { return mse_loss(in[0], in[1]); },
                  {randn({2, 3, 3, 1}, gen), randn({2, 3, 3, 1}, gen)}, gen);
}

TEST_CASE("mse_loss gradient has the closed form and skips a constant target", "[op][reduce][grad]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  Tensor pred = randn({4, 5}, gen).set_requires_grad(), target = randn({4, 5}, gen);
  Tensor loss = mse_loss(pred, target);
  Tensor g = Tensor::full({1}, 0.5f);
  loss.backward(g);
  std::vector<float> pv = pred.to_floats(), tv = target.to_floats(), want;
  for (size_t i = 0; i < pv.size(); ++i) want.push_back(float(2.0 * (pv[i] - tv[i]) / 20.0 * 0.5));
  CHECK(rel_err(pred.grad(), want) < 1e-6);
  CHECK_FALSE(target.grad().defined());
}

TEST_CASE("reductions reject bad input", "[op][reduce][errors]") {
  Generator gen = fresh_generator();
  CHECK_THROWS_WITH(mse_loss(randn({2, 3}, gen), randn({3, 2}, gen)),
                    Catch::Contains("mse_loss") && Catch::Contains("[2, 3]") && Catch::Contains("[3, 2]"));
  CHECK_THROWS_AS(mse_loss(randn({6}, gen), randn({2, 3}, gen)), Error);
  CHECK_THROWS_AS(mse_loss(Tensor::zeros({0}), Tensor::zeros({0})), Error);
  CHECK_THROWS_AS(mse_loss(randn({2}, gen), Tensor()), Error);
  CHECK_THROWS_AS(sum(Tensor::zeros({0, 3})), Error);
  CHECK_THROWS_AS(mean(Tensor::zeros({0})), Error);
  CHECK_THROWS_AS(mean(Tensor()), Error);
  CHECK_THROWS_AS(sum(Tensor::zeros({3}, DType::I64)), Error);
}
