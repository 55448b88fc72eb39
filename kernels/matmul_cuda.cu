// CUDA matrix products for kernels/matmul.hpp: cuBLAS for the GEMMs, cuBLASLt for a GEMM with
// the bias in its epilogue, two small kernels for the bias.
#include <cublasLt.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <map>
#include <type_traits>

#include "kernels/bf16.cuh"
#include "kernels/cuda_launch.cuh"
#include "kernels/elementwise.hpp"
#include "kernels/matmul.hpp"

namespace ddpm::kernels::cuda {
namespace {

using ddpm::cuda::from_f32;
using ddpm::cuda::grid_for;
using ddpm::cuda::kThreads;
using ddpm::cuda::stream;
using ddpm::cuda::to_f32;

template <class T> __global__ void bias_fill_k(T* y, const T* b, int64_t rows, int64_t cols) {
  DDPM_GRID_LOOP(i, rows * cols) y[i] = b[i % cols];
}

// Version 2: one block per (32 columns, slice of the rows): threadIdx.x picks the column
// (coalesced reads along a row), threadIdx.y strides over the slice's rows, and the block's 32
// partial sums of each column are added in shared memory in a fixed order; then one thread per
// column adds its slices' sums in order. No atomics, so the result is deterministic. Sums run in
// double: a conv bias sums N*H*W values (262,144 at 64x64, batch 64), where float would drift past
// 1e-5 of the CPU result. Memory-bound: rows*cols*4 bytes read (2 for bf16). Version 1 had no
// slices, one block per 32 columns: 2 blocks for the model's 64-channel linear layers, which took
// 644 us for a [262144, 64] backward on an H200 (~10 us of DRAM time at the copy bandwidth).
constexpr int kColTile = 32, kRowThreads = 32;
template <class T> __global__ void bias_grad_k(const T* dy, double* part, int64_t rows, int64_t cols) {
  __shared__ double sh[kRowThreads][kColTile];
  const int64_t c = int64_t(blockIdx.x) * kColTile + threadIdx.x;
  const int64_t r0 = rows * blockIdx.y / gridDim.y, r1 = rows * (blockIdx.y + 1) / gridDim.y;
  double acc = 0.0;
  if (c < cols)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowThreads) acc += to_f32(dy[r * cols + c]);
  sh[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    double s = 0.0;
    for (int i = 0; i < kRowThreads; ++i) s += sh[i][threadIdx.x];
    part[blockIdx.y * cols + c] = s;
  }
}
template <class T> __global__ void bias_grad_total_k(const double* part, T* db, int64_t splits, int64_t cols) {
  DDPM_GRID_LOOP(c, cols) {
    double s = 0.0;
    for (int64_t i = 0; i < splits; ++i) s += part[i * cols + c];
    db[c] = from_f32<T>(float(s));
  }
}

constexpr cudaDataType_t data_type(float*) { return CUDA_R_32F; }
constexpr cudaDataType_t data_type(bf16*) { return CUDA_R_16BF; }

// cuBLASLt for one product c = op(a) op(b) (+ bias) (+ r): linear's forward (gemm_bias) and the
// single products of gemm with a short k (linear's input gradient). Per shape (and type, TF32
// setting, operand alignment, bias and residual presence) one plan: the matmul descriptor (the
// bias in its epilogue when there is one), the three layouts (row-major C = op(A) op(B) is
// column-major C^T = op(B)^T op(A)^T, so b is the first operand) and an algorithm. No workspace,
// so nothing is allocated and a CUDA graph may record the call, and no split-K reduction, so each
// output is rounded once (what the cuBLAS handle is told): these products are skinny, k = 64 to
// 768, and split K has nothing to win there.
//
// The algorithm: the heuristic's first kLtCandidates, timed on the first call's own buffers by
// ddpm::cuda::keep_fastest (the heuristic's first is kept unless another is clearly faster). The
// heuristic ranks by a model of the GPU, not by a run, and these memory-bound products are where
// a tile that looks fine on FLOPs can waste bandwidth; timing costs a few milliseconds once per
// shape.
constexpr int kLtCandidates = 8;
// Beyond this k a product wants split K (few output tiles, a long sum: a weight gradient over all
// rows), which needs a workspace: those stay with cuBLAS's own heuristic and workspace.
constexpr int64_t kLtMaxK = 1024;

struct LtPlan {
  bool ok = false;  // false: no algorithm, or a refused call; that shape takes the other way for good
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  // The heuristic's order until the first call keeps one (count 1). A plain array: nvcc 13.0's
  // front end fails on a std::vector of cublasLtMatmulAlgo_t, an unnamed struct.
  cublasLtMatmulAlgo_t algos[kLtCandidates] = {};
  int count = 0;
};

cublasLtHandle_t lt() {
  static cublasLtHandle_t h = [] {
    cublasLtHandle_t created;
    CUBLAS_CHECK(cublasLtCreate(&created));
    return created;
  }();
  return h;
}

// The largest of 16, 8, 4, 2 bytes that every pointer is aligned to: cuBLASLt's heuristic assumes
// 256-byte alignment unless told otherwise.
int alignment(std::initializer_list<const void*> ptrs) {
  int align = 16;
  for (const void* p : ptrs)
    while (reinterpret_cast<uintptr_t>(p) % unsigned(align)) align /= 2;
  return align;
}

template <class V> bool set_pref(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr, V value) {
  return cublasLtMatmulPreferenceSetAttribute(pref, attr, &value, sizeof(value)) == CUBLAS_STATUS_SUCCESS;
}

// `bias` (or null) is a pointer of the alignment later calls will have: the heuristic reads its
// alignment from BIAS_POINTER (there is no MIN_ALIGNMENT for it), so gemm_bias_t calls only with
// 16-byte aligned biases.
LtPlan make_plan(const Gemm& g, cudaDataType_t type, bool tf32, int align, const void* bias) {
  LtPlan p;
  const cublasOperation_t op_first = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, op_second = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasLtEpilogue_t epilogue = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  const uint64_t n = uint64_t(g.n), m = uint64_t(g.m), k = uint64_t(g.k);
  const uint32_t bytes = uint32_t(align), no_split = CUBLASLT_REDUCTION_SCHEME_NONE;
  const size_t no_workspace = 0;
  cublasLtMatmulPreference_t pref = nullptr;
  int found = 0;
  cublasLtMatmulHeuristicResult_t results[kLtCandidates] = {};
  // Column-major: the first operand is b (k x n stored [n, k] when trans_b, else n x k), the second a.
  const bool ok =
      cublasLtMatmulDescCreate(&p.op, tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUDA_R_32F) ==
          CUBLAS_STATUS_SUCCESS &&
      cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof(op_first)) == CUBLAS_STATUS_SUCCESS &&
      cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof(op_second)) == CUBLAS_STATUS_SUCCESS &&
      cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)) == CUBLAS_STATUS_SUCCESS &&
      (!bias ||
       (cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &type, sizeof(type)) ==
            CUBLAS_STATUS_SUCCESS &&
        cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)) ==
            CUBLAS_STATUS_SUCCESS)) &&
      cublasLtMatrixLayoutCreate(&p.a, type, g.trans_b ? k : n, g.trans_b ? n : k, int64_t(g.trans_b ? k : n)) ==
          CUBLAS_STATUS_SUCCESS &&
      cublasLtMatrixLayoutCreate(&p.b, type, g.trans_a ? m : k, g.trans_a ? k : m, int64_t(g.trans_a ? m : k)) ==
          CUBLAS_STATUS_SUCCESS &&
      cublasLtMatrixLayoutCreate(&p.c, type, n, m, int64_t(n)) == CUBLAS_STATUS_SUCCESS &&
      cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS &&
      set_pref(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, no_workspace) &&
      set_pref(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, no_split) &&
      set_pref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, bytes) &&
      set_pref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, bytes) &&
      set_pref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, bytes) &&
      set_pref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, bytes) &&
      cublasLtMatmulAlgoGetHeuristic(lt(), p.op, p.a, p.b, p.c, p.c, pref, kLtCandidates, results, &found) ==
          CUBLAS_STATUS_SUCCESS;
  if (pref) cublasLtMatmulPreferenceDestroy(pref);
  for (int i = 0; ok && i < found; ++i)
    if (results[i].state == CUBLAS_STATUS_SUCCESS && results[i].workspaceSize == 0) p.algos[p.count++] = results[i].algo;
  if (p.count > 0) {
    p.ok = true;
  } else {  // what was created goes; the plan stays, marked unusable
    for (cublasLtMatrixLayout_t l : {p.a, p.b, p.c})
      if (l) cublasLtMatrixLayoutDestroy(l);
    if (p.op) cublasLtMatmulDescDestroy(p.op);
    p = LtPlan{};
  }
  return p;
}

// c = op(a) op(b) (+ bias) (+ r) in one cuBLASLt call (batch 1, c overwritten, r not c); false
// where cuBLASLt has no algorithm for the shape or refuses the call, and then for good.
template <class T> bool lt_matmul(const Gemm& g, const T* a, const T* b, const T* bias, const T* r, T* c) {
  // One host thread drives the engine's stream, so the plans (and the bias pointer set in a shared
  // descriptor just before its call) need no lock. With a residual (C != D) a plan of its own: the
  // heuristic sees no pointers, and an algorithm that cannot write out of place would otherwise
  // send the same shape's calls without one to the other way too.
  static std::map<std::array<int64_t, 9>, LtPlan> plans;
  const bool tf32 = std::is_same_v<T, float> && ddpm::cuda::allow_tf32();
  const int align = alignment({a, b, c, r});
  const std::array<int64_t, 9> key{g.m, g.n, g.k, g.trans_a, g.trans_b, tf32, align, bias != nullptr, r != nullptr};
  auto it = plans.find(key);
  if (it == plans.end()) it = plans.emplace(key, make_plan(g, data_type(c), tf32, align, bias)).first;
  LtPlan& p = it->second;
  if (!p.ok) return false;
  // D = A B + beta C (+ bias) with C = r (beta 1) or, without r, C = D and beta 0.
  const float alpha = 1.0f, beta = r ? 1.0f : 0.0f;
  const T* c_in = r ? r : c;
  const auto run = [&](const cublasLtMatmulAlgo_t& algo) {
    if (cublasLtMatmul(lt(), p.op, &alpha, b, p.a, a, p.b, &beta, c_in, p.c, c, p.c, &algo, nullptr, 0, stream()) ==
        CUBLAS_STATUS_SUCCESS)
      return true;
    // A refusal may leave its launch error set, which the next kernel's launch check would report
    // as its own; the refusal is handled here (a fault on the GPU stays: those errors are sticky).
    (void)cudaGetLastError();
    return false;
  };
  p.ok = !bias || cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)) ==
                      CUBLAS_STATUS_SUCCESS;
  if (p.ok && p.count > 1) {  // a refused candidate is dropped; with none left the plan is unusable
    const int keep = ddpm::cuda::keep_fastest(p.count, [&](int i) { return run(p.algos[i]); });
    p.ok = keep >= 0;
    if (p.ok) p.algos[0] = p.algos[keep], p.count = 1;
  }
  p.ok = p.ok && run(p.algos[0]);
  return p.ok;
}

// gemm: cuBLASLt for a single product with a short k (see above), else cuBLAS. f32 data runs in
// FP32 (or TF32 when allowed); bf16 data always accumulates in FP32 on the tensor cores.
template <class T> void gemm_t(const Gemm& g, const T* a, const T* b, T* c) {
  DDPM_CHECK(g.m <= INT_MAX && g.n <= INT_MAX && g.k <= INT_MAX && g.batch <= INT_MAX, "gemm", "dimensions ", g.batch,
             "x", g.m, "x", g.n, "x", g.k, " exceed the 32-bit cuBLAS interface");
  if (g.batch == 1 && !g.accumulate && g.k <= kLtMaxK && lt_matmul<T>(g, a, b, nullptr, nullptr, c)) return;
  const int m = int(g.m), n = int(g.n), k = int(g.k);
  const int lda = g.trans_a ? m : k, ldb = g.trans_b ? k : n;
  const float alpha = 1.0f, beta = g.accumulate ? 1.0f : 0.0f;
  const bool tf32 = std::is_same_v<T, float> && ddpm::cuda::allow_tf32();
  const cublasComputeType_t compute = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  const cudaDataType_t type = data_type(c);
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(ddpm::cuda::cublas(), g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                          g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b, type, ldb,
                                          g.k * g.n, a, type, lda, g.m * g.k, &beta, c, type, n, g.m * g.n,
                                          int(g.batch), compute, CUBLAS_GEMM_DEFAULT));
}

template <class T> void bias_fill_t(T* y, const T* b, int64_t rows, int64_t cols) {
  bias_fill_k<<<grid_for(rows * cols), kThreads, 0, stream()>>>(y, b, rows, cols);
  CUDA_CHECK_LAUNCH("bias_fill_k");
}

int64_t g_fallbacks = 0;

// gemm_bias: one cuBLASLt call with the bias in its epilogue. A shape cuBLASLt has no algorithm
// for, a call it refuses, or a bias not 16-byte aligned falls back to bias_fill + an accumulating
// gemm (for good, for that shape), counted by gemm_bias_fallbacks().
template <class T> void gemm_bias_t(const Gemm& g, const T* a, const T* b, const T* bias, const T* r, T* c) {
  DDPM_CHECK(g.batch == 1 && !g.accumulate, "gemm_bias", "takes one product that overwrites c");
  DDPM_CHECK(r != c, "gemm_bias", "the residual must not be the output");
  DDPM_CHECK(g.m <= INT_MAX && g.n <= INT_MAX && g.k <= INT_MAX, "gemm_bias", "dimensions ", g.m, "x", g.n, "x", g.k,
             " exceed the 32-bit cuBLAS interface");
  if (alignment({bias}) == 16 && lt_matmul(g, a, b, bias, r, c)) return;
  ++g_fallbacks;
  bias_fill_t(c, bias, g.m, g.n);
  if (r) accumulate(c, r, g.m * g.n);
  Gemm acc = g;
  acc.accumulate = true;
  gemm_t(acc, a, b, c);
}

template <class T> void bias_grad_t(const T* dy, T* db, int64_t rows, int64_t cols, double* work) {
  const int64_t splits = bias_grad_splits(rows);
  const dim3 grid(unsigned((cols + kColTile - 1) / kColTile), unsigned(splits));
  bias_grad_k<<<grid, dim3(kColTile, kRowThreads), 0, stream()>>>(dy, work, rows, cols);
  CUDA_CHECK_LAUNCH("bias_grad_k");
  bias_grad_total_k<<<grid_for(cols), kThreads, 0, stream()>>>(work, db, splits, cols);
  CUDA_CHECK_LAUNCH("bias_grad_total_k");
}

}  // namespace

// The same functions for f32 and bf16 data.
#define FOR_FLOAT_AND_BF16(T)                                                                                    \
  void gemm(const Gemm& g, const T* a, const T* b, T* c) { gemm_t(g, a, b, c); }                                 \
  void gemm_bias(const Gemm& g, const T* a, const T* b, const T* bias, const T* r, T* c) {                       \
    gemm_bias_t(g, a, b, bias, r, c);                                                                            \
  }                                                                                                              \
  void bias_fill(T* y, const T* b, int64_t rows, int64_t cols) { bias_fill_t(y, b, rows, cols); }                \
  void bias_grad(const T* dy, T* db, int64_t rows, int64_t cols, double* work) {                                 \
    bias_grad_t(dy, db, rows, cols, work);                                                                       \
  }
FOR_FLOAT_AND_BF16(float)
FOR_FLOAT_AND_BF16(bf16)
#undef FOR_FLOAT_AND_BF16

int64_t gemm_bias_fallbacks() { return g_fallbacks; }

}  // namespace ddpm::kernels::cuda
