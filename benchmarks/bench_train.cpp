// bench_train: training speed of the seed model on our engine, measured the way
// benchmarks/torch_twin.py measures PyTorch (../shared/docs/performance-anchors.md).
//
//   bench_train [--device cuda|cpu] [--setups 64x3x64,32x1x128] [--steps 20] [--warmup 3]
//               [--base 64] [--tf32] [--conv cudnn|ours|measured|auto] [--precision f32|bf16] [--json FILE]
//               [--commit SHA]
//
// A step is Trainer::step(), the step `ddpm train` runs: next batch, noising, forward, MSE,
// backward, AdamW and EMA, on random pixels (the speed does not depend on them). It returns the
// loss, which waits for the GPU, so the wall time of --steps steps is the real cost per step,
// host work included. Recorded per setup: img/s; first_step_s, from building the model to the end
// of the first step; on the GPU the caching allocator's peak bytes in use and the cudaMalloc calls
// made during the timed steps (0 means every step was served from the cache).
#include <chrono>
#include <cstdio>

#include "bench_common.hpp"
#include "diffusion/trainer.hpp"

using namespace ddpm;

int main(int argc, char** argv) {
  CLI::App app{"Training img/s of the seed U-Net (ours; benchmarks/torch_twin.py for PyTorch)"};
  bench::E2EOptions o;
  o.add_to(app);
  bool graph = false;
  app.add_flag("--graph", graph, "replay each step's forward and backward as a CUDA graph (TrainConfig::graph)");
  CLI11_PARSE(app, argc, argv);
  const auto start = [&](Device, nlohmann::json& doc) {
    doc["graph"] = graph;
    std::printf("bench_train on %s, %s, tf32 %s, conv %s, graph %s, %ld steps after %ld warm-up\n",
                doc["device"].get<std::string>().c_str(), dtype_name(o.precision), o.tf32 ? "on" : "off", o.conv.c_str(),
                graph ? "on" : "off", long(o.steps), long(o.warmup));
    std::printf("| setup | train img/s | ms/step | first step s | peak GiB | cudaMalloc in timed steps |\n");
    std::printf("|---|---:|---:|---:|---:|---:|\n");
  };
  return bench::run_setups("bench_train", o, start, [&](const bench::Setup& s, Device dev) -> nlohmann::json {
    if (dev == Device::CUDA) reset_peak(dev);
    const auto t0 = std::chrono::steady_clock::now();
    Generator init(0), gen(1);
    UNet model(bench::seed_config(s, o.base), init);
    model.to(dev);
    model.set_compute_dtype(o.precision);
    const Dataset data = bench::random_dataset(s, 4 * s.batch, gen);
    TrainConfig tc;
    tc.batch = s.batch;
    tc.graph = graph;
    Trainer trainer(model, data, tc);
    trainer.step().item();  // a step is only queued until its loss is read
    const double first = bench::seconds_since(t0);
    for (int64_t i = 0; i < o.warmup; ++i) trainer.step();
    bench::synchronize(dev);
    const size_t mallocs = allocator_stats(dev).device_mallocs;
    const auto t1 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < o.steps; ++i) trainer.step();
    bench::synchronize(dev);
    const double seconds = bench::seconds_since(t1);
    const AllocatorStats st = allocator_stats(dev);
    const double img_s = double(s.batch * o.steps) / seconds, peak = double(st.peak) / double(1 << 30);
    const long steady_mallocs = long(st.device_mallocs - mallocs);
    std::printf("| %s | %.0f | %.2f | %.2f | %.2f | %ld |\n", s.name().c_str(), img_s, 1e3 * seconds / double(o.steps),
                first, peak, steady_mallocs);
    std::fflush(stdout);
    return {{"setup", s.name()},
            {"train_img_s", img_s},
            {"ms_per_step", 1e3 * seconds / double(o.steps)},
            {"first_step_s", first},
            {"peak_gib", peak},
            {"device_mallocs_in_timed_steps", steady_mallocs}};
  });
}
