// Shared by the benchmarks: the record header (device, date, commit), main() of the per-kernel
// GPU benchmarks (bench_kernels, bench_conv), and for the end-to-end ones (bench_train,
// bench_sample) the seed model's setups and their flags.
#pragma once
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffusion/data.hpp"
#include "engine/gpu_settings.hpp"
#include "engine/rng.hpp"
#include "engine/storage.hpp"
#include "model/unet.hpp"
#include "tools/checks.hpp"
#ifdef DDPM_HAVE_CUDA
#include <cuda_runtime.h>

#include "kernels/cuda_context.hpp"
#endif

namespace ddpm::bench {

inline std::string utc_now() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// The GPU's name, or "cpu".
inline std::string device_label(Device device) {
#ifdef DDPM_HAVE_CUDA
  if (device == Device::CUDA) {
    cudaDeviceProp prop{};
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    return prop.name;
  }
#endif
  (void)device;
  return "cpu";
}

inline void synchronize(Device device) {
#ifdef DDPM_HAVE_CUDA
  if (device == Device::CUDA) ddpm::cuda::synchronize();
#endif
  (void)device;
}

#ifdef DDPM_HAVE_CUDA
constexpr size_t kFlushBytes = size_t(256) << 20;

// The median and the fastest of a Timer's runs.
struct Stat {
  double median_ms, min_ms;
};

// Times fn on the engine stream with CUDA events: 3 warm-up calls, then `runs` timed ones, each
// after a 256 MB memset that flushes the L2 (50-60 MB) so inputs come from HBM as in a real step.
class Timer {
 public:
  explicit Timer(int runs) : runs_(runs), flush_(Tensor::empty({int64_t(kFlushBytes / 4)}, DType::F32, Device::CUDA)) {
    CUDA_CHECK(cudaEventCreate(&start_));
    CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~Timer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }

  Stat time(const std::function<void()>& fn) {
    for (int i = 0; i < 3; ++i) fn();
    ddpm::cuda::synchronize();
    std::vector<double> ms;
    for (int r = 0; r < runs_; ++r) {
      CUDA_CHECK(cudaMemsetAsync(flush_.raw(), r & 0xff, kFlushBytes, ddpm::cuda::stream()));
      CUDA_CHECK(cudaEventRecord(start_, ddpm::cuda::stream()));
      fn();
      CUDA_CHECK(cudaEventRecord(stop_, ddpm::cuda::stream()));
      CUDA_CHECK(cudaEventSynchronize(stop_));
      float t = 0;
      CUDA_CHECK(cudaEventElapsedTime(&t, start_, stop_));
      ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    size_t h = ms.size() / 2;
    return {ms.size() % 2 ? ms[h] : 0.5 * (ms[h - 1] + ms[h]), ms.front()};
  }

 private:
  int runs_;
  Tensor flush_;
  cudaEvent_t start_, stop_;
};
#endif

// The flags of the per-kernel GPU benchmarks.
struct KernelBenchOptions {
  std::string json_path, commit = "unknown", filter;
  DType precision = DType::F32;
  bool tf32 = false;  // f32 matrix products, convolutions and attention on TF32 tensor cores
  std::string conv = "cudnn";  // the convolution backend (engine/gpu_settings.hpp)
  int runs = 20;
};

// The largest step, run, image or batch count a flag takes: far past any benchmark, and clear of
// overflow in the products made from them.
constexpr double kMaxCount = 1e6;

// main() of a per-kernel GPU benchmark: parses --json, --commit (default $DDPM_COMMIT), --runs and,
// where `filter_help` / `precision_help` are given, --filter / --precision and --tf32; then calls
// `run` if a GPU is present. Without one, or without the CUDA backend (`run` null), it says so and
// exits 0: CI runs these without a GPU.
inline int kernel_bench_main(const char* name, int argc, char** argv, int default_runs, const char* filter_help,
                             const char* precision_help, const std::function<int(const KernelBenchOptions&)>& run) {
  KernelBenchOptions o;
  o.runs = default_runs;
  if (const char* c = std::getenv("DDPM_COMMIT")) o.commit = c;
  CLI::App app{std::string(name) + ": GPU kernel timings at the seed U-Net's shapes"};
  app.add_option("--json", o.json_path, "write the records here");
  app.add_option("--commit", o.commit, "commit to record")->capture_default_str();
  app.add_option("--runs", o.runs, "timed runs per case (the median is kept)")
      ->check(cli::in_range(1, kMaxCount))
      ->capture_default_str();
  if (filter_help) app.add_option("--filter", o.filter, filter_help);
  if (precision_help)
    app.add_option("--precision", o.precision, precision_help)
        ->transform(cli::named(precision_names()))
        ->default_str("f32");
  if (precision_help) {
    app.add_flag("--tf32", o.tf32, "f32 data on TF32 tensor cores (GEMMs, convolutions, attention)");
    app.add_option("--conv", o.conv, "convolutions: cudnn, ours (f32 data needs --tf32), measured or auto")
        ->check(CLI::IsMember(conv_impl_names()))
        ->capture_default_str();
  }
  CLI11_PARSE(app, argc, argv);
  if (!run) {
    std::printf("%s: this build has no CUDA backend; nothing was timed.\n", name);
    return 0;
  }
  if (!cuda_available()) {
    std::printf("%s: no CUDA device is present; nothing was timed.\n", name);
    return 0;
  }
  try {
    if (!o.json_path.empty()) cli::check_output_file(o.json_path, true);  // before minutes of timing
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 1;
  }
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// One image shape and batch of the seed model: SIZExCHANNELSxBATCH, e.g. 64x3x64.
struct Setup {
  int64_t size = 0, channels = 0, batch = 0;
  std::string name() const {
    return std::to_string(size) + "x" + std::to_string(size) + "x" + std::to_string(channels) + " b" +
           std::to_string(batch);
  }
};

// The flags bench_train and bench_sample share.
struct E2EOptions {
  std::string device = "cuda";
  std::string setups = "64x3x64,32x1x128";
  int64_t steps = 20, warmup = 3, base = 64;
  bool tf32 = false;
  std::string conv = "cudnn";
  DType precision = DType::F32;
  std::string json, commit = "unknown";

  void add_to(CLI::App& app) {
    app.add_option("--device", device, "cuda or cpu")->check(CLI::IsMember({"cuda", "cpu"}))->capture_default_str();
    app.add_option("--setups", setups, "SIZExCHANNELSxBATCH, comma-separated")->capture_default_str();
    app.add_option("--steps", steps, "timed steps")->check(cli::in_range(1, kMaxCount))->capture_default_str();
    app.add_option("--warmup", warmup, "untimed steps first")->check(cli::in_range(0, kMaxCount))->capture_default_str();
    app.add_option("--base", base, "U-Net width b (64 = the seed)")
        ->check(cli::in_range(1, double(UNetConfig::kMaxWidth)))
        ->capture_default_str();
    app.add_flag("--tf32", tf32, "TF32 tensor cores for f32 convolutions, matrix products and attention");
    app.add_option("--conv", conv,
                   "cudnn, ours (f32 data needs --tf32), measured (per shape the one measured faster) or auto "
                   "(per shape the faster, timed)")
        ->check(CLI::IsMember(conv_impl_names()))
        ->capture_default_str();
    app.add_option("--precision", precision, "f32, or bf16 mixed precision (UNet::set_compute_dtype)")
        ->transform(cli::named(precision_names()))
        ->default_str("f32");
    app.add_option("--json", json, "write the records here");
    app.add_option("--commit", commit, "commit to record")->capture_default_str();
  }

  // Applies the GPU settings and starts the record file `doc`; false (after saying so) when the
  // device is CUDA but none is present.
  bool start(const char* tool, Device& dev, nlohmann::json& doc) const {
    if (!json.empty()) cli::check_output_file(json, true);  // before minutes of timing
    set_gpu_settings({tf32, parse_conv_impl(conv), precision == DType::BF16});
    dev = device == "cuda" ? Device::CUDA : Device::CPU;
    if (dev == Device::CUDA && !cuda_available()) {
      std::printf("%s: no CUDA device (or no CUDA backend in this build); nothing was timed.\n", tool);
      return false;
    }
    doc = header(tool, dev);
    doc["records"] = nlohmann::json::array();
    return true;
  }

  // --setups, checked field by field (ddpm::Error names the item and what is wrong with it).
  std::vector<Setup> parsed_setups() const {
    std::vector<Setup> out;
    std::stringstream list(setups);
    for (std::string item; std::getline(list, item, ',');) {
      Setup s;
      char x1 = 0, x2 = 0;
      std::stringstream one(item);
      one >> s.size >> x1 >> s.channels >> x2 >> s.batch;
      DDPM_CHECK(one && x1 == 'x' && x2 == 'x' && (one >> std::ws).eof(), "--setups", "'", item,
                 "' is not SIZExCHANNELSxBATCH, e.g. 64x3x64");
      DDPM_CHECK(s.size > 0 && s.size % 8 == 0 && s.size <= 4096, "--setups", "'", item, "': SIZE ", s.size,
                 " is not a multiple of 8 in [8, 4096]");
      DDPM_CHECK(s.channels > 0 && s.channels <= UNetConfig::kMaxWidth, "--setups", "'", item, "': CHANNELS ",
                 s.channels, " is not in [1, ", UNetConfig::kMaxWidth, "]");
      DDPM_CHECK(s.batch > 0 && s.batch <= kMaxCount, "--setups", "'", item, "': BATCH ", s.batch, " is not in [1, ",
                 kMaxCount, "]");
      out.push_back(s);
    }
    DDPM_CHECK(!out.empty(), "--setups", "no setups given");
    return out;
  }

  // The record file's header: what ran where, when, and with which settings.
  nlohmann::json header(const char* tool, Device dev) const {
    return {{"tool", tool}, {"device", device_label(dev)}, {"date", utc_now()}, {"commit", commit},
            {"tf32", tf32},  {"conv", conv},               {"base", base},      {"steps", steps},
            {"warmup", warmup}, {"precision", dtype_name(precision)}};
  }
};

// The seed configuration (b = base, time_dim 256, 10 classes, 4 heads) for a setup's images.
inline UNetConfig seed_config(const Setup& s, int64_t base) {
  UNetConfig c;
  c.in_channels = c.out_channels = s.channels;
  c.base_channels = base;
  c.time_dim = 256;
  c.num_classes = 10;
  c.heads = 4;
  return c;
}

// `count` images of random pixels and labels: the speed of a step does not depend on them.
inline Dataset random_dataset(const Setup& s, int64_t count, Generator& gen) {
  Dataset d;
  d.name = "random";
  d.size = s.size;
  d.channels = s.channels;
  for (float u : Tensor::rand({count * s.size * s.size * s.channels}, gen).to_floats())
    d.pixels.push_back(uint8_t(u * 255.0f));
  for (float u : Tensor::rand({count}, gen).to_floats()) d.labels.push_back(int64_t(u * 9.999f));
  for (int k = 0; k < 10; ++k) d.class_names.push_back("class " + std::to_string(k));
  return d;
}

// Replaces the record file whole (a run cut short while writing keeps the previous version).
inline void write_json(const std::string& path, const nlohmann::json& doc) {
  if (!path.empty()) cli::write_text(path, doc.dump(1) + "\n");
}

// The body of bench_train's and bench_sample's main(), after parsing: checks --setups and --json,
// starts the record file (`start` adds the tool's own settings to it and prints the header), then
// `measure` returns each setup's record. The file is rewritten after every setup, so a later
// failure or a timeout keeps what was measured, and an error names the setup it hit.
inline int run_setups(const char* tool, const E2EOptions& o, const std::function<void(Device, nlohmann::json&)>& start,
                      const std::function<nlohmann::json(const Setup&, Device)>& measure) {
  std::string current;
  try {
    const std::vector<Setup> setups = o.parsed_setups();
    Device dev;
    nlohmann::json doc;
    if (!o.start(tool, dev, doc)) return 0;
    start(dev, doc);
    for (const Setup& s : setups) {
      current = s.name();
      doc["records"].push_back(measure(s, dev));
      write_json(o.json, doc);
    }
    if (!o.json.empty()) std::printf("wrote %s\n", o.json.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s%s\n", tool, current.empty() ? "" : ("setup " + current + ": ").c_str(), e.what());
    return 1;
  }
}

}  // namespace ddpm::bench
