// Version 2 of the attention kernels (see kernels/attention_cuda.cu, which includes this and
// launches them): flash attention on tensor cores. Kept in a header of its own so that
// tests/test_attention_emulated.cpp can compile the same kernels as host C++ (with the CUDA
// built-ins from tests/cuda_emulation.hpp) and check their fragment indexing on CI, which has no GPU.
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels/bf16.cuh"
#ifdef __CUDACC__
#include "kernels/tensor_core.cuh"  // the host test supplies emulated ddpm::cuda::ptx functions instead
#endif

namespace ddpm::kernels::cuda {
// Unnamed, as the rest of attention_cuda.cu: the host test's instances of these kernel templates
// must not share a mangled name with the CUDA build's launch stubs it links against.
namespace {

using ddpm::cuda::from_f32;
using ddpm::cuda::ptx::exp2_ftz;

constexpr int kRows = 64;  // own rows per block: version 1, and version 2 with one row tile per warp
constexpr float kLog2e = 1.4426950408889634f;

// The block's dynamic shared memory (its size set at launch), 16-byte aligned.
__device__ __forceinline__ unsigned char* dynamic_smem() {
  extern __shared__ __align__(16) unsigned char smem[];
  return smem;
}

// Version 2: the same flash algorithm on tensor cores, f32 accumulation, for two operand types:
// - bf16 data: mma.sync m16n8k16 with bf16 operands;
// - f32 data when ddpm::cuda::allow_tf32() (`--tf32`): mma.sync m16n8k8 with TF32 operands (each
//   operand rounded to 10 mantissa bits, cvt.rna). Without TF32 the f32 path stays version 1,
//   exact f32, the project's rule for `--tf32`.
// kernels/tensor_core.cuh has the fragment layouts. One set of kernels and helpers serves both,
// templated on an operand type (Bf16Ops, Tf32Ops below: the element in shared memory, packing
// values into 32-bit operand registers, the mma call and its k width kK = 16 or 8).
// A block of 4 warps owns 64 MT rows of one (batch, head), MT row tiles of 16 per warp (MT = 1 or
// 2, a template parameter), and streams the other side in 64-row tiles through shared memory. Each
// warp keeps its own rows as A fragments in registers and its 16 MT x D results as accumulators.
// Why two tiles: every B fragment read from shared memory then feeds two mma, and the warp has two
// independent chains of products and exponentials to interleave, which the latency-bound loop
// (mma, row max, exponentials, mma, per 64-key tile) needs more than it needs occupancy: on an
// H200 two tiles took the bf16 forward at 1024 tokens / D = 32 from 245 to 178 us, the backward
// from 795 to 552 (docs/kernels.md).
//
// One k order for both types. In a k step, lane (g, t) holds, for register half h in {0, 1}
// (A: h = r / 2, rows g + 8 (r % 2); B: h = r, column g), the kU values (kU = 2 bf16, 1 TF32) at
//   k = 2t + kS h + e,  e < kU,  kS = 8 (bf16), 1 (TF32).
// For bf16 that is the documented layout (k = 2t + 8h, 2t + 8h + 1). For TF32 the documented k is
// t + 4h: the kernels relabel it, letting the mma's k index t + 4h carry key (or dimension) 2t + h
// of the 8-wide step, and read A and B with the same relabelling: a permutation of k, applied to
// both operands, leaves every product A B unchanged. What it buys: an accumulator d[r] holds
// C[g + 8 (r / 2)][2t + r % 2], so a 16 x 8 tile of accumulators is, unchanged, the TF32 A fragment
// of one 8-key step, a[r] = d[2 (r % 2) + r / 2] (a[0], a[1]: k 2t of rows g, g + 8; a[2], a[3]:
// k 2t + 1), with no shuffles; and a lane's two B values (keys 2t, 2t + 1) are adjacent in shared
// memory, one 64-bit load. For bf16, two adjacent 8-column accumulator tiles are one 16-wide step
// (k 2t, 2t + 1 from tile 0, 2t + 8, 2t + 9 from tile 1).
// Products come in two shapes, one helper each:
// - mma_rows: C = A X^T with X row-major in shared memory (stride D + kPad): B[k][n] = X[n][k],
//   so a lane's B values (k, k + 1 for bf16) at column n = g are adjacent values of row n of X.
// - mma_cols: O += P X where P is a 16 x kK chunk of accumulators (fed back as the A operand
//   without touching shared memory, see above) and X has kK rows: B[k][n] = X[k][n], so a lane's
//   two values are in two rows. For bf16, ldmatrix.trans gathers them from the row-major tile
//   (one instruction for two 8-column tiles); TF32 has no such instruction (it moves 16-bit
//   values), so its tiles keep a transposed copy (stride kKeys + kPad), where they are adjacent.
// bf16 thus keeps one row-major copy of each tile, read both ways; TF32 keeps two where both are used.
// Shared-memory rows are padded by kPad = 8 elements, which keeps every fragment load
// conflict-free:
// - bf16 (ldmatrix: 8 rows of 16 bytes per matrix): the stride D + 8 bf16 is 12, 20 or 36 32-bit
//   words (4 times an odd number), so 8 consecutive rows start on 8 different multiples of 4
//   banks and cover all 32.
// - TF32 (64-bit loads, a lane's two B registers at once): the strides D + 8 and kKeys + 8 floats
//   are 24, 40, 72 words (8 times an odd number). A 64-bit load is served a half-warp (groups
//   g = 0..3, then 4..7) at a time; the four groups' rows start on 4 different multiples of 8
//   banks and the lanes t read words 2t, 2t + 1 after that: each half-warp hits 32 different banks.
// Rows past L read zeros and are not stored. Tiles travel through registers (TileLoad): 16-byte
// global loads of the next tile are issued before the current one is used, and stored to shared
// memory after it: row-major in 16-byte stores (for bf16 2-way bank-conflicted in places: a
// quarter-warp's 4 rows of 8 words on a 12-, 20- or 36-word stride overlap), transposed (TF32)
// value by value, conflict-free.
// Shared memory is dynamic (the f32 tiles are twice the bytes, over the 48 KiB static limit for
// the backward at D = 64; launch_tc() in attention_cuda.cu raises the limit once per kernel). Per
// block, with R = 64 (D + 8) elements a row-major tile and T = D 72 a transposed one (TF32 only):
//   forward bf16 2R, f32 R + T:               bf16 6 / 10 / 18 KiB,     f32 10.5 / 19 / 36 KiB (D = 16 / 32 / 64)
//   dq      bf16 2R, f32 2R + T:              bf16 6 / 10 / 18 KiB,     f32 16.5 / 29 / 54 KiB
//   dkv     bf16 2R, f32 2R + 2T; + 512 bytes: bf16 6.5 / 10.5 / 18.5 KiB, f32 21.5 / 38.5 / 72.5 KiB
// (at D = 64 the f32 dkv fits 3 blocks in an H200 SM's 227 KiB; registers allow no more anyway).
//
// Forward (attention_fwd_k): own queries; K row-major, V as mma_cols reads it; S = Q K^T (mma_rows),
// online softmax (keys past L get -inf scores), P = exp2(S scale - m scale) rounded to the operand type,
// O += P V (mma_cols). Napkin math at L = 4096, D = 16, 4 heads, batch 64: 275 GFLOP, ~0.35 ms at
// the H200's 796 TFLOP/s bf16 dense peak (~0.66 ms at the ~415 TFLOP/s TF32 dense peak measured at
// 8192^3), but 4.3e9 exponentials (exp2_ftz: one MUFU.EX2) at ~16 per clock per SM (~4e12/s) take >= ~1 ms: at D = 16 the
// exponentials, not the products, bound it, in either type (v1 measured 12.3 ms in f32); at
// D = 64 the products weigh 4x more and TF32 should take about twice bf16's time.
//
// Backward: delta as version 1, then two kernels, each output row with one owner (no atomics,
// deterministic). Neither keeps a softmax state, so both work in kK-wide chunks of the streamed
// tile: P and dS of one chunk live in registers and never leave them.
// - attention_dkv_k: a warp owns 16 MT keys (K and V as A fragments) and streams Q and dout tiles,
//   each read by both helpers (the same values are a B operand both ways), plus the
//   tile's lse*log2(e) and delta. Per chunk of kK queries:
//     S^T = K Q^T, dP^T = V dout^T (mma_rows: A = own K or V rows, X = Q or dout rows),
//     P^T = exp2(S^T scale - lse2_i) (0 for queries past L: lse2 = +inf there),
//     dS^T = P^T (dP^T - delta_i),
//     dV += P^T dout, dK += dS^T Q (mma_cols: P^T, dS^T from accumulators, X = dout or Q).
// - attention_dq_k: a warp owns 16 MT queries (Q and dout as A fragments, its two lse2 and delta in
//   registers) and streams K (read by both helpers) and V (row-major). Per chunk of kK keys:
//     S = Q K^T, dP = dout V^T (mma_rows), P = exp2(S scale - lse2) (0 for keys past L: their
//     zero rows would give exp2(-lse2), which overflows for very negative rows, and inf * 0 is
//     NaN), dS = P (dP - delta), dQ += dS K (mma_cols, X = K).
// dK and dQ are stored times 1/sqrt(d) (the scores' scale without log2(e)).
// Numerics: as in flash attention, P (for O and dV) and dS (for dK, dQ) are rounded to the operand
// type as A operands. bf16: ~2^-9 relative per term, in sums of random sign over L terms (2-3e-3
// against a double reference, emulated). TF32: Q, K, V, dout, P and dS each rounded to 10 mantissa
// bits (at most 2^-11 relative), a norm-wise error of ~1e-3 relative in out, dq, dk and dv where
// exact f32 gives ~1e-6: emulated on the host against a double reference, 2e-4 to 8e-4 at scores
// of unit spread (L 7 to 4096, head dims 5 to 64), up to 4e-3 for peaked ones (spread ~16).
// Napkin math (batch B, heads h, L, D): S and dP are computed by both kernels, so 14*B*h*L^2*D
// FLOPs (10 without recomputation), and 2*B*h*L^2 exponentials. At B = 64, h = 4, L = 4096, D = 16:
// 962 GFLOP, ~1.2 ms at the 796 TFLOP/s bf16 peak, ~2.3 ms at the ~415 TFLOP/s TF32 peak
// (mma.sync reaches only part of either on Hopper), and 8.6e9 exponentials at ~4e12/s >= ~2.1 ms; the
// elementwise work around each exponential (~5 f32 ops: scale and subtract, dP - delta, times P,
// the conversions of P and dS) takes the issue slots of about as much again. At D = 16 the floor
// is set by the exponentials and their elementwise work, ~3 ms (bf16) to ~3-4 ms (TF32), not by
// the products (v1 measured 35.4 ms in bf16 data and 36.9 ms in f32, PyTorch SDPA bf16 7.7 ms).
// Hardware (docs/kernels.md has the numbers): this version with one row tile per warp, ldmatrix
// included, passed test_gpu and compute-sanitizer memcheck on an H200 at commit 25a059a; two row
// tiles and paired A loads and stores passed both there at fc776d5, and the TF32 kernels' bounds
// (kMinBlocks) passed the attention tests in the experiment build of this device code.
namespace tc {
constexpr int kWarps = 4, kKeys = 64, kPad = 8;
static_assert(kWarps * 16 == kRows, "with one row tile per warp a block owns kRows rows, as version 1's");
static_assert(kKeys % 16 == 0, "tiles are whole k steps of either operand type");

// bf16 operands, m16n8k16. T: the data in global memory; E: the element of the shared-memory tiles.
struct Bf16Ops {
  using T = bf16;
  using E = bf16;
  static constexpr int kK = 16, kU = 2, kS = 8;  // k per mma; values per register; k offset of half 1
  static constexpr bool kTransposed = false;     // mma_cols reads row-major tiles (ldmatrix.trans)
  __device__ static E elem(bf16 x) { return x; }
  __device__ static uint32_t pack(bf16 lo, bf16 hi) { return uint32_t(lo.bits) | uint32_t(hi.bits) << 16; }
  __device__ static uint32_t pack(float lo, float hi) { return ddpm::cuda::ptx::pack_bf16x2(lo, hi); }
  // One operand register from the values f(0), f(1) at k and k + 1.
  template <class F> __device__ static uint32_t reg(F&& f) { return pack(f(0), f(1)); }
  __device__ static void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    ddpm::cuda::ptx::mma_bf16(d, a, b);
  }
};

// TF32 operands of f32 data, m16n8k8. The tiles hold the values already rounded to TF32 (a
// float's bits with the low 13 zero), so each is rounded once per fill, not once per use.
struct Tf32Ops {
  using T = float;
  using E = float;
  static constexpr int kK = 8, kU = 1, kS = 1;  // relabelled k order (above): half 1 at 2t + 1
  static constexpr bool kTransposed = true;     // mma_cols reads transposed copies of the tiles
  __device__ static E elem(float x) { return __uint_as_float(ddpm::cuda::ptx::to_tf32(x)); }
  template <class F> __device__ static uint32_t reg(F&& f) { return ddpm::cuda::ptx::to_tf32(f(0)); }
  __device__ static void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    ddpm::cuda::ptx::mma_tf32(d, a, b);
  }
};

// A lane's two TF32 B registers of a k step (kernel k 2t and 2t + 1, relabelled above): adjacent
// floats, one 64-bit load (p is 8-byte aligned: every offset the helpers add is even). bf16 reads
// its B fragments with ldmatrix instead (mma_rows, mma_cols).
__device__ __forceinline__ void load_b(uint32_t (&b)[2], const float* p) {
  const uint2 v = *reinterpret_cast<const uint2*>(p);
  b[0] = v.x, b[1] = v.y;
}

// The lane's group g (a row of A and C, a column of B) and index t in it (kernels/tensor_core.cuh).
__device__ __forceinline__ int lane_g() { return threadIdx.x % 32 / 4; }
__device__ __forceinline__ int lane_t() { return threadIdx.x % 4; }

// Own rows per block when each warp owns MT row tiles of 16.
template <int MT> constexpr int kBlockRows = kWarps * 16 * MT;

// Where a warp sits: its block's (batch, head), its first own row (it owns 16 MT), and the offsets
// of head h at token 0 in qkv ([B, L, 3C]) and in out / dout ([B, L, C]).
struct Warp {
  int bh, row0;
  int64_t C, ld, q_at, o_at;  // ld = 3C, the qkv row length
};

template <int MT> __device__ __forceinline__ Warp warp_place(int L, int heads, int d) {
  constexpr int R = kBlockRows<MT>;
  const int tiles = (L + R - 1) / R, bh = blockIdx.x / tiles, b = bh / heads, h = bh % heads;
  const int64_t C = int64_t(heads) * d;
  return {bh, int(blockIdx.x % tiles) * R + int(threadIdx.x / 32) * 16 * MT, C, 3 * C,
          int64_t(b) * L * 3 * C + int64_t(h) * d, int64_t(b) * L * C + int64_t(h) * d};
}

// The block's dynamic shared memory, 16-byte aligned tiles: row-major ones ([kKeys][D + kPad],
// kRowTile elements) and, for TF32 only, transposed copies ([D][kKeys + kPad], kColTile) for
// mma_cols; then the backward's per-query floats.
//   forward: K rows, then V (kXTile: V transposed for TF32, row-major for bf16)
//   dq:      K rows, V rows, then (TF32) K transposed
//   dkv:     Q rows, dout rows, then (TF32) Q and dout transposed, then 2 kKeys floats
template <class Ops, int D> struct Smem {
  using E = typename Ops::E;
  static constexpr int kRowTile = kKeys * (D + kPad), kColTile = D * (kKeys + kPad);  // elements
  static constexpr int kCols = Ops::kTransposed ? kColTile : 0;  // a transposed copy, if any
  static constexpr int kXTile = Ops::kTransposed ? kColTile : kRowTile;
  static constexpr int kE = int(sizeof(E));
  static constexpr int kFwd = kE * (kRowTile + kXTile), kDq = kE * (2 * kRowTile + kCols),
                       kDkv = kE * (2 * kRowTile + 2 * kCols) + 4 * 2 * kKeys;
  static_assert(kRowTile * sizeof(E) % 16 == 0 && kColTile * sizeof(E) % 16 == 0, "tiles keep 16-byte alignment");
  __device__ static E* base() { return reinterpret_cast<E*>(dynamic_smem()); }
};

// Where mma_cols finds chunk rows [k0, k0 + kK) of the tile it reads (X at x).
template <class Ops, int D> __device__ __forceinline__ const typename Ops::E* x_chunk(const typename Ops::E* x, int k0) {
  return Ops::kTransposed ? x + k0 : x + k0 * (D + kPad);
}

// Whether a lane's pairs of values at even columns of a matrix at p (row stride ld, d columns) are
// whole aligned 2-value units: then a pair is read or written at once (32 bits in bf16, 64 in f32).
template <class T> __device__ __forceinline__ bool pairs_aligned(const T* p, int64_t ld, int d) {
  return d % 2 == 0 && ld % 2 == 0 && reinterpret_cast<uintptr_t>(p) % (2 * sizeof(T)) == 0;
}

// Rows [row0, row0 + 16 MT) of a matrix (row stride ld, d columns from src) as the A fragments of
// MT row tiles and D / kK k steps, read from global memory; zeros past row L and column d. A bf16
// register's two values are adjacent in the row (k, k + 1): one 32-bit load where pairs_aligned.
template <class Ops, int D, int MT>
__device__ __forceinline__ void load_a(uint32_t (&a)[MT][D / Ops::kK][4], const typename Ops::T* src, int64_t ld,
                                       int row0, int L, int d) {
  const int g = lane_g(), t = lane_t();
  using T = typename Ops::T;
  const T zero{0};
  const bool pairs = Ops::kU == 2 && pairs_aligned(src, ld, d);
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int kk = 0; kk < D / Ops::kK; ++kk)
#pragma unroll
      for (int r = 0; r < 4; ++r) {  // a[r] = A[g + 8 (r % 2)][kK kk + 2t + kS (r / 2) + e], e < kU
        const int row = row0 + 16 * mt + g + 8 * (r % 2), c = Ops::kK * kk + 2 * t + Ops::kS * (r / 2);
        const T* at = src + int64_t(row) * ld + c;
        if (pairs)  // c is even, so c < d means c + 1 < d
          a[mt][kk][r] = row < L && c < d ? *reinterpret_cast<const uint32_t*>(at) : 0u;
        else
          a[mt][kk][r] = Ops::reg([&](int e) { return row < L && c + e < d ? at[e] : zero; });
      }
}

// One thread's share of a kKeys x D tile on its way from global to shared memory: kChunks chunks
// of kVals consecutive values of one row, 16 bytes each. The kernels load the next tile into these
// registers while they compute on the current one from shared memory, so the global loads'
// latency hides behind the products, and store it after the next __syncthreads().
// Chunk q = x + 128 i (thread x, register i) is half q % 2 of a 32-byte sector: the 32 lanes of a
// warp read one whole sector of each of 16 rows. (So a thread's chunks all lie in tile row x / 2,
// at columns kVals (2i + x % 2).) In the transposed stores (TF32) the two halves'
// columns, 4 apart, start in the same bank (72 words times 4 is a multiple of 32); so half 1 stores
// its values in rotated order, half a chunk ahead, and each store of the warp hits 32 banks.
template <class Ops, int D> struct TileLoad {
  using T = typename Ops::T;
  using E = typename Ops::E;
  static constexpr int kVals = 16 / int(sizeof(T));                   // 8 bf16 or 4 f32
  static constexpr int kChunks = kKeys * D / (kVals * kWarps * 32);  // bf16: D / 16; f32: D / 8
  static_assert(D % (2 * kVals) == 0 && kChunks >= 1, "rows are whole sectors");
  static_assert(sizeof(E) == sizeof(T) && (D + kPad) * sizeof(E) % 16 == 0, "a chunk is one 16-byte store");
  uint4 v[kChunks];

  // Chunk i's half, row in the tile and first column.
  __device__ static void place(int i, int& half, int& r, int& c) {
    const int q = int(threadIdx.x) + kWarps * 32 * i;
    half = q % 2, r = q / 2 % kKeys, c = q / (2 * kKeys) * 2 * kVals + half * kVals;
  }

  // Whether rows of a matrix at src (row stride ld, d columns) split into whole aligned chunks:
  // then each chunk is one 16-byte load, else it is read value by value.
  __device__ static bool vectorizable(const T* src, int64_t ld, int d) {
    return d == D && ld % kVals == 0 && reinterpret_cast<uintptr_t>(src) % 16 == 0;
  }

  // Rows [r0, r0 + kKeys) of the matrix, zeros past row L and column d (so that masked rows never
  // feed NaN into a product and padded columns add nothing).
  __device__ void load(const T* src, int64_t ld, int r0, int L, int d, bool vec) {
#pragma unroll
    for (int i = 0; i < kChunks; ++i) {
      int half, r, c;
      place(i, half, r, c);
      r += r0;
      if (vec) {
        v[i] = r < L ? *reinterpret_cast<const uint4*>(src + int64_t(r) * ld + c) : uint4{0, 0, 0, 0};
      } else {
        T x[kVals];
#pragma unroll
        for (int e = 0; e < kVals; ++e) x[e] = r < L && c + e < d ? src[int64_t(r) * ld + c + e] : T{0};
        memcpy(&v[i], x, 16);
      }
    }
  }

  // Into `rows` ([kKeys][D + kPad], one 16-byte store per chunk) and `cols` ([D][kKeys + kPad],
  // transposed, value by value: TF32's copy for mma_cols), either of which may be null; rounded to
  // the operand type.
  __device__ void store(E* rows, E* cols) const {
#pragma unroll
    for (int i = 0; i < kChunks; ++i) {
      int half, r, c;
      place(i, half, r, c);
      T in[kVals];
      E y[kVals];
      memcpy(in, &v[i], 16);
#pragma unroll
      for (int e = 0; e < kVals; ++e) y[e] = Ops::elem(in[e]);
      if (rows) memcpy(rows + r * (D + kPad) + c, y, 16);
      if (cols)
#pragma unroll
        for (int k = 0; k < kVals; ++k) {
          const int e = half ? (k + kVals / 2) % kVals : k;  // a select between two registers, not an index
          cols[(c + e) * (kKeys + kPad) + r] = half ? y[(k + kVals / 2) % kVals] : y[k];
        }
    }
  }
};

// c[mt][n] = A X^T for the MT 16-row tiles of A and the N 8-row tiles of X at `rows` (row-major,
// stride D + kPad): A (16 MT x D) is in registers, B[k][n] = X[8n + g][k] is read at
// rows[(8n + g)(D + kPad) + kK kk + 2t + kS h], once for all MT row tiles, and c[mt][n][r] is
// C[16 mt + g + 8 (r / 2)][8n + 2t + r % 2].
// For bf16 one ldmatrix.x4 reads the B fragments of two tiles n, n + 1 at once (matrices: tile n
// columns 16 kk .. + 7 and + 8 .. + 15, then the same of tile n + 1; lane l gives the address of
// row l % 8 of matrix l / 8).
template <class Ops, int N, int D, int MT>
__device__ __forceinline__ void mma_rows(float (&c)[MT][N][4], const uint32_t (&a)[MT][D / Ops::kK][4],
                                         const typename Ops::E* rows) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int n = 0; n < N; ++n) c[mt][n][0] = c[mt][n][1] = c[mt][n][2] = c[mt][n][3] = 0.0f;
  if constexpr (!Ops::kTransposed) {
    static_assert(N % 2 == 0, "tiles in pairs");
    const int l = threadIdx.x % 32;
#pragma unroll
    for (int n = 0; n < N; n += 2)
#pragma unroll
      for (int kk = 0; kk < D / Ops::kK; ++kk) {
        uint32_t b[4];
        ddpm::cuda::ptx::ldmatrix_x4(b, rows + (8 * (n + l / 16) + l % 8) * (D + kPad) + 16 * kk + 8 * (l / 8 % 2));
        const uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          Ops::mma(c[mt][n], a[mt][kk], b0);
          Ops::mma(c[mt][n + 1], a[mt][kk], b1);
        }
      }
  } else {
    const int g = lane_g(), t = lane_t();
#pragma unroll
    for (int n = 0; n < N; ++n) {
      const typename Ops::E* row = rows + (n * 8 + g) * (D + kPad) + 2 * t;
#pragma unroll
      for (int kk = 0; kk < D / Ops::kK; ++kk) {
        uint32_t b[2];
        load_b(b, row + Ops::kK * kk);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) Ops::mma(c[mt][n], a[mt][kk], b);
      }
    }
  }
}

// o[mt] += P X for the MT 16 x kK chunks P held as the accumulators p[mt][0 .. kK / 8) of adjacent
// 8-column tiles (rounded to the operand type here) and the kK rows of X at x (x_chunk()), each B
// fragment read once for all MT:
// - TF32: stored transposed (stride kKeys + kPad, X[k][n] at x[n (kKeys + kPad) + k]):
//   B[k][n] = X[2t + kS h + e][g] is read at x[g (kKeys + kPad) + 2t + kS h];
// - bf16: row-major (stride D + kPad); one ldmatrix.x4.trans reads the B fragments of two column
//   tiles nb, nb + 1 (matrices: rows 0..7 and 8..15 of tile nb, then of nb + 1; lane l gives the
//   address of row l % 16 of tile nb + l / 16).
// A: a[r] holds P[g + 8 (r % 2)][k] at
// k = kS (r / 2) + 2t + e, the accumulator p[k / 8][2 (r % 2) + k % 2]: bf16 (kS = 8) a[0..1] =
// p[0][0..1], p[0][2..3], a[2..3] the same of p[1]; TF32 (kS = 1, e = 0) a = p[0][0], p[0][2],
// p[0][1], p[0][3].
template <class Ops, int D, int MT>
__device__ __forceinline__ void mma_cols(float (&o)[MT][D / 8][4], const float (&p)[MT][Ops::kK / 8][4],
                                         const typename Ops::E* x) {
  uint32_t pa[MT][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 4; ++r)
      pa[mt][r] = Ops::reg([&](int e) {
        const int k = Ops::kS * (r / 2) + e;  // the chunk column minus 2t
        return p[mt][k / 8][2 * (r % 2) + k % 2];
      });
  if constexpr (!Ops::kTransposed) {
    static_assert(D % 16 == 0, "column tiles in pairs");
    const int l = threadIdx.x % 32;
#pragma unroll
    for (int nb = 0; nb < D / 8; nb += 2) {
      uint32_t b[4];
      ddpm::cuda::ptx::ldmatrix_x4_trans(b, x + (l % 16) * (D + kPad) + 8 * (nb + l / 16));
      const uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        Ops::mma(o[mt][nb], pa[mt], b0);
        Ops::mma(o[mt][nb + 1], pa[mt], b1);
      }
    }
  } else {
    const int g = lane_g(), t = lane_t();
#pragma unroll
    for (int nb = 0; nb < D / 8; ++nb) {
      uint32_t b[2];
      load_b(b, x + (nb * 8 + g) * (kKeys + kPad) + 2 * t);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) Ops::mma(o[mt][nb], pa[mt], b);
    }
  }
}

// Stores the accumulators c (rows [row0, row0 + 16 MT) x D), row 16 mt + g + 8 i times mul[mt][i],
// into a matrix with row stride ld: rows below L and columns below d only. A lane's two values of a
// row are adjacent (columns 2t, 2t + 1 of a tile): one store where pairs_aligned.
template <int D, int MT, class T>
__device__ __forceinline__ void store_rows(const float (&c)[MT][D / 8][4], T* dst, int64_t ld, int row0, int L, int d,
                                           const float (&mul)[MT][2]) {
  const int g = lane_g(), t = lane_t();
  const bool pairs = pairs_aligned(dst, ld, d);
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int row = row0 + 16 * mt + g + 8 * i;
      if (row >= L) continue;
      T* out = dst + int64_t(row) * ld;
#pragma unroll
      for (int nb = 0; nb < D / 8; ++nb) {
        const int col = nb * 8 + 2 * t;
        const float v0 = c[mt][nb][2 * i] * mul[mt][i], v1 = c[mt][nb][2 * i + 1] * mul[mt][i];
        if (pairs) {
          if (col >= d) continue;
          if constexpr (sizeof(T) == 2)
            *reinterpret_cast<uint32_t*>(out + col) = ddpm::cuda::ptx::pack_bf16x2(v0, v1);
          else
            *reinterpret_cast<float2*>(out + col) = make_float2(v0, v1);
        } else {
          if (col < d) out[col] = from_f32<T>(v0);
          if (col + 1 < d) out[col + 1] = from_f32<T>(v1);
        }
      }
    }
}

// Each kernel's warps own MT row tiles of 16 (kernels/attention_cuda.cu chooses MT). Blocks per SM
// each kernel is compiled for (registers held to 65536 / (128 x blocks)), as measured on an H200
// (docs/kernels.md):
// - bf16, two tiles, D <= 32: 3 (168 registers, 24 row tiles per SM), faster than the 228 to 253
//   registers they take unbounded, which fit 2. At D = 64 every kernel needs all 255 either way.
// - TF32 (one tile) at D = 16 and 32: B16 and B32, given per kernel: the forward 4 and 3, dQ 5 and
//   3 (a forward up to 14% faster than unbounded, the backward within 1.5%); dK/dV unbounded (4 at
//   D = 16 would spill).
template <class Ops, int D, int MT, int B16, int B32>
constexpr int kMinBlocks = D == 64 ? 1 : MT == 2 ? 3 : !Ops::kTransposed ? 1 : D == 16 ? B16 : B32;

template <class Ops, int D, int MT>
__global__ void __launch_bounds__(kWarps * 32, kMinBlocks<Ops, D, MT, 4, 3>)
    attention_fwd_k(const typename Ops::T* qkv, typename Ops::T* out, float* lse, int L, int heads, int d) {
  constexpr int K = Ops::kK, N = K / 8;  // keys per chunk of P, and its 8-key accumulator tiles
  using S = Smem<Ops, D>;
  using Tile = TileLoad<Ops, D>;
  typename Ops::E *ks = S::base(), *vx = ks + S::kRowTile;
  const Warp w = warp_place<MT>(L, heads, d);
  const int g = lane_g(), t = lane_t();
  uint32_t qa[MT][D / K][4];
  load_a<Ops, D, MT>(qa, qkv + w.q_at, w.ld, w.row0, L, d);
  // Scores stay unscaled; scale (in log2 units) enters each exponential's argument in one FMA.
  const float scale = kLog2e * rsqrtf(float(d));
  float o[MT][D / 8][4] = {};
  float m[MT][2], l[MT][2];  // rows 16 mt + g and + 8; l over this thread's keys
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) m[mt][0] = m[mt][1] = -INFINITY, l[mt][0] = l[mt][1] = 0.0f;
  const typename Ops::T *kg = qkv + w.q_at + w.C, *vg = kg + w.C;
  const bool vec = Tile::vectorizable(kg, w.ld, d);  // and so V's: C elements on, a multiple of 16 bytes when d == D
  Tile kl, vl;
  kl.load(kg, w.ld, 0, L, d, vec);
  vl.load(vg, w.ld, 0, L, d, vec);
  for (int j0 = 0; j0 < L; j0 += kKeys) {
    __syncthreads();  // the previous tile is no longer read
    kl.store(ks, nullptr);
    Ops::kTransposed ? vl.store(nullptr, vx) : vl.store(vx, nullptr);
    __syncthreads();
    if (j0 + kKeys < L) {  // the next tile, in flight while this one is used
      kl.load(kg, w.ld, j0 + kKeys, L, d, vec);
      vl.load(vg, w.ld, j0 + kKeys, L, d, vec);
    }
    float s[MT][kKeys / 8][4];
    mma_rows<Ops, kKeys / 8, D, MT>(s, qa, ks);  // S = Q K^T: A = own Q rows, X = K rows
    if (j0 + kKeys > L)  // keys past L (last tile only) get -inf scores
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nb = 0; nb < kKeys / 8; ++nb)
#pragma unroll
          for (int r = 0; r < 4; ++r)
            if (j0 + nb * 8 + 2 * t + r % 2 >= L) s[mt][nb][r] = -INFINITY;
    float ms[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      float mx[2] = {m[mt][0], m[mt][1]};
#pragma unroll
      for (int nb = 0; nb < kKeys / 8; ++nb)
#pragma unroll
        for (int r = 0; r < 4; ++r) mx[r / 2] = fmaxf(mx[r / 2], s[mt][nb][r]);
#pragma unroll
      for (int i = 0; i < 2; ++i) {  // the four lanes of a quad hold one row's keys
        mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
        mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
        const float corr = exp2_ftz((m[mt][i] - mx[i]) * scale);  // 0 on the first tile, where m = -inf
        m[mt][i] = mx[i];
        ms[mt][i] = mx[i] * scale;
        l[mt][i] *= corr;
#pragma unroll
        for (int nb = 0; nb < D / 8; ++nb) o[mt][nb][2 * i] *= corr, o[mt][nb][2 * i + 1] *= corr;
      }
    }
#pragma unroll
    for (int j = 0; j < kKeys / K; ++j) {
      float p[MT][N][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int h = 0; h < N; ++h)
#pragma unroll
          for (int r = 0; r < 4; ++r) {
            p[mt][h][r] = exp2_ftz(fmaf(s[mt][N * j + h][r], scale, -ms[mt][r / 2]));
            l[mt][r / 2] += p[mt][h][r];
          }
      mma_cols<Ops, D, MT>(o, p, x_chunk<Ops, D>(vx, K * j));  // O += P V: A = P (keys K j..), X = V
    }
  }
  float inv_l[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      float li = l[mt][i];
      li += __shfl_xor_sync(0xffffffffu, li, 1);
      li += __shfl_xor_sync(0xffffffffu, li, 2);
      const int row = w.row0 + 16 * mt + g + 8 * i;
      if (row < L && t == 0) lse[int64_t(w.bh) * L + row] = (m[mt][i] * scale + log2f(li)) / kLog2e;
      inv_l[mt][i] = 1.0f / li;
    }
  store_rows<D, MT>(o, out + w.o_at, w.C, w.row0, L, d, inv_l);
}

// dK and dV of the warp's 16 MT own keys, streaming Q and dout (see above).
template <class Ops, int D, int MT>
__global__ void __launch_bounds__(kWarps * 32, kMinBlocks<Ops, D, MT, 1, 1>)
    attention_dkv_k(const typename Ops::T* qkv, const typename Ops::T* dout, const float* lse, const float* delta,
                    typename Ops::T* dqkv, int L, int heads, int d) {
  constexpr int K = Ops::kK, N = K / 8;
  using S = Smem<Ops, D>;
  using Tile = TileLoad<Ops, D>;
  typename Ops::E *qs = S::base(), *gs = qs + S::kRowTile;
  typename Ops::E *qx = Ops::kTransposed ? gs + S::kRowTile : qs, *gx = Ops::kTransposed ? qx + S::kColTile : gs;
  float* lse2s = reinterpret_cast<float*>(qs + 2 * S::kRowTile + 2 * S::kCols);
  float* dls = lse2s + kKeys;
  const Warp w = warp_place<MT>(L, heads, d);
  const int t = lane_t();
  uint32_t ka[MT][D / K][4], va[MT][D / K][4];
  load_a<Ops, D, MT>(ka, qkv + w.q_at + w.C, w.ld, w.row0, L, d);
  load_a<Ops, D, MT>(va, qkv + w.q_at + 2 * w.C, w.ld, w.row0, L, d);
  const float scale = kLog2e * rsqrtf(float(d));
  float dk[MT][D / 8][4] = {}, dv[MT][D / 8][4] = {};
  const typename Ops::T *qg = qkv + w.q_at, *gg = dout + w.o_at;
  const bool vec = Tile::vectorizable(qg, w.ld, d) && Tile::vectorizable(gg, w.C, d);
  // The next tile in registers: Q and dout rows, and (threads below kKeys) one query's lse2 and delta.
  Tile ql, gl;
  float lse2_next = 0.0f, dl_next = 0.0f;
  auto load = [&](int i0) {
    ql.load(qg, w.ld, i0, L, d, vec);
    gl.load(gg, w.C, i0, L, d, vec);
    if (threadIdx.x < kKeys) {
      const bool in = i0 + int(threadIdx.x) < L;  // lse2 = +inf: P = 0 for queries past L
      lse2_next = in ? lse[int64_t(w.bh) * L + i0 + threadIdx.x] * kLog2e : INFINITY;
      dl_next = in ? delta[int64_t(w.bh) * L + i0 + threadIdx.x] : 0.0f;
    }
  };
  load(0);
  for (int i0 = 0; i0 < L; i0 += kKeys) {
    __syncthreads();  // the previous tile is no longer read
    ql.store(qs, Ops::kTransposed ? qx : nullptr);  // bf16: qx is qs
    gl.store(gs, Ops::kTransposed ? gx : nullptr);
    if (threadIdx.x < kKeys) lse2s[threadIdx.x] = lse2_next, dls[threadIdx.x] = dl_next;
    __syncthreads();
    if (i0 + kKeys < L) load(i0 + kKeys);  // in flight while this tile is used
#pragma unroll
    for (int j = 0; j < kKeys / K; ++j) {
      // Rows are own keys 16 mt + g, + 8; columns queries K j + 8h + 2t + r % 2 of the tile.
      float p[MT][N][4], ds[MT][N][4];
      mma_rows<Ops, N, D, MT>(p, ka, qs + K * j * (D + kPad));   // S^T = K Q^T: A = own K rows, X = Q rows
      mma_rows<Ops, N, D, MT>(ds, va, gs + K * j * (D + kPad));  // dP^T = V dout^T: A = own V rows, X = dout rows
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int h = 0; h < N; ++h)
#pragma unroll
          for (int r = 0; r < 4; ++r) {
            const int i = K * j + 8 * h + 2 * t + r % 2;
            p[mt][h][r] = exp2_ftz(fmaf(p[mt][h][r], scale, -lse2s[i]));
            ds[mt][h][r] = p[mt][h][r] * (ds[mt][h][r] - dls[i]);
          }
      mma_cols<Ops, D, MT>(dv, p, x_chunk<Ops, D>(gx, K * j));   // dV += P^T dout: A = P^T, X = dout
      mma_cols<Ops, D, MT>(dk, ds, x_chunk<Ops, D>(qx, K * j));  // dK += dS^T Q: A = dS^T, X = Q
    }
  }
  const float rs = rsqrtf(float(d));
  float mul_k[MT][2], mul_v[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) mul_k[mt][0] = mul_k[mt][1] = rs, mul_v[mt][0] = mul_v[mt][1] = 1.0f;
  store_rows<D, MT>(dk, dqkv + w.q_at + w.C, w.ld, w.row0, L, d, mul_k);
  store_rows<D, MT>(dv, dqkv + w.q_at + 2 * w.C, w.ld, w.row0, L, d, mul_v);
}

// dQ of the warp's 16 MT own queries, streaming K and V (see above).
template <class Ops, int D, int MT>
__global__ void __launch_bounds__(kWarps * 32, kMinBlocks<Ops, D, MT, 5, 3>)
    attention_dq_k(const typename Ops::T* qkv, const typename Ops::T* dout, const float* lse, const float* delta,
                   typename Ops::T* dqkv, int L, int heads, int d) {
  constexpr int K = Ops::kK, N = K / 8;
  using S = Smem<Ops, D>;
  using Tile = TileLoad<Ops, D>;
  typename Ops::E *ks = S::base(), *vs = ks + S::kRowTile, *kx = Ops::kTransposed ? vs + S::kRowTile : ks;
  const Warp w = warp_place<MT>(L, heads, d);
  const int g = lane_g(), t = lane_t();
  uint32_t qa[MT][D / K][4], ga[MT][D / K][4];
  load_a<Ops, D, MT>(qa, qkv + w.q_at, w.ld, w.row0, L, d);
  load_a<Ops, D, MT>(ga, dout + w.o_at, w.C, w.row0, L, d);
  float lse2[MT][2], dl[MT][2];  // rows 16 mt + g and + 8
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int row = w.row0 + 16 * mt + g + 8 * i;
      lse2[mt][i] = row < L ? lse[int64_t(w.bh) * L + row] * kLog2e : 0.0f;
      dl[mt][i] = row < L ? delta[int64_t(w.bh) * L + row] : 0.0f;
    }
  const float scale = kLog2e * rsqrtf(float(d));
  float dq[MT][D / 8][4] = {};
  const typename Ops::T *kg = qkv + w.q_at + w.C, *vg = kg + w.C;
  const bool vec = Tile::vectorizable(kg, w.ld, d);  // and so V's: C elements on, a multiple of 16 bytes when d == D
  Tile kl, vl;
  kl.load(kg, w.ld, 0, L, d, vec);
  vl.load(vg, w.ld, 0, L, d, vec);
  for (int j0 = 0; j0 < L; j0 += kKeys) {
    __syncthreads();  // the previous tile is no longer read
    kl.store(ks, Ops::kTransposed ? kx : nullptr);  // bf16: kx is ks
    vl.store(vs, nullptr);
    __syncthreads();
    if (j0 + kKeys < L) {  // the next tile, in flight while this one is used
      kl.load(kg, w.ld, j0 + kKeys, L, d, vec);
      vl.load(vg, w.ld, j0 + kKeys, L, d, vec);
    }
    const bool tail = j0 + kKeys > L;
#pragma unroll
    for (int j = 0; j < kKeys / K; ++j) {
      // Rows are own queries 16 mt + g, + 8; columns keys K j + 8h + 2t + r % 2 of the tile.
      float p[MT][N][4], ds[MT][N][4];
      mma_rows<Ops, N, D, MT>(p, qa, ks + K * j * (D + kPad));   // S = Q K^T: A = own Q rows, X = K rows
      mma_rows<Ops, N, D, MT>(ds, ga, vs + K * j * (D + kPad));  // dP = dout V^T: A = own dout rows, X = V rows
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int h = 0; h < N; ++h)
#pragma unroll
          for (int r = 0; r < 4; ++r) {
            p[mt][h][r] = exp2_ftz(fmaf(p[mt][h][r], scale, -lse2[mt][r / 2]));
            if (tail && j0 + K * j + 8 * h + 2 * t + r % 2 >= L) p[mt][h][r] = 0.0f;  // see above: not exp2(-lse2)
            ds[mt][h][r] = p[mt][h][r] * (ds[mt][h][r] - dl[mt][r / 2]);
          }
      mma_cols<Ops, D, MT>(dq, ds, x_chunk<Ops, D>(kx, K * j));  // dQ += dS K: A = dS, X = K
    }
  }
  const float rs = rsqrtf(float(d));
  float mul[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) mul[mt][0] = mul[mt][1] = rs;
  store_rows<D, MT>(dq, dqkv + w.q_at, w.ld, w.row0, L, d, mul);
}
}  // namespace tc
}  // namespace
}  // namespace ddpm::kernels::cuda
