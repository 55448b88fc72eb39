// Our direct kernels for thin convolution layers (kernels/conv_thin.cuh: all three passes with at
// most 4 channels on one side, f32 and bf16 data), compiled as host C++ and run
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
alignas(16) float thin_smem[kMaxWeights];
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
                           {reinterpret_cast<unsigned char*>(thin::thin_smem), sizeof(thin::thin_smem)}};

// One pass on shape s, the emulated kernel against the CPU's, on the same fresh values. skew_x
// and skew_dy move x and dy that many elements off a 16-byte boundary (the one-value loads); one
// block makes its threads loop over the pixels, as the GPU's capped grid does at the model's
// sizes, and three give the filter gradient's blocks several image rows each and partial sums to
// add.
template <class T>
double pass_error(const ConvShape& s, ConvDir dir, bool bias, int skew_x, int skew_dy, unsigned max_blocks,
                  Generator& gen) {
  auto values = [&](int64_t n, int extra, float scale) { return narrow<T>(randn({n + extra}, gen, scale).to_floats()); };
  const std::vector<T> x = values(s.pixels() * s.cin, skew_x, 1.0f), dy = values(s.pixels() * s.cout, skew_dy, 1.0f);
  const std::vector<T> w = values(s.cout * s.k * s.k * s.cin, 0, 0.3f), b = values(s.cout, 0, 1.0f);
  const T *xp = x.data() + skew_x, *dyp = dy.data() + skew_dy, *bp = bias ? b.data() : nullptr;
  const int64_t out_n = dir == ConvDir::Forward ? s.pixels() * s.cout
                        : dir == ConvDir::Data  ? s.pixels() * s.cin
                                                : int64_t(w.size());
  std::vector<T> want(size_t(out_n), ddpm::cuda::from_f32<T>(NAN)), got = want;
  if (dir == ConvDir::Forward) {
    kernels::cpu::conv2d_fwd(s, xp, w.data(), bp, want.data());
    thin::run(launch, thin::forward(s, xp, w.data(), bp, got.data()), max_blocks);
  } else if (dir == ConvDir::Data) {
    kernels::cpu::conv2d_bwd_data(s, dyp, w.data(), want.data());
    thin::run(launch, thin::data_gradient(s, dyp, w.data(), got.data()), max_blocks);
  } else {
    kernels::cpu::conv2d_bwd_filter(s, xp, dyp, want.data());
    thin::Filter<T> a = thin::filter_gradient(s, xp, dyp, got.data(), nullptr);
    std::vector<float> work(size_t(thin::filter_work(a, max_blocks)), NAN);
    a.work = work.data();
    thin::run(launch, a, max_blocks);
  }
  return rel_err(widen(got), widen(want));
}

struct Case {
  ConvShape s;
  ConvDir dir;
  bool bias = false;
  int skew_x = 0, skew_dy = 0;
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
    {{2, 3, 4, 64, 4, 3}, ConvDir::Forward, true, 1},  {{2, 3, 4, 4, 64, 3}, ConvDir::Data, false, 0, 1},
    {{3, 1, 1, 3, 16, 3}, ConvDir::Forward, false, 0}, {{3, 1, 1, 16, 3, 3}, ConvDir::Forward, false, 0},
    {{1, 2, 3, 2, 40, 3}, ConvDir::Data, false, 0},
    // Filter gradients: the first and last layers; a wide side of 13 (a partial group, one-value
    // loads) both ways round; the wide side unaligned (dy of the first layer, x of the last), and
    // the thin side alone; both sides thin; a 5x5 filter; a 1x1 image; 45 (tap, group) pairs (5
    // rows of threads); 225 pairs (one row); a row of 70 pixels (each thread takes 3); 600 image
    // rows, more than the GPU's cap of blocks (uneven slices).
    {{2, 5, 6, 3, 64, 3}, ConvDir::Filter},          {{1, 4, 4, 1, 64, 3}, ConvDir::Filter},
    {{2, 5, 6, 64, 3, 1}, ConvDir::Filter},          {{1, 3, 3, 64, 1, 1}, ConvDir::Filter},
    {{2, 4, 5, 3, 13, 3}, ConvDir::Filter},          {{2, 4, 5, 13, 3, 3}, ConvDir::Filter},
    {{2, 3, 4, 3, 64, 3}, ConvDir::Filter, false, 0, 1}, {{2, 3, 4, 64, 4, 3}, ConvDir::Filter, false, 1, 0},
    {{2, 3, 4, 3, 64, 3}, ConvDir::Filter, false, 1, 0}, {{2, 4, 5, 3, 3, 3}, ConvDir::Filter},
    {{1, 6, 7, 2, 16, 5}, ConvDir::Filter},          {{3, 1, 1, 3, 16, 3}, ConvDir::Filter},
    {{1, 2, 3, 2, 40, 3}, ConvDir::Filter},          {{1, 3, 4, 2, 200, 3}, ConvDir::Filter},
    {{1, 2, 70, 64, 3, 1}, ConvDir::Filter},         {{100, 6, 3, 3, 8, 3}, ConvDir::Filter}};

template <class T> void check_cases(double tol) {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (const Case& c : kCases) {
    CAPTURE(c.s.n, c.s.h, c.s.w, c.s.cin, c.s.cout, c.s.k, int(c.dir), c.bias, c.skew_x, c.skew_dy);
    REQUIRE(thin::fits(c.s, c.dir));
    // The GPU's cap of blocks, then one, then three.
    for (unsigned max_blocks : {c.dir == ConvDir::Filter ? thin::kFilterBlocks : thin::kMaxBlocks, 1u, 3u}) {
      CAPTURE(max_blocks);
      CHECK(pass_error<T>(c.s, c.dir, c.bias, c.skew_x, c.skew_dy, max_blocks, gen) < tol);
    }
  }
}

}  // namespace

TEST_CASE("emulated: thin-layer convolution (f32) matches the CPU", "[emulated][conv]") { check_cases<float>(1e-5); }
TEST_CASE("emulated: thin-layer convolution (bf16) matches the CPU", "[emulated][conv]") { check_cases<bf16>(4e-3); }

TEST_CASE("thin-layer convolution takes only thin passes whose filter fits", "[conv]") {
  CHECK(thin::fits({64, 64, 64, 3, 64, 3}, ConvDir::Forward));
  CHECK(thin::fits({64, 64, 64, 64, 3, 1}, ConvDir::Data));
  CHECK(thin::fits({64, 64, 64, 3, 64, 3}, ConvDir::Filter));
  CHECK(thin::fits({128, 32, 32, 64, 1, 1}, ConvDir::Filter));
  CHECK_FALSE(thin::fits({8, 8, 8, 3, 512, 3}, ConvDir::Filter));  // 9 taps x 64 groups > 256 threads
  CHECK_FALSE(thin::fits({64, 64, 64, 64, 64, 3}, ConvDir::Filter));
  CHECK_FALSE(thin::fits({64, 64, 64, 64, 64, 3}, ConvDir::Forward));
  CHECK_FALSE(thin::fits({64, 64, 64, 5, 64, 3}, ConvDir::Forward));
  CHECK_FALSE(thin::fits({8, 8, 8, 4, 512, 3}, ConvDir::Forward));  // 9 * 4 * 512 floats > 48 KB
  CHECK_FALSE(thin::fits({8, 8, 8, 512, 4, 3}, ConvDir::Forward));
}
