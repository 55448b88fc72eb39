#include "model/classifier.hpp"

#include <cmath>

#include "engine/ops.hpp"
#include "model/init.hpp"
#include "model/safetensors.hpp"

namespace ddpm {
namespace {

constexpr int64_t kGroups = 8;

void check_config(const ClassifierConfig& c, const std::string& where) {
  DDPM_CHECK(c.image_size > 0 && c.image_size % 8 == 0, "classifier", where, "image_size must be a positive ",
             "multiple of 8, got ", c.image_size);
  DDPM_CHECK(c.width > 0 && c.width % kGroups == 0, "classifier", where, "width must be a positive multiple of ",
             kGroups, ", got ", c.width);
  DDPM_CHECK(c.feature_dim > 0 && c.num_classes > 0, "classifier", where, "feature_dim ", c.feature_dim,
             " and num_classes ", c.num_classes, " must be positive");
}

}  // namespace

Classifier::Classifier(const ClassifierConfig& c, Generator& gen) : config_(c) {
  check_config(c, "");
  int64_t cin = 1;
  for (int s = 0; s < 3; ++s) {
    const int64_t cout = c.width << s;
    const std::string p = "stage" + std::to_string(s) + ".";
    Stage& st = stages_[s];
    st.conv_w = register_parameter(p + "conv.weight", fan_in_uniform({cout, 3, 3, cin}, 9 * cin, gen));
    st.conv_b = register_parameter(p + "conv.bias", fan_in_uniform({cout}, 9 * cin, gen));
    st.norm_w = register_parameter(p + "norm.weight", Tensor::full({cout}, 1.0f));
    st.norm_b = register_parameter(p + "norm.bias", Tensor::zeros({cout}));
    cin = cout;
  }
  const int64_t flat = (c.image_size / 8) * (c.image_size / 8) * cin;
  fc_w_ = register_parameter("fc.weight", fan_in_uniform({c.feature_dim, flat}, flat, gen));
  fc_b_ = register_parameter("fc.bias", fan_in_uniform({c.feature_dim}, flat, gen));
  head_w_ = register_parameter("head.weight", fan_in_uniform({c.num_classes, c.feature_dim}, c.feature_dim, gen));
  head_b_ = register_parameter("head.bias", fan_in_uniform({c.num_classes}, c.feature_dim, gen));
}

Tensor Classifier::features(const Tensor& x) const {
  const int64_t S = config_.image_size;
  DDPM_CHECK(x.defined() && x.dim() == 4 && x.size(1) == S && x.size(2) == S && x.size(3) == 1, "classifier",
             "expects grey images [N, ", S, ", ", S, ", 1], got ", x.defined() ? x.desc() : "undefined");
  Tensor h = x;
  for (const Stage& st : stages_)
    h = max_pool2x2(group_norm(conv2d(h, st.conv_w, st.conv_b), kGroups, st.norm_w, st.norm_b, 1e-5f, Act::SiLU));
  return silu(linear(h.reshape({h.size(0), h.numel() / h.size(0)}), fc_w_, fc_b_));
}

Tensor Classifier::head(const Tensor& features) const { return linear(features, head_w_, head_b_); }

void save_classifier(const std::string& path, const Classifier& model, std::map<std::string, std::string> extra) {
  const ClassifierConfig& c = model.config();
  extra["format"] = "ddpm-classifier";
  extra["layout"] = "NHWC activations, conv weights OHWI [out, kh, kw, in], linear [out, in]";
  extra["architecture"] = "3 x (conv3x3 -> GroupNorm(8)+SiLU -> maxpool2x2), widths w, 2w, 4w; flatten (h, w, c); "
                          "linear feature_dim + SiLU (features); linear num_classes (logits)";
  extra["image_size"] = std::to_string(c.image_size);
  extra["width"] = std::to_string(c.width);
  extra["feature_dim"] = std::to_string(c.feature_dim);
  extra["num_classes"] = std::to_string(c.num_classes);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, t] : model.named_parameters()) tensors.emplace_back(name, t.to(Device::CPU));
  save_safetensors(path, tensors, extra);
}

LoadedClassifier load_classifier(const std::string& path, Device device) {
  SafeTensors file = load_safetensors(path);
  const std::map<std::string, std::string>& meta = file.metadata;
  auto it = meta.find("format");
  DDPM_CHECK(it != meta.end() && it->second == "ddpm-classifier", "classifier", path,
             ": not a classifier file (metadata format is not \"ddpm-classifier\")");
  auto number = [&](const char* key) {
    auto k = meta.find(key);
    DDPM_CHECK(k != meta.end(), "classifier", path, ": metadata has no ", key);
    try {
      return int64_t(std::stoll(k->second));
    } catch (const std::exception&) {
      detail::fail("classifier", path, ": metadata ", key, " = '", k->second, "' is not an integer");
    }
  };
  ClassifierConfig c{.image_size = number("image_size"), .width = number("width"),
                     .feature_dim = number("feature_dim"), .num_classes = number("num_classes")};
  check_config(c, path + ": ");
  Generator gen(0);  // the initial values are overwritten below
  LoadedClassifier out{std::make_unique<Classifier>(c, gen), meta};
  const auto params = out.model->named_parameters();
  DDPM_CHECK(file.tensors.size() == params.size(), "classifier", path, ": ", file.tensors.size(),
             " tensors, the architecture in its metadata has ", params.size());
  for (const auto& [name, t] : params) {
    const Tensor& v = file.at(name);
    DDPM_CHECK(v.shape() == t.shape() && v.dtype() == DType::F32, "classifier", path, ": ", name, " is ", v.desc(),
               ", expected ", t.desc());
    DDPM_CHECK(v.all_finite(), "classifier", path, ": ", name, " holds NaN or infinity");
    Tensor dst = t;
    dst.copy_from(v);
  }
  out.model->to(device);
  return out;
}

}  // namespace ddpm
