// Our implicit-GEMM convolution kernels (kernels/conv_igemm.cuh: forward, data gradient and filter
// gradient, on bf16 and on TF32 operands, both block widths, with and without split-K), compiled
// as host C++ and run through tests/cuda_emulation.hpp, against the CPU convolution. CI has no GPU:
// this is where a wrong fragment index, ldmatrix address, tap shift or tail fails it. Outputs
// start as NaN, so an element no thread writes fails too.
//
// The launch is conv_igemm_cuda.cu's (grid x: output tiles, y: K splits; reduce_splits after a
// split), with the block width and the split count chosen by the test instead of by occupancy.
// The reference is the CPU kernels (f32) on the same input values (bf16 values widened).
// Tolerances, on the norm-wise relative error:
// - bf16: 1e-2. Products of bf16 values are exact and summed in f32; the output is rounded to
//   bf16 once (at most 2^-8 relative per element).
// - TF32: 5e-3. Both operands are rounded to 10 mantissa bits (at most 2^-11 relative each).
// A wrong index is off by O(1): the negative control at the end shows one.
// The shapes are small (one emulated CUDA thread is one std::thread), chosen so that each path
// runs: whole 16-byte chunks (channels a multiple of 8) and element-wise loads (Cin = 3 or 5,
// Cout = 3, an unaligned pointer) of every operand, padding taps, M, N and K tails, several M
// tiles, 1x1 and 3x3.
#include <algorithm>

#include "helpers.hpp"
// Empty here; tests/test_conv_igemm_wide_emulated.cpp and tests/test_conv_wgmma_emulated.cpp name the
// variant they compile this file for.
#ifndef CONV_EMULATED_VARIANT
#define CONV_EMULATED_VARIANT ""
#endif
#include "kernels/conv.hpp"
// Last: it defines __device__ and the other CUDA keywords as macros.
#include "cuda_emulation.hpp"
#include "kernels/conv_igemm.cuh"
#include "kernels/conv_wgmma.cuh"

namespace ddpm::kernels::cuda::igemm {
namespace {
// The kernels' dynamic shared memory, as large as the largest configuration (v4: 3 stages of two
// 128-row K-major tiles of 144-byte rows; v6: 4 stages of two 128-row tiles of 128-byte rows and
// 1 KB of alignment slack).
alignas(16) unsigned char smem_raw[std::max(3 * 2 * 128 * 144, 4 * 2 * 128 * 128 + 1024)];
}  // namespace
}  // namespace ddpm::kernels::cuda::igemm

using namespace ddpm;
using namespace ddpm::test;
using emu::narrow;
using emu::widen;
using kernels::ConvShape;
namespace igemm = kernels::cuda::igemm;

namespace {

enum class Dir { Fwd, Data, Filter };

// Runs one problem as conv_igemm_cuda.cu's launch() does, with block width BN and `splits` K
// splits, on v4 (igemm_kernel) or, when CONV_EMULATED_WGMMA is defined, v6 (wgmma_kernel).
template <int BN, class T, class OpA, class OpB> void run(igemm::Problem<T, OpA, OpB> pb, int splits) {
#ifdef CONV_EMULATED_WGMMA
  using C = igemm::WgConfig<BN, OpA, OpB>;
  const unsigned threads = igemm::kWgThreads;
  auto kernel = [&] { igemm::wgmma_kernel<BN, OpA, OpB>(pb); };
#else
  using C = igemm::Config<T, BN, OpA, OpB>;
  const unsigned threads = C::kThreads;
  auto kernel = [&] { igemm::igemm_kernel<T, BN, OpA, OpB>(pb); };
#endif
  static_assert(C::kSmemBytes <= int(sizeof(igemm::smem_raw)));
  const unsigned tiles = unsigned((pb.m + igemm::kBM - 1) / igemm::kBM * ((pb.n + BN - 1) / BN));
  std::vector<float> partial(size_t(splits) * pb.m * pb.n, NAN);
  if (splits > 1) pb.out.partial = partial.data();
  emu::launch({tiles, unsigned(splits), 1}, threads, igemm::smem_raw, C::kSmemBytes, kernel);
  if (splits > 1)
    emu::launch({2, 1, 1}, 64, igemm::smem_raw, 0, [&] { igemm::reduce_splits<T>(pb.m, pb.n, splits, pb.out); });
}

// One case: a shape and direction, the block width (64 or 128), the split count, and whether the
// first operand sits one element past a 16-byte boundary (the element-wise load path).
struct Case {
  ConvShape s;
  Dir dir;
  int bn, splits;
  bool unaligned = false;
};

// The norm-wise relative error of our kernel against the CPU's on fresh random values.
template <class T> double error(const Case& c, Generator& gen) {
  const ConvShape& s = c.s;
  const int64_t nx = s.pixels() * s.cin, ny = s.pixels() * s.cout, nw = s.cout * s.k * s.k * s.cin;
  const std::vector<T> x = narrow<T>(randn({nx}, gen).to_floats()), dy = narrow<T>(randn({ny}, gen).to_floats());
  const std::vector<T> w = narrow<T>(randn({nw}, gen).to_floats()), b = narrow<T>(randn({s.cout}, gen).to_floats());
  const std::vector<float> xf = widen(x), dyf = widen(dy), wf = widen(w), bf = widen(b);

  // The first operand's copy, shifted by one element when the case asks for it.
  const std::vector<T>& first = c.dir == Dir::Data ? dy : x;
  std::vector<T> shifted(first.size() + 1);
  std::copy(first.begin(), first.end(), shifted.begin() + 1);
  const T* a = c.unaligned ? shifted.data() + 1 : first.data();

  std::vector<float> want;
  std::vector<T> got;
  auto go = [&](const auto& pb) {
    if (c.bn == 64) run<64>(pb, c.splits);
    else run<128>(pb, c.splits);
  };
  switch (c.dir) {
    case Dir::Fwd:
      want.resize(size_t(ny)), got.assign(size_t(ny), cuda::from_f32<T>(NAN));
      kernels::cpu::conv2d_fwd(s, xf.data(), wf.data(), bf.data(), want.data());
      go(igemm::forward(s, a, w.data(), b.data(), got.data()));
      break;
    case Dir::Data:
      want.resize(size_t(nx)), got.assign(size_t(nx), cuda::from_f32<T>(NAN));
      kernels::cpu::conv2d_bwd_data(s, dyf.data(), wf.data(), want.data());
      go(igemm::data_grad(s, a, w.data(), got.data()));
      break;
    case Dir::Filter:
      want.resize(size_t(nw)), got.assign(size_t(nw), cuda::from_f32<T>(NAN));
      kernels::cpu::conv2d_bwd_filter(s, xf.data(), dyf.data(), want.data());
      go(igemm::filter_grad(s, a, dy.data(), got.data()));
      break;
  }
  return rel_err(widen(got), want);
}

// {n, h, w, cin, cout, k}, direction, block width, splits (and unaligned).
const Case kCases[] = {
    // Whole chunks, 3x3: a padded 6x5 image (M tail), K tails in every direction.
    {{1, 6, 5, 16, 24, 3}, Dir::Fwd, 64, 1},
    {{1, 6, 5, 16, 24, 3}, Dir::Data, 64, 1},
    {{1, 6, 5, 16, 24, 3}, Dir::Filter, 64, 1},
    // Two M tiles (144 pixels), the second partial; split K in all three directions.
    {{1, 12, 12, 8, 16, 3}, Dir::Fwd, 64, 2},
    {{1, 12, 12, 8, 16, 3}, Dir::Data, 64, 2},
    {{2, 8, 8, 8, 16, 3}, Dir::Filter, 64, 3},
    // The 128-wide block: N = Cout = 136 (a whole N tile and a tail) and 72 forward, N = Cin = 72
    // data gradient.
    {{1, 4, 4, 8, 136, 3}, Dir::Fwd, 128, 1},
    {{1, 4, 4, 8, 72, 3}, Dir::Fwd, 128, 1},
    {{1, 4, 4, 72, 8, 3}, Dir::Data, 128, 1},
    {{1, 4, 4, 8, 72, 3}, Dir::Filter, 128, 1},
    // Long K loops (9, 8 and 9 K tiles of 64 bf16): every pipeline stage is reused.
    {{1, 8, 8, 64, 64, 3}, Dir::Fwd, 64, 1},
    {{1, 8, 8, 64, 128, 3}, Dir::Data, 128, 1},
    {{2, 16, 16, 8, 16, 3}, Dir::Filter, 64, 1},
    // The model's edge layers: Cin = 3 in (element-wise A loads) and a 1x1 to Cout = 3.
    {{2, 4, 4, 3, 8, 3}, Dir::Fwd, 64, 1},
    {{2, 4, 4, 3, 8, 3}, Dir::Filter, 64, 1},
    {{2, 5, 5, 16, 3, 1}, Dir::Fwd, 64, 1},
    {{2, 5, 5, 16, 3, 1}, Dir::Data, 64, 1},
    {{2, 5, 5, 16, 3, 1}, Dir::Filter, 64, 1},
    // Cin = 5: the data gradient's weights (B) by elements too.
    {{2, 4, 4, 5, 8, 3}, Dir::Data, 64, 1},
    // An unaligned first operand takes the element-wise path with whole-chunk channel counts.
    {{1, 4, 4, 8, 8, 3}, Dir::Fwd, 64, 1, true},
    {{1, 4, 4, 8, 8, 3}, Dir::Data, 64, 1, true},
    {{1, 4, 4, 8, 8, 3}, Dir::Filter, 64, 1, true},
};

template <class T> void check_cases(double tol) {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (const Case& c : kCases) {
    const double e = error<T>(c, gen);
    CAPTURE(c.s.n, c.s.h, c.s.w, c.s.cin, c.s.cout, c.s.k, int(c.dir), c.bn, c.splits, c.unaligned, e);
    CHECK(e < tol);
  }
}

}  // namespace

TEST_CASE("implicit-GEMM convolution on bf16 operands, emulated" CONV_EMULATED_VARIANT ", matches the CPU",
          "[conv][emulated]") {
  check_cases<bf16>(1e-2);
  emu::EarlyCopies early;  // and with every copy landing at once: no stage overwritten while read
  check_cases<bf16>(1e-2);
}

#ifndef CONV_EMULATED_WGMMA  // v6 is bf16 only
TEST_CASE("implicit-GEMM convolution on TF32 operands, emulated" CONV_EMULATED_VARIANT ", matches the CPU",
          "[conv][emulated]") {
  emu::unrounded_tf32 = 0;
  check_cases<float>(5e-3);
  CHECK(emu::unrounded_tf32 == 0);  // every operand went through cvt.rna.tf32
}
#endif

// Shows that the comparison can fail: with the tensor cores reading an operand in a wrong layout
// (mma: B's two registers swapped; wgmma: no swizzle), the output is off by O(1).
TEST_CASE("negative control: a wrong operand layout fails the convolution comparison" CONV_EMULATED_VARIANT,
          "[conv][emulated]") {
  emu::WrongLayout wrong;
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (Dir dir : {Dir::Fwd, Dir::Filter}) {
    const Case c{{1, 4, 4, 16, 16, 3}, dir, 64, 1};
    CHECK(error<bf16>(c, gen) > 0.1);
#ifndef CONV_EMULATED_WGMMA
    CHECK(error<float>(c, gen) > 0.1);
#endif
  }
}
