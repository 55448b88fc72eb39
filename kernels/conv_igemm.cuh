// Implicit-GEMM convolution on tensor cores: the kernel behind kernels/conv_igemm_cuda.cu (which
// chooses the tile shape and the K split and launches it). Private to the conv kernels; the
// conventions are kernels/conv.hpp's (NHWC activations, OHWI weights, stride 1, same padding).
//
// Every direction is one GEMM C[M, N] = A[M, K] B[K, N] whose operands are never materialised:
// the loaders below gather each tile from the activations and weights as it is needed. With
// P = N*H*W pixels, T = k*k taps (tap = ky*k + kx), pad = (k-1)/2:
//   forward      y[p, co]           = sum over (tap, ci) of x_patch[p, tap*Cin + ci] * w[co, tap*Cin + ci]
//                M = P, N = Cout, K = T*Cin; A = PatchRows(x), B = WeightRows(w); bias in the epilogue.
//   data grad    dx[p, ci]          = sum over (tap, co) of dy_patch[p, tap*Cout + co] * w[co, T-1-tap, ci]
//                M = P, N = Cin, K = T*Cout; A = PatchRows(dy), B = FlippedWeights(w). (The input
//                pixel p + s feeds output p through tap s; seen from p, output p - s = p + s' with
//                s' the mirrored shift, tap T-1-tap: a forward convolution of dy with the flipped,
//                transposed filter.)
//   filter grad  dw[co, tap*Cin + ci] = sum over p of dy[p, co] * x_patch[p, tap*Cin + ci]
//                computed transposed, C = dw^T: M = T*Cin, N = Cout, K = P; A = PatchCols(x),
//                B = PixelRows(dy); the epilogue writes C[m, n] to dw[n, m].
// x_patch[p, tap*C + c] = x[img, y + ky - pad, x + kx - pad, c] (0 outside the image) where pixel
// p = (img, y, x); inside the image that is element ((p + (ky-pad)*W + (kx-pad))*C + c) of x.
//
// Block tile kBM x BN (BN = 128 or 64), K tile kBK = 128 bytes of K (32 f32 / 64 bf16 elements),
// kStages-deep cp.async pipeline; warps of kWM x kWN = 64 x 32, so a 128x128 block has 8 warps and
// a 128x64 block 4 (the experiment DDPM_IGEMM_WN=64 below gives the 128x128 block 4 warps of
// 64 x 64). Each operand tile sits in shared memory in the layout of its global source:
//   K-major (K contiguous: PatchRows, WeightRows): [rows][kBK + 16 bytes]. The 16-byte pad makes
//     the row stride 36 words, so the 8 rows x 4 K-columns a fragment load touches hit 32
//     different banks (bank = 4*row + col).
//   MN-major (M or N contiguous: FlippedWeights, PatchCols, PixelRows): [kBK][rows + 8]. The row
//     stride is 8 words mod 32, so the 4 K-rows x 8 columns of a fragment load hit 32 banks.
// Global -> shared copies are 16-byte cp.async (one "chunk" = 4 f32 / 8 bf16 consecutive channels)
// when the channel counts allow (each chunk then lies in one tap and is either entirely inside the
// tensor or entirely padding, zero-filled by cp.async); otherwise (e.g. Cin = 3) each element is
// loaded on its own ("generic" path: plain loads and shared-memory stores, same tiles, slower).
// Fragments are read from shared memory with ldmatrix (all but the TF32 MN-major tiles, which are
// read element by element) and converted to TF32 with cvt.rna for f32 data.
//
// Split-K: the K tiles are divided among gridDim.y blocks per output tile. With one split the
// epilogue writes the output (adding the bias); with several, each split writes its partial tile
// to its own slice of `partial` and reduce_splits adds the slices in split order (bias first):
// deterministic, no atomics.
#pragma once
#include <cstdint>
#include <type_traits>

#include "kernels/bf16.cuh"
#include "kernels/conv.hpp"
#include "kernels/hd.hpp"
#ifdef __CUDACC__
#include "kernels/tensor_core.cuh"  // tests/test_conv_igemm_emulated.cpp supplies emulated ptx functions instead
#endif

namespace ddpm::kernels::cuda::igemm {
// Unnamed, as attention_tc.cuh's: the host test's instances of these templates must not share a
// mangled name with the CUDA build's launch stubs it links against.
namespace {

namespace ptx = ddpm::cuda::ptx;
using ddpm::cuda::from_f32;
using ddpm::cuda::to_f32;

template <class T> constexpr int kVec = 16 / int(sizeof(T));  // elements per 16-byte chunk
template <class T> constexpr int kBK = 128 / int(sizeof(T));  // K tile: 32 f32, 64 bf16
template <class T> constexpr int kMmaK = std::is_same_v<T, float> ? 8 : 16;  // K of one mma.sync
constexpr int kBM = 128, kWM = 64, kStages = 3;
constexpr int kWarpTilesM = kWM / 16;  // mma tiles per warp: 4 x (kWN / 8)

// Warp tile N of the 128-wide blocks. 32 (8 warps a block) is the kernel; 64 (4 warps, each
// reading half the B fragments per mma) is an experiment for tools/gpu-variants.sh
// (-DDDPM_IGEMM_WN=64; docs/kernels.md, "v5"), not yet measured.
#ifndef DDPM_IGEMM_WN
#define DDPM_IGEMM_WN 32
#endif

// n / d for 0 <= n < 2^31 with one 32x32->64 multiply: q = (n * mul) >> shift with
// mul = ceil(2^(31+l) / d), 2^l >= d (Granlund-Montgomery; mul < 2^32 for every d < 2^31).
struct FastDiv {
  uint32_t d = 1, mul = 1u << 31, shift = 31;
  FastDiv() = default;
  explicit FastDiv(int divisor) : d(uint32_t(divisor)) {
    uint32_t l = 0;
    while ((uint64_t(1) << l) < d) ++l;
    shift = 31 + l;
    mul = uint32_t(((uint64_t(1) << shift) + d - 1) / d);
  }
  DDPM_HD int div(int n) const { return int((uint64_t(uint32_t(n)) * mul) >> shift); }
};

// Shared-memory layout of one operand tile with R rows of M (or N): see the header comment.
template <class T, bool kKMajorLayout, int R> struct Tile {
  static constexpr bool kKMajor = kKMajorLayout;
  static constexpr int kStride = kKMajor ? kBK<T> + kVec<T> : R + 8;
  static constexpr int kSize = (kKMajor ? R : kBK<T>) * kStride;  // elements
  DDPM_HD static int at(int mn, int k) { return kKMajor ? mn * kStride + k : k * kStride + mn; }
};

// How a thread's share of a tile splits into 16-byte chunks. The tile's contiguous dimension
// (K for K-major, M or N for MN-major) has `kCols` chunks; thread `tid` loads chunk column
// tid % kCols of rows tid / kCols + j * kRowStep, j < kRows. The column never changes, so what
// depends only on it is computed once per thread (or once per K tile).
template <int kContiguous, int kOther, int kVecLen, int kThreads> struct ChunkMap {
  static constexpr int kCols = kContiguous / kVecLen, kRowStep = kThreads / kCols, kRows = kOther / kRowStep;
  static_assert(kThreads % kCols == 0 && kOther % kRowStep == 0, "the tile must split evenly into chunks");
};

// One chunk: kVec elements that are contiguous in shared memory. `offset(e)` is the source index of
// element e (< 0: zero). The fast path copies all of them with one cp.async from offset(0); the
// caller guarantees that then offset(e) = offset(0) + e, and all or none are zero.
template <class T, class Offset> __device__ __forceinline__ void load_chunk(T* dst, const T* src, bool vec, Offset offset) {
  if (vec) {
    const int o = offset(0);
    ptx::cp_async16(dst, o >= 0 ? src + o : src, o >= 0);
  } else {
#pragma unroll
    for (int e = 0; e < kVec<T>; ++e) {
      const int o = offset(e);
      dst[e] = o >= 0 ? src[o] : from_f32<T>(0.0f);
    }
  }
}

// ---- Patch geometry shared by PatchRows and PatchCols --------------------------------------------

// A column of the patch matrix, tap*C + c, as a pixel shift and a channel.
struct Tap {
  int dy, dx, c;
  bool ok;  // tap < T (false in the K or M tail)
};
// An output pixel p (< 0 past the last pixel) and its row and column in the image.
struct Pixel {
  int p, y, x;
};

// The patch matrix of an NHWC tensor `src` [N, H, W, c] for a k x k kernel: entry (p, tap*c + ci).
template <class T> struct Patches {
  const T* src;
  int c, taps, k, h, w, pixels, pad;
  FastDiv div_c, div_k, div_w, div_h;
  bool vec;  // c is a multiple of kVec and src is 16-byte aligned: whole chunks

  Patches(const T* s, int channels, const ConvShape& sh)
      : src(s), c(channels), taps(int(sh.k * sh.k)), k(int(sh.k)), h(int(sh.h)), w(int(sh.w)), pixels(int(sh.pixels())),
        pad(int(sh.k - 1) / 2), div_c(channels), div_k(int(sh.k)), div_w(int(sh.w)), div_h(int(sh.h)),
        vec(channels % kVec<T> == 0 && reinterpret_cast<uintptr_t>(s) % 16 == 0) {}

  DDPM_HD Tap tap(int col) const {
    const int t = div_c.div(col), ky = div_k.div(t), kx = t - ky * k;
    return {ky - pad, kx - pad, col - t * c, t < taps};
  }
  DDPM_HD Pixel pixel(int p) const {
    const int q = div_w.div(p);
    return {p < pixels ? p : -1, q - div_h.div(q) * h, p - q * w};
  }
  // Index into src of entry (p, tap), or -1 where it is zero padding.
  DDPM_HD int offset(Pixel px, Tap t) const {
    const int y = px.y + t.dy, x = px.x + t.dx;
    if (!t.ok || px.p < 0 || unsigned(y) >= unsigned(h) || unsigned(x) >= unsigned(w)) return -1;
    return (px.p + t.dy * w + t.dx) * c + t.c;
  }
};

// ---- The four operands -----------------------------------------------------------------------------
// Each has kKMajor (its shared-memory layout) and a Loader<R, kThreads> built once per thread with
// the block's first row of M (A) or N (B); load(tile, k0) issues the copies of K tile [k0, k0 + kBK)
// into a tile laid out as S (Tile above; kernels/conv_wgmma.cuh passes its swizzled layout).

// A of forward and data gradient: A[p, tap*C + c] = patch entry. Rows are pixels, K-major.
template <class T> struct PatchRows : Patches<T> {
  static constexpr bool kKMajor = true;
  using Patches<T>::Patches;

  template <int R, int kThreads, class S = Tile<T, kKMajor, R>> struct Loader {
    using Map = ChunkMap<kBK<T>, R, kVec<T>, kThreads>;
    const PatchRows op;
    int col, row;
    Pixel px[Map::kRows];  // the pixel of each of the thread's rows, fixed for the whole K loop

    __device__ Loader(const PatchRows& o, int m0, int tid) : op(o), col(tid % Map::kCols * kVec<T>), row(tid / Map::kCols) {
#pragma unroll
      for (int j = 0; j < Map::kRows; ++j) px[j] = op.pixel(m0 + row + j * Map::kRowStep);
    }
    __device__ void load(T* tile, int k0) const {
      const Tap t0 = op.tap(k0 + col);  // the fast path's chunk lies in this one tap
#pragma unroll
      for (int j = 0; j < Map::kRows; ++j)
        load_chunk(tile + S::at(row + j * Map::kRowStep, col), op.src, op.vec, [&](int e) {
          return op.offset(px[j], e == 0 ? t0 : op.tap(k0 + col + e));
        });
    }
  };
};

// A of the filter gradient: A[tap*C + c, p] = patch entry (the patch matrix transposed). Rows of
// the tile are pixels (K), its contiguous dimension is M: MN-major.
template <class T> struct PatchCols : Patches<T> {
  static constexpr bool kKMajor = false;
  using Patches<T>::Patches;

  template <int R, int kThreads, class S = Tile<T, kKMajor, R>> struct Loader {
    using Map = ChunkMap<R, kBK<T>, kVec<T>, kThreads>;
    const PatchCols op;
    int col, row, m;
    Tap t0;  // the tap of the thread's (fixed) column: the fast path's whole chunk

    __device__ Loader(const PatchCols& o, int m0, int tid)
        : op(o), col(tid % Map::kCols * kVec<T>), row(tid / Map::kCols), m(m0 + col), t0(o.tap(m)) {}
    __device__ void load(T* tile, int k0) const {
#pragma unroll
      for (int j = 0; j < Map::kRows; ++j) {
        const int r = row + j * Map::kRowStep;
        const Pixel px = op.pixel(k0 + r);
        load_chunk(tile + S::at(col, r), op.src, op.vec,
                   [&](int e) { return op.offset(px, e == 0 ? t0 : op.tap(m + e)); });
      }
    }
  };
};

// B of the forward: B[kk, co] = w[co, kk] with w the OHWI weight as a [Cout, K] matrix. K-major.
template <class T> struct WeightRows {
  static constexpr bool kKMajor = true;
  const T* w;
  int n, k;  // Cout, K = T*Cin
  bool vec;  // K is a multiple of kVec and w 16-byte aligned

  template <int R, int kThreads, class S = Tile<T, kKMajor, R>> struct Loader {
    using Map = ChunkMap<kBK<T>, R, kVec<T>, kThreads>;
    const WeightRows op;
    int col, row, n0;

    __device__ Loader(const WeightRows& o, int n0_, int tid) : op(o), col(tid % Map::kCols * kVec<T>), row(tid / Map::kCols), n0(n0_) {}
    __device__ void load(T* tile, int k0) const {
#pragma unroll
      for (int j = 0; j < Map::kRows; ++j) {
        const int r = row + j * Map::kRowStep, co = n0 + r;
        load_chunk(tile + S::at(r, col), op.w, op.vec, [&](int e) {
          const int kk = k0 + col + e;
          return co < op.n && kk < op.k ? co * op.k + kk : -1;
        });
      }
    }
  };
};

// B of the data gradient: B[tap*Cout + co, ci] = w[co, T-1-tap, ci] (flipped taps, in and out
// channels swapped). Rows of the tile are K, its contiguous dimension is N = Cin: MN-major.
template <class T> struct FlippedWeights {
  static constexpr bool kKMajor = false;
  const T* w;
  int cout, cin, taps;
  FastDiv div_cout;
  bool vec;  // Cin is a multiple of kVec and w 16-byte aligned

  template <int R, int kThreads, class S = Tile<T, kKMajor, R>> struct Loader {
    using Map = ChunkMap<R, kBK<T>, kVec<T>, kThreads>;
    const FlippedWeights op;
    int col, row, ci;

    __device__ Loader(const FlippedWeights& o, int n0, int tid)
        : op(o), col(tid % Map::kCols * kVec<T>), row(tid / Map::kCols), ci(n0 + col) {}
    __device__ void load(T* tile, int k0) const {
#pragma unroll
      for (int j = 0; j < Map::kRows; ++j) {
        const int r = row + j * Map::kRowStep, kk = k0 + r, tap = op.div_cout.div(kk), co = kk - tap * op.cout;
        const int base = (co * op.taps + op.taps - 1 - tap) * op.cin;
        load_chunk(tile + S::at(col, r), op.w, op.vec,
                   [&](int e) { return tap < op.taps && ci + e < op.cin ? base + ci + e : -1; });
      }
    }
  };
};

// B of the filter gradient: B[p, co] = dy[p, co]. Rows of the tile are pixels (K), contiguous
// dimension N = Cout: MN-major.
template <class T> struct PixelRows {
  static constexpr bool kKMajor = false;
  const T* src;
  int c, pixels;
  bool vec;  // c is a multiple of kVec and src 16-byte aligned

  template <int R, int kThreads, class S = Tile<T, kKMajor, R>> struct Loader {
    using Map = ChunkMap<R, kBK<T>, kVec<T>, kThreads>;
    const PixelRows op;
    int col, row, co;

    __device__ Loader(const PixelRows& o, int n0, int tid) : op(o), col(tid % Map::kCols * kVec<T>), row(tid / Map::kCols), co(n0 + col) {}
    __device__ void load(T* tile, int k0) const {
#pragma unroll
      for (int j = 0; j < Map::kRows; ++j) {
        const int r = row + j * Map::kRowStep, p = k0 + r;
        load_chunk(tile + S::at(col, r), op.src, op.vec,
                   [&](int e) { return p < op.pixels && co + e < op.c ? p * op.c + co + e : -1; });
      }
    }
  };
};

// ---- The GEMM ---------------------------------------------------------------------------------------

// Where C goes: C[m, n] (+ bias[n]) to out[m*ldm + n*ldn], or, when `partial` is set (split-K), the
// raw sums of split s to partial[(s*M + m)*N + n].
template <class T> struct Output {
  T* out;
  int ldm, ldn;
  const T* bias;  // may be null
  float* partial;
};

template <class T, class OpA, class OpB> struct Problem {
  int m, n, k;
  OpA a;
  OpB b;
  Output<T> out;
};

// C[m, n] = v of K split `split` (nothing outside the M x N output).
template <class T, class OpA, class OpB>
__device__ __forceinline__ void store(const Problem<T, OpA, OpB>& pb, int64_t split, int m, int n, float v) {
  if (m >= pb.m || n >= pb.n) return;
  const Output<T>& o = pb.out;
  if (o.partial) o.partial[(split * pb.m + m) * pb.n + n] = v;
  else o.out[m * o.ldm + n * o.ldn] = from_f32<T>(v + (o.bias ? to_f32(o.bias[n]) : 0.0f));
}

template <class T, int BN, class OpA, class OpB> struct Config {
  static constexpr int kWN = BN == 128 ? DDPM_IGEMM_WN : 32, kWarpTilesN = kWN / 8;
  static constexpr int kWarpsM = kBM / kWM, kWarpsN = BN / kWN, kThreads = 32 * kWarpsM * kWarpsN;
  using TileA = Tile<T, OpA::kKMajor, kBM>;
  using TileB = Tile<T, OpB::kKMajor, BN>;
  static constexpr int kStageSize = TileA::kSize + TileB::kSize;  // elements
  static constexpr int kSmemBytes = kStages * kStageSize * int(sizeof(T));
};

// Fragments (kernels/tensor_core.cuh has their layouts). ldmatrix.x4 reads four 8 x 8 matrices
// of 16-bit values, each row 16 contiguous bytes of the tile; lane l gives the address of row l % 8
// of matrix l / 8, and register q of lane (g, t) receives matrix q's row g, 16-bit columns 2t and
// 2t + 1, or with .trans its column g, rows 2t and 2t + 1:
// - K-major tiles, both types: a matrix is 8 rows of mn by 16 bytes of k, so lane (g, t) gets
//   (mn g, k 2t and 2t + 1) in bf16, (mn g, k t) in f32: one fragment register either way.
// - MN-major bf16 tiles, with .trans: a matrix is 8 rows of k by 8 of mn, so lane (g, t) again
//   gets (mn g, k 2t and 2t + 1).
// Matrix q placed at register q's offsets gives the four A registers of a 16 x K tile, or the B
// registers of two 8-column tiles, in one instruction (against 4 to 16 scalar loads). A TF32
// register of an MN-major tile is one f32 that .trans would cut in halves: those are read one by
// one. Every row address is 16-byte aligned (row strides of 144 or 272 bytes, offsets in steps
// of 16 bytes) and the 8 rows of a matrix start 4 banks apart (strides of 36 or 68 words), so the
// reads are conflict-free.
template <class T, class S> constexpr bool kLdmatrix = S::kKMajor || std::is_same_v<T, bf16>;

// The A fragment of the 16 x K tile at (mn, k), or (kB) the B fragments of the 8-column tiles at mn
// and mn + 8 (registers 0, 1 and 2, 3). Register q's matrix starts at (mn + 8 dm, k + K/2 dk)
// with (dm, dk) = (q % 2, q / 2) for A (the rows' halves first) and (q / 2, q % 2) for B.
template <class T, class S, bool kB>
__device__ __forceinline__ void fragments(uint32_t (&r)[4], const T* tile, int mn, int k, int lane) {
  constexpr int K = kMmaK<T>;
  if constexpr (kLdmatrix<T, S>) {
    const int q = lane / 8, row = lane % 8;
    const int m = mn + 8 * (kB ? q / 2 : q % 2), kk = k + K / 2 * (kB ? q % 2 : q / 2);
    if constexpr (S::kKMajor) ptx::ldmatrix_x4(r, tile + S::at(m + row, kk));
    else ptx::ldmatrix_x4_trans(r, tile + S::at(m, kk + row));
    if constexpr (std::is_same_v<T, float>) {
#pragma unroll
      for (int q2 = 0; q2 < 4; ++q2) r[q2] = ptx::to_tf32(__uint_as_float(r[q2]));
    }
  } else {
    const int g = lane / 4, t = lane % 4;
#pragma unroll
    for (int q = 0; q < 4; ++q)
      r[q] = ptx::to_tf32(tile[S::at(mn + 8 * (kB ? q / 2 : q % 2) + g, k + K / 2 * (kB ? q % 2 : q / 2) + t)]);
  }
}

// One warp's share of one K tile: acc[i][j] += A[wm + 16i .. +16, :] B[:, wn + 8j .. +8].
template <class T, class TileA, class TileB, int kWarpTilesN>
__device__ __forceinline__ void warp_mma(float (&acc)[kWarpTilesM][kWarpTilesN][4], const T* a, const T* b, int wm,
                                         int wn, int lane) {
  static_assert(kWarpTilesN % 2 == 0, "B fragments are read two tiles at a time");
#pragma unroll
  for (int ks = 0; ks < kBK<T>; ks += kMmaK<T>) {
    uint32_t fa[kWarpTilesM][4], fb[kWarpTilesN / 2][4];
#pragma unroll
    for (int i = 0; i < kWarpTilesM; ++i) fragments<T, TileA, false>(fa[i], a, wm + 16 * i, ks, lane);
#pragma unroll
    for (int j = 0; j < kWarpTilesN / 2; ++j) fragments<T, TileB, true>(fb[j], b, wn + 16 * j, ks, lane);
#pragma unroll
    for (int i = 0; i < kWarpTilesM; ++i)
#pragma unroll
      for (int j = 0; j < kWarpTilesN; ++j) {
        const uint32_t fbj[2] = {fb[j / 2][2 * (j % 2)], fb[j / 2][2 * (j % 2) + 1]};
        if constexpr (std::is_same_v<T, float>) ptx::mma_tf32(acc[i][j], fa[i], fbj);
        else ptx::mma_bf16(acc[i][j], fa[i], fbj);
      }
  }
}

// Blocks per SM the registers must allow: two on sm_90, as its shared memory allows (the 256-thread
// blocks then get at most 128 registers; nvcc fits them without spills, where unbounded the bf16
// filter gradient took 162, one block per SM). An sm_80 SM holds one 108 KB block, and the bound
// would only make the compiler spill.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
constexpr int kMinBlocks = 1;
#else
constexpr int kMinBlocks = 2;
#endif

// Grid: x = output tile (N tiles fastest, so the blocks sharing an A tile run together), y = split.
template <class T, int BN, class OpA, class OpB>
__global__ void __launch_bounds__(Config<T, BN, OpA, OpB>::kThreads, kMinBlocks) igemm_kernel(Problem<T, OpA, OpB> pb) {
  using C = Config<T, BN, OpA, OpB>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* smem = reinterpret_cast<T*>(smem_raw);

  const int tid = int(threadIdx.x), lane = tid % 32, warp = tid / 32;
  const int tiles_n = (pb.n + BN - 1) / BN;
  const int m0 = int(blockIdx.x) / tiles_n * kBM, n0 = int(blockIdx.x) % tiles_n * BN;
  const int wm = warp % C::kWarpsM * kWM, wn = warp / C::kWarpsM * C::kWN;
  // This split's K tiles: [kt0, kt1), an even share of all of them.
  const int64_t k_tiles = (pb.k + kBK<T> - 1) / kBK<T>, split = blockIdx.y, splits = gridDim.y;
  const int kt0 = int(split * k_tiles / splits), kt1 = int((split + 1) * k_tiles / splits);

  const typename OpA::template Loader<kBM, C::kThreads> load_a(pb.a, m0, tid);
  const typename OpB::template Loader<BN, C::kThreads> load_b(pb.b, n0, tid);
  auto stage = [&](int kt) { return smem + (kt - kt0) % kStages * C::kStageSize; };
  auto load = [&](int kt) {
    load_a.load(stage(kt), kt * kBK<T>);
    load_b.load(stage(kt) + C::TileA::kSize, kt * kBK<T>);
  };

  float acc[kWarpTilesM][C::kWarpTilesN][4] = {};
  // Pipeline: K tile kt is in stage (kt - kt0) % kStages. Tiles kt + 1 .. kt + kStages - 1 are in
  // flight while kt is multiplied. Every iteration commits one group (possibly empty), so
  // "wait until kStages - 2 groups are pending" always means "tile kt has landed".
  for (int s = 0; s < kStages - 1; ++s) {
    if (kt0 + s < kt1) load(kt0 + s);
    ptx::cp_async_commit();
  }
  for (int kt = kt0; kt < kt1; ++kt) {
    ptx::cp_async_wait<kStages - 2>();
    // Tile kt is visible to all threads, and all are done with tile kt - 1, whose stage the next
    // load overwrites.
    __syncthreads();
    if (kt + kStages - 1 < kt1) load(kt + kStages - 1);
    ptx::cp_async_commit();
    const T* a = stage(kt);
    warp_mma<T, typename C::TileA, typename C::TileB, C::kWarpTilesN>(acc, a, a + C::TileA::kSize, wm, wn, lane);
  }

  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int i = 0; i < kWarpTilesM; ++i)
#pragma unroll
    for (int j = 0; j < C::kWarpTilesN; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r)
        store(pb, split, m0 + wm + 16 * i + g + 8 * (r / 2), n0 + wn + 8 * j + 2 * t + r % 2, acc[i][j][r]);
}

// out[m*ldm + n*ldn] = bias[n] + the sum over splits of partial[s][m][n], in split order.
// Memory-bound: (splits + 1) * M * N * 4 bytes.
template <class T> __global__ void reduce_splits(int m, int n, int splits, Output<T> o) {
  const int64_t mn = int64_t(m) * n;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < mn; i += int64_t(gridDim.x) * blockDim.x) {
    const int row = int(i / n), col = int(i % n);
    float sum = o.bias ? to_f32(o.bias[col]) : 0.0f;
    for (int s = 0; s < splits; ++s) sum += o.partial[s * mn + i];
    o.out[row * o.ldm + col * o.ldn] = from_f32<T>(sum);
  }
}

// ---- The three directions as problems (host side) -------------------------------------------------

template <class T> Problem<T, PatchRows<T>, WeightRows<T>> forward(const ConvShape& s, const T* x, const T* w, const T* b, T* y) {
  const int k = int(s.k * s.k * s.cin), cout = int(s.cout);
  WeightRows<T> wr{w, cout, k, k % kVec<T> == 0 && reinterpret_cast<uintptr_t>(w) % 16 == 0};
  return {int(s.pixels()), cout, k, PatchRows<T>(x, int(s.cin), s), wr, {y, cout, 1, b, nullptr}};
}

template <class T> Problem<T, PatchRows<T>, FlippedWeights<T>> data_grad(const ConvShape& s, const T* dy, const T* w, T* dx) {
  const int cin = int(s.cin), cout = int(s.cout), taps = int(s.k * s.k);
  FlippedWeights<T> fw{w, cout, cin, taps, FastDiv(cout), cin % kVec<T> == 0 && reinterpret_cast<uintptr_t>(w) % 16 == 0};
  return {int(s.pixels()), cin, taps * cout, PatchRows<T>(dy, cout, s), fw, {dx, cin, 1, nullptr, nullptr}};
}

template <class T> Problem<T, PatchCols<T>, PixelRows<T>> filter_grad(const ConvShape& s, const T* x, const T* dy, T* dw) {
  const int m = int(s.k * s.k * s.cin), cout = int(s.cout), pixels = int(s.pixels());
  PixelRows<T> pr{dy, cout, pixels, cout % kVec<T> == 0 && reinterpret_cast<uintptr_t>(dy) % 16 == 0};
  return {m, cout, pixels, PatchCols<T>(x, int(s.cin), s), pr, {dw, 1, m, nullptr, nullptr}};
}

}  // namespace
}  // namespace ddpm::kernels::cuda::igemm
