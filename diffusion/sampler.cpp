#include "diffusion/sampler.hpp"

#include <cmath>
#include <memory>

#include "engine/autograd.hpp"
#include "engine/graph.hpp"
#include "engine/ops.hpp"

namespace ddpm {

SamplerKind parse_sampler(const std::string& name) {
  if (name == "ddpm") return SamplerKind::DDPM;
  if (name == "ddim") return SamplerKind::DDIM;
  detail::fail("sampler", "unknown sampler '", name, "' (expected ddpm or ddim)");
}

std::vector<int64_t> respaced_timesteps(int64_t T, int64_t steps) {
  DDPM_CHECK(steps >= 1 && steps <= T - 1, "sampler", "steps must be in [1, ", T - 1, "] for T = ", T, ", got ",
             steps);
  // t_k = 1 + round(k (T - 2) / (S - 1)): distinct because the spacing (T-2)/(S-1) is >= 1.
  std::vector<int64_t> ts;
  for (int64_t k = 0; k < steps; ++k)
    ts.push_back(steps == 1 ? T - 1 : 1 + std::llround(double(k) * double(T - 2) / double(steps - 1)));
  return ts;
}

std::vector<SamplerStep> sampler_plan(const Schedule& s, const SamplerConfig& config) {
  DDPM_CHECK(config.eta >= 0.0f, "sampler", "eta must be >= 0, got ", config.eta);
  std::vector<int64_t> ts = respaced_timesteps(s.T, config.steps == 0 ? s.T - 1 : config.steps);
  std::vector<SamplerStep> plan;
  for (size_t k = ts.size(); k-- > 0;) {
    const int64_t t = ts[k];
    const double abar = s.alpha_bar[size_t(t)];
    const double abar_prev = s.alpha_bar[size_t(k == 0 ? 0 : ts[k - 1])];
    const bool last = k == 0;
    double c_x0, c_xt, sigma;
    if (config.kind == SamplerKind::DDPM) {
      const double alpha = abar / abar_prev, beta = 1.0 - alpha;
      c_x0 = std::sqrt(abar_prev) * beta / (1.0 - abar);
      c_xt = std::sqrt(alpha) * (1.0 - abar_prev) / (1.0 - abar);
      sigma = last ? 0.0 : std::sqrt(beta);
    } else {
      sigma = last ? 0.0
                   : config.eta * std::sqrt((1.0 - abar_prev) / (1.0 - abar)) * std::sqrt(1.0 - abar / abar_prev);
      const double dir = std::sqrt(std::max(0.0, 1.0 - abar_prev - sigma * sigma));
      // sqrt(abar_prev) x0 + dir (x_t - sqrt(abar) x0) / sqrt(1 - abar)
      c_x0 = std::sqrt(abar_prev) - dir * std::sqrt(abar) / std::sqrt(1.0 - abar);
      c_xt = dir / std::sqrt(1.0 - abar);
    }
    const double x0_c_x = 1.0 / std::sqrt(abar), x0_c_eps = std::sqrt(1.0 - abar) / std::sqrt(abar);
    plan.push_back(SamplerStep{t, ReverseCoefficients{float(x0_c_x), float(x0_c_eps), float(c_x0), float(c_xt),
                                                      float(sigma), config.guidance, config.clip_x0, last}});
  }
  return plan;
}

Tensor sample(const UNet& model, const Schedule& schedule, const SamplerConfig& config, const Tensor& labels,
              int64_t count, int64_t image_size, Generator& gen, Device device, const SampleHooks& hooks) {
  const UNetConfig& mc = model.config();
  const bool conditional = labels.defined();
  DDPM_CHECK(!conditional || mc.num_classes > 0, "sample", "labels given to an unconditional model");
  DDPM_CHECK(conditional || mc.num_classes == 0, "sample", "a conditional model needs labels");
  DDPM_CHECK(config.guidance >= 0.0f, "sample", "guidance scale must be >= 0, got ", config.guidance);
  const int64_t n = conditional ? labels.numel() : count;
  DDPM_CHECK(n > 0, "sample", "nothing to sample (", n, " images)");
  DDPM_CHECK(image_size > 0 && image_size % 8 == 0, "sample", "image size must be a positive multiple of 8, got ",
             image_size);
  const bool guided = conditional && config.guidance > 0.0f;
  std::vector<SamplerStep> plan = sampler_plan(schedule, config);

  NoGradGuard no_grad;
  // The weights do not change during the chain: a bf16 model converts each one once, not on every
  // forward (engine/ops.hpp). Declared before the graph, whose recording reads the copies.
  CastCache weight_copies;
  CastCache::Use use_copies(weight_copies);
  // t and the labels stay on the host, where the network's conditioning is computed (the
  // timestep embedding, the label check) and uploaded from: so no step waits for the GPU, and the
  // host queues the next steps while the GPU runs this one. The network's device work is recorded
  // once as a graph (engine/graph.hpp) and replayed each step on the conditioning of that step.
  // With guidance, the conditional and unconditional predictions come from one forward of 2n
  // images (x twice, the two embeddings stacked), not two forwards of n: each kernel does twice
  // the work for one launch, which keeps the GPU busier at small images. x is then the first half
  // of the network's input (the reverse step updates it in place), copied to the second each step.
  Tensor y = conditional ? labels.to(Device::CPU) : Tensor();
  Tensor x = Tensor::randn({n, image_size, image_size, mc.in_channels}, gen, device);
  const int64_t rows = guided ? 2 * n : n;
  Tensor x_in = x;
  if (guided) {
    x_in = Tensor::empty({rows, image_size, image_size, mc.in_channels}, DType::F32, device);
    x_in.slice0(0, n).copy_from(x);
    x = x_in.slice0(0, n);
  }
  Tensor e = Tensor::empty({rows, mc.time_dim}, DType::F32, device);
  Tensor eps_c, eps_u;
  auto network = [&] {
    if (guided) x_in.slice0(n, rows).copy_from(x);
    Tensor eps = model.forward_embedded(x_in, e);
    eps_c = guided ? eps.slice0(0, n) : eps;
    eps_u = guided ? eps.slice0(n, rows) : Tensor();
  };
  std::unique_ptr<Graph> graph;
  for (size_t i = 0; i < plan.size(); ++i) {
    const SamplerStep& step = plan[i];
    Tensor t = Tensor::from_ints(std::vector<int64_t>(size_t(n), step.t), {n});
    e.slice0(0, n).copy_from(model.embed(t, y, device));
    if (guided) e.slice0(n, rows).copy_from(model.embed(t, Tensor(), device));
    if (config.graph && !graph) graph = std::make_unique<Graph>(device, network);
    if (graph) graph->replay();
    else network();
    if (hooks.trace) {
      Tensor x0 = x.clone();
      const ReverseCoefficients& u = step.update;
      reverse_step(x0, eps_c, eps_u, {u.x0_c_x, u.x0_c_eps, 1.0f, 0.0f, 0.0f, config.guidance, true, true}, gen);
      hooks.trace(StepView{int64_t(i), step.t, x, x0});
    }
    reverse_step(x, eps_c, eps_u, step.update, gen);
    if (hooks.progress) hooks.progress(int64_t(i) + 1, int64_t(plan.size()));
  }
  return x;
}

}  // namespace ddpm
