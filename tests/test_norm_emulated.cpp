// The GPU's group norm and layer norm (kernels/norm.cuh: forward and backward, f32 and bf16
// data), compiled as host C++ and run through tests/cuda_emulation.hpp with the launch sequence
// norm_cuda.cu uses, against the CPU kernels. CI has no GPU: this is where a wrong tile offset,
// batch bound or row index in them fails it. Outputs start as NaN, so an element no thread
// writes fails too.
//
// Both sides take their sums in double in the same split decomposition (kernels/norm.hpp), so they
// agree to float rounding. Tolerances, norm-wise relative:
// - f32 outputs, and the statistics and parameter gradients (always f32): 1e-5.
// - bf16 outputs (y, dx): 4e-3. Both round the same f32 value to bf16 once, and a value within
//   float rounding of a rounding boundary may go either way (one bf16 step, 2^-8 relative).
// A wrong offset or bound is off by O(1).
#include "helpers.hpp"
#include "kernels/norm.hpp"
// Last: it defines __device__ and the other CUDA keywords as macros.
#include "cuda_emulation.hpp"
// The norm kernels keep their reductions in static __shared__ arrays. Blocks run one after
// another here, so one function-local static per kernel, seen by all of the block's threads, is
// that block's shared memory.
#undef __shared__
#define __shared__ static
// Host C++ only: keeps the CUDA runtime's headers (and their own uint3, ...) out.
#undef DDPM_HAVE_CUDA
#include "kernels/norm.cuh"

using namespace ddpm;
using namespace ddpm::test;
using emu::narrow;
using emu::widen;
namespace norm = kernels::cuda::norm;

namespace {

// norm.cuh's launch(name, grid, kernel, args...), on the emulator (no dynamic shared memory).
alignas(16) unsigned char no_smem[16];
const emu::Launcher launch{unsigned(norm::kThreads), no_smem};

std::vector<float> rand_floats(int64_t n, Generator& gen, float offset = 0.0f) {
  std::vector<float> v = randn({n}, gen, 2.0f).to_floats();
  for (float& x : v) x += offset;
  return v;
}

struct Errors {
  double y, mean, rstd, dx, dw, db, dshift = 0, dres = 0;
};

// Group norm on [N, P, C] with G groups, with or without a per-sample shift [N, C] and a residual:
// the emulated kernels against the CPU ones on the same values. `skew` moves x and dy that many
// elements off a 16-byte boundary (the V = 1 path).
template <class T> Errors group_norm_errors(int64_t N, int64_t P, int64_t C, int64_t G, Act act, int skew, bool shifted,
                                            bool with_res, Generator& gen) {
  const int64_t n = N * P * C;
  const std::vector<T> x = narrow<T>(rand_floats(n + skew, gen, 0.5f)), dy = narrow<T>(rand_floats(n + skew, gen));
  const std::vector<T> shift = narrow<T>(rand_floats(N * C, gen)), res = narrow<T>(rand_floats(n, gen));
  const std::vector<float> w = rand_floats(C, gen), b = rand_floats(C, gen);
  std::vector<double> work(size_t(kernels::group_norm_work(N, P, C, G)));
  const T nan = ddpm::cuda::from_f32<T>(NAN);
  struct Out {
    std::vector<T> y, dx, dshift, dres;
    std::vector<float> mean, rstd, dw, db;
  };
  auto fresh = [&] {
    return Out{std::vector<T>(size_t(n + skew), nan),  std::vector<T>(size_t(n + skew), nan),
               std::vector<T>(size_t(N * C), nan),     std::vector<T>(size_t(n), nan),
               std::vector<float>(size_t(N * G), NAN), std::vector<float>(size_t(N * G), NAN),
               std::vector<float>(size_t(C), NAN),     std::vector<float>(size_t(C), NAN)};
  };
  Out cpu = fresh(), emu = fresh();
  const T *xs = x.data() + skew, *dys = dy.data() + skew, *sh = shifted ? shift.data() : nullptr;
  const T* rs = with_res ? res.data() : nullptr;
  auto dshift = [&](Out& o) { return shifted ? o.dshift.data() : nullptr; };
  auto dres = [&](Out& o) { return with_res ? o.dres.data() : nullptr; };
  kernels::cpu::group_norm_fwd(act, xs, w.data(), b.data(), sh, rs, cpu.y.data() + skew, cpu.mean.data(),
                               cpu.rstd.data(), N, P, C, G, 1e-5f, work.data());
  kernels::cpu::group_norm_bwd(act, xs, w.data(), b.data(), sh, rs, cpu.mean.data(), cpu.rstd.data(), dys,
                               cpu.dx.data() + skew, cpu.dw.data(), cpu.db.data(), dshift(cpu), dres(cpu), N, P, C, G,
                               work.data());
  norm::group_norm_fwd(launch, act, xs, w.data(), b.data(), sh, rs, emu.y.data() + skew, emu.mean.data(),
                       emu.rstd.data(), N, P, C, G, 1e-5f, work.data());
  norm::group_norm_bwd(launch, act, xs, w.data(), b.data(), sh, rs, emu.mean.data(), emu.rstd.data(), dys,
                       emu.dx.data() + skew, emu.dw.data(), emu.db.data(), dshift(emu), dres(emu), N, P, C, G,
                       work.data());
  auto data = [&](const std::vector<T>& v) { return widen(std::vector<T>(v.begin() + skew, v.end())); };
  return {rel_err(data(emu.y), data(cpu.y)),
          rel_err(emu.mean, cpu.mean),
          rel_err(emu.rstd, cpu.rstd),
          rel_err(data(emu.dx), data(cpu.dx)),
          rel_err(emu.dw, cpu.dw),
          rel_err(emu.db, cpu.db),
          shifted ? rel_err(widen(emu.dshift), widen(cpu.dshift)) : 0.0,
          with_res ? rel_err(widen(emu.dres), widen(cpu.dres)) : 0.0};
}

// Layer norm on [R, C], as above.
template <class T> Errors layer_norm_errors(int64_t R, int64_t C, int skew, Generator& gen) {
  const int64_t n = R * C;
  const std::vector<T> x = narrow<T>(rand_floats(n + skew, gen, 1.0f)), dy = narrow<T>(rand_floats(n + skew, gen));
  const std::vector<float> w = rand_floats(C, gen), b = rand_floats(C, gen);
  std::vector<double> work(size_t(kernels::layer_norm_work(R, C)));
  const T *xs = x.data() + skew, *dys = dy.data() + skew;
  const T nan = ddpm::cuda::from_f32<T>(NAN);
  std::vector<T> y[2] = {std::vector<T>(size_t(n), nan), std::vector<T>(size_t(n), nan)};
  std::vector<T> dx[2] = {y[0], y[0]};
  std::vector<float> mean[2], rstd[2], dw[2], db[2];
  for (int i = 0; i < 2; ++i) {
    mean[i] = rstd[i] = std::vector<float>(size_t(R), NAN);
    dw[i] = db[i] = std::vector<float>(size_t(C), NAN);
  }
  kernels::cpu::layer_norm_fwd(xs, w.data(), b.data(), y[0].data(), mean[0].data(), rstd[0].data(), R, C, 1e-5f);
  kernels::cpu::layer_norm_bwd(xs, w.data(), mean[0].data(), rstd[0].data(), dys, dx[0].data(), dw[0].data(),
                               db[0].data(), R, C, work.data());
  norm::layer_norm_fwd(launch, xs, w.data(), b.data(), y[1].data(), mean[1].data(), rstd[1].data(), R, C, 1e-5f);
  norm::layer_norm_bwd(launch, xs, w.data(), mean[1].data(), rstd[1].data(), dys, dx[1].data(), dw[1].data(),
                       db[1].data(), R, C, work.data());
  return {rel_err(widen(y[1]), widen(y[0])), rel_err(mean[1], mean[0]), rel_err(rstd[1], rstd[0]),
          rel_err(widen(dx[1]), widen(dx[0])), rel_err(dw[1], dw[0]),  rel_err(db[1], db[0])};
}

void check(const Errors& e, double data_tol) {
  CAPTURE(e.y, e.mean, e.rstd, e.dx, e.dw, e.db, e.dshift, e.dres);
  CHECK(e.y < data_tol);
  CHECK(e.dx < data_tol);
  CHECK(e.dshift < data_tol);
  CHECK(e.dres < data_tol);
  CHECK(e.mean < 1e-5);
  CHECK(e.rstd < 1e-5);
  CHECK(e.dw < 1e-5);
  CHECK(e.db < 1e-5);
}

struct GnCase {
  int64_t N, P, C, G;
  Act act;
  int skew;
  bool shifted, with_res = false;
};
// 1x1 spatial and batch 1; C = 5 and an unaligned pointer (V = 1); groups inside and across
// vectors of 4; C = 136 (two channel tiles, the second partial); position counts that leave a
// partial batch in each split; the model's GroupNorm(1, C) at 8x8 with several splits, with the
// embedding's shift (also with an activation, and on the V = 1 path), and with the ResNet block's
// residual before its GELU (vectors, and the V = 1 path with a shift too).
const GnCase kGnCases[] = {
    {1, 1, 5, 1, Act::GELU, 0, false},    {2, 35, 12, 3, Act::GELU, 0, false}, {2, 35, 12, 4, Act::None, 0, false},
    {3, 21, 12, 1, Act::SiLU, 1, false},  {1, 70, 136, 2, Act::SiLU, 0, false}, {2, 300, 64, 1, Act::GELU, 0, false},
    {2, 64, 256, 1, Act::None, 0, false}, {2, 64, 256, 1, Act::None, 0, true},  {3, 35, 12, 3, Act::GELU, 0, true},
    {2, 21, 5, 1, Act::None, 1, true},    {2, 64, 256, 1, Act::GELU, 0, false, true},
    {3, 35, 12, 1, Act::GELU, 0, false, true}, {2, 21, 5, 1, Act::GELU, 1, true, true}};

template <class T> void check_group_norm(double data_tol) {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (const GnCase& c : kGnCases) {
    CAPTURE(c.N, c.P, c.C, c.G, int(c.act), c.skew, c.shifted, c.with_res, kernels::norm_splits(c.N, c.P, c.C));
    check(group_norm_errors<T>(c.N, c.P, c.C, c.G, c.act, c.skew, c.shifted, c.with_res, gen), data_tol);
  }
}

// Rows fewer than, equal to and not a multiple of kBatch; C = 13 and an unaligned pointer (V = 1);
// rows of 9, 32 and 75 vectors (lanes past the row's end, one vector per lane, several per lane).
const int64_t kLnCases[][3] = {{3, 13, 0}, {4, 36, 0}, {37, 36, 0}, {10, 128, 1}, {9, 128, 0}, {6, 300, 0}};

template <class T> void check_layer_norm(double data_tol) {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (const auto& c : kLnCases) {
    CAPTURE(c[0], c[1], c[2]);
    check(layer_norm_errors<T>(c[0], c[1], int(c[2]), gen), data_tol);
  }
}

}  // namespace

TEST_CASE("emulated: GPU group norm (f32) matches the CPU", "[emulated][norm]") { check_group_norm<float>(1e-5); }
TEST_CASE("emulated: GPU group norm (bf16) matches the CPU", "[emulated][norm]") { check_group_norm<bf16>(4e-3); }
TEST_CASE("emulated: GPU layer norm (f32) matches the CPU", "[emulated][norm]") { check_layer_norm<float>(1e-5); }
TEST_CASE("emulated: GPU layer norm (bf16) matches the CPU", "[emulated][norm]") { check_layer_norm<bf16>(4e-3); }

// No rows: nothing to normalise, and the weight gradients are sums over nothing (a grid of 0 blocks
// would be a launch error on a GPU, which the emulated launch refuses too).
TEST_CASE("emulated: GPU layer norm of zero rows writes zero weight gradients", "[emulated][norm]") {
  const int64_t C = 36;
  Generator gen = fresh_generator();
  const std::vector<float> x, dy, w = rand_floats(C, gen), b = rand_floats(C, gen);
  std::vector<float> y, dx, mean, rstd, dw(size_t(C), NAN), db(size_t(C), NAN);
  std::vector<double> work(size_t(kernels::layer_norm_work(0, C)) + 1);
  norm::layer_norm_fwd(launch, x.data(), w.data(), b.data(), y.data(), mean.data(), rstd.data(), 0, C, 1e-5f);
  norm::layer_norm_bwd(launch, x.data(), w.data(), mean.data(), rstd.data(), dy.data(), dx.data(), dw.data(), db.data(),
                       0, C, work.data());
  CHECK(dw == std::vector<float>(size_t(C), 0.0f));
  CHECK(db == std::vector<float>(size_t(C), 0.0f));
}
