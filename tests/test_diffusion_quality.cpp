// diffusion/quality.hpp: Gaussian fits against naive loops, the Fréchet distance against closed
// forms and an independent route through a general eigensolver, sample-based FD of known
// Gaussians, accuracy bookkeeping, and measure_set on real versus noise images.
#include <Eigen/Dense>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <set>

#include "diffusion/quality.hpp"
#include "helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

namespace {

GaussianFit fit_of(const std::vector<double>& mean, const std::vector<double>& cov) {
  return {.dim = int64_t(mean.size()), .count = 0, .mean = mean, .cov = cov};
}

std::vector<double> diagonal(const std::vector<double>& d) {
  const size_t n = d.size();
  std::vector<double> m(n * n, 0.0);
  for (size_t i = 0; i < n; ++i) m[i * n + i] = d[i];
  return m;
}

// A random symmetric positive definite D x D matrix A A^T / D + 0.1 I, row-major.
std::vector<double> random_spd(int64_t d, Generator& gen) {
  std::vector<float> a = Tensor::randn({d, d}, gen).to_floats();
  std::vector<double> m(size_t(d * d));
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < d; ++j) {
      double s = i == j ? 0.1 : 0.0;
      for (int64_t k = 0; k < d; ++k) s += double(a[size_t(i * d + k)]) * a[size_t(j * d + k)] / double(d);
      m[size_t(i * d + j)] = s;
    }
  return m;
}

// N samples of N(mean, diag(var)) as f32 [N, D].
Tensor gaussian_samples(int64_t n, const std::vector<double>& mean, const std::vector<double>& var, Generator& gen) {
  const int64_t d = int64_t(mean.size());
  std::vector<float> z = Tensor::randn({n, d}, gen).to_floats();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j)
      z[size_t(i * d + j)] = float(mean[size_t(j)] + std::sqrt(var[size_t(j)]) * z[size_t(i * d + j)]);
  return Tensor::from_floats(z, {n, d});
}

}  // namespace

TEST_CASE("fit_gaussian matches naive mean and unbiased covariance", "[diffusion][quality]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  const int64_t n = 37, d = 5;
  Tensor f = randn({n, d}, gen, 2.0f);
  std::vector<float> v = f.to_floats();
  GaussianFit g = fit_gaussian(f);
  REQUIRE(g.dim == d);
  CHECK(g.count == n);
  for (int64_t a = 0; a < d; ++a) {
    double mu_a = 0;
    for (int64_t i = 0; i < n; ++i) mu_a += v[size_t(i * d + a)];
    mu_a /= double(n);
    CHECK(g.mean[size_t(a)] == Approx(mu_a).epsilon(1e-12).margin(1e-12));
    for (int64_t b = 0; b < d; ++b) {
      double mu_b = 0, c = 0;
      for (int64_t i = 0; i < n; ++i) mu_b += v[size_t(i * d + b)];
      mu_b /= double(n);
      for (int64_t i = 0; i < n; ++i) c += (v[size_t(i * d + a)] - mu_a) * (v[size_t(i * d + b)] - mu_b);
      CHECK(g.cov[size_t(a * d + b)] == Approx(c / double(n - 1)).epsilon(1e-10).margin(1e-12));
    }
  }
  CHECK_THROWS_AS(fit_gaussian(randn({1, 4}, gen)), Error);
  CHECK_THROWS_AS(fit_gaussian(randn({8}, gen)), Error);
  CHECK_THROWS_AS(fit_gaussian(Tensor::zeros({4, 2}, DType::I64)), Error);
}

TEST_CASE("frechet_distance equals hand-computed values", "[diffusion][quality]") {
  // Commuting (diagonal) covariances: FD = |mu1 - mu2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
  const GaussianFit a = fit_of({0, 1, 2}, diagonal({1, 4, 9})), b = fit_of({1, 1, 0}, diagonal({4, 1, 0.25}));
  const double want = 1 + 0 + 4 + (1 - 2) * (1 - 2) + (2 - 1) * (2 - 1) + (3 - 0.5) * (3 - 0.5);
  CHECK(frechet_distance(a, b) == Approx(want).epsilon(1e-12));
  CHECK(frechet_distance(b, a) == Approx(want).epsilon(1e-12));
  CHECK(frechet_distance(a, a) == Approx(0).margin(1e-12));
  // Non-commuting: S1 = 4 I, S2 = R diag(1, 9) R^T for a 30-degree rotation R. S1 S2 = 4 S2, so
  // tr sqrt(S1 S2) = 2 (1 + 3) = 8 and FD = |dmu|^2 + 8 + 10 - 16 = |dmu|^2 + 2.
  const double c = std::cos(M_PI / 6), s = std::sin(M_PI / 6);
  const std::vector<double> s2 = {c * c * 1 + s * s * 9, c * s * (1 - 9), c * s * (1 - 9), s * s * 1 + c * c * 9};
  CHECK(frechet_distance(fit_of({0, 0}, diagonal({4, 4})), fit_of({3, 4}, s2)) == Approx(25 + 2).epsilon(1e-12));
  // A singular covariance (a point mass) against a Gaussian: tr sqrt(0) = 0, FD = |dmu|^2 + tr S2.
  CHECK(frechet_distance(fit_of({1, 1}, diagonal({0, 0})), fit_of({0, 0}, s2)) == Approx(2 + 10).epsilon(1e-12));
  CHECK_THROWS_AS(frechet_distance(fit_of({0, 0}, diagonal({1, 1})), fit_of({0}, diagonal({1}))), Error);
}

TEST_CASE("frechet_distance agrees with a general-eigensolver route for random covariances", "[diffusion][quality]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (int64_t d : {1, 3, 16}) {
    CAPTURE(d);
    const std::vector<double> s1 = random_spd(d, gen), s2 = random_spd(d, gen);
    std::vector<double> m1, m2;
    for (float v : Tensor::randn({2 * d}, gen).to_floats()) (m1.size() < size_t(d) ? m1 : m2).push_back(v);
    // S1 S2 is similar to S1^(1/2) S2 S1^(1/2), so its eigenvalues are real and non-negative and
    // tr sqrt(S1 S2) is the sum of their square roots.
    const Eigen::MatrixXd a = Eigen::Map<const Eigen::MatrixXd>(s1.data(), d, d);
    const Eigen::MatrixXd b = Eigen::Map<const Eigen::MatrixXd>(s2.data(), d, d);
    Eigen::VectorXcd ev = Eigen::EigenSolver<Eigen::MatrixXd>(a * b).eigenvalues();
    double tr_sqrt = 0;
    for (int64_t i = 0; i < d; ++i) tr_sqrt += std::sqrt(std::max(0.0, ev[i].real()));
    double want = a.trace() + b.trace() - 2 * tr_sqrt;
    for (int64_t i = 0; i < d; ++i) want += (m1[size_t(i)] - m2[size_t(i)]) * (m1[size_t(i)] - m2[size_t(i)]);
    const double got = frechet_distance(fit_of(m1, s1), fit_of(m2, s2));
    CHECK(got == Approx(want).epsilon(1e-9));
    CHECK(frechet_distance(fit_of(m2, s2), fit_of(m1, s1)) == Approx(got).epsilon(1e-9));  // symmetric
  }
}

TEST_CASE("FD of sampled Gaussians: ~0 against itself, the closed form between two", "[diffusion][quality]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  const std::vector<double> mu1 = {0, 0, 1, -1}, var1 = {1, 2, 0.5, 1}, mu2 = {1, 0, 0, -1}, var2 = {4, 2, 2, 0.25};
  const int64_t n = 100000;
  Tensor x = gaussian_samples(n, mu1, var1, gen), y = gaussian_samples(n, mu2, var2, gen);
  const GaussianFit fx = fit_gaussian(x), fy = fit_gaussian(y);
  CHECK(frechet_distance(fx, fx) < 1e-9);
  double want = 0;
  for (size_t i = 0; i < 4; ++i) {
    const double dsd = std::sqrt(var1[i]) - std::sqrt(var2[i]);
    want += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]) + dsd * dsd;
  }
  // want = 2 + 1.75. Propagating the moments' sampling errors (means sqrt(var / n), variances
  // var sqrt(2 / n)) through the formula gives the estimate a standard deviation of ~0.021 at this
  // n (dominated by the mean differences); 0.15 is 7 of them.
  CHECK(frechet_distance(fx, fy) == Approx(want).margin(0.15));
  // Two independent draws of the same Gaussian: FD near 0 (only the estimation noise, ~D / n).
  CHECK(frechet_distance(fx, fit_gaussian(gaussian_samples(n, mu1, var1, gen))) < 0.02);
}

TEST_CASE("accuracy, worst_indices, permutation, balanced_indices, noise_images", "[diffusion][quality]") {
  Accuracy a = accuracy({0, 1, 1, 2, 0, 2}, {0, 1, 2, 2, 1, 2}, 4);
  CHECK(a.overall == Approx(4.0 / 6.0));
  CHECK(a.per_class[0] == 1.0);
  CHECK(a.per_class[1] == 0.5);
  CHECK(a.per_class[2] == Approx(2.0 / 3.0));
  CHECK(std::isnan(a.per_class[3]));
  CHECK(a.per_class_count == std::vector<int64_t>{1, 2, 3, 0});
  CHECK_THROWS_AS(accuracy({0, 1}, {0}, 2), Error);
  CHECK_THROWS_WITH(accuracy({0}, {5}, 2), Catch::Contains("label 5"));

  CHECK(worst_indices({0.9f, 0.1f, 0.5f, 0.1f}, 3) == std::vector<int64_t>{1, 3, 2});
  CHECK(worst_indices({0.9f}, 5) == std::vector<int64_t>{0});

  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  Generator g1(gen.seed()), g2(gen.seed());
  std::vector<int64_t> p = permutation(1000, g1);
  CHECK(p == permutation(1000, g2));  // a pure function of the generator's position
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> iota(1000);
  std::iota(iota.begin(), iota.end(), int64_t(0));
  CHECK(sorted == iota);
  CHECK(p != iota);

  Dataset d;
  d.name = "toy";
  d.class_names = {"a", "b", "c"};
  for (int64_t i = 0; i < 25; ++i) d.labels.push_back(i < 20 ? i % 2 : 2);  // 10, 10 and 5 images
  std::vector<int64_t> idx = balanced_indices(d, 4, gen);
  REQUIRE(idx.size() == 12);
  CHECK(std::set<int64_t>(idx.begin(), idx.end()).size() == 12);
  for (size_t i = 0; i < idx.size(); ++i) CHECK(d.labels[size_t(idx[i])] == int64_t(i / 4));
  CHECK_THROWS_WITH(balanced_indices(d, 6, gen), Catch::Contains("only 5 images of class 2"));

  Tensor noise = noise_images(3, 4, gen);
  CHECK(noise.shape() == Shape{3, 4, 4, 1});
  std::vector<float> nv = noise.to_floats();
  CHECK(*std::min_element(nv.begin(), nv.end()) >= -1.0f);
  CHECK(*std::max_element(nv.begin(), nv.end()) <= 1.0f);
  CHECK(*std::min_element(nv.begin(), nv.end()) < -0.5f);
  CHECK(*std::max_element(nv.begin(), nv.end()) > 0.5f);
}

TEST_CASE("measure_set: real test images score near the floor, noise far above", "[diffusion][quality][data]") {
  // The repository's assets/ (DDPM_TEST_DATA is <repo>/tests/data).
  const std::string weights =
      (std::filesystem::path(DDPM_TEST_DATA).parent_path().parent_path() / "assets/classifier.safetensors").string();
  REQUIRE(std::filesystem::exists(weights));
  LoadedClassifier l = load_classifier(weights, Device::CPU);
  Dataset test = load_fashion_mnist("/usr/share/datasets/fashion-mnist", "t10k");
  auto slice = [&](int64_t begin, int64_t end) {
    std::vector<int64_t> idx(size_t(end - begin));
    std::iota(idx.begin(), idx.end(), begin);
    return test.batch(idx, Device::CPU);
  };
  // Reference: 1000 test images. Measured sets: two other disjoint slices of 500, and noise.
  const GaussianFit reference = fit_gaussian(classify(*l.model, slice(0, 1000).images).features);
  const Batch real = slice(1000, 1500), other = slice(1500, 2000);
  const SetQuality q_real = measure_set(*l.model, real.images, real.labels.to_ints(), reference);
  const SetQuality q_other = measure_set(*l.model, other.images, other.labels.to_ints(), reference);
  Generator gen(7);
  const SetQuality q_noise = measure_set(*l.model, noise_images(500, 32, gen), real.labels.to_ints(), reference);
  CAPTURE(q_real.fd, q_other.fd, q_noise.fd, q_real.accuracy.overall, q_noise.accuracy.overall);
  CHECK(q_real.accuracy.overall > 0.85);
  CHECK(q_noise.accuracy.overall < 0.3);
  CHECK(q_real.fd < 2.0 * q_other.fd);
  CHECK(q_other.fd < 2.0 * q_real.fd);
  CHECK(q_noise.fd > 10.0 * std::max(q_real.fd, q_other.fd));
  REQUIRE(q_real.label_prob.size() == 500);
  for (float p : q_real.label_prob) CHECK((p >= 0.0f && p <= 1.0f));
  CHECK_THROWS_AS(measure_set(*l.model, real.images, {0, 1}, reference), Error);
}
