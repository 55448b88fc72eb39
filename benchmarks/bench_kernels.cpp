// bench_kernels: times every engine op on the GPU at the seed U-Net's real shapes.
//
//   bench_kernels [--json PATH] [--commit SHA] [--runs N] [--filter TEXT] [--precision f32|bf16] [--tf32]
//                 [--conv cudnn|ours|measured|auto]
//
// The op list comes from walking the seed network (docs: shared seed-model.md, base width 64,
// time_dim 256, 10 classes, 4 heads) for two setups: 64x64 RGB at batch 64 and 32x32 gray at
// batch 128. Each distinct (op, shape) is timed once; `count` says how often one forward uses it.
// Then the diffusion updates (q_sample, reverse_step) and the optimizer (AdamW, EMA) over the
// seed's 23.3M parameters.
//
// Method. Ops run through their public functions (engine/ops.hpp, noise.hpp, optim.hpp). The
// forward runs under NoGradGuard; the backward calls the op's own autograd node on a fixed output
// gradient, which runs exactly its backward rule (no tape walk, no leaf accumulation). Each
// timed run is bracketed by CUDA events on the engine stream, after a 256 MB memset that flushes
// the 50-60 MB L2, so every run reads its inputs from HBM as in a real step; the memset also
// keeps the GPU busy while the host enqueues the op, so host overhead stays out of the time.
// 3 warm-up runs, then the median of --runs (default 20). Bytes are napkin math: every input and
// output once (backward: the output gradient, the inputs, the input gradients), so GB/s is a
// lower bound on traffic; it is compared with a device-to-device copy timed the same way
// (bytes read + written). FLOPs (2 per multiply-add) for the matrix products.
//
// --precision bf16 times the network's ops on bf16 data instead (the mixed-precision path: norm
// parameters, the embedding table and the loss stay f32, as in the model); the diffusion updates
// and the optimizer are f32 either way and are timed only in the f32 run. --tf32 lets the f32 ops
// use TF32 tensor cores, as `ddpm train --tf32` does (the default times exact f32). --conv picks
// the convolution backend, as in `ddpm train` (default cuDNN).
//
// Without a GPU (or in a CPU-only build) it says so and exits 0.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/autograd.hpp"
#include "engine/noise.hpp"
#include "engine/ops.hpp"
#include "engine/optim.hpp"
#include "engine/rng.hpp"
#ifdef DDPM_HAVE_CUDA
#include "kernels/cuda_context.hpp"
#include "kernels/noise.hpp"
#endif

#include "bench_common.hpp"

#ifdef DDPM_HAVE_CUDA
namespace {

using namespace ddpm;
using Fn = std::function<void()>;
using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

constexpr Device kGpu = Device::CUDA;
DType g_data = DType::F32;  // the dtype of the network's data inputs: --precision
using bench::kFlushBytes;
using bench::Stat;
using bench::Timer;

std::string dims(const Shape& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += 'x';
    out += std::to_string(s[i]);
  }
  return out;
}

double bytes_of(const Tensor& t) { return t.defined() ? double(t.numel()) * double(dtype_size(t.dtype())) : 0.0; }
double bytes_of(const std::vector<Tensor>& ts) {
  double b = 0;
  for (const Tensor& t : ts) b += bytes_of(t);
  return b;
}

// What a case runs, once its inputs exist on the GPU.
struct Prepared {
  Fn fwd, bwd;  // bwd empty where the op has no backward of its own
  double fwd_bytes = 0, bwd_bytes = 0;
  std::string node;  // the autograd node whose rule the backward timing runs
};

struct Spec {
  std::string op, shape;
  double flops = 0;  // forward FLOPs; 0 for memory-bound ops (no TFLOP/s reported)
  int count = 0;     // uses in one forward of the model (0: not in the network itself)
  std::function<Prepared(Generator&)> prepare;
};

// An op through its public function on fresh random inputs (`make` builds them on the GPU).
Spec op_spec(std::string op, std::string shape, double flops, std::function<std::vector<Tensor>(Generator&)> make,
             OpFn f, bool backward = true) {
  auto prepare = [make, f, backward](Generator& gen) {
    std::vector<Tensor> in = make(gen);
    Prepared p;
    {
      NoGradGuard ng;
      p.fwd_bytes = bytes_of(in) + bytes_of(f(in));
    }
    p.fwd = [in, f] {
      NoGradGuard ng;
      f(in);
    };
    if (!backward) return p;
    std::vector<Tensor> leaves;
    for (const Tensor& t : in) {
      const bool floating = t.dtype() == DType::F32 || t.dtype() == DType::BF16;
      leaves.push_back(floating ? t.detach().set_requires_grad(true) : t);
    }
    Tensor y = f(leaves);
    std::shared_ptr<Node> node = y.grad_fn();
    Tensor g = Tensor::randn(y.shape(), gen, kGpu).to(y.dtype());
    // Ops that end in a reshape: the work is in the node below it.
    while (node && node->op == "reshape") {
      g = node->backward(g)[0];
      node = node->inputs[0].grad_fn();
    }
    if (!node) return p;
    p.bwd_bytes = bytes_of(g) + bytes_of(node->inputs) + bytes_of(node->backward(g));
    p.node = node->op;
    p.bwd = [node, g] { node->backward(g); };
    return p;
  };
  return {std::move(op), std::move(shape), flops, 0, prepare};
}

// Random inputs of these shapes: the first `data` of them (all by default) in the run's data
// dtype, the rest (norm parameters) f32.
std::function<std::vector<Tensor>(Generator&)> randn_inputs(std::vector<Shape> shapes, size_t data = SIZE_MAX) {
  return [shapes, data](Generator& gen) {
    std::vector<Tensor> out;
    for (const Shape& s : shapes) out.push_back(Tensor::randn(s, gen, kGpu).to(out.size() < data ? g_data : DType::F32));
    return out;
  };
}

// The seed U-Net's forward as a list of op cases (deduplicated, counted) and its parameter shapes.
class SeedWalk {
 public:
  SeedWalk(int64_t batch, int64_t image, int64_t channels) : N(batch) {
    const int64_t b = 64, H = image;
    embedding_lookup();
    double_conv(H, channels, b, b, false);                       // inc
    down(H, b, 2 * b);                                           // down1
    self_attention(H / 2, 2 * b);                                // sa1
    down(H / 2, 2 * b, 4 * b);                                   // down2
    self_attention(H / 4, 4 * b);                                // sa2
    down(H / 4, 4 * b, 4 * b);                                   // down3
    self_attention(H / 8, 4 * b);                                // sa3
    double_conv(H / 8, 4 * b, 8 * b, 8 * b, false);              // bot1
    double_conv(H / 8, 8 * b, 8 * b, 8 * b, false);              // bot2
    double_conv(H / 8, 8 * b, 4 * b, 4 * b, false);              // bot3
    up(H / 8, 8 * b, 2 * b);                                     // up1
    self_attention(H / 4, 2 * b);                                // sa4
    up(H / 4, 4 * b, b);                                         // up2
    self_attention(H / 2, b);                                    // sa5
    up(H / 2, 2 * b, b);                                         // up3
    self_attention(H, b);                                        // sa6
    conv(H, b, channels, 1, true);                               // outc
    Shape img{N, H, H, channels};
    use(op_spec("mse_loss", dims(img), 0, randn_inputs({img, img}, 0),  // f32: the model's output is cast back
                [](auto& in) { return mse_loss(in[0], in[1]); }));
    // Engine ops the network does not call itself (losses, diffusion): count 0. The reductions take
    // f32 only (they serve the loss, after the cast back), so they get f32 data at any --precision.
    Shape act{N, H, H, b};
    extra(op_spec("sum", dims(act), 0, randn_inputs({act}, 0), [](auto& in) { return sum(in[0]); }));
    extra(op_spec("mean", dims(act), 0, randn_inputs({act}, 0), [](auto& in) { return mean(in[0]); }));
    extra(op_spec("sub", dims(img), 0, randn_inputs({img, img}), [](auto& in) { return sub(in[0], in[1]); }));
    extra(op_spec("mul", dims(img), 0, randn_inputs({img, img}), [](auto& in) { return mul(in[0], in[1]); }));
  }

  std::vector<Spec> specs;
  std::vector<Shape> params;

 private:
  int64_t N;
  static constexpr int64_t kTimeDim = 256, kClasses = 10, kHeads = 4;
  std::map<std::string, size_t> index_;

  // `counted` false: timed for comparison, but not on the forward's path (count stays 0, so
  // per-step totals do not count it twice).
  void use(Spec s, bool counted = true) {
    auto [it, fresh] = index_.emplace(s.op + "|" + s.shape, specs.size());
    if (fresh) specs.push_back(std::move(s));
    specs[it->second].count += counted;
  }
  void extra(Spec s) { specs.push_back(std::move(s)); }

  void embedding_lookup() {
    params.push_back({kClasses, kTimeDim});
    const int64_t n = N;
    use(op_spec(
        "embedding", "ids" + std::to_string(N) + " table10x256", 0,
        [n](Generator& gen) {
          std::vector<int64_t> ids;
          for (int64_t i = 0; i < n; ++i) ids.push_back(i % kClasses);
          return std::vector<Tensor>{Tensor::from_ints(ids, {n}, kGpu), Tensor::randn({kClasses, kTimeDim}, gen, kGpu)};
        },
        [](auto& in) { return embedding(in[0], in[1]); }));
    Shape e{N, kTimeDim};
    use(op_spec("add", dims(e), 0, randn_inputs({e, e}, 0), [](auto& in) { return add(in[0], in[1]); }));  // f32
    // silu(e), once per forward: every emb_layer shares it (f32, then cast).
    use(op_spec("silu", dims(e), 0, randn_inputs({e}, 0), [](auto& in) { return silu(in[0]); }));
  }

  void conv(int64_t H, int64_t cin, int64_t cout, int64_t k, bool bias) {
    Shape x{N, H, H, cin}, w{cout, k, k, cin};
    params.push_back(w);
    std::vector<Shape> in{x, w};
    if (bias) {
      params.push_back({cout});
      in.push_back({cout});
    }
    double flops = 2.0 * double(N * H * H) * double(cout * cin * k * k);
    use(op_spec("conv2d " + std::to_string(k) + "x" + std::to_string(k), dims(x) + " -> " + std::to_string(cout), flops,
                randn_inputs(in), [](auto& in) { return conv2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor()); }));
  }

  void group_norm_act(int64_t H, int64_t C, Act act) {
    Shape x{N, H, H, C};
    params.push_back({C});
    params.push_back({C});
    use(op_spec(act == Act::GELU ? "group_norm+gelu" : "group_norm", dims(x), 0, randn_inputs({x, {C}, {C}}, 1),
                [act](auto& in) { return group_norm(in[0], 1, in[1], in[2], 1e-5f, act); }));
  }

  // The last norm of Down and Up, with the embedding's per-sample shift folded in.
  void group_norm_shift(int64_t H, int64_t C) {
    Shape x{N, H, H, C};
    params.push_back({C});
    params.push_back({C});
    use(op_spec("group_norm+shift", dims(x), 0, randn_inputs({x, {N, C}, {C}, {C}}, 2),
                [](auto& in) { return group_norm(in[0], 1, in[2], in[3], 1e-5f, Act::None, in[1]); }));
  }

  // The last norm of a residual DoubleConv: gelu(x + norm(h)) in one pass.
  void group_norm_residual(int64_t H, int64_t C) {
    Shape x{N, H, H, C};
    params.push_back({C});
    params.push_back({C});
    use(op_spec("group_norm+residual+gelu", dims(x), 0, randn_inputs({x, x, {C}, {C}}, 2),
                [](auto& in) { return group_norm(in[0], 1, in[2], in[3], 1e-5f, Act::GELU, Tensor(), in[1]); }));
  }

  // `shifted`: Down's and Up's last DoubleConv, whose last norm adds the embedding.
  void double_conv(int64_t H, int64_t cin, int64_t cout, int64_t mid, bool residual, bool shifted = false) {
    conv(H, cin, mid, 3, false);
    group_norm_act(H, mid, Act::GELU);
    conv(H, mid, cout, 3, false);
    if (residual) group_norm_residual(H, cout);
    else if (shifted) group_norm_shift(H, cout);
    else group_norm_act(H, cout, Act::None);
  }

  // `residual`: the output gets a tensor of its shape added in the same pass (out == in here).
  void linear_layer(const Shape& x, int64_t out, bool residual = false) {
    int64_t in_features = x.back(), rows = shape_numel(x) / in_features;
    params.push_back({out, in_features});
    params.push_back({out});
    std::vector<Shape> in{x, {out, in_features}, {out}};
    if (residual) in.push_back(x);
    use(op_spec(residual ? "linear+residual" : "linear", dims(x) + " -> " + std::to_string(out),
                2.0 * double(rows) * double(in_features * out), randn_inputs(in),
                [](auto& in) { return linear(in[0], in[1], in[2], in.size() > 3 ? in[3] : Tensor()); }));
  }

  // emb_layer: Linear(time_dim -> C) of the shared silu(e); its add over H, W is the shift of
  // group_norm_shift.
  void embedding_layer(int64_t C) { linear_layer(Shape{N, kTimeDim}, C); }

  void down(int64_t H, int64_t cin, int64_t cout) {
    Shape x{N, H, H, cin};
    use(op_spec("max_pool2x2", dims(x), 0, randn_inputs({x}), [](auto& in) { return max_pool2x2(in[0]); }));
    double_conv(H / 2, cin, cin, cin, true);
    double_conv(H / 2, cin, cout, cout, false, true);
    embedding_layer(cout);
  }

  // x at side H with cin/2 channels, upsampled and joined with the skip (cin/2 channels at 2H).
  void up(int64_t H, int64_t cin, int64_t cout) {
    Shape x{N, H, H, cin / 2}, big{N, 2 * H, 2 * H, cin / 2};
    use(op_spec("upsample2x", dims(x), 0, randn_inputs({x}), [](auto& in) { return upsample2x(in[0]); }));
    use(op_spec("concat_channels", dims(big) + " ++ " + std::to_string(cin / 2), 0, randn_inputs({big, big}),
                [](auto& in) { return concat_channels(in[0], in[1]); }));
    double_conv(2 * H, cin, cin, cin, true);
    double_conv(2 * H, cin, cout, cin / 2, false, true);
    embedding_layer(cout);
  }

  void layer_norm_layer(const Shape& x) {
    int64_t C = x.back();
    params.push_back({C});
    params.push_back({C});
    use(op_spec("layer_norm", dims(x), 0, randn_inputs({x, {C}, {C}}, 1),
                [](auto& in) { return layer_norm(in[0], in[1], in[2]); }));
  }

  // SelfAttention(C) at side H: ln, mha (+ x), ff_self (+ a), each residual added by the linear layer
  // before it. The mha is counted by its parts
  // (in_proj linear, attention, out_proj linear) and also timed whole, forward only; bmm is timed
  // at the per-head product shapes for comparison with the fused attention (neither counted).
  void self_attention(int64_t H, int64_t C) {
    const int64_t L = H * H, d = C / kHeads;
    Shape x{N, L, C}, qkv{N, L, 3 * C};
    layer_norm_layer(x);
    double attn_flops = 4.0 * double(N) * double(L) * double(L) * double(C);
    double mha_flops = 2.0 * double(N * L) * double(C) * double(4 * C) + attn_flops;
    use(op_spec("multi_head_attention", dims(x), mha_flops, randn_inputs({x, {3 * C, C}, {3 * C}, {C, C}, {C}}),
                [](auto& in) { return multi_head_attention(in[0], in[1], in[2], in[3], in[4], kHeads); },
                /*backward=*/false),
        /*counted=*/false);
    linear_layer(x, 3 * C);  // in_proj: its parameters are the mha's in_proj_weight/bias
    use(op_spec("attention", dims(qkv) + " h4", attn_flops, randn_inputs({qkv}),
                [](auto& in) { return attention(in[0], kHeads); }));
    linear_layer(x, C, true);  // out_proj, + x
    // Per-head products as bmm: scores [B*h, L, L] (skipped above 2 GiB: 64x64's 4096 tokens).
    Shape q{N * kHeads, L, d}, p{N * kHeads, L, L};
    if (double(shape_numel(p)) * 4 <= double(size_t(2) << 30)) {
      double f = 2.0 * double(N * kHeads) * double(L) * double(L) * double(d);
      use(op_spec("bmm q k^T", dims(q), f, randn_inputs({q, q}), [](auto& in) { return bmm(in[0], in[1], false, true); }),
          false);
      use(op_spec("bmm p v", dims(p) + " @ " + std::to_string(d), f, randn_inputs({p, q}),
                  [](auto& in) { return bmm(in[0], in[1]); }),
          false);
    }
    layer_norm_layer(x);
    linear_layer(x, C);
    use(op_spec("gelu", dims(x), 0, randn_inputs({x}), [](auto& in) { return gelu(in[0]); }));
    linear_layer(x, C, true);  // + a
  }
};

// The diffusion updates at the image shape. q_sample is timed at its kernel: the public function
// first copies t to the host to check it, a synchronisation that would land inside the timing.
std::vector<Spec> diffusion_specs(const Shape& img) {
  std::vector<Spec> out;
  double n = double(shape_numel(img));
  out.push_back({"q_sample (kernel)", dims(img), 0, 1, [img, n](Generator& gen) {
                   const int64_t T = 1000;
                   std::vector<int64_t> tv;
                   for (int64_t i = 0; i < img[0]; ++i) tv.push_back((i * 37) % T);
                   Tensor x0 = Tensor::randn(img, gen, kGpu), t = Tensor::from_ints(tv, {img[0]}, kGpu);
                   Tensor a = Tensor::rand({T}, gen, kGpu), b = Tensor::rand({T}, gen, kGpu);
                   Tensor xt = Tensor::empty(img, DType::F32, kGpu), eps = Tensor::empty(img, DType::F32, kGpu);
                   Prepared p;
                   p.fwd_bytes = 12.0 * n;
                   p.fwd = [=, &gen] {
                     kernels::cuda::q_sample(x0.data<float>(), t.data<int64_t>(), a.data<float>(), b.data<float>(),
                                             xt.data<float>(), eps.data<float>(), img[0], shape_numel(img) / img[0],
                                             gen.seed(), gen.take(uint64_t(shape_numel(img))));
                   };
                   return p;
                 }});
  out.push_back({"reverse_step guided+noise", dims(img), 0, 1, [img, n](Generator& gen) {
                   Tensor x = Tensor::randn(img, gen, kGpu), ec = Tensor::randn(img, gen, kGpu),
                          eu = Tensor::randn(img, gen, kGpu);
                   Prepared p;
                   p.fwd_bytes = 16.0 * n;
                   p.fwd = [=, &gen]() mutable { reverse_step(x, ec, eu, ReverseCoefficients{1.2f, 0.3f, 0.2f, 0.8f, 0.01f, 3.0f, true, true}, gen); };
                   return p;
                 }});
  return out;
}

// AdamW and EMA over the seed's parameter list (all ~200 tensors, one launch each).
std::vector<Spec> optimizer_specs(const std::vector<Shape>& shapes) {
  double n = 0;
  for (const Shape& s : shapes) n += double(shape_numel(s));
  std::string desc = std::to_string(shapes.size()) + " tensors, " + std::to_string(int64_t(n)) + " params";
  auto make = [shapes](Generator& gen, bool grads) {
    std::vector<Tensor> ps;
    for (const Shape& s : shapes) {
      ps.push_back(Tensor::randn(s, gen, kGpu));
      if (grads) ps.back().set_grad(Tensor::randn(s, gen, kGpu));
    }
    return ps;
  };
  std::vector<Spec> out;
  out.push_back({"AdamW step", desc, 0, 1, [make, n](Generator& gen) {
                   auto opt = std::make_shared<AdamW>(make(gen, true));
                   Prepared p;
                   p.fwd_bytes = 28.0 * n;  // read p, g, m, v; write p, m, v
                   p.fwd = [opt] { opt->step(); };
                   return p;
                 }});
  out.push_back({"EMA update", desc, 0, 1, [make, n](Generator& gen) {
                   std::vector<Tensor> ps = make(gen, false);
                   auto ema = std::make_shared<EMA>(ps, 0.995f, 0);
                   Prepared p;
                   p.fwd_bytes = 12.0 * n;  // read e, p; write e
                   p.fwd = [ema, ps] { ema->update(ps, 1); };
                   return p;
                 }});
  return out;
}

// Device-to-device copy of 512 MiB: the bandwidth ceiling the memory-bound ops are measured against.
double copy_gbps(Timer& timer) {
  const size_t bytes = size_t(512) << 20;
  Tensor src = Tensor::zeros({int64_t(bytes / 4)}, DType::F32, kGpu), dst = Tensor::zeros({int64_t(bytes / 4)}, DType::F32, kGpu);
  Stat s = timer.time([&] {
    CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src.raw(), bytes, cudaMemcpyDeviceToDevice, cuda::stream()));
  });
  return 2.0 * double(bytes) / (s.median_ms * 1e-3) / 1e9;
}

using Options = bench::KernelBenchOptions;

int run(const Options& opt) {
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  Timer timer(opt.runs);
  const double copy = copy_gbps(timer);
  const std::string date = bench::utc_now();
  g_data = opt.precision;
  set_gpu_settings({opt.tf32, parse_conv_impl(opt.conv), opt.precision == DType::BF16});
  std::printf("bench_kernels on %s, %s, commit %s, %s data%s, convolutions %s\n", prop.name, date.c_str(),
              opt.commit.c_str(), dtype_name(opt.precision), opt.tf32 ? ", TF32 allowed" : "", opt.conv.c_str());
  std::printf("method: median of %d runs after 3 warm-ups, L2 flushed by a 256 MB memset before each run\n", opt.runs);
  std::printf("copy bandwidth (device-to-device, read + write): %.0f GB/s\n\n", copy);
  std::printf("%-14s %-26s %-44s %-4s %5s %10s %8s %6s %8s\n", "setup", "op", "shape", "pass", "count", "median us",
              "GB/s", "%copy", "TFLOP/s");

  nlohmann::json records = nlohmann::json::array(), setups = nlohmann::json::array();
  // Rewritten after every op, so a run stopped by a timeout still leaves what it measured.
  auto save = [&] {
    if (opt.json_path.empty()) return;
    nlohmann::json doc = {{"device", prop.name}, {"date", date},       {"commit", opt.commit},
                          {"runs", opt.runs},    {"l2_flush_bytes", kFlushBytes}, {"copy_gbps", copy},
                          {"precision", dtype_name(opt.precision)}, {"tf32", opt.tf32}, {"conv", opt.conv},
                          {"setups", setups},    {"records", records}};
    bench::write_json(opt.json_path, doc);
  };
  Generator gen(1234);
  auto report = [&](const std::string& setup, const Spec& spec, const char* pass, const Fn& fn, double bytes,
                    double flops, const std::string& node) {
    Stat s = timer.time(fn);
    double sec = s.median_ms * 1e-3, gbps = bytes / sec / 1e9, tflops = flops > 0 ? flops / sec / 1e12 : 0.0;
    std::printf("%-14s %-26s %-44s %-4s %5d %10.1f %8.0f %5.0f%% ", setup.c_str(), spec.op.c_str(), spec.shape.c_str(),
                pass, spec.count, s.median_ms * 1e3, gbps, 100.0 * gbps / copy);
    if (flops > 0) std::printf("%8.1f", tflops);
    std::printf("\n");
    std::fflush(stdout);
    records.push_back({{"setup", setup}, {"op", spec.op}, {"shape", spec.shape}, {"pass", pass},
                       {"node", node}, {"count", spec.count}, {"median_us", s.median_ms * 1e3},
                       {"min_us", s.min_ms * 1e3}, {"bytes", bytes}, {"flops", flops}, {"gbps", gbps},
                       {"copy_fraction", gbps / copy}, {"tflops", tflops}});
  };
  auto bench = [&](const std::string& setup, const std::vector<Spec>& specs) {
    for (const Spec& spec : specs) {
      if (!opt.filter.empty() && (spec.op + " " + spec.shape).find(opt.filter) == std::string::npos) continue;
      try {
        Prepared p = spec.prepare(gen);
        report(setup, spec, "fwd", p.fwd, p.fwd_bytes, spec.flops, "");
        if (p.bwd) report(setup, spec, "bwd", p.bwd, p.bwd_bytes, 2.0 * spec.flops, p.node);
      } catch (const Error& e) {
        std::printf("%-14s %-26s %-44s FAILED: %s\n", setup.c_str(), spec.op.c_str(), spec.shape.c_str(), e.what());
        records.push_back({{"setup", setup}, {"op", spec.op}, {"shape", spec.shape}, {"error", e.what()}});
      }
      save();
    }
  };

  struct Setup {
    std::string name;
    int64_t image, channels, batch;
  };
  std::vector<Shape> seed_params;
  for (const Setup& s : {Setup{"64px-rgb-b64", 64, 3, 64}, Setup{"32px-gray-b128", 32, 1, 128}}) {
    SeedWalk walk(s.batch, s.image, s.channels);
    if (seed_params.empty()) seed_params = walk.params;
    // A check of the walk against the seed's published costs (18.7 and 3.7 GFLOP per image).
    double gflop = 0, nparams = 0;
    for (const Spec& spec : walk.specs) gflop += spec.count * spec.flops / 1e9 / double(s.batch);
    for (const Shape& p : walk.params) nparams += double(shape_numel(p));
    std::printf("-- %s: forward %.1f GFLOP per image, %zu parameter tensors, %.0f parameters\n", s.name.c_str(),
                gflop, walk.params.size(), nparams);
    setups.push_back({{"name", s.name}, {"image", s.image}, {"channels", s.channels}, {"batch", s.batch},
                      {"forward_gflop_per_image", gflop}, {"parameters", nparams}});
    bench(s.name, walk.specs);
    if (g_data == DType::F32) bench(s.name, diffusion_specs({s.batch, s.image, s.image, s.channels}));
  }
  if (g_data == DType::F32) bench("params", optimizer_specs(seed_params));  // 23,335,299: the seed's count
  if (!opt.json_path.empty()) std::printf("\nwrote %s\n", opt.json_path.c_str());
  return 0;
}

}  // namespace
#endif

#ifndef DDPM_HAVE_CUDA
constexpr std::nullptr_t run = nullptr;  // a CPU-only build has no kernels to time
#endif

int main(int argc, char** argv) {
  return ddpm::bench::kernel_bench_main("bench_kernels", argc, argv, 20,
                                        "only the cases whose \"op shape\" contains this text",
                                        "the network's data: f32, or bf16 (the mixed-precision path)", run);
}
