// bench_sample: reverse-process speed of the seed model on our engine, measured the way
// benchmarks/torch_twin.py measures PyTorch (../shared/docs/performance-anchors.md).
//
//   bench_sample [--device cuda|cpu] [--setups 64x3x64,32x1x128] [--steps 20] [--warmup 3]
//                [--base 64] [--guidance S] [--full] [--tf32] [--conv cudnn|ours|measured|auto]
//                [--json FILE] [--commit SHA]
//
// A reverse step is what sample() does per timestep: one forward (twice the batch with guidance
// > 0) and the fused reverse_step. Chains of respaced DDPM steps are timed whole (wall clock, after
// a GPU synchronisation): the steady state per step is the time of a chain of warmup + steps steps
// less that of a chain of warmup steps (what each chain pays once, recording its graph, cancels),
// so img-steps/s = batch * steps / that difference. --full also times the seed's whole 999-step
// chain for the batch, recording included (the goal: 64 images at 64x64 in under 4 s on the H200).
#include <chrono>
#include <cstdio>

#include "bench_common.hpp"
#include "diffusion/sampler.hpp"

using namespace ddpm;

int main(int argc, char** argv) {
  CLI::App app{"Reverse img-steps/s of the seed U-Net (ours; benchmarks/torch_twin.py for PyTorch)"};
  bench::E2EOptions o;
  o.add_to(app);
  float guidance = 0.0f;
  bool full = false, no_graph = false;
  app.add_option("--guidance", guidance, "classifier-free guidance scale (0: one forward per step)")
      ->check(cli::in_range(0, 1e4))
      ->capture_default_str();
  app.add_flag("--full", full, "also time a whole 999-step DDPM chain");
  app.add_flag("--no-graph", no_graph, "launch the network's kernels one by one instead of replaying a CUDA graph");
  CLI11_PARSE(app, argc, argv);
  const Schedule schedule = make_schedule(ScheduleKind::Linear, 1000);
  // The longest chain timed is warmup + steps steps: checked before anything runs.
  if (o.warmup + o.steps > schedule.T - 1) {
    std::fprintf(stderr,
                 "bench_sample: --warmup + --steps must be at most %ld (a chain of that many steps is timed), "
                 "got %ld\n",
                 long(schedule.T - 1), long(o.warmup + o.steps));
    return 2;
  }
  const auto start = [&](Device, nlohmann::json& doc) {
    doc["guidance"] = guidance;
    doc["graph"] = !no_graph;
    std::printf("bench_sample on %s, %s, tf32 %s, conv %s, guidance %g, graph %s\n",
                doc["device"].get<std::string>().c_str(), dtype_name(o.precision), o.tf32 ? "on" : "off",
                o.conv.c_str(), double(guidance), no_graph ? "off" : "on");
    std::printf("| setup | reverse img-steps/s | ms/step | full 999-step chain s |\n|---|---:|---:|---:|\n");
  };
  return bench::run_setups("bench_sample", o, start, [&](const bench::Setup& s, Device dev) -> nlohmann::json {
    Generator init(0), gen(1);
    UNet model(bench::seed_config(s, o.base), init);
    model.to(dev);
    model.set_compute_dtype(o.precision);
    std::vector<int64_t> y;
    for (int64_t i = 0; i < s.batch; ++i) y.push_back(i % 10);
    const Tensor labels = Tensor::from_ints(y, {s.batch});
    SamplerConfig c;
    c.guidance = guidance;
    c.graph = !no_graph;  // a chain records its graph once, at its first step: timed with it
    auto time_chain = [&](int64_t steps) {
      c.steps = steps;
      const auto t0 = std::chrono::steady_clock::now();
      sample(model, schedule, c, labels, 0, s.size, gen, dev);
      bench::synchronize(dev);
      return bench::seconds_since(t0);
    };
    // Per step in the steady state: every chain pays once for recording its graph (a warm-up
    // forward and the capture), so the time of a chain of `warmup` steps is taken off that of
    // a chain `steps` longer. The first chain, untimed, pays the first-use setup (cuDNN plans).
    double seconds = 0.0;
    if (o.warmup > 0) {
      time_chain(o.warmup);
      const double base = time_chain(o.warmup);
      seconds = time_chain(o.warmup + o.steps) - base;
    }
    if (seconds <= 0.0) seconds = time_chain(o.steps);  // no warm-up, or timing noise above the difference
    const double rate = double(s.batch * o.steps) / seconds;
    const double chain = full ? time_chain(0) : 0.0;
    std::printf("| %s | %.0f | %.2f | %s |\n", s.name().c_str(), rate, 1e3 * seconds / double(o.steps),
                full ? std::to_string(chain).c_str() : "-");
    std::fflush(stdout);
    nlohmann::json r = {{"setup", s.name()}, {"reverse_img_steps_s", rate}, {"ms_per_step", 1e3 * seconds / double(o.steps)}};
    if (full) r["full_chain_s"] = chain;
    return r;
  });
}
