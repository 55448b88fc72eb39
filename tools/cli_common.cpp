#include "tools/cli_common.hpp"

#include <omp.h>

#include <unistd.h>

#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "diffusion/trainer.hpp"
#include "engine/gpu_settings.hpp"
#include "model/checkpoint.hpp"

namespace ddpm::cli {

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::CPU;
  if (name == "auto") return cuda_available() ? Device::CUDA : Device::CPU;
  DDPM_CHECK(name == "cuda", "device", "unknown device '", name, "' (expected auto, cpu or cuda)");
  DDPM_CHECK(cuda_available(), "device", "--device cuda: ",
             cuda_built ? "no GPU is present" : "this build has no CUDA backend (rebuild with -DDDPM_CUDA=ON)");
  return Device::CUDA;
}


void check_not_checkpoint(const std::string& out, const LoadedModel& m) {
  check_distinct(out, m.path);
  check_distinct(out, state_path(m.path));
}

void check_distinct(const std::string& a, const std::string& b) {
  namespace fs = std::filesystem;
  std::error_code ea, eb, eq;
  const fs::path ca = fs::weakly_canonical(fs::absolute(a), ea), cb = fs::weakly_canonical(fs::absolute(b), eb);
  DDPM_CHECK((ea || eb || ca != cb) && !fs::equivalent(a, b, eq), "output", a, " and ", b,
             " are the same file");
}

void add_device_options(CLI::App* cmd, DeviceOptions& o, bool with_precision) {
  cmd->add_option("--device", o.device, "auto (CUDA when present), cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  cmd->add_option("--threads", o.threads, "CPU threads (0 = all cores)")
      ->check(in_range(0, kMaxThreads))
      ->capture_default_str();
  cmd->add_flag("--tf32", o.tf32,
                "GPU: f32 convolutions, matrix products and attention on TF32 tensor cores (~1e-3 error)");
  cmd->add_option("--conv", o.conv,
                  "GPU convolutions: cudnn, ours (f32 data needs --tf32), measured (per shape the one measured "
                  "faster on an H200: a fixed rule), or auto (per shape the faster, timed on first use; runs may "
                  "then differ in the last bits)")
      ->check(CLI::IsMember(conv_impl_names()))
      ->capture_default_str();
  if (with_precision)
    cmd->add_option("--precision", o.precision,
                    "f32, or bf16: mixed precision (bf16 activations and weight copies, f32 master weights, "
                    "optimizer and loss; pays on the GPU, slower on the CPU)")
        ->transform(named(precision_names()))
        ->default_str("f32");
}

Device apply_device_options(const DeviceOptions& o) {
  DDPM_CHECK(o.threads >= 0, "threads", "--threads must be >= 0, got ", o.threads);
  if (o.threads > 0) omp_set_num_threads(int(o.threads));
  set_gpu_settings({o.tf32, parse_conv_impl(o.conv), o.precision == DType::BF16});
  return parse_device(o.device);
}

std::string asset_path(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(path) || fs::path(path).is_absolute()) return path;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return path;
  for (fs::path dir = exe.parent_path(); !dir.empty() && dir != dir.root_path(); dir = dir.parent_path())
    if (fs::exists(dir / path)) return (dir / path).string();
  return path;
}

std::string model_file(const std::string& path) {
  const std::string file = std::filesystem::is_directory(path) ? path + "/model.safetensors" : path;
  DDPM_CHECK(std::filesystem::exists(file), "checkpoint", file, ": file not found");
  return file;  // load_safetensors refuses what is not a regular file
}

LoadedModel load_checkpoint(const std::string& path, Device device, DType compute, int64_t image_size, bool use_ema) {
  LoadedModel m;
  m.path = model_file(path);
  const auto meta = load_safetensors(m.path).metadata;
  m.model = load_model(m.path, device);
  m.model->set_compute_dtype(compute);
  auto get = [&](const char* key) { return meta.count(key) ? meta.at(key) : std::string(); };
  m.image_size = image_size;
  if (m.image_size == 0) {
    DDPM_CHECK(!get("image_size").empty(), "checkpoint", m.path, ": no image_size in the metadata; pass --image-size");
    m.image_size = metadata_int(meta, "image_size", m.path);
  } else if (!get("image_size").empty() && metadata_int(meta, "image_size", m.path) != m.image_size) {
    // Allowed (the network is convolutional), but rarely meant: its images were another size.
    std::fprintf(stderr, "note: %s was trained on %sx%s images; sampling at %ldx%ld as --image-size asks\n",
                 m.path.c_str(), get("image_size").c_str(), get("image_size").c_str(), long(m.image_size),
                 long(m.image_size));
  }
  if (!get("schedule").empty()) m.schedule = parse_schedule(get("schedule"));
  if (!get("T").empty()) m.T = metadata_int(meta, "T", m.path);
  if (!get("class_names").empty()) m.class_names = split_names(get("class_names"), m.path);
  m.ema = use_ema && load_ema_weights(*m.model, m.path);
  return m;
}

void add_sampling_options(CLI::App* cmd, SamplingOptions& o) {
  cmd->add_option("--checkpoint", o.checkpoint, "model file, or the training folder holding model.safetensors")
      ->capture_default_str();
  cmd->add_option("--sampler", o.sampler, "ddpm (ancestral, the seed's) or ddim")
      ->check(CLI::IsMember({"ddpm", "ddim"}))
      ->capture_default_str();
  cmd->add_option("--steps", o.steps, "timesteps to visit (0 = all T-1; fewer respaces the schedule)")
      ->check(non_negative())
      ->capture_default_str();
  cmd->add_option("--eta", o.eta, "DDIM noise: 0 deterministic, 1 like DDPM")
      ->check(non_negative())
      ->capture_default_str();
  cmd->add_option("--schedule", o.schedule, "linear or cosine (default: the one the model was trained with)")
      ->check(CLI::IsMember({"linear", "cosine"}));
  cmd->add_option("--guidance", o.guidance, "classifier-free guidance scale s (0 = conditional only)")
      ->check(non_negative())
      ->capture_default_str();
  cmd->add_flag("--no-clip", o.no_clip,
                "do not clamp the predicted x0 to [-1, 1] at each step (with ddpm: exactly the seed's loop)");
  cmd->add_flag("--no-graph", o.no_graph,
                "GPU: launch the network's kernels one by one instead of replaying them as a CUDA graph");
  cmd->add_option("--seed", o.seed, "random seed")->check(seed_check())->capture_default_str();
  cmd->add_option("--image-size", o.image_size, "image side, a multiple of 8 (0: the checkpoint's)")
      ->check(in_range(0, 4096));
  cmd->add_flag("--no-ema", o.no_ema, "use the trained weights, not their EMA");
  cmd->add_option("--batch", o.batch,
                  "images sampled at once (with guidance a network call runs twice as many: both predictions)")
      ->check(positive())
      ->capture_default_str();
  add_device_options(cmd, o.dev);
}

SamplerConfig sampler_config(const SamplingOptions& o) {
  SamplerConfig c;
  c.kind = parse_sampler(o.sampler);
  c.steps = o.steps;
  c.eta = o.eta;
  c.guidance = o.guidance;
  c.clip_x0 = !o.no_clip;
  c.graph = !o.no_graph;
  return c;
}

Schedule sampling_schedule(const SamplingOptions& o, const LoadedModel& m) {
  return make_schedule(o.schedule.empty() ? m.schedule : parse_schedule(o.schedule), m.T);
}

std::vector<int64_t> parse_classes(const std::string& spec, int64_t num_classes) {
  std::vector<int64_t> out;
  if (spec == "all") {
    for (int64_t c = 0; c < num_classes; ++c) out.push_back(c);
    return out;
  }
  std::stringstream s(spec);
  std::string item;
  while (std::getline(s, item, ',')) {
    size_t used = 0;
    int64_t c = -1;
    try {
      c = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || item.empty())
      throw CLI::ValidationError("--classes", "'" + item + "' is not a class id (use e.g. 0,3,7 or all)");
    if (c < 0 || c >= num_classes)
      throw CLI::ValidationError("--classes", "class " + item + " is out of range [0, " +
                                                  std::to_string(num_classes) + ")");
    out.push_back(c);
  }
  if (out.empty()) throw CLI::ValidationError("--classes", "no classes given");
  return out;
}

Tensor sample_classes(const UNet& model, const Schedule& schedule, const SamplerConfig& config,
                      const std::vector<int64_t>& classes, int64_t per_class, int64_t image_size, uint64_t seed,
                      Device device, int64_t batch, const std::function<bool()>& stop, double progress_every) {
  std::vector<int64_t> labels;
  for (int64_t c : classes) labels.insert(labels.end(), size_t(per_class), c);
  const int64_t total = classes.empty() ? per_class : int64_t(labels.size());
  const int64_t steps = int64_t(sampler_plan(schedule, config).size());
  const int64_t chunks = (total + batch - 1) / batch;
  Generator gen(seed);
  Progress progress("sample", chunks * steps, 0, 1.0, "", progress_every);
  std::vector<float> images;
  Shape shape;
  for (int64_t k = 0; k < chunks; ++k) {
    const int64_t begin = k * batch, n = std::min(batch, total - begin);
    Tensor y = classes.empty() ? Tensor()
                               : Tensor::from_ints(std::vector<int64_t>(labels.begin() + begin,
                                                                        labels.begin() + begin + n),
                                                   {n});
    SampleHooks hooks;
    hooks.progress = [&](int64_t done, int64_t) {
      progress.update(k * steps + done);
      DDPM_CHECK(!stop || !stop(), "sample", "stopped after step ", done, " of ", steps);
    };
    Tensor x = sample(model, schedule, config, y, n, image_size, gen, device, hooks);
    std::vector<float> v = x.to_floats();
    images.insert(images.end(), v.begin(), v.end());
    shape = x.shape();
  }
  shape[0] = total;
  return Tensor::from_floats(images, shape);
}

Progress::Progress(std::string what, int64_t total, int64_t start, double items_per_step, std::string item_name,
                   double interval_s)
    : what_(std::move(what)),
      item_name_(std::move(item_name)),
      total_(total),
      start_(start),
      items_per_step_(items_per_step),
      interval_s_(interval_s),
      begin_(Clock::now()),
      last_(begin_) {}

bool Progress::update(int64_t done, const std::function<std::string()>& extra) {
  const auto now = Clock::now();
  if (done < total_ && std::chrono::duration<double>(now - last_).count() < interval_s_) return false;
  last_ = now;
  const double elapsed = std::chrono::duration<double>(now - begin_).count();
  const double rate = elapsed > 0 ? double(done - start_) / elapsed : 0.0;
  std::string line = what_ + " " + std::to_string(done) + "/" + std::to_string(total_);
  if (extra) line += "  " + extra();
  char buf[96];
  if (!item_name_.empty()) {
    std::snprintf(buf, sizeof buf, "  %.1f %s/s", rate * items_per_step_, item_name_.c_str());
    line += buf;
  } else {
    std::snprintf(buf, sizeof buf, "  %.2f steps/s", rate);
    line += buf;
  }
  line += done < total_ && rate > 0 ? "  ETA " + format_duration(double(total_ - done) / rate)
                                    : "  " + format_duration(elapsed);
  std::fprintf(stderr, "%s\n", line.c_str());
  return true;
}

std::string format_duration(double seconds) {
  const int64_t s = std::llround(seconds);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", long(s / 3600), long(s % 3600 / 60));
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", long(s / 60), long(s % 60));
  else std::snprintf(buf, sizeof buf, "%lds", long(s));
  return buf;
}

}  // namespace ddpm::cli
