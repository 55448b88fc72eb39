// The quality classifier (model/classifier.hpp): shapes and input checks, gradients reaching every
// parameter, a save/load round trip, and the committed weights (assets/classifier.safetensors)
// reaching their stated accuracy on the first 1000 images of the real Fashion-MNIST test split.
#include <cmath>
#include <filesystem>

#include "diffusion/data.hpp"
#include "diffusion/quality.hpp"
#include "diffusion_helpers.hpp"
#include "model/classifier.hpp"
#include "model/safetensors.hpp"

using namespace ddpm;
using namespace ddpm::test;

namespace {
// The repository's assets/ (DDPM_TEST_DATA is <repo>/tests/data).
const std::string kCommitted =
    (std::filesystem::path(DDPM_TEST_DATA).parent_path().parent_path() / "assets/classifier.safetensors").string();
const std::string kFashion = "/usr/share/datasets/fashion-mnist";
}  // namespace

TEST_CASE("classifier: shapes, input checks, gradients to every parameter", "[model][classifier]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  Classifier m({.image_size = 16, .width = 8, .feature_dim = 12, .num_classes = 5}, gen);
  // 3 stages of conv w, b and norm w, b; fc and head w, b.
  CHECK(m.named_parameters().size() == 16);
  Tensor x = randn({3, 16, 16, 1}, gen);
  CHECK(m.features(x).shape() == Shape{3, 12});
  Tensor z = m.logits(x);
  CHECK(z.shape() == Shape{3, 5});
  CHECK(rel_err(m.head(m.features(x)), z) == 0.0);
  cross_entropy(z, Tensor::from_ints({0, 4, 2}, {3})).backward();
  for (const auto& [name, t] : m.named_parameters()) {
    INFO(name);
    REQUIRE(t.grad().defined());
    double norm = 0;
    for (float g : t.grad().to_floats()) norm += double(g) * g;
    CHECK(norm > 0);
  }
  CHECK_THROWS_WITH(m.features(randn({3, 16, 16, 3}, gen)),
                    Catch::Contains("classifier") && Catch::Contains("[N, 16, 16, 1]") &&
                        Catch::Contains("[3, 16, 16, 3]"));
  CHECK_THROWS_AS(m.features(randn({3, 32, 32, 1}, gen)), Error);
  CHECK_THROWS_AS(m.features(randn({16, 16, 1}, gen)), Error);
  CHECK_THROWS_AS(m.features(Tensor()), Error);
  CHECK_THROWS_WITH(Classifier({.width = 12}, gen), Catch::Contains("width"));
  CHECK_THROWS_WITH(Classifier({.image_size = 28}, gen), Catch::Contains("image_size"));
}

TEST_CASE("classifier: save and load give the same logits; other files are refused", "[model][classifier]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  TempDir dir;
  Classifier m({.image_size = 8, .width = 8, .feature_dim = 6, .num_classes = 3}, gen);
  save_classifier(dir / "c.safetensors", m, {{"test_accuracy", "0.5"}});
  LoadedClassifier l = load_classifier(dir / "c.safetensors", Device::CPU);
  CHECK(l.metadata.at("test_accuracy") == "0.5");
  CHECK(l.model->config().feature_dim == 6);
  CHECK(l.model->config().num_classes == 3);
  Tensor x = randn({2, 8, 8, 1}, gen);
  CHECK(rel_err(l.model->logits(x), m.logits(x)) == 0.0);

  save_safetensors(dir / "other.safetensors", {{"w", randn({2}, gen)}});
  CHECK_THROWS_WITH(load_classifier(dir / "other.safetensors", Device::CPU),
                    Catch::Contains("other.safetensors") && Catch::Contains("not a classifier"));
  // A tensor of the wrong shape is named.
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, t] : m.named_parameters())
    tensors.emplace_back(name, name == "fc.bias" ? randn({5}, gen) : t);
  SafeTensors good = load_safetensors(dir / "c.safetensors");
  save_safetensors(dir / "bad.safetensors", tensors, good.metadata);
  CHECK_THROWS_WITH(load_classifier(dir / "bad.safetensors", Device::CPU), Catch::Contains("fc.bias"));
}

TEST_CASE("classifier: the committed weights reach their stated accuracy on real test images",
          "[model][classifier][data]") {
  REQUIRE(std::filesystem::exists(kCommitted));
  LoadedClassifier l = load_classifier(kCommitted, Device::CPU);
  const double stated = std::stod(l.metadata.at("test_accuracy"));
  CHECK(stated >= 0.90);
  Dataset test = load_fashion_mnist(kFashion, "t10k");
  REQUIRE(test.count() == 10000);
  CHECK_THROWS_WITH(load_fashion_mnist(kFashion, "test"), Catch::Contains("unknown split 'test'"));
  std::vector<int64_t> first(1000);
  for (int64_t i = 0; i < 1000; ++i) first[size_t(i)] = i;
  Batch b = test.batch(first, Device::CPU);
  Classification c = classify(*l.model, b.images);
  const double acc = accuracy(c.predicted, b.labels.to_ints(), 10).overall;
  CAPTURE(stated, acc);
  CHECK(acc >= 0.88);
  CHECK(std::abs(acc - stated) < 0.03);  // a 1000-image slice: binomial sd ~0.009
}
