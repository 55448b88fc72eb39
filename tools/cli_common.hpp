// Pieces shared by the `ddpm` subcommands: devices and threads, checkpoints, the sampling flags,
// class lists, and the progress line of long work.
#pragma once
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "diffusion/sampler.hpp"
#include "diffusion/schedule.hpp"
#include "model/unet.hpp"
#include "tools/checks.hpp"

namespace ddpm::cli {

constexpr double kMaxThreads = 1024;  // --threads: more only stalls (or crashes) the thread pool
constexpr double kMaxSteps = 1e12;    // training steps: past any run, and clear of int64 overflow

// Fails unless the two paths name different files (through ".", "..", links): one output would
// silently replace the other, or an output its own input.
void check_distinct(const std::string& a, const std::string& b);

// The committed Fashion-MNIST classifier, relative to the repository root.
constexpr const char* kClassifierAsset = "assets/classifier.safetensors";
// `path` if it exists; else, for a relative path, the same path under the repository that holds
// this binary (build/tools/ddpm -> the repository root), so that the default classifier is found
// from any working directory.
std::string asset_path(const std::string& path);

// Where and how a command runs: --device, --threads (CPU), --tf32 and --conv (GPU;
// engine/gpu_settings.hpp), and for the commands that run the U-Net --precision.
struct DeviceOptions {
  std::string device = "auto";  // "auto" (CUDA when built and present), "cpu" or "cuda"
  int64_t threads = 0;          // OpenMP threads for the CPU kernels; 0 = all cores
  bool tf32 = false;
  std::string conv = "cudnn";   // "cudnn", "ours", "measured" or "auto"
  DType precision = DType::F32;  // f32 or bf16, the U-Net's compute dtype (UNet::set_compute_dtype)
};
void add_device_options(CLI::App* cmd, DeviceOptions& o, bool with_precision = true);
// "cpu", "cuda" or "auto" (CUDA when built and present); a clear error when CUDA is asked for and
// cannot run.
Device parse_device(const std::string& name);
// Applies the threads and GPU settings and returns the device, with a clear error for bad choices.
Device apply_device_options(const DeviceOptions& o);

// A trained model and what its checkpoint says about it.
struct LoadedModel {
  std::unique_ptr<UNet> model;
  std::string path;
  int64_t image_size = 0;
  ScheduleKind schedule = ScheduleKind::Linear;  // the training schedule
  int64_t T = 1000;
  std::vector<std::string> class_names;  // empty when unknown
  bool ema = false;                      // EMA weights loaded from the state file
};
// The model file of `path`: `path` itself, or a training folder's model.safetensors.
std::string model_file(const std::string& path);
// `path` is a model file or a training folder holding model.safetensors. image_size = 0 takes it
// from the metadata (PyTorch checkpoints have none: then the flag is required). The model runs
// on `device` with activations in `compute` (f32 or bf16).
LoadedModel load_checkpoint(const std::string& path, Device device, DType compute, int64_t image_size, bool use_ema);
// Fails when `out` would replace the model file or the training state it came from.
void check_not_checkpoint(const std::string& out, const LoadedModel& m);

// The flags of `sample` and `trace`.
struct SamplingOptions {
  std::string checkpoint = "out";
  std::string sampler = "ddpm";
  int64_t steps = 0;
  float eta = 0.0f;
  std::string schedule;  // empty: the training schedule
  float guidance = 3.0f;
  bool no_clip = false;
  bool no_graph = false;
  uint64_t seed = 0;
  int64_t image_size = 0;
  bool no_ema = false;
  int64_t batch = 64;
  DeviceOptions dev;
};
void add_sampling_options(CLI::App* cmd, SamplingOptions& o);
SamplerConfig sampler_config(const SamplingOptions& o);
Schedule sampling_schedule(const SamplingOptions& o, const LoadedModel& m);

// "all" or a comma-separated list of class ids in [0, num_classes).
std::vector<int64_t> parse_classes(const std::string& spec, int64_t num_classes);

// Samples per_class images of each class (or per_class unconditional images when `classes` is
// empty), `batch` at a time, in class order; [N, H, W, C] on the CPU. Reports progress, a line
// at most every `progress_every` seconds. When `stop` says so after a step, throws Error (a stop
// signal need not wait for the whole chain).
Tensor sample_classes(const UNet& model, const Schedule& schedule, const SamplerConfig& config,
                      const std::vector<int64_t>& classes, int64_t per_class, int64_t image_size, uint64_t seed,
                      Device device, int64_t batch, const std::function<bool()>& stop = {},
                      double progress_every = 5.0);

// A status line on stderr at most every `interval` seconds (and at the end):
// "<what> done/total  <extra>  <rate>  ETA 3m20s".
class Progress {
 public:
  Progress(std::string what, int64_t total, int64_t start = 0, double items_per_step = 1.0,
           std::string item_name = "", double interval_s = 5.0);
  // True when a line was printed; `extra` is evaluated only then.
  bool update(int64_t done, const std::function<std::string()>& extra = {});

 private:
  using Clock = std::chrono::steady_clock;
  std::string what_, item_name_;
  int64_t total_, start_;
  double items_per_step_, interval_s_;
  Clock::time_point begin_, last_;
};

std::string format_duration(double seconds);  // "1h02m", "3m20s", "45s"

}  // namespace ddpm::cli
