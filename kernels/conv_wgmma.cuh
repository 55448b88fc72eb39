// Implicit-GEMM convolution on Hopper's warpgroup MMA (wgmma, sm_90a), bf16 operands, f32
// accumulation: version 6 of our convolution (docs/kernels.md). The GEMMs, their operands and
// loaders, split-K and the output are kernels/conv_igemm.cuh's; what differs is who multiplies:
//   v4: 8 warps, each mma.sync on register fragments read from shared memory by ldmatrix;
//   v6: 2 warpgroups (4 warps each), each wgmma on 64 x BN x 16 products read by the tensor cores
//       themselves from shared memory, asynchronously, while the threads issue the next copies.
//
// Block tile 128 x BN (BN = 128 or 64), K tile 64 (128 bytes of bf16); warpgroup g owns rows
// [64g, 64g + 64) of the tile, its accumulators are 64 x BN f32 (BN / 2 registers a thread).
// Per K tile each warpgroup issues 4 wgmma m64nBNk16, one commit group.
//
// Shared memory: the tensor cores read operands in the "128-byte swizzle" canonical layouts of
// the PTX ISA (section "Matrix Descriptor Format" and "Canonical Layouts" of wgmma):
//   K-major tile (rows mn, K contiguous): row mn is 128 bytes (64 K values) at mn * 128; the
//     16-byte chunk c of the row (K values 8c .. 8c + 7) sits at chunk c ^ (mn % 8).
//   MN-major tile (64 K rows, MN contiguous): for each 64-wide block of MN an 8 KB panel of 64
//     rows of 128 bytes, row k holding MN values 64i .. 64i + 63, chunk c at chunk c ^ (k % 8).
// The swizzle is what the hardware applies to address bits 4-6 (XOR bits 7-9), so each 8-row
// group (1 KB) must start at a 1024-byte-aligned shared address: the kernel aligns its dynamic
// shared memory itself (the launch asks for 1 KB more). cp.async writes whole chunks, so the
// swizzle moves them without splitting any, and 8 threads writing one row's 8 chunks hit 32 banks.
// Descriptors (64-bit): start address >> 4 in bits 0-13, LBO >> 4 in 16-29, SBO >> 4 in 32-45,
// layout 1 (128-byte swizzle) in bits 62-63; base offset 0 (atoms are 1024-aligned).
//   K-major: SBO = 1024 (from one 8-row group to the next), LBO unused (16); the k-th 16-wide
//     K step starts 32k bytes into the row.
//   MN-major: SBO = 1024 (from 8 K rows to the next 8), LBO = 8192 (from one 64-wide MN panel to
//     the next); the k-th K step starts 16 rows (2048 bytes) further.
//
// Pipeline: 4 stages, 2 tiles in flight ahead. At K tile kt a thread waits for its copies of kt,
// fences them into the async proxy (fence.proxy.async: cp.async writes are generic-proxy writes),
// and meets the block at a barrier. Its warpgroup then issues its 4 wgmma for kt and commits them;
// the thread issues the copies of kt + 2 into the stage of kt - 2, which no wgmma reads any more
// (every warpgroup waited for its kt - 2 group, wgmma_wait<1> at the end of kt - 1, before that
// barrier), and waits for kt - 1's group: the tensor cores always have the current tile queued
// behind the last.
//
// Napkin math (H100/H200, 132 SMs at ~1.8 GHz, ~4,000 dense bf16 FLOP per clock per SM): one K
// tile of a 128 x 128 block is 2 MFLOP, ~512 clocks of tensor core; its copies are 2 x 128 rows x
// 8 chunks = 2,048 cp.async, 8 a thread, plus their index math, which 8 warps issue in a few
// hundred clocks, in the shadow of the running wgmma. Shared memory: 4 x (16 + 16) KB = 128 KB
// (BN = 128) or 4 x 24 KB = 96 KB (BN = 64): one block of 256 threads per SM (two at BN = 64).
#pragma once
#include "kernels/conv_igemm.cuh"

namespace ddpm::kernels::cuda::igemm {
namespace {

constexpr int kWgStages = 4, kWgAhead = 2, kWgThreads = 256;

// The swizzled tile of R rows (K-major) or R columns (MN-major; R a multiple of 64), 64 K each.
template <bool kKMajorLayout, int R> struct SwizzledTile {
  static constexpr bool kKMajor = kKMajorLayout;
  static constexpr int kSize = R * 64;  // elements
  static_assert(kKMajor ? R % 8 == 0 : R % 64 == 0, "whole 1 KB swizzle atoms");
  DDPM_HD static int at(int mn, int k) {
    if constexpr (kKMajor) return mn * 64 + ((k / 8 ^ mn % 8) * 8) + k % 8;
    else return mn / 64 * 4096 + k * 64 + ((mn % 64 / 8 ^ k % 8) * 8) + mn % 8;
  }
  // The descriptor of rows (K-major) or columns (MN-major) [mn0, mn0 + 64 or BN) of K step ks
  // (16 K values) of the tile at shared address `base` (1024-aligned, mn0 a multiple of 64).
  DDPM_HD static uint64_t descriptor(uint32_t base, int mn0, int ks) {
    const uint32_t start = kKMajor ? base + uint32_t(mn0 * 128 + ks * 32) : base + uint32_t(mn0 / 64 * 8192 + ks * 2048);
    const uint64_t lbo = kKMajor ? 16 : 8192, sbo = 1024;
    return uint64_t((start & 0x3ffff) >> 4) | (lbo >> 4) << 16 | (sbo >> 4) << 32 | uint64_t(1) << 62;
  }
};

template <int BN, class OpA, class OpB> struct WgConfig {
  using TileA = SwizzledTile<OpA::kKMajor, kBM>;
  using TileB = SwizzledTile<OpB::kKMajor, BN>;
  static constexpr int kStageSize = TileA::kSize + TileB::kSize;                    // elements
  static constexpr int kSmemBytes = kWgStages * kStageSize * int(sizeof(bf16)) + 1024;  // + alignment slack
  static constexpr int kAcc = BN / 2;                                                // f32 registers a thread
};

// acc += the 64 x BN x 16 product of K step ks (one wgmma of the instruction shape BN).
template <int BN, class TileA, class TileB>
__device__ __forceinline__ void wgmma_step(float (&acc)[BN / 2], uint32_t a, uint32_t b, int wg, int ks) {
  const uint64_t da = TileA::descriptor(a, 64 * wg, ks), db = TileB::descriptor(b, 0, ks);
  constexpr int ta = TileA::kKMajor ? 0 : 1, tb = TileB::kKMajor ? 0 : 1;
  if constexpr (BN == 128) ptx::wgmma_m64n128k16_bf16<ta, tb>(acc, da, db);
  else ptx::wgmma_m64n64k16_bf16<ta, tb>(acc, da, db);
}

// Grid and split-K as igemm_kernel's.
// Blocks per SM: one at BN = 128 (its 128 KB of shared memory), two at BN = 64 (96 KB each; the
// bound holds the registers to 128 a thread so that two fit).
template <int BN, class OpA, class OpB>
__global__ void __launch_bounds__(kWgThreads, BN == 64 ? 2 : 1) wgmma_kernel(Problem<bf16, OpA, OpB> pb) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL) || !defined(__CUDACC__)  // sm_90a, or the host emulation
  using C = WgConfig<BN, OpA, OpB>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  // The first 1024-aligned shared address (the base is only 16-byte aligned).
  bf16* smem = reinterpret_cast<bf16*>(smem_raw + (1024 - ptx::shared_address(smem_raw) % 1024) % 1024);
  const uint32_t smem_addr = ptx::shared_address(smem);

  const int tid = int(threadIdx.x), wg = tid / 128;
  const int tiles_n = (pb.n + BN - 1) / BN;
  const int m0 = int(blockIdx.x) / tiles_n * kBM, n0 = int(blockIdx.x) % tiles_n * BN;
  const int64_t k_tiles = (pb.k + kBK<bf16> - 1) / kBK<bf16>, split = blockIdx.y, splits = gridDim.y;
  const int kt0 = int(split * k_tiles / splits), kt1 = int((split + 1) * k_tiles / splits);

  const typename OpA::template Loader<kBM, kWgThreads, typename C::TileA> load_a(pb.a, m0, tid);
  const typename OpB::template Loader<BN, kWgThreads, typename C::TileB> load_b(pb.b, n0, tid);
  auto stage = [&](int kt) { return (kt - kt0) % kWgStages * C::kStageSize; };  // element offset
  auto load = [&](int kt) {
    load_a.load(smem + stage(kt), kt * kBK<bf16>);
    load_b.load(smem + stage(kt) + C::TileA::kSize, kt * kBK<bf16>);
  };

  float acc[C::kAcc] = {};
  for (int s = 0; s < kWgAhead; ++s) {
    if (kt0 + s < kt1) load(kt0 + s);
    ptx::cp_async_commit();
  }
  for (int kt = kt0; kt < kt1; ++kt) {
    ptx::cp_async_wait<kWgAhead - 1>();
    ptx::fence_proxy_async();
    __syncthreads();
    const uint32_t a = smem_addr + uint32_t(stage(kt) * 2), b = a + uint32_t(C::TileA::kSize * 2);
    ptx::fence_registers(acc);
    ptx::wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < kBK<bf16> / 16; ++ks) wgmma_step<BN, typename C::TileA, typename C::TileB>(acc, a, b, wg, ks);
    ptx::wgmma_commit();
    // The tensor cores have their work; now the copies (the element-wise path's loads are
    // synchronous and would hold the wgmma back if they came first).
    if (kt + kWgAhead < kt1) load(kt + kWgAhead);
    ptx::cp_async_commit();
    ptx::wgmma_wait<1>();
    ptx::fence_registers(acc);
  }
  ptx::wgmma_wait<0>();
  ptx::fence_registers(acc);

  const int lane = tid % 32, row0 = m0 + 64 * wg + 16 * (tid % 128 / 32) + lane / 4, col0 = n0 + 2 * (lane % 4);
#pragma unroll
  for (int j = 0; j < BN / 8; ++j)
#pragma unroll
    for (int r = 0; r < 4; ++r) store(pb, split, row0 + 8 * (r / 2), col0 + 8 * j + r % 2, acc[4 * j + r]);
#else
  __trap();  // launched only where the sm_90a image exists (conv_igemm_cuda.cu)
#endif
}

}  // namespace
}  // namespace ddpm::kernels::cuda::igemm
