// Our direct kernels for thin convolution layers (kernels/conv_thin.cuh: the forward and data
// gradient with at most 4 channels on one side, f32 and bf16 data), compiled as host C++ and run
// through tests/cuda_emulation.hpp with the launch the GPU uses, against the CPU convolution. CI
// has no GPU: this is where a wrong tap shift, filter flip or channel offset fails it. Outputs
// start as NaN, so an element no thread writes fails too, and so does the filter in shared memory,
// so a kernel that reads it before it is written fails.
//
// Tolerances, norm-wise relative: f32 1e-5 (both sides sum exact f32 products, in different
// orders); bf16 4e-3 (the same bf16 inputs on both sides, each output rounded to bf16 once: a
// value within float rounding of a rounding boundary may go either way, 2^-8 relative). A wrong
// index is off by O(1).
#include "helpers.hpp"
#include "kernels/conv.hpp"
// Last: it defines __device__ and the other CUDA keywords as macros.
#include "cuda_emulation.hpp"
// Host C++ only: keeps the CUDA runtime's headers (and their own uint3, ...) out.
#undef DDPM_HAVE_CUDA
#include "kernels/conv_thin.cuh"

namespace ddpm::kernels::cuda::thin {
// The kernels' dynamic shared memory (their `extern __shared__` array), as large as fits() allows.
alignas(16) float thin_w[kMaxWeights];
}  // namespace ddpm::kernels::cuda::thin

using namespace ddpm;
using namespace ddpm::test;
using emu::narrow;
using emu::widen;
using kernels::ConvDir;
using kernels::ConvShape;
namespace thin = kernels::cuda::thin;

namespace {

const emu::Launcher launch{unsigned(thin::kThreads),
                           {reinterpret_cast<unsigned char*>(thin::thin_w), sizeof(thin::thin_w)}};

// One pass on shape s, the emulated kernel against the CPU's, on the same fresh values. `skew`
// moves the pass's input that many elements off a 16-byte boundary (the one-value loads); one
// block makes its threads loop over the pixels, as the GPU's capped grid does at the model's sizes.
template <class T>
double pass_error(const ConvShape& s, ConvDir dir, bool bias, int skew, unsigned max_blocks, Generator& gen) {
  const bool fwd = dir == ConvDir::Forward;
  const int64_t in_n = s.pixels() * (fwd ? s.cin : s.cout), out_n = s.pixels() * (fwd ? s.cout : s.cin);
  const std::vector<T> in = narrow<T>(randn({in_n + skew}, gen).to_floats());
  const std::vector<T> w = narrow<T>(randn({s.cout * s.k * s.k * s.cin}, gen, 0.3f).to_floats());
  const std::vector<T> b = narrow<T>(randn({s.cout}, gen).to_floats());
  const T* bp = bias ? b.data() : nullptr;
  std::vector<T> want(size_t(out_n), ddpm::cuda::from_f32<T>(NAN)), got = want;
  if (fwd) {
    kernels::cpu::conv2d_fwd(s, in.data() + skew, w.data(), bp, want.data());
    thin::run(launch, thin::forward(s, in.data() + skew, w.data(), bp, got.data()), max_blocks);
  } else {
    kernels::cpu::conv2d_bwd_data(s, in.data() + skew, w.data(), want.data());
    thin::run(launch, thin::data_gradient(s, in.data() + skew, w.data(), got.data()), max_blocks);
  }
  return rel_err(widen(got), widen(want));
}

struct Case {
  ConvShape s;
  ConvDir dir;
  bool bias;
  int skew;
};
// The U-Net's first layer (3x3, 3 or 1 -> 64) and last (1x1, 64 -> 3 or 1, with bias) both ways;
// outputs not a multiple of 8 (13: the one-value stores); 20 input channels (not a whole number of
// 16-byte vectors in bf16, four lanes of eight busy in f32); an unaligned input; a 1x1 image
// (every tap but the centre outside it) and a 2x3 one (borders on every side).
const Case kCases[] = {
    {{2, 5, 6, 3, 64, 3}, ConvDir::Forward, false, 0}, {{2, 5, 6, 3, 64, 3}, ConvDir::Data, false, 0},
    {{1, 4, 4, 1, 64, 3}, ConvDir::Forward, false, 0}, {{1, 4, 4, 1, 64, 3}, ConvDir::Data, false, 0},
    {{2, 5, 6, 64, 3, 1}, ConvDir::Forward, true, 0},  {{2, 5, 6, 64, 3, 1}, ConvDir::Data, false, 0},
    {{1, 3, 3, 64, 1, 1}, ConvDir::Forward, true, 0},  {{2, 4, 5, 3, 13, 3}, ConvDir::Forward, true, 0},
    {{2, 4, 5, 13, 3, 3}, ConvDir::Data, false, 0},    {{2, 3, 4, 20, 2, 3}, ConvDir::Forward, false, 0},
    {{2, 3, 4, 64, 4, 3}, ConvDir::Forward, true, 1},  {{2, 3, 4, 4, 64, 3}, ConvDir::Data, false, 1},
    {{3, 1, 1, 3, 16, 3}, ConvDir::Forward, false, 0}, {{3, 1, 1, 16, 3, 3}, ConvDir::Forward, false, 0},
    {{1, 2, 3, 2, 40, 3}, ConvDir::Data, false, 0}};

template <class T> void check_cases(double tol) {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (const Case& c : kCases) {
    CAPTURE(c.s.n, c.s.h, c.s.w, c.s.cin, c.s.cout, c.s.k, int(c.dir), c.bias, c.skew);
    REQUIRE(thin::fits(c.s, c.dir));
    for (unsigned max_blocks : {thin::kMaxBlocks, 1u}) {
      CAPTURE(max_blocks);
      CHECK(pass_error<T>(c.s, c.dir, c.bias, c.skew, max_blocks, gen) < tol);
    }
  }
}

}  // namespace

TEST_CASE("emulated: thin-layer convolution (f32) matches the CPU", "[emulated][conv]") { check_cases<float>(1e-5); }
TEST_CASE("emulated: thin-layer convolution (bf16) matches the CPU", "[emulated][conv]") { check_cases<bf16>(4e-3); }

TEST_CASE("thin-layer convolution takes only thin passes whose filter fits", "[conv]") {
  CHECK(thin::fits({64, 64, 64, 3, 64, 3}, ConvDir::Forward));
  CHECK(thin::fits({64, 64, 64, 64, 3, 1}, ConvDir::Data));
  CHECK_FALSE(thin::fits({64, 64, 64, 3, 64, 3}, ConvDir::Filter));  // the filter gradient is a GEMM's
  CHECK_FALSE(thin::fits({64, 64, 64, 64, 64, 3}, ConvDir::Forward));
  CHECK_FALSE(thin::fits({64, 64, 64, 5, 64, 3}, ConvDir::Forward));
  CHECK_FALSE(thin::fits({8, 8, 8, 4, 512, 3}, ConvDir::Forward));  // 9 * 4 * 512 floats > 48 KB
  CHECK_FALSE(thin::fits({8, 8, 8, 512, 4, 3}, ConvDir::Forward));
}
