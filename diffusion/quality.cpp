#include "diffusion/quality.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "engine/autograd.hpp"
#include "engine/ops.hpp"

namespace ddpm {
namespace {

using Matrix = Eigen::MatrixXd;

Matrix as_matrix(const std::vector<double>& v, int64_t dim) {
  return Eigen::Map<const Matrix>(v.data(), dim, dim);  // symmetric, so row/column order does not matter
}

// Square root of a symmetric positive semi-definite matrix; round-off negative eigenvalues -> 0.
Matrix sqrt_psd(const Matrix& m) {
  Eigen::SelfAdjointEigenSolver<Matrix> eig(m);
  const Eigen::VectorXd root = eig.eigenvalues().cwiseMax(0.0).cwiseSqrt();
  return eig.eigenvectors() * root.asDiagonal() * eig.eigenvectors().transpose();
}

Device device_of(const Module& m) { return m.parameters().front().device(); }

// The data order draws from this offset of the seed's Philox stream, far from the numbers the
// same seed gives the weights' initial values (offset 0 on).
constexpr uint64_t kDataOrderOffset = uint64_t(1) << 40;

}  // namespace

GaussianFit fit_gaussian(const Tensor& features) {
  DDPM_CHECK(features.defined() && features.dim() == 2 && features.dtype() == DType::F32, "fit_gaussian",
             "features must be f32 [N, D], got ", features.defined() ? features.desc() : "undefined");
  const int64_t n = features.size(0), d = features.size(1);
  DDPM_CHECK(n >= 2 && d >= 1, "fit_gaussian", "needs at least 2 feature vectors, got ", features.desc());
  const std::vector<float> f = features.to_floats();
  DDPM_CHECK(all_finite(f), "fit_gaussian",
             "features hold NaN or infinity (a diverged classifier or generator?)");
  Matrix x = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(f.data(), n, d)
                 .cast<double>();
  const Eigen::RowVectorXd mu = x.colwise().mean();
  x.rowwise() -= mu;
  const Matrix cov = (x.transpose() * x) / double(n - 1);
  return {.dim = d, .count = n, .mean = std::vector<double>(mu.data(), mu.data() + d),
          .cov = std::vector<double>(cov.data(), cov.data() + d * d)};
}

double frechet_distance(const GaussianFit& a, const GaussianFit& b) {
  DDPM_CHECK(a.dim > 0 && a.dim == b.dim && a.mean.size() == size_t(a.dim) && b.mean.size() == size_t(b.dim) &&
                 a.cov.size() == size_t(a.dim * a.dim) && b.cov.size() == size_t(b.dim * b.dim),
             "frechet_distance", "fits of different or inconsistent dimensions: ", a.dim, " and ", b.dim);
  double mean_term = 0;
  for (size_t i = 0; i < a.mean.size(); ++i) mean_term += (a.mean[i] - b.mean[i]) * (a.mean[i] - b.mean[i]);
  const Matrix s1 = as_matrix(a.cov, a.dim), s2 = as_matrix(b.cov, b.dim);
  const Matrix r1 = sqrt_psd(s1);
  const Matrix inner = r1 * s2 * r1;
  // tr sqrt(inner) from inner's eigenvalues; averaging with the transpose removes the product's
  // round-off asymmetry, which the symmetric solver would otherwise ignore silently.
  const Matrix sym = 0.5 * (inner + inner.transpose());
  const Eigen::VectorXd lambda = Eigen::SelfAdjointEigenSolver<Matrix>(sym, Eigen::EigenvaluesOnly).eigenvalues();
  const double tr_sqrt = lambda.cwiseMax(0.0).cwiseSqrt().sum();
  // Mathematically >= 0; round-off can leave a tiny negative value for identical fits.
  const double fd = mean_term + s1.trace() + s2.trace() - 2.0 * tr_sqrt;
  DDPM_CHECK(std::isfinite(fd), "frechet_distance", "the distance is not finite");
  return std::max(0.0, fd);  // rounding can take an FD of (nearly) equal fits just below 0
}

Classification classify(const Classifier& model, const Tensor& images, int64_t batch) {
  DDPM_CHECK(batch > 0, "classify", "batch must be positive, got ", batch);
  DDPM_CHECK(images.defined() && images.dim() == 4 && images.size(0) > 0, "classify",
             "expects images [N, S, S, 1] with N > 0, got ", images.defined() ? images.desc() : "undefined");
  NoGradGuard no_grad;
  const Device device = device_of(model);
  const int64_t n = images.size(0), k = model.config().num_classes, d = model.config().feature_dim;
  std::vector<float> features;
  features.reserve(size_t(n * d));
  Classification out;
  out.probs.reserve(size_t(n * k));
  for (int64_t begin = 0; begin < n; begin += batch) {
    const Tensor x = images.slice0(begin, std::min(n, begin + batch)).to(device);
    const Tensor f = model.features(x);
    const std::vector<float> fv = f.to_floats(), z = model.head(f).to_floats();
    features.insert(features.end(), fv.begin(), fv.end());
    for (size_t r = 0; r < z.size() / size_t(k); ++r) {
      const float* row = &z[r * size_t(k)];
      const double m = *std::max_element(row, row + k);
      double s = 0;
      for (int64_t j = 0; j < k; ++j) s += std::exp(double(row[j]) - m);
      for (int64_t j = 0; j < k; ++j) out.probs.push_back(float(std::exp(double(row[j]) - m) / s));
      out.predicted.push_back(int64_t(std::max_element(row, row + k) - row));
    }
  }
  out.features = Tensor::from_floats(features, {n, d});
  return out;
}

Accuracy accuracy(const std::vector<int64_t>& predicted, const std::vector<int64_t>& labels, int64_t num_classes) {
  DDPM_CHECK(!labels.empty() && predicted.size() == labels.size(), "accuracy", predicted.size(),
             " predictions for ", labels.size(), " labels");
  std::vector<int64_t> right(size_t(num_classes), 0);
  Accuracy a;
  a.per_class_count.assign(size_t(num_classes), 0);
  int64_t total_right = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const int64_t y = labels[i];
    DDPM_CHECK(y >= 0 && y < num_classes, "accuracy", "label ", y, " out of range [0, ", num_classes, ")");
    ++a.per_class_count[size_t(y)];
    if (predicted[i] == y) ++right[size_t(y)], ++total_right;
  }
  a.overall = double(total_right) / double(labels.size());
  for (int64_t c = 0; c < num_classes; ++c)
    a.per_class.push_back(a.per_class_count[size_t(c)] ? double(right[size_t(c)]) / double(a.per_class_count[size_t(c)])
                                                       : std::numeric_limits<double>::quiet_NaN());
  return a;
}

SetQuality measure_set(const Classifier& model, const Tensor& images, const std::vector<int64_t>& labels,
                       const GaussianFit& reference, int64_t batch) {
  DDPM_CHECK(images.defined() && images.dim() >= 1 && int64_t(labels.size()) == images.size(0), "measure_set",
             labels.size(), " labels for images ", images.defined() ? images.desc() : "undefined");
  const Classification c = classify(model, images, batch);
  SetQuality q;
  q.accuracy = accuracy(c.predicted, labels, model.config().num_classes);
  q.fd = frechet_distance(fit_gaussian(c.features), reference);
  const size_t k = size_t(model.config().num_classes);
  for (size_t i = 0; i < labels.size(); ++i) q.label_prob.push_back(c.probs[i * k + size_t(labels[i])]);
  return q;
}

std::vector<int64_t> worst_indices(const std::vector<float>& label_prob, int64_t count) {
  std::vector<int64_t> idx(label_prob.size());
  std::iota(idx.begin(), idx.end(), int64_t(0));
  std::stable_sort(idx.begin(), idx.end(),
                   [&](int64_t a, int64_t b) { return label_prob[size_t(a)] < label_prob[size_t(b)]; });
  idx.resize(std::min(idx.size(), size_t(std::max<int64_t>(count, 0))));
  return idx;
}

Tensor noise_images(int64_t n, int64_t size, Generator& gen) {
  DDPM_CHECK(n > 0 && size > 0, "noise_images", "need n > 0 and size > 0, got ", n, " and ", size);
  Tensor t = Tensor::rand({n, size, size, 1}, gen);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = 2.0f * p[i] - 1.0f;
  return t;
}

std::vector<int64_t> permutation(int64_t n, Generator& gen) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t(0));
  if (n < 2) return order;
  const std::vector<float> u = Tensor::rand({n}, gen).to_floats();
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = std::min<int64_t>(int64_t(double(u[size_t(i)]) * double(i + 1)), i);
    std::swap(order[size_t(i)], order[size_t(j)]);
  }
  return order;
}

std::vector<int64_t> balanced_indices(const Dataset& data, int64_t per_class, Generator& gen) {
  std::vector<std::vector<int64_t>> by_class(size_t(data.num_classes()));
  for (int64_t i : permutation(data.count(), gen)) {
    std::vector<int64_t>& c = by_class[size_t(data.labels[size_t(i)])];
    if (int64_t(c.size()) < per_class) c.push_back(i);
  }
  std::vector<int64_t> out;
  for (size_t c = 0; c < by_class.size(); ++c) {
    DDPM_CHECK(int64_t(by_class[c].size()) == per_class, "balanced_indices", data.name, " has only ",
               by_class[c].size(), " images of class ", c, ", ", per_class, " wanted");
    out.insert(out.end(), by_class[c].begin(), by_class[c].end());
  }
  return out;
}

void train_classifier(Classifier& model, const Dataset& data, const ClassifierTraining& config,
                      const std::function<void(int64_t, int64_t, float)>& progress) {
  const ClassifierConfig& mc = model.config();
  DDPM_CHECK(data.channels == 1 && data.size == mc.image_size && data.num_classes() == mc.num_classes,
             "train_classifier", "the classifier takes ", mc.image_size, "x", mc.image_size, "x1 images of ",
             mc.num_classes, " classes; ", data.name, " has ", data.size, "x", data.size, "x", data.channels, ", ",
             data.num_classes(), " classes");
  DDPM_CHECK(config.epochs > 0 && config.batch > 0 && config.batch <= data.count(), "train_classifier",
             "need epochs > 0 and 0 < batch <= ", data.count(), " images, got ", config.epochs, " and ", config.batch);
  const Device device = device_of(model);
  AdamW optimizer(model.parameters(), config.adamw);
  Generator gen(config.seed, kDataOrderOffset);
  const int64_t per_epoch = data.count() / config.batch, total = per_epoch * config.epochs;
  int64_t step = 0;
  for (int64_t epoch = 0; epoch < config.epochs; ++epoch) {
    const std::vector<int64_t> order = permutation(data.count(), gen);
    for (int64_t b = 0; b < per_epoch; ++b, ++step) {
      const std::vector<int64_t> idx(order.begin() + b * config.batch, order.begin() + (b + 1) * config.batch);
      const Batch batch = data.batch(idx, device);
      Tensor loss = cross_entropy(model.logits(batch.images), batch.labels);
      optimizer.zero_grad();
      loss.backward();
      const double decay = 0.5 * (1.0 + std::cos(M_PI * double(step) / double(total)));
      optimizer.config().lr = float(double(config.adamw.lr) * decay);
      optimizer.step();
      if (progress) progress(step + 1, total, loss.item());
    }
  }
}

}  // namespace ddpm
