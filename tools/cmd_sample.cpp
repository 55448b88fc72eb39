// `ddpm sample`: a PNG grid from a trained model, one row per class.
#include <cstdio>

#include "diffusion/image_io.hpp"
#include "tools/cli_common.hpp"
#include "tools/commands.hpp"

namespace ddpm::cli {
namespace {

struct SampleOptions {
  SamplingOptions s;
  std::string classes = "all";
  int64_t per_class = 8;
  std::string out = "samples.png";
};

void run(const SampleOptions& o, bool classes_given) {
  const Device device = apply_device_options(o.s.dev);
  check_output_file(o.out);
  LoadedModel m = load_checkpoint(o.s.checkpoint, device, o.s.dev.precision, o.s.image_size, !o.s.no_ema);
  check_not_checkpoint(o.out, m);
  const int64_t num_classes = m.model->config().num_classes;
  DDPM_CHECK(num_classes > 0 || !classes_given || o.classes == "all", "sample", m.path,
             " is an unconditional model: it takes no --classes");
  std::vector<int64_t> classes = num_classes > 0 ? parse_classes(o.classes, num_classes) : std::vector<int64_t>{};
  const SamplerConfig config = sampler_config(o.s);
  const Schedule schedule = sampling_schedule(o.s, m);
  std::fprintf(stderr, "%s (%s weights), %s sampler, %ld steps, %s schedule, guidance %g, %ldx%ld\n",
               m.path.c_str(), m.ema ? "EMA" : "trained", o.s.sampler.c_str(),
               long(sampler_plan(schedule, config).size()), schedule_name(schedule.kind), double(config.guidance),
               long(m.image_size), long(m.image_size));
  for (size_t r = 0; r < classes.size(); ++r)
    std::fprintf(stderr, "row %zu: class %ld%s%s\n", r, long(classes[r]), m.class_names.empty() ? "" : " ",
                 size_t(classes[r]) < m.class_names.size() ? m.class_names[size_t(classes[r])].c_str() : "");
  Tensor x = sample_classes(*m.model, schedule, config, classes, o.per_class, m.image_size, o.s.seed, device,
                            o.s.batch);
  write_png(o.out, image_grid(x, o.per_class));
  std::fprintf(stderr, "wrote %s\n", o.out.c_str());
}

}  // namespace

void add_sample(CLI::App& app) {
  auto o = std::make_shared<SampleOptions>();
  CLI::App* cmd = app.add_subcommand("sample", "Sample a PNG grid from a trained model (one row per class)");
  add_sampling_options(cmd, o->s);
  cmd->add_option("--classes", o->classes, "class ids, e.g. 0,3,7, or all")->capture_default_str();
  cmd->add_option("--per-class", o->per_class, "images per class (the grid's columns)")
      ->check(in_range(1, 1000))
      ->capture_default_str();
  cmd->add_option("--out", o->out, "PNG file")->capture_default_str();
  cmd->callback([o, cmd] { run(*o, cmd->count("--classes") > 0); });
}

}  // namespace ddpm::cli
