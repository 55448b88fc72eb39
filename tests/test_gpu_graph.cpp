// engine/graph.hpp on the GPU: a replayed graph computes what launching its work does, reads
// its inputs at replay time, keeps its memory from later allocations, and refuses work that
// cannot be recorded without leaving the engine broken.
#include "diffusion/sampler.hpp"
#include "diffusion_helpers.hpp"
#include "engine/graph.hpp"
#include "engine/ops.hpp"
#include "engine/storage.hpp"
#include "gpu_helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

TEST_CASE("gpu: a replayed graph reads its inputs at replay time and keeps its memory", "[gpu][graph]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  const Shape s{3, 17, 5};
  Tensor a = Tensor::randn(s, gen, Device::CUDA), b = Tensor::randn(s, gen, Device::CUDA), out;
  // Temporaries (the product, the sum) are freed inside the recorded work: the graph reuses
  // their blocks at every replay, so they must not be handed out afterwards.
  Graph g(Device::CUDA, [&] { out = silu(add(mul(a, b), a)); });
  for (int replay = 0; replay < 3; ++replay) {
    Tensor ha = randn(s, gen), hb = randn(s, gen);
    a.copy_from(ha);
    b.copy_from(hb);
    // Eager tensors of the temporaries' size, made between recording and replay: had the graph's
    // blocks gone back to the shared cache, some of these would get them and the replay would
    // overwrite them.
    std::vector<Tensor> others, others_host;
    for (int i = 0; i < 8; ++i) {
      others_host.push_back(randn(s, gen));
      others.push_back(others_host.back().to(Device::CUDA));
    }
    g.replay();
    CHECK(rel_err(out, silu(add(mul(ha, hb), ha))) < kTolF32);
    for (int i = 0; i < 8; ++i) CHECK(others[size_t(i)].to_floats() == others_host[size_t(i)].to_floats());
  }
}

TEST_CASE("gpu: work that cannot be recorded is refused, and the engine goes on", "[gpu][graph][errors]") {
  Generator gen = fresh_generator();
  Tensor a = Tensor::randn({4, 4}, gen, Device::CUDA);
  float seen = 0.0f;
  // Reading a result on the host waits for the GPU, which a recording cannot do.
  CHECK_THROWS_WITH(Graph(Device::CUDA, [&] { seen = sum(a).item(); }), Catch::Contains("cannot be recorded"));
  Tensor h = randn({4, 4}, gen);
  a.copy_from(h);
  CHECK(rel_err(add(a, a), add(h, h)) < kTolF32);
  CHECK(std::isfinite(seen));  // the warm-up ran it eagerly
  // A convolution shape first used inside the recording (fn does more than its warm-up did): its
  // algorithm choice runs and waits for cudnnFind there, so it is refused, saying what to do.
  Tensor x = Tensor::randn({1, 3, 11, 7}, gen, Device::CUDA), w = Tensor::randn({6, 3, 3, 7}, gen, Device::CUDA);
  int calls = 0;
  CHECK_THROWS_WITH(Graph(Device::CUDA, [&] { if (calls++ > 0) (void)conv2d(x, w); }),
                    Catch::Contains("run it once before recording"));
  CHECK(rel_err(conv2d(x, w), conv2d(x.to(Device::CPU), w.to(Device::CPU))) < kTolF32);
}

TEST_CASE("gpu: sampling with the network replayed as a graph gives what launching it gives",
          "[gpu][graph][sampler]") {
  Generator init = fresh_generator();
  CAPTURE(init.seed());
  UNetConfig mc;
  mc.in_channels = mc.out_channels = 1;
  mc.base_channels = 16;
  mc.time_dim = 32;
  UNet model(mc, init);
  model.to(Device::CUDA);
  const Schedule schedule = make_schedule(ScheduleKind::Linear, 1000);
  const Tensor labels = Tensor::from_ints({3, 0, 9, 3, 5}, {5});
  for (DType dtype : {DType::F32, DType::BF16})
    for (float guidance : {0.0f, 2.0f}) {
      CAPTURE(dtype_name(dtype), guidance);
      model.set_compute_dtype(dtype);
      SamplerConfig c;
      c.steps = 6;
      c.guidance = guidance;
      Generator g1(init.seed() + 1), g2 = g1, g3 = g1;
      c.graph = true;
      const int64_t recorded = Graph::recordings();
      Tensor replayed = sample(model, schedule, c, labels, 0, 16, g1, Device::CUDA);
      CHECK(Graph::recordings() == recorded + 1);
      // A second chain records its own graph into the blocks the first one gave back. A pool that
      // was never given back would make it allocate every block of a forward (dozens) anew; allow
      // a few for what the first chain's result still holds.
      const size_t mallocs = allocator_stats(Device::CUDA).device_mallocs;
      Tensor again = sample(model, schedule, c, labels, 0, 16, g3, Device::CUDA);
      CHECK(allocator_stats(Device::CUDA).device_mallocs <= mallocs + 3);
      CHECK(again.to_floats() == replayed.to_floats());
      c.graph = false;
      Tensor launched = sample(model, schedule, c, labels, 0, 16, g2, Device::CUDA);
      CHECK(Graph::recordings() == recorded + 2);
      CHECK(g1.offset() == g2.offset());
      // The same kernels on the same data: equal up to a library choosing another GEMM kernel
      // under capture. A graph that replayed stale conditioning (the first step's t) or read
      // freed memory is off by far more.
      CHECK(rel_err(replayed, launched) < 1e-5);
    }
}

TEST_CASE("gpu: training steps recorded as a graph give the op-by-op steps' numbers", "[gpu][graph][trainer]") {
  const uint64_t seed = fresh_seed();
  CAPTURE(seed);
  for (DType dtype : {DType::F32, DType::BF16}) {
    CAPTURE(dtype_name(dtype));
    const int64_t recorded_before = Graph::recordings();
    TinyRun recorded = train_tiny(seed, Device::CUDA, dtype, true);
    CHECK(Graph::recordings() == recorded_before + 1);
    TinyRun launched = train_tiny(seed, Device::CUDA, dtype, false);
    CHECK(Graph::recordings() == recorded_before + 1);  // op by op records nothing
    // The same kernels on the same values; a library may pick another GEMM kernel under capture.
    const double tol = dtype == DType::F32 ? 1e-5 : 1e-3;
    CHECK(rel_err(recorded.losses, launched.losses) < tol);
    CHECK(rel_err(recorded.params, launched.params) < tol);
    CHECK(rel_err(recorded.ema, launched.ema) < tol);
    CHECK(recorded.losses[7] != recorded.losses[6]);  // each step's loss is its own, not the recording's
  }
}
