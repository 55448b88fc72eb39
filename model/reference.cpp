#include "model/reference.hpp"

#include <algorithm>
#include <cmath>

#include "engine/ops.hpp"
#include "engine/optim.hpp"
#include "model/checkpoint.hpp"

namespace ddpm {
namespace {

// ||ours - ref|| / max(||ref||, floor), both in PyTorch layout; with `base`, of the changes
// ours - base and ref - base instead (the AdamW step rather than the updated weight).
ReferenceRow compare(const std::string& name, const Tensor& ours, const Tensor& ref, double tol,
                     const Tensor& base = Tensor()) {
  DDPM_CHECK(ours.numel() == ref.numel(), "check_reference", name, ": ours is ", ours.desc(), ", the reference ",
             ref.desc());
  std::vector<float> a = ours.to_floats(), b = ref.to_floats();
  std::vector<float> c = base.defined() ? base.to_floats() : std::vector<float>(a.size(), 0.0f);
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double r = double(b[i]) - double(c[i]);
    double d = double(a[i]) - double(c[i]) - r;
    num += d * d;
    den += r * r;
  }
  double norm = std::sqrt(den);
  double err = std::sqrt(num) / std::max(norm, kRefNormFloor);
  if (!std::isfinite(err)) err = INFINITY;  // NaN must fail the <= test visibly
  return {name, err, tol, norm < kRefNormFloor};
}

float meta_float(const SafeTensors& f, const std::string& key) {
  auto it = f.metadata.find(key);
  DDPM_CHECK(it != f.metadata.end(), "check_reference", f.path, ": metadata has no '", key, "'");
  size_t used = 0;
  double v = NAN;
  try {
    v = std::stod(it->second, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  DDPM_CHECK(used == it->second.size() && std::isfinite(v), "check_reference", f.path, ": metadata '", key, "' = '",
             it->second, "' is not a number");
  return float(v);
}

}  // namespace

bool ReferenceReport::ok() const { return failures() == 0; }

int64_t ReferenceReport::failures() const {
  return std::count_if(rows.begin(), rows.end(), [](const ReferenceRow& r) { return !r.ok(); });
}

ReferenceReport check_reference(const std::string& path, Device device, DType compute) {
  return check_reference(load_safetensors(path), device, compute);
}

ReferenceReport check_reference(const SafeTensors& f, Device device, DType compute) {
  auto meta = [&](const std::string& k) {
    auto it = f.metadata.find(k);
    return it == f.metadata.end() ? std::string("(none)") : it->second;
  };
  DDPM_CHECK(meta("format") == "ddpm-reference" && meta("version") == "1", "check_reference", f.path,
             ": not a ddpm-reference v1 file (format '", meta("format"), "', version '", meta("version"), "')");
  ReferenceReport report;
  report.path = f.path;
  report.config = config_from_metadata(f.metadata, f.path);

  Generator gen(0);
  UNet model(report.config, gen);
  std::vector<Tensor> params = model.parameters();
  from_pytorch_layout(model, f, params);
  model.to(device);
  model.set_compute_dtype(compute);
  const bool bf16 = compute == DType::BF16;
  const double out_tol = bf16 ? kRefOutputTolBF16 : kRefOutputTol, grad_tol = bf16 ? INFINITY : kRefGradTol;

  Tensor x = nchw_to_nhwc(f.at("x_t")).to(device);
  Tensor eps = nchw_to_nhwc(f.at("eps")).to(device);
  Tensor t = f.at("t").to(device);
  Tensor y;
  if (report.config.num_classes > 0) y = f.at("y").to(device);
  report.batch = x.size(0);
  report.image_size = x.size(1);

  Tensor eps_pred = model.forward(x, t, y);
  Tensor loss = mse_loss(eps_pred, eps);
  loss.backward();
  report.rows.push_back(compare("eps_pred", nhwc_to_nchw(eps_pred), f.at("eps_pred"), out_tol));
  report.rows.push_back(compare("loss", loss, f.at("loss"), out_tol));

  std::vector<Tensor> grads;
  for (const Tensor& p : params) {
    DDPM_CHECK(p.grad().defined(), "check_reference", "a parameter got no gradient: ", p.desc());
    grads.push_back(p.grad());
  }
  std::vector<float> all_ours, all_ref;
  for (const auto& [name, g] : to_pytorch_layout(model, grads, "grad.")) {
    report.rows.push_back(compare(name, g, f.at(name), grad_tol));
    for (float v : g.to_floats()) all_ours.push_back(v);
    for (float v : f.at(name).to_floats()) all_ref.push_back(v);
  }
  // In bf16 a small parameter's gradient is a short sum of rounded terms, and some are ~0 in exact
  // arithmetic (the key bias), so per tensor the error says little; the bf16 check is on all
  // gradients together, and the per-tensor rows are printed for reading only.
  if (bf16) {
    const int64_t n = int64_t(all_ours.size());
    report.rows.push_back(compare("grad (all parameters together)", Tensor::from_floats(all_ours, {n}),
                                  Tensor::from_floats(all_ref, {n}), kRefGradAllTolBF16));
  }

  // The AdamW step starts from the reference's gradients, not ours: Adam divides each gradient
  // by its own magnitude, so where the exact gradient is ~0 (the attention's key bias: softmax
  // ignores a per-query constant) float32 rounding noise would become a full step of size lr.
  // Our gradients are checked above; this checks the optimizer.
  std::vector<Tensor> ref_grads;
  for (const Tensor& p : params) ref_grads.push_back(Tensor::zeros(p.shape(), DType::F32, device));
  from_pytorch_layout(model, f, ref_grads, "grad.");
  for (size_t i = 0; i < params.size(); ++i) params[i].set_grad(ref_grads[i]);
  AdamWConfig cfg;
  cfg.lr = meta_float(f, "adamw_lr");
  cfg.beta1 = meta_float(f, "adamw_beta1");
  cfg.beta2 = meta_float(f, "adamw_beta2");
  cfg.eps = meta_float(f, "adamw_eps");
  cfg.weight_decay = meta_float(f, "adamw_weight_decay");
  AdamW opt(params, cfg);
  opt.step();
  // Compared as steps (new - old weight): relative to the weight, a step of lr = 3e-4 would hide
  // errors of its own size (a missing bias correction, say).
  for (const auto& [name, p] : to_pytorch_layout(model, params, "adamw."))
    report.rows.push_back(compare(name, p, f.at(name), kRefGradTol, f.at(name.substr(6))));
  return report;
}

}  // namespace ddpm
