// Measuring generated images with the Fashion-MNIST classifier of model/classifier.hpp.
//
// - Conditional accuracy: the share of samples drawn for class c that the classifier puts in
//   class c (overall and per class). A model that ignores its label scores ~10%; real test
//   images score the classifier's test accuracy (~91%), the practical ceiling.
// - Fréchet distance (FD) between Gaussian fits of the classifier's penultimate features (the
//   idea of FID, with our own small network instead of Inception, so the numbers are comparable
//   only with each other): for fits (mu1, S1), (mu2, S2),
//     FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).
//   The square root's trace is taken as tr((S1^(1/2) S2 S1^(1/2))^(1/2)): that matrix is
//   symmetric positive semi-definite, so two symmetric eigendecompositions (Eigen, double) give
//   it stably, with round-off negative eigenvalues clamped to 0. (S1 S2 itself is not symmetric,
//   and a general sqrtm of it can turn complex from round-off.)
//   FD from a finite sample is biased upward (roughly by tr of the covariances' estimation noise,
//   ~ D / N), so FDs are only comparable at equal sample sizes: `ddpm eval` always reports the
//   samples' FD next to the real-data floor and the noise ceiling measured with the same N.
// - Training the classifier: AdamW on shuffled batches with a cosine learning-rate decay, mean
//   softmax cross-entropy loss.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "diffusion/data.hpp"
#include "engine/optim.hpp"
#include "engine/rng.hpp"
#include "model/classifier.hpp"

namespace ddpm {

// ---- Gaussian fits and the Fréchet distance ----
struct GaussianFit {
  int64_t dim = 0, count = 0;
  std::vector<double> mean;  // [dim]
  std::vector<double> cov;   // [dim, dim] row-major, unbiased (divides by count - 1)
};
GaussianFit fit_gaussian(const Tensor& features);  // f32 [N, D] on any device, N >= 2
double frechet_distance(const GaussianFit& a, const GaussianFit& b);

// ---- classifying a set of images ----
struct Classification {
  Tensor features;                 // f32 [N, feature_dim] on the CPU
  std::vector<float> probs;        // [N, num_classes] softmax of the logits
  std::vector<int64_t> predicted;  // [N] argmax
};
// Runs the classifier (on its parameters' device) over images [N, S, S, 1] in batches, no grad.
Classification classify(const Classifier& model, const Tensor& images, int64_t batch = 500);

struct Accuracy {
  double overall = 0;
  std::vector<double> per_class;   // [num_classes]; NaN for a class with no images
  std::vector<int64_t> per_class_count;
};
Accuracy accuracy(const std::vector<int64_t>& predicted, const std::vector<int64_t>& labels, int64_t num_classes);

// What one set of labelled images (samples, or real/noise images for calibration) scores against
// the reference fit (the test set's features).
struct SetQuality {
  Accuracy accuracy;
  double fd = 0;
  std::vector<float> label_prob;  // [N] the probability the classifier gives each image's label
};
SetQuality measure_set(const Classifier& model, const Tensor& images, const std::vector<int64_t>& labels,
                       const GaussianFit& reference, int64_t batch = 500);

// Indices of the `count` images with the lowest label_prob, lowest first (ties by index).
std::vector<int64_t> worst_indices(const std::vector<float>& label_prob, int64_t count);

// n images [n, size, size, 1] of independent uniform noise in [-1, 1]: the FD ceiling.
Tensor noise_images(int64_t n, int64_t size, Generator& gen);

// per_class images of each class of `data`, drawn without replacement by a seeded shuffle;
// returns their indices in class order. Throws when a class has fewer images.
std::vector<int64_t> balanced_indices(const Dataset& data, int64_t per_class, Generator& gen);

// A uniformly random permutation of 0 .. n-1 (Fisher-Yates on gen's uniforms).
std::vector<int64_t> permutation(int64_t n, Generator& gen);

// ---- training the classifier ----
struct ClassifierTraining {
  int64_t epochs = 4;
  int64_t batch = 128;
  AdamWConfig adamw{.lr = 2e-3f, .weight_decay = 0.05f};
  uint64_t seed = 0;  // the data order (drawn far from where Generator(seed) starts, which may init the weights)
};
// Trains `model` (on its parameters' device) for config.epochs over `data`; the learning rate
// decays from adamw.lr to 0 along a cosine. `progress(step, total, loss)` runs after each step.
void train_classifier(Classifier& model, const Dataset& data, const ClassifierTraining& config,
                      const std::function<void(int64_t, int64_t, float)>& progress = {});

}  // namespace ddpm
