// Helpers of the diffusion, data and CLI tests: a temporary folder, a tiny U-Net configuration,
// a small synthetic data set with structure to learn, and writers of the data file formats.
#pragma once
#include <zlib.h>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "diffusion/data.hpp"
#include "diffusion/sampler.hpp"
#include "diffusion/trainer.hpp"
#include "helpers.hpp"
#include "model/unet.hpp"

namespace ddpm::test {

// A fresh folder under the system's temp dir, removed with everything in it at scope exit.
struct TempDir {
  std::filesystem::path path;
  TempDir() : path(std::filesystem::temp_directory_path() / ("ddpm_test_" + std::to_string(fresh_seed()))) {
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// What a program run by run_program did: its exit code and its stdout and stderr together.
struct Run {
  int code;
  std::string output;
};

// Runs `program args` (optionally under a prefix such as `timeout`) in the shell, its output kept
// in dir; the output goes into the test's report.
inline Run run_program(const TempDir& dir, const std::string& program, const std::string& args,
                       const std::string& prefix = "") {
  const std::string log = dir / "program_output.txt";
  const std::string cmd = prefix + " " + program + " " + args + " > " + log + " 2>&1";
  const int status = std::system(cmd.c_str());
  std::ifstream in(log);
  std::stringstream s;
  s << in.rdbuf();
  INFO(program << " " << args << "\n" << s.str());
  REQUIRE(WIFEXITED(status));
  return {WEXITSTATUS(status), s.str()};
}

// The smallest U-Net worth testing: 1 channel, b = 4, time_dim 8 (any image side multiple of 8).
inline UNetConfig tiny_config(int64_t classes) {
  UNetConfig c;
  c.in_channels = c.out_channels = 1;
  c.base_channels = 4;
  c.time_dim = 8;
  c.num_classes = classes;
  return c;
}

// n 8x8 grey images of two classes: horizontal (0) or vertical (1) stripes of random phase and
// contrast.
inline Dataset stripes(int64_t n, Generator& gen) {
  Dataset d;
  d.name = "stripes";
  d.size = 8;
  d.channels = 1;
  d.class_names = {"horizontal", "vertical"};
  std::vector<float> u = Tensor::rand({3 * n}, gen).to_floats();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = u[size_t(3 * i)] < 0.5f ? 0 : 1, phase = u[size_t(3 * i + 1)] < 0.5f ? 0 : 1;
    const int lo = int(u[size_t(3 * i + 2)] * 60);
    d.labels.push_back(label);
    for (int64_t y = 0; y < 8; ++y)
      for (int64_t x = 0; x < 8; ++x)
        d.pixels.push_back(((label ? x : y) + phase) % 2 ? uint8_t(255 - lo) : uint8_t(lo));
  }
  return d;
}

// The losses, weights and EMA weights of 8 training steps of the tiny conditional U-Net on 16
// stripes, half the batches without labels, with and without the recorded step (TrainConfig::graph):
// what the recorded step's tests compare (test_diffusion_trainer.cpp, test_gpu_graph.cpp). Each
// step's loss is read after the last step, as `ddpm train` reads its log. Midway it samples with
// the EMA weights, as `ddpm train --sample-every` does (on a GPU the sampler records a graph of its
// own while the trainer's lives).
struct TinyRun {
  std::vector<float> losses, params, ema;
};
inline TinyRun train_tiny(uint64_t seed, Device device, DType dtype, bool graph) {
  Generator gen(seed);
  Dataset data = stripes(16, gen);
  TrainConfig cfg;
  cfg.batch = 4;
  cfg.p_uncond = 0.5f;  // the label embedding's gradient comes (eagerly, after a replay) and goes
  cfg.ema_start = 2;
  cfg.seed = seed;
  cfg.graph = graph;
  Generator init = model_init_generator(seed);
  UNet model(tiny_config(2), init);
  model.to(device);
  model.set_compute_dtype(dtype);
  Trainer trainer(model, data, cfg);
  std::vector<Tensor> losses;
  for (int i = 0; i < 8; ++i) {
    losses.push_back(trainer.step());
    if (i == 3)
      trainer.with_ema_weights([&] {
        SamplerConfig sc;
        sc.steps = 3;
        sc.guidance = 2.0f;
        sc.graph = false;  // tests/test_gpu_graph.cpp counts the training graph alone
        Generator sg(seed + 1);
        sample(model, make_schedule(ScheduleKind::Linear, 1000), sc, Tensor::from_ints({0, 1}, {2}), 0, 8, sg, device);
      });
  }
  TinyRun run;
  for (const Tensor& l : losses) run.losses.push_back(l.item());
  auto flat = [&](std::vector<float>& out) {
    for (const Tensor& p : model.parameters())
      for (float v : p.to_floats()) out.push_back(v);
  };
  flat(run.params);
  trainer.with_ema_weights([&] { flat(run.ema); });
  return run;
}

// Files in the data formats.
inline std::vector<uint8_t> random_bytes(size_t n, Generator& gen, int limit = 256) {
  std::vector<uint8_t> out;
  for (float u : Tensor::rand({int64_t(n)}, gen).to_floats()) out.push_back(uint8_t(u * float(limit)));
  return out;
}

// An IDX file's bytes: magic 0 0 8 ndim, big-endian sizes, data.
inline std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> b{0, 0, 8, uint8_t(dims.size())};
  for (uint32_t d : dims)
    for (int shift : {24, 16, 8, 0}) b.push_back(uint8_t(d >> shift));
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

inline void write_gz(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f);
  REQUIRE(gzwrite(f, bytes.data(), unsigned(bytes.size())) == int(bytes.size()));
  gzclose(f);
}

inline void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

inline std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

struct FashionFiles {
  std::vector<uint8_t> images, labels;
  int64_t n;
};

// A Fashion-MNIST-shaped data set of n random 28x28 images in dir.
inline FashionFiles write_fashion(const TempDir& dir, int64_t n, Generator& gen) {
  FashionFiles f{random_bytes(size_t(n * 28 * 28), gen), random_bytes(size_t(n), gen, 10), n};
  write_gz(dir / "train-images-idx3-ubyte.gz", idx_bytes({uint32_t(n), 28, 28}, f.images));
  write_gz(dir / "train-labels-idx1-ubyte.gz", idx_bytes({uint32_t(n)}, f.labels));
  return f;
}

}  // namespace ddpm::test
