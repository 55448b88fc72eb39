// Host emulation of one CUDA thread block, enough to run the kernels written for the GPU
// (kernels/attention_tc.cuh, kernels/conv_igemm.cuh, kernels/conv_wgmma.cuh, kernels/norm.cuh) as
// plain C++: CI has no GPU, and this is what checks their fragment indexing, shared-memory layouts
// and tile offsets there.
//
// Every CUDA thread of a block is a std::thread (made once per launch and reused by each block);
// blocks run one after another. A cp.async lands as late as the PTX ISA allows: when the issuing
// thread's cp.async.wait_group lets its group go, so shared memory read before the wait (and the
// barrier after it) still holds the NaN the block started with, and a wrong wait depth shows.
// Under emu::EarlyCopies it lands at once instead, so a copy into a stage that is still being read
// (a missing barrier or wgmma wait) shows too. __syncthreads() is a std::barrier over the block,
// and the warp-wide operations (shuffles, mma.sync, ldmatrix) meet at a std::barrier of their
// warp: each lane writes its part into the warp's exchange area, waits, reads what it needs, and
// waits again before the area is reused. mma.sync is computed from the hardware's fragment layouts
// as kernels/tensor_core.cuh documents them (the PTX ISA's: the kernels' own relabelling of k is
// what is under test, so none of it is reused here). wgmma reads shared memory through its
// descriptors as the PTX ISA's canonical layouts say, at issue (or, under EarlyCopies, at the
// wait), and its accumulators change only at the wgmma.wait_group that lets its group go.
// Include this before the kernel header.
#pragma once
#include <sanitizer/asan_interface.h>

#include <atomic>
#include <barrier>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "kernels/bf16.hpp"

// CUDA's keywords and built-ins, as host C++ (the kernels' `extern __shared__` array, their
// dynamic shared memory, is for the test to define).
#define __device__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__

struct uint3 {
  unsigned x, y, z;
};
struct alignas(8) uint2 {  // as CUDA's: UBSan then checks the kernels' 64-bit loads are aligned
  uint32_t x, y;
};
struct alignas(16) uint4 {  // and their 16-byte ones
  uint32_t x, y, z, w;
};
struct alignas(8) float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline uint2 make_uint2(uint32_t x, uint32_t y) { return {x, y}; }
inline uint4 make_uint4(uint32_t x, uint32_t y, uint32_t z, uint32_t w) { return {x, y, z, w}; }
inline thread_local uint3 threadIdx, blockIdx;
inline uint3 gridDim, blockDim;  // set by launch() before its threads start

inline float __uint_as_float(uint32_t u) { return std::bit_cast<float>(u); }
inline uint32_t __float_as_uint(float f) { return std::bit_cast<uint32_t>(f); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }

namespace ddpm::emu {

// One warp's meeting point and exchange area.
struct Warp {
  std::barrier<> bar{32};
  double shfl[32];
  float a[16][16], b[16][8];  // the operands of one mma, gathered from the lanes' fragments
  const uint16_t* rows[32];   // the row addresses of one ldmatrix
};

struct Block {
  std::barrier<> bar;
  std::vector<Warp> warps;
  explicit Block(unsigned threads) : bar(threads), warps(threads / 32) {}
};
inline Block* block = nullptr;  // the block now running (one at a time)
// The dynamic shared memory of the running kernel and the shared-window address it starts at:
// 16-byte aligned as on the hardware, and on purpose not 1024-byte aligned, so a kernel that needs
// more alignment must make it.
inline unsigned char* smem_base = nullptr;
constexpr uint32_t kSharedWindowStart = 0x410;

inline Warp& warp() { return block->warps[threadIdx.x / 32]; }
inline int lane() { return threadIdx.x % 32; }

// TF32 operands whose low 13 bits were not zero (not rounded by cvt.rna.tf32): the hardware
// ignores those bits, so a kernel that forgets to round loses accuracy silently.
inline std::atomic<long> unrounded_tf32{0};

// Test-only switch for the negative controls: the tensor-core operations read an operand in a
// wrong layout (mma: B with its two registers swapped; wgmma: shared memory without the swizzle),
// the kind of layout bug the kernel tests have to catch.
inline bool wrong_layout = false;
struct WrongLayout {  // on for one scope
  WrongLayout() { wrong_layout = true; }
  ~WrongLayout() { wrong_layout = false; }
};

// Test-only switch: cp.async copies land when issued (see the header comment).
inline bool early_copies = false;
struct EarlyCopies {  // on for one scope
  EarlyCopies() { early_copies = true; }
  ~EarlyCopies() { early_copies = false; }
};

// d += A B for one warp: A (16 x K, row-major) and B (K x 8) from the lanes' fragments, each
// register holding U values (low half first), value(reg, e) the e-th. Lane (g, t) = (l / 4, l % 4):
//   a[r] = A[g + 8 (r % 2)][U t + (K/2) (r / 2) + e],  b[r] = B[U t + (K/2) r + e][g],
//   d[r] = D[g + 8 (r / 2)][2 t + r % 2],  e < U.
// Products of bf16 or TF32 values are exact in float; the sums are taken in double.
template <int K, int U, class Value>
void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], Value value) {
  Warp& w = warp();
  const int g = lane() / 4, t = lane() % 4;
  for (int r = 0; r < 4; ++r)
    for (int e = 0; e < U; ++e) w.a[g + 8 * (r % 2)][U * t + K / 2 * (r / 2) + e] = value(a[r], e);
  for (int r = 0; r < 2; ++r)
    for (int e = 0; e < U; ++e) w.b[U * t + K / 2 * r + e][g] = value(b[wrong_layout ? 1 - r : r], e);
  w.bar.arrive_and_wait();
  for (int r = 0; r < 4; ++r) {
    double s = d[r];
    for (int k = 0; k < K; ++k) s += double(w.a[g + 8 * (r / 2)][k]) * w.b[k][2 * t + r % 2];
    d[r] = float(s);
  }
  w.bar.arrive_and_wait();
}

// ldmatrix.x4 (.trans when Trans) as the PTX ISA describes it: lane l gives the address of row
// l % 8 of matrix l / 8 (8 16-bit values, 16-byte aligned); register m of lane (g, t) = (l / 4, l % 4)
// gets matrix m's row g, columns 2t, 2t + 1, or with .trans its column g, rows 2t, 2t + 1 (the
// first in the low half).
template <bool Trans> void ldmatrix(uint32_t (&r)[4], const void* p) {
  Warp& w = warp();
  if (reinterpret_cast<uintptr_t>(p) % 16) throw std::runtime_error("ldmatrix: a row address is not 16-byte aligned");
  w.rows[lane()] = static_cast<const uint16_t*>(p);
  w.bar.arrive_and_wait();
  const int g = lane() / 4, t = lane() % 4;
  for (int m = 0; m < 4; ++m) {
    const uint16_t* const* rows = w.rows + 8 * m;
    const uint16_t lo = Trans ? rows[2 * t][g] : rows[g][2 * t], hi = Trans ? rows[2 * t + 1][g] : rows[g][2 * t + 1];
    r[m] = uint32_t(lo) | uint32_t(hi) << 16;
  }
  w.bar.arrive_and_wait();
}

// Runs kernel() for every block of `grid` (x fastest), `threads` threads each (a multiple of 32). The kernel's
// dynamic shared memory is the first `bytes` of `smem` (whatever array its dynamic_smem() names):
// filled with NaN (0xff bytes, NaN as f32 and as bf16) before each block, so a read of an element
// no thread wrote shows in the results; the rest is poisoned for AddressSanitizer, which then
// reports a kernel that uses more than it asks for at launch.
// A thread's state that belongs to one block (its open cp.async and wgmma groups, its fences), back
// to the start: defined at the end of this file, next to that state.
inline void start_block_thread();

// Runs the grid's blocks one after another (x fastest, then y, then z) on one std::thread per CUDA
// thread, made once per launch: between two blocks every thread waits at `next`, whose completion
// gives the next block fresh (NaN-filled) shared memory.
template <class Kernel>
void launch(uint3 grid, unsigned threads, std::span<unsigned char> smem, size_t bytes, Kernel&& kernel) {
  // What a GPU refuses as an invalid configuration, refused here too.
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535 || threads == 0 || threads > 1024)
    throw std::invalid_argument("emulated launch: invalid configuration (grid " + std::to_string(grid.x) + "x" +
                                std::to_string(grid.y) + "x" + std::to_string(grid.z) + ", " +
                                std::to_string(threads) + " threads)");
  ASAN_POISON_MEMORY_REGION(smem.data() + bytes, smem.size() - bytes);
  smem_base = smem.data();
  gridDim = grid;
  blockDim = {threads, 1, 1};
  auto fresh_smem = [&]() noexcept { std::memset(smem.data(), 0xff, bytes); };
  fresh_smem();
  Block blk(threads);
  block = &blk;
  std::barrier next(std::ptrdiff_t(threads), fresh_smem);
  {
    std::vector<std::jthread> th;  // joined before blk goes
    for (unsigned i = 0; i < threads; ++i)
      th.emplace_back([&, i] {
        threadIdx = {i, 0, 0};
        for (unsigned id = 0; id < grid.x * grid.y * grid.z; ++id) {
          blockIdx = {id % grid.x, id / grid.x % grid.y, id / (grid.x * grid.y)};
          start_block_thread();
          kernel();
          next.arrive_and_wait();
        }
      });
  }
  block = nullptr;
  ASAN_UNPOISON_MEMORY_REGION(smem.data() + bytes, smem.size() - bytes);
}

// The host twin of ddpm::cuda::DeviceLaunch (kernels/cuda_launch.cuh), for the kernels whose
// launch sequences take a launcher: runs each launch on `threads` threads per block, with `smem`
// as the dynamic shared memory.
struct Launcher {
  unsigned threads;
  std::span<unsigned char> smem;
  template <class... P, class... A>
  void operator()(const char*, uint3 grid, size_t smem_bytes, void (*kernel)(P...), A... args) const {
    if (smem_bytes > smem.size()) throw std::runtime_error("emu::Launcher: more shared memory than the test gave");
    launch(grid, threads, smem, smem_bytes, [&] { kernel(P(args)...); });
  }
  template <class... P, class... A>
  void operator()(const char* name, uint3 grid, void (*kernel)(P...), A... args) const {
    (*this)(name, grid, 0, kernel, args...);
  }
};

}  // namespace ddpm::emu

inline void __syncthreads() { ddpm::emu::block->bar.arrive_and_wait(); }

// All 32 lanes take part (the kernels pass the full mask).
namespace ddpm::emu {
// Every lane publishes v, then reads lane src(lane)'s value (float or double, exact either way).
template <class T, class Src> T shuffle(T v, Src src) {
  Warp& w = warp();
  w.shfl[lane()] = double(v);
  w.bar.arrive_and_wait();
  const T r = T(w.shfl[src(lane())]);
  w.bar.arrive_and_wait();
  return r;
}
}  // namespace ddpm::emu

// Masks and widths are not checked: every kernel here shuffles with all 32 lanes, within groups
// of `width` lanes that an xor below `width` never leaves.
template <class T> T __shfl_xor_sync(unsigned /*mask*/, T v, int lane_mask, int /*width*/ = 32) {
  return ddpm::emu::shuffle(v, [&](int l) { return l ^ lane_mask; });
}
template <class T> T __shfl_down_sync(unsigned /*mask*/, T v, unsigned delta) {
  return ddpm::emu::shuffle(v, [&](int l) { return l + int(delta) < 32 ? l + int(delta) : l; });
}

// The PTX wrappers of kernels/tensor_core.cuh that the kernels under test use.
namespace ddpm::cuda::ptx {

// cp.async.cg of 16 bytes; with !valid the destination is zero-filled and src unread. Both
// addresses must be 16-byte aligned, as on the hardware. The copy waits in this thread's open
// group until cp_async_commit, and lands in cp_async_wait (the source, global memory the kernel
// does not write, is read then).
struct AsyncCopy {
  void* dst;
  const void* src;  // null: zero-fill
};
inline thread_local std::vector<AsyncCopy> async_open;                 // issued since the last commit
inline thread_local std::vector<std::vector<AsyncCopy>> async_groups;  // committed, oldest first
inline void land(const AsyncCopy& c) {
  if (c.src) std::memcpy(c.dst, c.src, 16);
  else std::memset(c.dst, 0, 16);
}
inline void cp_async16(void* smem, const void* gmem, bool valid) {
  if (reinterpret_cast<uintptr_t>(smem) % 16 || (valid && reinterpret_cast<uintptr_t>(gmem) % 16))
    throw std::runtime_error("cp.async: an address is not 16-byte aligned");
  if (emu::early_copies) land({smem, valid ? gmem : nullptr});
  else async_open.push_back({smem, valid ? gmem : nullptr});
}
inline void cp_async_commit() {
  async_groups.push_back(std::move(async_open));
  async_open.clear();
}
// Lands every committed group but the kPending newest (and marks the data as not yet fenced for
// wgmma: that check runs with the late copies only).
inline thread_local bool landed_unfenced = false;
template <int kPending> void cp_async_wait() {
  while (async_groups.size() > size_t(kPending)) {
    landed_unfenced = true;
    for (const AsyncCopy& c : async_groups.front()) land(c);
    async_groups.erase(async_groups.begin());
  }
}

// cvt.rna.tf32.f32: nearest, ties away from zero, to 10 mantissa bits; NaN to the canonical NaN.
inline uint32_t to_tf32(float x) { return std::isnan(x) ? 0x7fffffffu : (__float_as_uint(x) + 0x1000u) & 0xffffe000u; }

// cvt.rn.bf16x2.f32: each value rounded to nearest even, lo in the low half.
inline uint32_t pack_bf16x2(float lo, float hi) {
  return uint32_t(float_to_bf16(lo).bits) | uint32_t(float_to_bf16(hi).bits) << 16;
}

// ex2.approx.ftz.f32: subnormal results flushed to zero.
inline float exp2_ftz(float x) {
  const float r = std::exp2(x);
  return std::fpclassify(r) == FP_SUBNORMAL ? 0.0f : r;
}

inline void ldmatrix_x4(uint32_t (&r)[4], const void* p) { emu::ldmatrix<false>(r, p); }
inline void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) { emu::ldmatrix<true>(r, p); }

inline void mma_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  emu::mma<16, 2>(d, a, b, [](uint32_t reg, int e) { return bf16_to_float(bf16{uint16_t(reg >> 16 * e)}); });
}

inline void mma_tf32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  emu::mma<8, 1>(d, a, b, [](uint32_t reg, int) {
    if (reg & 0x1fffu) ++emu::unrounded_tf32;
    return __uint_as_float(reg & 0xffffe000u);
  });
}

inline uint32_t shared_address(const void* p) {
  return uint32_t(static_cast<const unsigned char*>(p) - emu::smem_base) + emu::kSharedWindowStart;
}
inline void fence_proxy_async() { landed_unfenced = false; }

// wgmma.mma_async m64nNk16, bf16 operands from shared memory, f32 accumulators. Issued, it joins
// this thread's open group; committed groups run, oldest first, in wgmma_wait.
struct Wgmma {
  float* d;
  int n;
  uint64_t desc_a, desc_b;
  bool trans_a, trans_b;
  std::vector<double> products;  // read at issue (see wgmma_issue), else empty
};
inline thread_local std::vector<Wgmma> wgmma_open;
inline thread_local std::vector<std::vector<Wgmma>> wgmma_groups;
inline thread_local bool wgmma_unfenced = true;  // no wgmma.fence since the start or the last wait

// Element (mn, k) of a 64 x 16 (A) or N x 16 (B) operand, as the PTX ISA's canonical layouts with
// the 128-byte swizzle place it (T = 8 bf16 = 16 bytes; offsets in bytes):
//   K-major  ((8,m),(T,2)):((8T,SBO),(1,T)):  start + (mn % 8) 128 + (mn / 8) SBO + 2k
//   MN-major ((T,8,m),(8,k)):((1,T,LBO),(8T,SBO)):  start + 2 (mn % 64) + (mn / 64) LBO + (k % 8) 128 + (k / 8) SBO
// then the swizzle on the address: bits 4-6 ^= bits 7-9.
inline float wgmma_operand(uint64_t desc, bool mn_major, int mn, int k) {
  const uint32_t start = uint32_t(desc & 0x3fff) << 4, lbo = uint32_t(desc >> 16 & 0x3fff) << 4;
  const uint32_t sbo = uint32_t(desc >> 32 & 0x3fff) << 4;
  if (desc >> 62 != 1 || (desc >> 49 & 7) != 0)
    throw std::runtime_error("wgmma: only the 128-byte swizzle with base offset 0 is emulated");
  if (start >> 7 & 7) throw std::runtime_error("wgmma: a swizzled operand must start in the first row of a 1024-byte atom");
  uint32_t at = mn_major ? start + 2 * (mn % 64) + (mn / 64) * lbo + (k % 8) * 128 + (k / 8) * sbo
                         : start + (mn % 8) * 128 + (mn / 8) * sbo + 2 * k;
  if (!emu::wrong_layout) at ^= (at >> 7 & 7) << 4;
  uint16_t bits;
  std::memcpy(&bits, emu::smem_base + (at - emu::kSharedWindowStart), 2);
  return bf16_to_float(bf16{bits});
}

// This thread's products: entry 4j + r is sum over k of A[row][k] B[k][col], row = 16w + g + 8(r/2),
// col = 8j + 2q + r%2 (kernels/tensor_core.cuh).
inline std::vector<double> wgmma_products(const Wgmma& op) {
  const int t = int(threadIdx.x % 128), w = t / 32, g = t % 32 / 4, q = t % 4;
  std::vector<double> p(size_t(op.n / 2));
  for (int j = 0; j < op.n / 8; ++j)
    for (int r = 0; r < 4; ++r) {
      const int row = 16 * w + g + 8 * (r / 2), col = 8 * j + 2 * q + r % 2;
      for (int k = 0; k < 16; ++k)
        p[size_t(4 * j + r)] +=
            double(wgmma_operand(op.desc_a, op.trans_a, row, k)) * wgmma_operand(op.desc_b, op.trans_b, col, k);
    }
  return p;
}

// The hardware reads the operands at some time between issue and wait_group. With the copies
// landing late (the default) they are read at issue: a wgmma issued before its tile has landed
// everywhere (a missing barrier) reads NaN. With early copies they are read at the wait: a copy
// into a stage that an unfinished wgmma still reads shows. The accumulators change at the wait
// either way.
template <int N, int kTransA, int kTransB> void wgmma_issue(float* d, uint64_t desc_a, uint64_t desc_b) {
  if (wgmma_unfenced) throw std::runtime_error("wgmma: no wgmma.fence before it");
  if (landed_unfenced) throw std::runtime_error("wgmma: shared memory from cp.async not fenced (fence.proxy.async)");
  Wgmma op{d, N, desc_a, desc_b, kTransA == 1, kTransB == 1, {}};
  if (!emu::early_copies) op.products = wgmma_products(op);
  wgmma_open.push_back(std::move(op));
}
template <int kTransA, int kTransB> void wgmma_m64n64k16_bf16(float (&d)[32], uint64_t a, uint64_t b) {
  wgmma_issue<64, kTransA, kTransB>(d, a, b);
}
template <int kTransA, int kTransB> void wgmma_m64n128k16_bf16(float (&d)[64], uint64_t a, uint64_t b) {
  wgmma_issue<128, kTransA, kTransB>(d, a, b);
}
inline void wgmma_fence() { wgmma_unfenced = false; }
inline void wgmma_commit() {
  wgmma_groups.push_back(std::move(wgmma_open));
  wgmma_open.clear();
}
template <int kPending> void wgmma_wait() {
  while (wgmma_groups.size() > size_t(kPending)) {
    for (const Wgmma& op : wgmma_groups.front()) {
      const std::vector<double> p = op.products.empty() ? wgmma_products(op) : op.products;
      for (size_t i = 0; i < p.size(); ++i) op.d[i] = float(double(op.d[i]) + p[i]);
    }
    wgmma_groups.erase(wgmma_groups.begin());
  }
  wgmma_unfenced = true;
}
template <int n> void fence_registers(float (&)[n]) {}

}  // namespace ddpm::cuda::ptx

// Host test data in a kernel's element type and back (kernels/bf16.cuh's conversions, as the
// kernels use them).
#include "kernels/bf16.cuh"
namespace ddpm::emu {
template <class T> std::vector<T> narrow(const std::vector<float>& v) {
  std::vector<T> r;
  for (float x : v) r.push_back(cuda::from_f32<T>(x));
  return r;
}
template <class T> std::vector<float> widen(const std::vector<T>& v) {
  std::vector<float> r;
  for (T x : v) r.push_back(cuda::to_f32(x));
  return r;
}
}  // namespace ddpm::emu

inline void ddpm::emu::start_block_thread() {
  using namespace ddpm::cuda::ptx;
  async_open.clear();
  async_groups.clear();
  landed_unfenced = false;
  wgmma_open.clear();
  wgmma_groups.clear();
  wgmma_unfenced = true;
}
