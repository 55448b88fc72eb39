// bench_conv: our implicit-GEMM convolution kernels against cuDNN at every convolution shape of
// the seed U-Net (base width 64), for 64x64 RGB at batch 64 and 32x32 gray at batch 128.
//
//   bench_conv [--json PATH] [--commit SHA] [--runs N]
//
// For each distinct shape (`count` = uses in one forward) and direction (fwd, dgrad, wgrad), the
// median time of:
//   ours-tf32   kernels::cuda::conv2d_* on f32 data, backend Ours, TF32 on
//   cudnn-tf32  the same functions, backend CuDNN (cudnnFind's fastest deterministic algorithm)
//   ours-bf16   the bf16 functions, backend Ours
//   cudnn-bf16  the bf16 functions, backend CuDNN (bf16 tensors, f32 accumulation, tensor-op math;
//               "n/a" where cuDNN offers no algorithm)
//   ours-bf16-v4  only where ours-bf16 is v6 (wgmma: an sm_90a build on an H100/H200): the bf16
//               functions, backend Ours, v4 (mma.sync) forced by set_conv_wgmma(false)
// with TFLOP/s (2*N*H*W*Cout*Cin*k*k per pass) and the fraction of the H200's measured dense peak
// (415 TFLOP/s TF32, 796 bf16), then per setup the totals of one training step's convolutions
// (count x (fwd + dgrad + wgrad); the first layer's dgrad is not needed, the image has no
// gradient), and the step of backend Measured (measured-tf32, measured-bf16: per shape the variant
// kernels::ours_measured_faster picks). Kernels are called directly on preallocated buffers. Each
// timing: 2 warm-ups, then the median of --runs (default 5) runs bracketed by CUDA events, each
// after a 256 MB memset that flushes the L2 (as bench_kernels). Without a GPU (or in a CPU-only build) it says so and exits 0.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/rng.hpp"
#include "engine/storage.hpp"
#include "engine/tensor.hpp"
#ifdef DDPM_HAVE_CUDA

#include "kernels/conv.hpp"
#include "kernels/cuda_context.hpp"
#endif

#include "bench_common.hpp"

#ifdef DDPM_HAVE_CUDA
namespace {

using namespace ddpm;
using kernels::ConvShape;
using Fn = std::function<void()>;

constexpr Device kGpu = Device::CUDA;
using bench::Timer;
constexpr double kPeakTF32 = 415e12, kPeakBF16 = 796e12;  // H200, dense 8192^3 GEMMs (docs/gpu.md)
const char* const kDirs[] = {"fwd", "dgrad", "wgrad"};
constexpr kernels::ConvDir kConvDirs[] = {kernels::ConvDir::Forward, kernels::ConvDir::Data, kernels::ConvDir::Filter};
const char* const kVariants[] = {"ours-tf32", "cudnn-tf32", "ours-bf16", "cudnn-bf16", "ours-bf16-v4"};

using Options = bench::KernelBenchOptions;

struct ConvCase {
  ConvShape s;
  int count = 0;
  bool first = false;  // the layer reading the image: its dgrad is not part of a training step
};

// The seed U-Net's 3x3 and 1x1 convolutions (model: DoubleConv = conv, norm, GELU, conv, norm),
// deduplicated with their use counts.
std::vector<ConvCase> seed_convs(int64_t batch, int64_t image, int64_t channels) {
  std::vector<ConvCase> out;
  auto conv = [&](int64_t h, int64_t cin, int64_t cout, int64_t k = 3) {
    ConvShape s{.n = batch, .h = h, .w = h, .cin = cin, .cout = cout, .k = k};
    for (ConvCase& c : out)
      if (c.s.h == s.h && c.s.cin == s.cin && c.s.cout == s.cout && c.s.k == s.k) return void(++c.count);
    out.push_back({s, 1, cin == channels});
  };
  auto double_conv = [&](int64_t h, int64_t cin, int64_t cout, int64_t mid) {
    conv(h, cin, mid);
    conv(h, mid, cout);
  };
  const int64_t b = 64, H = image;
  double_conv(H, channels, b, b);                                                    // inc
  double_conv(H / 2, b, b, b), double_conv(H / 2, b, 2 * b, 2 * b);                  // down1
  double_conv(H / 4, 2 * b, 2 * b, 2 * b), double_conv(H / 4, 2 * b, 4 * b, 4 * b);  // down2
  double_conv(H / 8, 4 * b, 4 * b, 4 * b), double_conv(H / 8, 4 * b, 4 * b, 4 * b);  // down3
  double_conv(H / 8, 4 * b, 8 * b, 8 * b);                                           // bot1
  double_conv(H / 8, 8 * b, 8 * b, 8 * b);                                           // bot2
  double_conv(H / 8, 8 * b, 4 * b, 4 * b);                                           // bot3
  double_conv(H / 4, 8 * b, 8 * b, 8 * b), double_conv(H / 4, 8 * b, 2 * b, 4 * b);  // up1 (after the skip concat)
  double_conv(H / 2, 4 * b, 4 * b, 4 * b), double_conv(H / 2, 4 * b, b, 2 * b);      // up2
  double_conv(H, 2 * b, 2 * b, 2 * b), double_conv(H, 2 * b, b, b);                  // up3
  conv(H, b, channels, 1);                                                           // outc
  return out;
}

std::string shape_name(const ConvShape& s) {
  return std::to_string(s.k) + "x" + std::to_string(s.k) + " " + std::to_string(s.cin) + "->" +
         std::to_string(s.cout) + " @" + std::to_string(s.h) + "x" + std::to_string(s.w);
}

int run(const Options& opt) {
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  const std::string date = bench::utc_now();
  Timer timer(opt.runs);
  Generator gen(1234);
  const bool tf32_before = cuda::allow_tf32();
  const kernels::ConvBackend backend_before = kernels::cuda::conv_backend();
  cuda::set_allow_tf32(true);
  // Ours in bf16 is v6 where it can run; then v4 is timed too (variant 4).
  const bool v6 = kernels::cuda::conv_wgmma_available();
  const int nv = v6 ? 5 : 4;
  const char* const ours_bf16 = v6 ? "v6 (wgmma)" : "v4 (mma.sync)";

  std::printf("bench_conv on %s, %s, commit %s; median of %d runs, L2 flushed before each; ours-bf16 is %s\n",
              prop.name, date.c_str(), opt.commit.c_str(), opt.runs, ours_bf16);
  std::printf("%-15s %-22s %5s %-5s", "setup", "shape", "count", "dir");
  for (int v = 0; v < nv; ++v) std::printf(" %19s", kVariants[v]);
  std::printf("   ours/cudnn tf32, bf16%s\n%56s", v6 ? ", bf16 v4" : "", "");
  for (int i = 0; i < nv; ++i) std::printf(" %19s", "us  TFLOP/s  %peak");
  std::printf("\n");

  nlohmann::json records = nlohmann::json::array(), totals = nlohmann::json::array();
  auto save = [&] {  // rewritten after every shape, so a run cut short keeps what it measured
    if (opt.json_path.empty()) return;
    nlohmann::json doc = {{"device", prop.name}, {"date", date},     {"commit", opt.commit},
                          {"runs", opt.runs},    {"peak_tf32", kPeakTF32}, {"peak_bf16", kPeakBF16},
                          {"ours_bf16", ours_bf16}, {"records", records},  {"totals", totals}};
    bench::write_json(opt.json_path, doc);
  };

  struct Setup {
    std::string name;
    int64_t image, channels, batch;
  };
  for (const Setup& su : {Setup{"64px-rgb-b64", 64, 3, 64}, Setup{"32px-gray-b128", 32, 1, 128}}) {
    double total_us[5] = {0, 0, 0, 0, 0};
    bool total_ok[5] = {true, true, true, true, true};
    // Backend Measured's step (TF32, bf16): per shape the variant its rule picks.
    double measured_us[2] = {0, 0};
    bool measured_ok[2] = {true, true};
    for (const ConvCase& cc : seed_convs(su.batch, su.image, su.channels)) {
      const ConvShape& s = cc.s;
      const Shape xs{s.n, s.h, s.w, s.cin}, ys{s.n, s.h, s.w, s.cout}, ws{s.cout, s.k, s.k, s.cin};
      Tensor x = Tensor::randn(xs, gen, kGpu), w = Tensor::randn(ws, gen, kGpu), b = Tensor::randn({s.cout}, gen, kGpu),
             dy = Tensor::randn(ys, gen, kGpu);
      Tensor y = Tensor::empty(ys, DType::F32, kGpu), dx = Tensor::empty(xs, DType::F32, kGpu),
             dw = Tensor::empty(ws, DType::F32, kGpu);
      Tensor xh = x.to(DType::BF16), wh = w.to(DType::BF16), bh = b.to(DType::BF16), dyh = dy.to(DType::BF16);
      Tensor yh = Tensor::empty(ys, DType::BF16, kGpu), dxh = Tensor::empty(xs, DType::BF16, kGpu),
             dwh = Tensor::empty(ws, DType::BF16, kGpu);
      const bool bias = s.k == 1;  // outc is the one convolution with a bias
      const float* bf = bias ? b.data<float>() : nullptr;
      const bf16* bb = bias ? bh.data<bf16>() : nullptr;
      const double flops = 2.0 * double(s.pixels()) * double(s.cout * s.cin * s.k * s.k);

      for (int d = 0; d < 3; ++d) {
        const bool in_step = !(d == 1 && cc.first);
        Fn f32 = d == 0   ? Fn([&] { kernels::cuda::conv2d_fwd(s, x.data<float>(), w.data<float>(), bf, y.data<float>()); })
                 : d == 1 ? Fn([&] { kernels::cuda::conv2d_bwd_data(s, dy.data<float>(), w.data<float>(), dx.data<float>()); })
                          : Fn([&] { kernels::cuda::conv2d_bwd_filter(s, x.data<float>(), dy.data<float>(), dw.data<float>()); });
        Fn bf16_fn = d == 0 ? Fn([&] { kernels::cuda::conv2d_fwd(s, xh.data<bf16>(), wh.data<bf16>(), bb, yh.data<bf16>()); })
                       : d == 1
                           ? Fn([&] { kernels::cuda::conv2d_bwd_data(s, dyh.data<bf16>(), wh.data<bf16>(), dxh.data<bf16>()); })
                           : Fn([&] { kernels::cuda::conv2d_bwd_filter(s, xh.data<bf16>(), dyh.data<bf16>(), dwh.data<bf16>()); });
        double us[5];
        std::string errors[5];
        for (int v = 0; v < nv; ++v) {
          try {
            kernels::cuda::set_conv_backend(v % 2 == 0 ? kernels::ConvBackend::Ours : kernels::ConvBackend::CuDNN);
            kernels::cuda::set_conv_wgmma(v != 4);
            us[v] = 1e3 * timer.time(v < 2 ? f32 : bf16_fn).median_ms;
          } catch (const Error& e) {
            us[v] = -1;
            errors[v] = e.what();
            cuda::synchronize();
          }
        }
        kernels::cuda::set_conv_wgmma(true);
        std::printf("%-15s %-22s %5d %-5s", su.name.c_str(), shape_name(s).c_str(), cc.count, kDirs[d]);
        for (int v = 0; v < nv; ++v) {
          const double peak = v < 2 ? kPeakTF32 : kPeakBF16, tflops = us[v] > 0 ? flops / (us[v] * 1e-6) / 1e12 : 0;
          if (us[v] > 0) std::printf(" %7.1f %6.1f %4.0f%%", us[v], tflops, 100 * tflops * 1e12 / peak);
          else std::printf(" %19s", "n/a");
          nlohmann::json rec = {{"setup", su.name}, {"shape", shape_name(s)}, {"n", s.n},       {"h", s.h},
                                {"w", s.w},         {"cin", s.cin},         {"cout", s.cout},   {"k", s.k},
                                {"count", cc.count}, {"in_step", in_step},  {"dir", kDirs[d]}, {"variant", kVariants[v]},
                                {"flops", flops}};
          if (us[v] > 0) {
            rec["median_us"] = us[v];
            rec["tflops"] = tflops;
            rec["peak_fraction"] = tflops * 1e12 / peak;
          } else {
            rec["error"] = errors[v];
          }
          records.push_back(rec);
          if (in_step) {
            if (us[v] > 0) total_us[v] += cc.count * us[v];
            else total_ok[v] = false;
          }
        }
        for (int p = 0; p < 2 && in_step; ++p) {
          const int v = 2 * p + (kernels::ours_measured_faster(s, kConvDirs[d], p == 1) ? 0 : 1);
          if (us[v] > 0) measured_us[p] += cc.count * us[v];
          else measured_ok[p] = false;
        }
        auto ratio = [&](int a, int c) { return us[a] > 0 && us[c] > 0 ? us[c] / us[a] : 0.0; };
        std::printf("   %5.2fx %5.2fx", ratio(0, 1), ratio(2, 3));
        if (v6) std::printf(" %5.2fx", ratio(4, 3));
        std::printf("%s\n", in_step ? "" : "  (not in a step)");
        std::fflush(stdout);
      }
      save();
    }
    std::printf("%-15s total of one step's convolutions (count x fwd+dgrad+wgrad):", su.name.c_str());
    for (int v = 0; v < nv; ++v) {
      std::printf("  %s %s%.0f us", kVariants[v], total_ok[v] ? "" : ">=", total_us[v]);
      totals.push_back({{"setup", su.name}, {"variant", kVariants[v]}, {"us", total_us[v]}, {"complete", total_ok[v]}});
    }
    for (int p = 0; p < 2; ++p) {
      const std::string variant = p == 0 ? "measured-tf32" : "measured-bf16";
      std::printf("  %s %s%.0f us", variant.c_str(), measured_ok[p] ? "" : ">=", measured_us[p]);
      totals.push_back({{"setup", su.name}, {"variant", variant}, {"us", measured_us[p]}, {"complete", measured_ok[p]}});
    }
    std::printf("\n\n");
    save();
  }
  cuda::set_allow_tf32(tf32_before);
  kernels::cuda::set_conv_backend(backend_before);
  if (!opt.json_path.empty()) std::printf("wrote %s\n", opt.json_path.c_str());
  return 0;
}

}  // namespace
#endif

#ifndef DDPM_HAVE_CUDA
constexpr std::nullptr_t run = nullptr;  // a CPU-only build has no kernels to time
#endif

int main(int argc, char** argv) {
  return ddpm::bench::kernel_bench_main("bench_conv", argc, argv, 5, nullptr, nullptr, run);
}
