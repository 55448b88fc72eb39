#include "model/checkpoint.hpp"

#include <cstring>

namespace ddpm {
namespace {

// out[a][d][b][c] = in[a][b][c][d] when `to_channels_first`, else out[a][c][d][b] = in[a][b][c][d]:
// OHWI <-> OIHW and NHWC <-> NCHW are the same two permutations. Host tensors of any dtype.
Tensor permute4(const Tensor& x, bool to_channels_first, const char* op) {
  DDPM_CHECK(x.dim() == 4, op, "expected a 4-d tensor, got ", x.desc());
  Tensor h = x.to(Device::CPU);
  const Shape& s = h.shape();
  Shape o = to_channels_first ? Shape{s[0], s[3], s[1], s[2]} : Shape{s[0], s[2], s[3], s[1]};
  Tensor out = Tensor::empty(o, h.dtype());
  size_t es = dtype_size(h.dtype());
  const char* src = static_cast<const char*>(h.raw());
  char* dst = static_cast<char*>(out.raw());
  // Walk the source in order; (s1, s2, s3) -> destination index.
  for (int64_t a = 0; a < s[0]; ++a)
    for (int64_t b = 0; b < s[1]; ++b)
      for (int64_t c = 0; c < s[2]; ++c)
        for (int64_t d = 0; d < s[3]; ++d) {
          int64_t i = ((a * s[1] + b) * s[2] + c) * s[3] + d;
          int64_t j = to_channels_first ? ((a * s[3] + d) * s[1] + b) * s[2] + c   // [a][d][b][c]
                                        : ((a * s[2] + c) * s[3] + d) * s[1] + b;  // [a][c][d][b]
          std::memcpy(dst + j * int64_t(es), src + i * int64_t(es), es);
        }
  return out;
}

Shape pytorch_shape(const Shape& s) { return s.size() == 4 ? Shape{s[0], s[3], s[1], s[2]} : s; }

int64_t meta_int(const std::map<std::string, std::string>& m, const std::string& key, const std::string& path,
                 int64_t min) {
  auto it = m.find(key);
  DDPM_CHECK(it != m.end(), "checkpoint", path, ": metadata has no '", key, "'");
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(it->second, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  DDPM_CHECK(used > 0 && used == it->second.size() && v >= min, "checkpoint", path, ": metadata '", key, "' = '",
             it->second, "' is not an integer >= ", min);
  return v;
}

// A PyTorch state_dict saved without our metadata: the widths follow from the weights' shapes.
UNetConfig config_from_shapes(const SafeTensors& f) {
  const Shape& inc = f.at("inc.double_conv.0.weight").shape();
  const Shape& outc = f.at("outc.weight").shape();
  const Shape& emb = f.at("down1.emb_layer.1.weight").shape();
  DDPM_CHECK(inc.size() == 4 && outc.size() == 4 && emb.size() == 2, "checkpoint", f.path,
             ": inc/outc/emb_layer weights do not have the seed U-Net's ranks");
  UNetConfig c;
  c.base_channels = inc[0];
  c.in_channels = inc[1];
  c.out_channels = outc[0];
  c.time_dim = emb[1];
  c.num_classes = f.has("label_emb.weight") ? f.at("label_emb.weight").size(0) : 0;
  return c;  // heads: the seed's 4
}

}  // namespace

Tensor nchw_to_nhwc(const Tensor& x) { return permute4(x, false, "nchw_to_nhwc"); }
Tensor nhwc_to_nchw(const Tensor& x) { return permute4(x, true, "nhwc_to_nchw"); }

std::map<std::string, std::string> config_metadata(const UNetConfig& c) {
  return {{"format", "ddpm-checkpoint"},
          {"in_channels", std::to_string(c.in_channels)},
          {"out_channels", std::to_string(c.out_channels)},
          {"base_channels", std::to_string(c.base_channels)},
          {"time_dim", std::to_string(c.time_dim)},
          {"num_classes", std::to_string(c.num_classes)},
          {"heads", std::to_string(c.heads)}};
}

UNetConfig config_from_metadata(const std::map<std::string, std::string>& m, const std::string& path) {
  UNetConfig c;
  c.in_channels = meta_int(m, "in_channels", path, 1);
  c.out_channels = meta_int(m, "out_channels", path, 1);
  c.base_channels = meta_int(m, "base_channels", path, 1);
  c.time_dim = meta_int(m, "time_dim", path, 2);
  c.num_classes = meta_int(m, "num_classes", path, 0);
  c.heads = meta_int(m, "heads", path, 1);
  return c;
}

std::vector<std::pair<std::string, Tensor>> to_pytorch_layout(const UNet& model, const std::vector<Tensor>& values,
                                                              const std::string& prefix) {
  auto params = model.named_parameters();
  DDPM_CHECK(values.size() == params.size(), "to_pytorch_layout", values.size(), " values for ", params.size(),
             " parameters");
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor& v = values[i];
    DDPM_CHECK(v.defined() && v.shape() == params[i].second.shape(), "to_pytorch_layout", "value for '",
               params[i].first, "' is ", v.desc(), ", the parameter ", params[i].second.desc());
    Tensor host = v.dim() == 4 ? nhwc_to_nchw(v) : v.device() == Device::CPU ? v.clone() : v.to(Device::CPU);
    out.emplace_back(prefix + params[i].first, host);
  }
  return out;
}

void from_pytorch_layout(const UNet& model, const SafeTensors& file, std::vector<Tensor>& values,
                         const std::string& prefix) {
  auto params = model.named_parameters();
  DDPM_CHECK(values.size() == params.size(), "from_pytorch_layout", values.size(), " values for ", params.size(),
             " parameters");
  for (size_t i = 0; i < params.size(); ++i) {
    std::string name = prefix + params[i].first;
    DDPM_CHECK(file.has(name), "checkpoint", file.path, ": missing tensor '", name, "'");
    Tensor t = file.at(name);
    Shape want = pytorch_shape(params[i].second.shape());
    DDPM_CHECK(t.shape() == want, "checkpoint", file.path, ": tensor '", name, "' has shape ", shape_str(t.shape()),
               ", the model expects ", shape_str(want));
    DDPM_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::BF16, "checkpoint", file.path, ": tensor '", name,
               "' is ", t.desc(), ", expected f32");
    t = t.to(DType::F32);
    DDPM_CHECK(t.all_finite(), "checkpoint", file.path, ": tensor '", name,
               "' holds NaN or infinity (saved from a diverged run?)");
    values[i].copy_from(t.dim() == 4 ? nchw_to_nhwc(t) : t);
  }
}

std::map<std::string, std::string> model_metadata(const UNetConfig& config, std::map<std::string, std::string> extra) {
  std::map<std::string, std::string> meta = config_metadata(config);
  meta.insert(extra.begin(), extra.end());  // the config's own keys win
  return meta;
}

void save_model(const std::string& path, const UNet& model, std::map<std::string, std::string> extra_metadata) {
  save_safetensors(path, to_pytorch_layout(model, model.parameters()), model_metadata(model.config(), extra_metadata));
}

std::unique_ptr<UNet> load_model(const std::string& path, Device device) {
  SafeTensors f = load_safetensors(path);
  auto fmt = f.metadata.find("format");
  UNetConfig config;
  if (fmt == f.metadata.end()) {
    config = config_from_shapes(f);
  } else {
    DDPM_CHECK(fmt->second == "ddpm-checkpoint", "checkpoint", path, ": format is '", fmt->second,
               "', expected 'ddpm-checkpoint'");
    config = config_from_metadata(f.metadata, path);
  }
  Generator gen(0);
  auto model = std::make_unique<UNet>(config, gen);
  std::vector<Tensor> params = model->parameters();
  from_pytorch_layout(*model, f, params);
  // Anything else must be a prefixed copy of a parameter (EMA weights, optimizer moments): a
  // stray name means the file is for another architecture.
  auto named = model->named_parameters();
  for (const auto& [name, t] : f.tensors) {
    bool known = false;
    for (const auto& [p, v] : named) {
      known = name == p || (name.size() > p.size() && name.compare(name.size() - p.size() - 1, std::string::npos,
                                                                   "." + p) == 0);
      if (known) break;
    }
    DDPM_CHECK(known, "checkpoint", path, ": tensor '", name, "' is not a parameter of the U-Net ",
               "(in ", config.in_channels, ", out ", config.out_channels, ", base ", config.base_channels,
               ", time_dim ", config.time_dim, ", classes ", config.num_classes, ")");
  }
  model->to(device);
  return model;
}

}  // namespace ddpm
