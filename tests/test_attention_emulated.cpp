// The version-2 attention kernels (kernels/attention_tc.cuh: forward, dkv and dq, on bf16 and on
// TF32 operands), compiled as host C++ and run through tests/cuda_emulation.hpp, against the CPU
// attention kernels. CI has no GPU: this is where a wrong fragment index, mask or tile offset in
// them fails it. Outputs start as NaN, so an element no thread writes fails too.
//
// The backward is fed the emulated forward's own lse, and delta from its own out, as the engine
// feeds it on the GPU; the reference is the CPU kernels (f32) on the same input values (for bf16
// data, the bf16 values widened). Tolerances, on the norm-wise relative error of each of out, dq,
// dk and dv, and on the root-mean-square error of lse (see errors()):
// - bf16: 1e-2. The kernels round P and dS to bf16 (8 significant bits, at most 2^-9 relative
//   each) before their products, and out and dqkv once on store. The errors have random signs:
//   at most 3.4e-3 in 10 runs at these shapes with unit-normal inputs (lse 3e-7: the scores are
//   f32 products of the same bf16 values on both sides).
// - TF32: 5e-3. q, k, v, dout, P and dS are rounded to 10 mantissa bits (at most 2^-11 relative
//   each): at most 6.5e-4 in 10 runs (lse 4.8e-4).
// A wrong index, mask or offset is off by O(1) (the negative control at the end shows one).
// At L = 1, dq and dk are 0 in exact arithmetic (P = 1, so dS = dP - delta = 0): there they are
// rounding noise, only checked to be written.
#include "helpers.hpp"
#include "kernels/attention.hpp"
// Last: it defines __device__ and the other CUDA keywords as macros.
#include "cuda_emulation.hpp"
#include "kernels/attention_tc.cuh"

namespace ddpm::kernels::cuda {
namespace {
// The kernels' dynamic shared memory (dynamic_smem() declares it), as large as the largest use.
alignas(16) unsigned char smem[tc::Smem<tc::Tf32Ops, 64>::kDkv];
}  // namespace
}  // namespace ddpm::kernels::cuda

using namespace ddpm;
using namespace ddpm::test;
using ddpm::cuda::from_f32;
using ddpm::cuda::to_f32;

namespace {

namespace tc = kernels::cuda::tc;

using emu::narrow;
using emu::widen;

struct Outputs {
  std::vector<float> out, lse, dqkv;
};

// Version 2 for operand type Ops at compiled head width D, with MT row tiles per warp in all three
// kernels, emulated: as tc_fwd and tc_bwd in attention_cuda.cu, with delta computed here as
// attention_delta_k computes it.
template <class Ops, int D, int MT>
Outputs run_tc(const std::vector<typename Ops::T>& qkv, const std::vector<typename Ops::T>& dout,
               const kernels::AttnDims& a) {
  using T = typename Ops::T;
  using S = tc::Smem<Ops, D>;
  const int L = int(a.tokens), heads = int(a.heads), d = int(a.head_dim);
  const int64_t C = a.channels(), rows = a.batch * heads;
  const unsigned blocks = unsigned(rows * ((L + tc::kBlockRows<MT> - 1) / tc::kBlockRows<MT>));
  const unsigned threads = tc::kWarps * 32;
  std::vector<T> out(dout.size(), from_f32<T>(NAN)), dqkv(qkv.size(), from_f32<T>(NAN));
  std::vector<float> lse(size_t(rows * L), NAN), delta(lse.size());
  emu::launch({blocks, 1, 1}, threads, kernels::cuda::smem, S::kFwd,
              [&] { tc::attention_fwd_k<Ops, D, MT>(qkv.data(), out.data(), lse.data(), L, heads, d); });
  for (int64_t b = 0; b < a.batch; ++b)
    for (int i = 0; i < L; ++i)
      for (int h = 0; h < heads; ++h) {
        const int64_t at = (b * L + i) * C + h * d;
        float acc = 0.0f;
        for (int e = 0; e < d; ++e) acc = std::fma(to_f32(out[at + e]), to_f32(dout[at + e]), acc);
        delta[size_t((b * heads + h) * L + i)] = acc;
      }
  emu::launch({blocks, 1, 1}, threads, kernels::cuda::smem, S::kDkv, [&] {
    tc::attention_dkv_k<Ops, D, MT>(qkv.data(), dout.data(), lse.data(), delta.data(), dqkv.data(), L, heads, d);
  });
  emu::launch({blocks, 1, 1}, threads, kernels::cuda::smem, S::kDq, [&] {
    tc::attention_dq_k<Ops, D, MT>(qkv.data(), dout.data(), lse.data(), delta.data(), dqkv.data(), L, heads, d);
  });
  return {widen(out), lse, widen(dqkv)};
}

// Errors against the CPU kernels; dq, dk and dv are columns [0, C), [C, 2C), [2C, 3C) of dqkv.
struct Errors {
  double out, lse, dq, dk, dv;
};

template <class Ops, int MT> Errors errors(const kernels::AttnDims& a, Generator& gen) {
  using T = typename Ops::T;
  const int64_t C = a.channels(), n = a.batch * a.tokens;
  const std::vector<T> qkv = narrow<T>(randn({n * 3 * C}, gen).to_floats());
  const std::vector<T> dout = narrow<T>(randn({n * C}, gen).to_floats());
  const std::vector<float> qkv_f = widen(qkv), dout_f = widen(dout);
  std::vector<float> out(size_t(n * C)), lse(size_t(a.batch * a.heads * a.tokens)), delta(lse.size());
  std::vector<float> dqkv(qkv.size());
  kernels::cpu::attention_fwd(qkv_f.data(), out.data(), lse.data(), a);
  kernels::cpu::attention_bwd(qkv_f.data(), out.data(), lse.data(), dout_f.data(), delta.data(), dqkv.data(), a);

  const Outputs got = a.head_dim <= 16   ? run_tc<Ops, 16, MT>(qkv, dout, a)  // the widths of with_head_dim()
                      : a.head_dim <= 32 ? run_tc<Ops, 32, MT>(qkv, dout, a)
                                         : run_tc<Ops, 64, MT>(qkv, dout, a);
  auto part = [&](const std::vector<float>& x, int64_t p) {
    std::vector<float> r;
    for (size_t i = 0; i < x.size(); ++i)
      if (int64_t(i) % (3 * C) / C == p) r.push_back(x[i]);
    return r;
  };
  auto err = [&](int64_t p) {
    // At L = 1 only whether every element was written (see the top of the file).
    if (a.tokens == 1 && p < 2) return std::isfinite(diff_norm(part(got.dqkv, p), part(dqkv, p))) ? 0.0 : INFINITY;
    return rel_err(part(got.dqkv, p), part(dqkv, p));
  };
  // lse: the root-mean-square absolute error. An error in lse is one in the scores (d lse_i =
  // sum_j P_ij d s_ij), absolute, and lse may be near 0 (at L = 1 it is the one score).
  const double lse_err = diff_norm(got.lse, lse) / std::sqrt(double(lse.size()));
  return {rel_err(got.out, out), lse_err, err(0), err(1), err(2)};
}

// (B, L, heads, head dim): one token; several heads and batches at a head dim padded to 16 (value
// by value tile loads) and at a compiled one (16-byte loads at nonzero batch and head offsets,
// whole tiles only); and one, two and three 64-row tiles at each compiled width, partial tiles and
// padded columns included.
const kernels::AttnDims kShapes[] = {{1, 1, 1, 16},  {2, 7, 2, 5},    {2, 64, 2, 32},  {1, 33, 1, 32},
                                     {1, 65, 1, 64}, {1, 130, 1, 16}, {1, 100, 1, 40}, {1, 200, 1, 32}};

template <class Ops, int MT> void check_shapes(double tol) {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  for (const kernels::AttnDims& a : kShapes) {
    const Errors e = errors<Ops, MT>(a, gen);
    CAPTURE(a.batch, a.tokens, a.heads, a.head_dim, e.out, e.lse, e.dq, e.dk, e.dv);
    CHECK(e.out < tol);
    CHECK(e.lse < tol);
    CHECK(e.dq < tol);
    CHECK(e.dk < tol);
    CHECK(e.dv < tol);
  }
}

}  // namespace

// Both row-tile counts a bf16 kernel may run with (kernels/attention_cuda.cu chooses per head dim).
TEST_CASE("tensor-core attention on bf16 operands, emulated, matches the CPU kernels", "[attention][emulated]") {
  SECTION("one row tile per warp") { check_shapes<tc::Bf16Ops, 1>(1e-2); }
  SECTION("two row tiles per warp") { check_shapes<tc::Bf16Ops, 2>(1e-2); }
}

TEST_CASE("tensor-core attention on TF32 operands, emulated, matches the CPU kernels", "[attention][emulated]") {
  emu::unrounded_tf32 = 0;
  check_shapes<tc::Tf32Ops, 1>(5e-3);
  CHECK(emu::unrounded_tf32 == 0);  // every operand went through cvt.rna.tf32 (Tf32Ops::elem, reg)
}

// Shows that the comparison above can fail: with the mma reading B in a wrong layout (its two
// registers swapped), out is off by O(1).
TEST_CASE("negative control: a wrong mma layout in the emulator fails the comparison", "[attention][emulated]") {
  emu::WrongLayout wrong;
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  const kernels::AttnDims a{1, 16, 1, 16};
  CHECK(errors<tc::Bf16Ops, 1>(a, gen).out > 0.1);
  CHECK(errors<tc::Tf32Ops, 1>(a, gen).out > 0.1);
}
