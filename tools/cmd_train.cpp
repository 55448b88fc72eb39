// `ddpm train`: trains a (class-conditional) U-Net with the seed's recipe; checkpoints, a loss
// log and optional sample grids go to --out. Ctrl-C (or SIGTERM: `timeout`, a job scheduler; or
// SIGHUP) finishes the step, saves and exits (130).
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "diffusion/image_io.hpp"
#include "diffusion/trainer.hpp"
#include "model/checkpoint.hpp"
#include "tools/cli_common.hpp"
#include "tools/commands.hpp"

namespace ddpm::cli {
namespace {

volatile std::sig_atomic_t g_interrupted = 0;

// Ctrl-C, SIGTERM (timeout, job schedulers) and SIGHUP (a closed terminal or ssh session).
constexpr int kStopSignals[] = {SIGINT, SIGTERM, SIGHUP};

void on_interrupt(int) {
  g_interrupted = 1;
  for (int s : kStopSignals) std::signal(s, SIG_DFL);  // a second signal kills at once
}

struct TrainOptions {
  std::string data = "fashion-mnist";
  int64_t image_size = 32;
  int64_t base_channels = 64;
  int64_t time_dim = 256;
  bool unconditional = false;
  TrainConfig train;
  int64_t steps = 0;
  double epochs = 0;
  std::string out = "out";
  int64_t sample_every = 0;
  int64_t save_every = 1000;
  bool resume = false;
  double log_every = 5.0;
  double max_minutes = 0;  // 0 = no time limit
  DeviceOptions dev;
};

// The step a checkpoint file was saved at; -1 when it has none or is missing.
int64_t checkpoint_step(const std::string& path) {
  if (!std::filesystem::exists(path)) return -1;
  const auto meta = load_safetensors(path).metadata;
  return meta.count("step") ? metadata_int(meta, "step", path) : -1;
}

// Keeps the loss log's rows up to `step` (a resumed run rewrites what came after its checkpoint).
void truncate_loss_log(const std::string& path, int64_t step) {
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    const bool header = !line.empty() && !std::isdigit(static_cast<unsigned char>(line[0]));
    if (header || (!line.empty() && std::strtoll(line.c_str(), nullptr, 10) <= step)) kept += line + "\n";
  }
  in.close();
  write_text(path, kept.empty() ? "step,loss\n" : kept);
}

// The grid's progress lines come every `log_every` seconds, like training's.
void write_sample_grid(Trainer& trainer, const UNet& model, const Dataset& data, Device device,
                       const std::string& path, double log_every) {
  SamplerConfig sc;
  sc.kind = SamplerKind::DDPM;  // respaced, x0 clipped: robust early in training (docs/diffusion.md)
  sc.steps = std::min<int64_t>(100, trainer.config().T - 1);
  sc.guidance = model.config().num_classes > 0 ? 3.0f : 0.0f;
  std::vector<int64_t> classes;
  for (int64_t c = 0; c < model.config().num_classes; ++c) classes.push_back(c);
  const int64_t per_class = 8;
  Schedule schedule = make_schedule(trainer.config().schedule, trainer.config().T);
  trainer.with_ema_weights([&] {
    Tensor x = sample_classes(model, schedule, sc, classes, per_class, data.size, 0, device, 80,
                              [] { return g_interrupted != 0; }, log_every);
    write_png(path, image_grid(x, per_class));
  });
  std::fprintf(stderr, "wrote %s\n", path.c_str());
}

// Holds an exclusive lock on OUT/.lock while a run trains there: a second `ddpm train` on the same
// folder would interleave its saves and its loss log with this one's. The kernel drops the lock
// when the process ends, however it ends.
class RunLock {
 public:
  explicit RunLock(const std::string& dir) : fd_(::open((dir + "/.lock").c_str(), O_CREAT | O_RDWR, 0644)) {
    if (fd_ < 0 && errno == EACCES) fd_ = ::open((dir + "/.lock").c_str(), O_RDONLY);  // another user's: flock works
    DDPM_CHECK(fd_ >= 0, "train", "cannot open ", dir, "/.lock: ", std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd_);
      detail::fail("train", dir, " is in use by another `ddpm train`");
    }
  }
  ~RunLock() { ::close(fd_); }
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_;
};

// The flags a resumed run takes from its state file instead (--data may move the data: the image
// count is checked).
constexpr const char* kSavedSettings[] = {"--image-size", "--base-channels", "--time-dim", "--unconditional",
                                          "--batch",      "--lr",            "--weight-decay", "--ema-decay",
                                          "--ema-start",  "--p-uncond",      "--schedule",     "--T",
                                          "--seed"};

void run(TrainOptions& o, const CLI::App& cmd) {
  const Device device = apply_device_options(o.dev);
  DDPM_CHECK(!o.out.empty(), "train", "--out is empty");
  DDPM_CHECK(!std::filesystem::exists(o.out) || std::filesystem::is_directory(o.out), "train", "--out ", o.out,
             " is a file; the run needs a folder");
  if (o.resume) {
    DDPM_CHECK(std::filesystem::is_directory(o.out), "train", "--resume: no run in ", o.out);
    std::string ignored;
    for (const char* flag : kSavedSettings)
      if (cmd.count(flag)) ignored += std::string(ignored.empty() ? "" : ", ") + flag;
    if (!ignored.empty())
      std::fprintf(stderr, "note: a resumed run keeps its saved settings; ignored: %s\n", ignored.c_str());
  } else {
    std::filesystem::create_directories(o.out);
  }
  const RunLock lock(o.out);
  const std::string model_path = o.out + "/model.safetensors", log_path = o.out + "/loss.csv";
  // Also before a new run: a folder whose save was cut holds a run to resume, not a step-0 model.
  if (finish_interrupted_save(model_path))
    std::fprintf(stderr, "completed the save that was interrupted last time: %s\n", model_path.c_str());
  const bool have_checkpoint = std::filesystem::exists(model_path);

  std::unique_ptr<UNet> model;
  Dataset data;
  if (o.resume) {
    DDPM_CHECK(have_checkpoint, "train", "--resume: no checkpoint ", model_path);
    const std::string sp = state_path(model_path);
    DDPM_CHECK(std::filesystem::exists(sp), "train", "--resume: no training state ", sp);
    const auto meta = load_safetensors(sp).metadata;
    const bool graph = o.train.graph;  // a run option, not a saved setting
    o.train = train_config_from_state(meta, sp);
    o.train.graph = graph;
    if (cmd.count("--data")) {
      o.data = absolute_data_spec(o.data);
      std::fprintf(stderr, "note: the data from --data %s instead of the saved %s\n", o.data.c_str(),
                   metadata_value(meta, "data", sp).c_str());
    } else {
      o.data = metadata_value(meta, "data", sp);
    }
    o.image_size = metadata_int(meta, "image_size", sp);
    std::fprintf(stderr, "resuming %s at step %s (data %s, batch %ld, seed %lu; saved settings win)\n",
                 model_path.c_str(), meta.at("step").c_str(), o.data.c_str(), long(o.train.batch),
                 (unsigned long)o.train.seed);
    data = load_dataset(o.data, o.image_size);
    model = load_model(model_path, device);
  } else {
    // A step-0 checkpoint is only the untrained model a new run saves first: a retry with other
    // flags (a run that failed on its first step, say) may replace it.
    DDPM_CHECK(!have_checkpoint || (checkpoint_step(model_path) == 0 && checkpoint_step(state_path(model_path)) <= 0),
               "train", model_path, " exists: pass --resume to continue it, or choose another --out");
    o.data = absolute_data_spec(o.data);
    data = load_dataset(o.data, o.image_size);
    UNetConfig mc;
    mc.in_channels = mc.out_channels = data.channels;
    mc.base_channels = o.base_channels;
    mc.time_dim = o.time_dim;
    mc.num_classes = o.unconditional ? 0 : data.num_classes();
    Generator init = model_init_generator(o.train.seed);
    model = std::make_unique<UNet>(mc, init);
    model->to(device);
  }
  model->set_compute_dtype(o.dev.precision);
  Trainer trainer(*model, data, o.train);
  const std::map<std::string, std::string> meta{{"data", o.data}};
  // From here on a stop signal saves (the step-0 save included), and a closed pipe on stderr
  // (`ddpm train ... | head`) fails writes instead of killing the run.
  g_interrupted = 0;
  for (int s : kStopSignals) std::signal(s, on_interrupt);
  std::signal(SIGPIPE, SIG_IGN);
  if (o.resume) {
    trainer.load_state(model_path);
    truncate_loss_log(log_path, trainer.steps_done());
  } else {
    // A checkpoint of the untrained model first: it proves --out writable and the metadata
    // sound before any training, and a run stopped before its first save resumes from it.
    write_text(log_path, "step,loss\n");
    trainer.save(model_path, meta);
  }

  const int64_t steps_per_epoch = data.count() / o.train.batch;
  const double epoch_steps = std::ceil(o.epochs * double(steps_per_epoch));
  DDPM_CHECK(!cmd.count("--epochs") || epoch_steps <= kMaxSteps, "train", "--epochs ", o.epochs, " is ",
             epoch_steps, " steps, more than ", kMaxSteps);
  const int64_t total = cmd.count("--epochs") ? int64_t(epoch_steps) : o.steps;
  const UNetConfig& mc = model->config();
  // On the GPU, the settings that decide which kernels run.
  const std::string gpu = device == Device::CUDA ? std::string(o.dev.tf32 ? " tf32" : "") + " conv " + o.dev.conv : "";
  std::fprintf(stderr,
               "data %s: %ld images %ldx%ldx%ld, %ld classes | model b=%ld time_dim=%ld, %ld parameters | "
               "%s %s%s, batch %ld, %ld steps (%.2f epochs)\n",
               o.data.c_str(), long(data.count()), long(data.size), long(data.size), long(data.channels),
               long(mc.num_classes), long(mc.base_channels), long(mc.time_dim), long(model->parameter_count()),
               device_name(device), dtype_name(model->compute_dtype()), gpu.c_str(), long(o.train.batch), long(total),
               double(total) / double(steps_per_epoch));

  if (trainer.steps_done() >= total) {
    std::fprintf(stderr, "%s is at step %ld already (of %ld): nothing to train\n", model_path.c_str(),
                 long(trainer.steps_done()), long(total));
    return;
  }
  std::ofstream log(log_path, std::ios::app);
  Progress progress("step", total, trainer.steps_done(), double(o.train.batch), "img", o.log_every);
  double loss_sum = 0;
  int64_t loss_count = 0;
  const auto started = std::chrono::steady_clock::now();
  auto time_is_up = [&] {
    return o.max_minutes > 0 &&
           std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() >= 60.0 * o.max_minutes;
  };
  // Each step's loss stays on the device until the log needs it (a progress line, a checkpoint, the
  // end, or every kLossBatch steps): reading one waits for its step, so reading every step would
  // keep the host from queuing the next step while the GPU runs this one.
  constexpr size_t kLossBatch = 32;
  std::vector<std::pair<int64_t, Tensor>> pending;
  int64_t saved_step = trainer.steps_done();  // the checkpoint on disk
  const auto kept = [&] {
    return "the checkpoint of step " + std::to_string(saved_step) + " in " + o.out + " is kept";
  };
  const auto save = [&] {
    trainer.save(model_path, meta);  // its errors say what stays on disk
    saved_step = trainer.steps_done();
  };
  auto read_losses = [&] {
    for (const auto& [step, loss] : pending) {
      const float v = loss.item();
      // Nothing after a diverged step is saved: the last checkpoint stays the run's state.
      DDPM_CHECK(std::isfinite(v), "train", "the loss of step ", step, " is ", v,
                 ": training diverged (a smaller --lr?); ", kept());
      log << step << ',' << v << '\n';
      loss_sum += v;
      ++loss_count;
    }
    pending.clear();
  };
  bool timed_out = false;
  while (trainer.steps_done() < total && !g_interrupted && !(timed_out = time_is_up())) {
    Tensor loss = trainer.step();
    const int64_t step = trainer.steps_done();
    pending.emplace_back(step, loss);
    if (pending.size() >= kLossBatch) read_losses();
    progress.update(step, [&] {
      read_losses();
      char buf[48];
      std::snprintf(buf, sizeof buf, "loss %.4f", loss_sum / double(std::max<int64_t>(loss_count, 1)));
      loss_sum = 0;
      loss_count = 0;
      return std::string(buf);
    });
    if (o.sample_every > 0 && step % o.sample_every == 0) {
      try {
        write_sample_grid(trainer, *model, data, device, o.out + "/samples_" + std::to_string(step) + ".png",
                          o.log_every);
      } catch (const Error& e) {  // a picture is not worth the run: say so and go on
        std::fprintf(stderr, "warning: no sample grid at step %ld: %s\n", long(step), e.what());
      }
    }
    if (o.save_every > 0 && step % o.save_every == 0 && step < total) {
      read_losses();  // the log holds every step up to the checkpoint, on disk before it
      log.flush();
      DDPM_CHECK(log.good(), "train", "cannot write ", log_path);
      save();
    }
  }
  read_losses();
  log.flush();
  DDPM_CHECK(log.good(), "train", "cannot write ", log_path);
  save();  // a first signal during it is noted, not fatal
  for (int s : kStopSignals) std::signal(s, SIG_DFL);
  if (g_interrupted && trainer.steps_done() < total) {
    std::fprintf(stderr, "interrupted: saved %s at step %ld; continue with: ddpm train --resume --out %s --steps %ld\n",
                 model_path.c_str(), long(trainer.steps_done()), o.out.c_str(), long(total));
    throw CLI::RuntimeError(130);
  }
  if (timed_out)
    std::fprintf(stderr,
                 "--max-minutes %g reached at step %ld of %ld; "
                 "continue with: ddpm train --resume --out %s --steps %ld\n",
                 o.max_minutes, long(trainer.steps_done()), long(total), o.out.c_str(), long(total));
  std::fprintf(stderr, "done: %s (step %ld), loss log %s\n", model_path.c_str(), long(trainer.steps_done()),
               log_path.c_str());
}

// A new run's folder, made by this call, goes again if the run fails before its first checkpoint:
// a typo in --data should not leave a folder (and its lock) behind.
void run_removing_new_folder(TrainOptions& o, const CLI::App& cmd) {
  const bool made = !o.resume && !o.out.empty() && !std::filesystem::exists(o.out);
  try {
    run(o, cmd);
  } catch (...) {
    std::error_code ec;
    if (made && !std::filesystem::exists(o.out + "/model.safetensors", ec)) std::filesystem::remove_all(o.out, ec);
    throw;
  }
}

}  // namespace

void add_train(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* cmd = app.add_subcommand("train", "Train a class-conditional DDPM (the seed's recipe)");
  cmd->add_option("--data", o->data, "fashion-mnist[:DIR], cifar10:DIR or folder:DIR")->capture_default_str();
  cmd->add_option("--image-size", o->image_size, "image side, a multiple of 8")
      ->check(positive())
      ->capture_default_str();
  cmd->add_option("--base-channels", o->base_channels, "U-Net width b (64 = the seed)")
      ->check(in_range(1, double(UNetConfig::kMaxWidth)))
      ->capture_default_str();
  cmd->add_option("--time-dim", o->time_dim, "timestep embedding size (even)")
      ->check(in_range(2, double(UNetConfig::kMaxTimeDim)))
      ->capture_default_str();
  cmd->add_flag("--unconditional", o->unconditional, "ignore the labels (no classifier-free guidance)");
  cmd->add_option("--batch", o->train.batch, "images per step")->check(positive())->capture_default_str();
  auto* steps = cmd->add_option("--steps", o->steps, "total training steps")->check(in_range(1, kMaxSteps));
  auto* epochs = cmd->add_option("--epochs", o->epochs, "total epochs instead of --steps")
                     ->check(in_range(1e-6, 1e6));
  steps->excludes(epochs);
  cmd->add_option("--lr", o->train.adamw.lr, "AdamW learning rate")->check(positive())->capture_default_str();
  cmd->add_option("--weight-decay", o->train.adamw.weight_decay, "AdamW weight decay")
      ->check(non_negative())
      ->capture_default_str();
  cmd->add_option("--ema-decay", o->train.ema_decay, "EMA decay")->check(in_range(0.0, 1.0))->capture_default_str();
  cmd->add_option("--ema-start", o->train.ema_start, "steps during which the EMA just copies the weights")
      ->check(in_range(0, kMaxSteps))
      ->capture_default_str();
  cmd->add_option("--p-uncond", o->train.p_uncond, "probability of a label-free batch (for guidance)")
      ->check(in_range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--schedule", o->train.schedule, "noise schedule")
      ->transform(named(std::map<std::string, ScheduleKind>{{"linear", ScheduleKind::Linear},
                                                             {"cosine", ScheduleKind::Cosine}}))
      ->default_str("linear");
  cmd->add_option("--T", o->train.T, "diffusion timesteps")->check(in_range(2, double(kMaxT)))->capture_default_str();
  cmd->add_option("--seed", o->train.seed, "random seed (weights, data order, noise)")
      ->check(seed_check())
      ->capture_default_str();
  cmd->add_option("--out", o->out, "output folder: model.safetensors, its .state file, loss.csv, sample grids")
      ->capture_default_str();
  cmd->add_option("--sample-every", o->sample_every, "write a sample grid every N steps (0 = never)")
      ->check(non_negative())
      ->capture_default_str();
  cmd->add_option("--save-every", o->save_every, "checkpoint every N steps (0 = only at the end)")
      ->check(non_negative())
      ->capture_default_str();
  cmd->add_flag("--resume", o->resume, "continue the run in --out with its saved settings");
  cmd->add_flag("--graph", o->train.graph,
                "GPU: record the network's forward and backward once as a CUDA graph and replay it each step "
                "(the same numbers, fewer launches; not yet run on hardware)");
  cmd->add_option("--max-minutes", o->max_minutes,
                  "stop after this many minutes of training (saved like a finished run; --resume continues; "
                  "default: no limit)")
      ->check(positive());
  cmd->add_option("--log-every", o->log_every, "seconds between progress lines")
      ->check(positive())
      ->capture_default_str();
  add_device_options(cmd, o->dev);
  cmd->callback([o, cmd] {
    if (!cmd->count("--steps") && !cmd->count("--epochs"))
      throw CLI::RequiredError("train: one of --steps or --epochs");
    run_removing_new_folder(*o, *cmd);
  });
}

}  // namespace ddpm::cli
