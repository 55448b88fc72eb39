// `ddpm trace`: the reverse process of one sample as a strip: x_t at evenly spaced steps (top
// row) and the network's prediction of x_0 at those steps (bottom row), ending with the sample.
#include <cstdio>

#include "diffusion/image_io.hpp"
#include "tools/cli_common.hpp"
#include "tools/commands.hpp"

namespace ddpm::cli {
namespace {

struct TraceOptions {
  SamplingOptions s;
  int64_t label = 0;
  int64_t frames = 10;
  std::string out = "trace.png";
};

void run(const TraceOptions& o, bool class_given) {
  const Device device = apply_device_options(o.s.dev);
  check_output_file(o.out);
  LoadedModel m = load_checkpoint(o.s.checkpoint, device, o.s.dev.precision, o.s.image_size, !o.s.no_ema);
  check_not_checkpoint(o.out, m);
  const int64_t num_classes = m.model->config().num_classes;
  DDPM_CHECK(num_classes > 0 || !class_given, "trace", m.path, " is an unconditional model: it takes no --class");
  DDPM_CHECK(num_classes == 0 || (o.label >= 0 && o.label < num_classes), "trace", "--class ", o.label,
             " is out of range [0, ", num_classes, ")");
  const SamplerConfig config = sampler_config(o.s);
  const Schedule schedule = sampling_schedule(o.s, m);
  const int64_t steps = int64_t(sampler_plan(schedule, config).size());

  // The frames: plan steps k (frames-1) ... spread from the first step to the last.
  const int64_t frames = std::min(o.frames, steps);
  std::vector<int64_t> pick;
  for (int64_t k = 0; k < frames; ++k) pick.push_back(frames == 1 ? 0 : k * (steps - 1) / (frames - 1));
  std::vector<float> top, bottom;
  SampleHooks hooks;
  size_t next = 0;
  hooks.trace = [&](const StepView& v) {
    if (next >= pick.size() || v.index != pick[next]) return;
    ++next;
    std::vector<float> a = v.x_t.to_floats(), b = v.x0.to_floats();
    top.insert(top.end(), a.begin(), a.end());
    bottom.insert(bottom.end(), b.begin(), b.end());
    std::fprintf(stderr, "frame %zu: step %ld of %ld, t = %ld\n", next, long(v.index + 1), long(steps), long(v.t));
  };
  Progress progress("trace", steps);
  hooks.progress = [&](int64_t done, int64_t) { progress.update(done); };
  Generator gen(o.s.seed);
  Tensor y = num_classes > 0 ? Tensor::from_ints({o.label}, {1}) : Tensor();
  Tensor x = sample(*m.model, schedule, config, y, 1, m.image_size, gen, device, hooks);
  std::vector<float> last = x.to_floats();
  top.insert(top.end(), last.begin(), last.end());
  bottom.insert(bottom.end(), last.begin(), last.end());
  top.insert(top.end(), bottom.begin(), bottom.end());
  Shape shape = x.shape();
  shape[0] = 2 * (frames + 1);
  write_png(o.out, image_grid(Tensor::from_floats(top, shape), frames + 1));
  std::fprintf(stderr, "wrote %s (top: x_t, bottom: predicted x_0; last column: the sample)\n", o.out.c_str());
}

}  // namespace

void add_trace(CLI::App& app) {
  auto o = std::make_shared<TraceOptions>();
  CLI::App* cmd = app.add_subcommand("trace", "Show the reverse process of one sample, with the predicted x_0");
  add_sampling_options(cmd, o->s);
  cmd->add_option("--class", o->label, "class id of the sample")->check(non_negative())->capture_default_str();
  cmd->add_option("--frames", o->frames, "frames shown")->check(in_range(1, 100))->capture_default_str();
  cmd->add_option("--out", o->out, "PNG file")->capture_default_str();
  cmd->callback([o, cmd] { run(*o, cmd->count("--class") > 0); });
}

}  // namespace ddpm::cli
