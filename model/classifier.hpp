// A small CNN that classifies 32x32 grey images (Fashion-MNIST padded to 32x32, values in
// [-1, 1]). It is the measuring instrument of diffusion/quality.hpp: its logits give the
// conditional accuracy of generated samples, its penultimate features the Fréchet distance.
//
// Architecture (activations NHWC; w = config.width):
//   3 stages, each  conv3x3 (bias) -> GroupNorm(8) + SiLU -> max-pool 2x2,  widths w, 2w, 4w:
//   [N,32,32,1] -> [N,16,16,w] -> [N,8,8,2w] -> [N,4,4,4w]
//   flatten (h, w, c order) -> linear feature_dim -> SiLU  = features(x)
//   -> linear num_classes                                   = logits(x)
// Parameters "stageS.conv.{weight,bias}", "stageS.norm.{weight,bias}", "fc.{weight,bias}",
// "head.{weight,bias}", stored in the engine's layouts (conv OHWI): the file is this program's
// own instrument, not a PyTorch model, and its metadata says so.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "engine/module.hpp"
#include "engine/rng.hpp"

namespace ddpm {

struct ClassifierConfig {
  int64_t image_size = 32;  // inputs are image_size x image_size x 1; a multiple of 8 (three poolings)
  int64_t width = 32;       // channels of the first stage (a multiple of the 8 norm groups)
  int64_t feature_dim = 128;
  int64_t num_classes = 10;
};

class Classifier : public Module {
 public:
  // Conv and linear parameters U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's default), norms 1, 0.
  Classifier(const ClassifierConfig& config, Generator& gen);

  // x [N, S, S, 1] with S = image_size; a clear ddpm::Error for any other shape.
  Tensor features(const Tensor& x) const;     // [N, feature_dim]
  Tensor head(const Tensor& features) const;  // [N, num_classes]: logits from features
  Tensor logits(const Tensor& x) const { return head(features(x)); }

  const ClassifierConfig& config() const { return config_; }

 private:
  ClassifierConfig config_;
  struct Stage {
    Tensor conv_w, conv_b, norm_w, norm_b;
  };
  Stage stages_[3];
  Tensor fc_w_, fc_b_, head_w_, head_b_;
};

// Weights plus metadata: the config, "format" = "ddpm-classifier", and `extra` (accuracy, command).
void save_classifier(const std::string& path, const Classifier& model, std::map<std::string, std::string> extra = {});
struct LoadedClassifier {
  std::unique_ptr<Classifier> model;
  std::map<std::string, std::string> metadata;
};
LoadedClassifier load_classifier(const std::string& path, Device device);

}  // namespace ddpm
