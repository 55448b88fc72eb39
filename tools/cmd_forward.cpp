// `ddpm forward`: the forward process on one training image: q(x_t | x_0) at evenly spaced t,
// a row for the linear schedule above a row for the cosine one, same noise in both.
#include <cstdio>

#include "diffusion/data.hpp"
#include "diffusion/image_io.hpp"
#include "engine/noise.hpp"
#include "tools/cli_common.hpp"
#include "tools/commands.hpp"

namespace ddpm::cli {
namespace {

struct ForwardOptions {
  std::string data = "fashion-mnist";
  int64_t image_size = 32;
  int64_t index = 0;
  int64_t frames = 8;
  int64_t T = 1000;
  uint64_t seed = 0;
  std::string out = "forward.png";
};

void run(const ForwardOptions& o) {
  check_output_file(o.out);
  Dataset data = load_dataset(o.data, o.image_size);
  DDPM_CHECK(o.index < data.count(), "forward", "--index ", o.index, " is out of range: ", o.data, " has ",
             data.count(), " images");
  // Frame k shows t_k = k (T-1) / (frames-1); the first column is x_0 itself.
  std::vector<int64_t> ts;
  for (int64_t k = 0; k < o.frames; ++k) ts.push_back(k * (o.T - 1) / (o.frames - 1));
  const int64_t n = o.frames;
  Tensor x0 = data.batch(std::vector<int64_t>(size_t(n), o.index), Device::CPU).images;
  Tensor t = Tensor::from_ints(ts, {n});
  std::vector<float> strip;
  for (ScheduleKind kind : {ScheduleKind::Linear, ScheduleKind::Cosine}) {
    Schedule s = make_schedule(kind, o.T);
    Generator gen(o.seed);  // the same eps for both rows
    Tensor xt = q_sample(x0, t, Schedule::tensor(s.sqrt_abar, Device::CPU), Schedule::tensor(s.sqrt_1m_abar, Device::CPU),
                         gen)
                    .x_t;
    std::vector<float> first = x0.slice0(0, 1).to_floats(), rest = xt.to_floats();
    strip.insert(strip.end(), first.begin(), first.end());
    strip.insert(strip.end(), rest.begin(), rest.end());
    std::fprintf(stderr, "%s row: x0, then t =", schedule_name(kind));
    for (int64_t k = 0; k < n; ++k)
      std::fprintf(stderr, " %ld (abar %.3f)", long(ts[size_t(k)]), s.alpha_bar[size_t(ts[size_t(k)])]);
    std::fprintf(stderr, "\n");
  }
  Shape shape = x0.shape();
  shape[0] = 2 * (n + 1);
  write_png(o.out, image_grid(Tensor::from_floats(strip, shape), n + 1));
  std::fprintf(stderr, "wrote %s\n", o.out.c_str());
}

}  // namespace

void add_forward(CLI::App& app) {
  auto o = std::make_shared<ForwardOptions>();
  CLI::App* cmd = app.add_subcommand("forward", "Show the forward (noising) process on a training image");
  cmd->add_option("--data", o->data, "fashion-mnist[:DIR], cifar10:DIR or folder:DIR")->capture_default_str();
  cmd->add_option("--image-size", o->image_size, "image side, a multiple of 8")->capture_default_str();
  cmd->add_option("--index", o->index, "which image of the data set")->check(non_negative())->capture_default_str();
  cmd->add_option("--frames", o->frames, "noised frames per row")->check(in_range(2, 100))->capture_default_str();
  cmd->add_option("--T", o->T, "diffusion timesteps")->check(in_range(2, double(kMaxT)))->capture_default_str();
  cmd->add_option("--seed", o->seed, "noise seed")->check(seed_check())->capture_default_str();
  cmd->add_option("--out", o->out, "PNG file")->capture_default_str();
  cmd->callback([o] { run(*o); });
}

}  // namespace ddpm::cli
