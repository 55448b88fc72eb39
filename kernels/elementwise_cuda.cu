// CUDA twin of kernels/elementwise_cpu.cpp. Memory-bound: bytes = (inputs + outputs) * n * 4 for
// f32 data, * 2 for bf16 (computed in f32 in registers), so the target is the copy bandwidth.
// Version 3: each thread moves V values with one 16-byte access, 4 f32 or 8 bf16 (kVec16), when
// the pointers are aligned and n is a multiple of V (the U-Net's tensors always are), else V = 1
// for the whole tensor (no vector body with a one-value tail: the model never needs it); grid-stride
// loops over vectors. The casts between f32 and bf16 move 8 values an access. (Version 1 moved one float per thread; version 2 four values,
// so 8 bytes per access on bf16 data, which ran no faster than f32: memory_bound.cuh.)
#include "kernels/elementwise.hpp"
#include "kernels/memory_bound.cuh"

namespace ddpm::kernels::cuda {
namespace {

using ddpm::cuda::aligned16;
using ddpm::cuda::from_f32;
using ddpm::cuda::grid_for;
using ddpm::cuda::kThreads;
using ddpm::cuda::kVec16;
using ddpm::cuda::load_vec;
using ddpm::cuda::stream;
using ddpm::cuda::store_vec;
using ddpm::cuda::to_f32;
using ddpm::cuda::Vec;

// One elementwise map over nv vectors of V values: out = f(in0, in1, in2) per element, in f32
// whatever T is. Unused inputs are null and read as 0.
template <int V, class T, class F>
__global__ void map_k(F f, T* out, const T* in0, const T* in1, const T* in2, int64_t nv) {
  DDPM_GRID_LOOP(i, nv) {
    Vec<V> a{}, b{}, c{}, r;
    if (in0) a = load_vec<V>(in0 + i * V);
    if (in1) b = load_vec<V>(in1 + i * V);
    if (in2) c = load_vec<V>(in2 + i * V);
#pragma unroll
    for (int k = 0; k < V; ++k) r.v[k] = f(a.v[k], b.v[k], c.v[k]);
    store_vec<V>(out + i * V, r);
  }
}

template <class T, class F>
void map(const char* name, F f, T* out, int64_t n, const T* in0 = nullptr, const T* in1 = nullptr,
         const T* in2 = nullptr) {
  constexpr int V = kVec16<T>;
  if (n % V == 0 && aligned16({out, in0, in1, in2})) {
    map_k<V><<<grid_for(n / V), kThreads, 0, stream()>>>(f, out, in0, in1, in2, n / V);
  } else {
    map_k<1><<<grid_for(n), kThreads, 0, stream()>>>(f, out, in0, in1, in2, n);
  }
  CUDA_CHECK_LAUNCH(name);
}

__device__ int64_t b_index(const Broadcast& bc, int64_t i) {
  int64_t i3 = i % bc.shape[3];
  int64_t r = i / bc.shape[3];
  int64_t i2 = r % bc.shape[2];
  r /= bc.shape[2];
  int64_t i1 = r % bc.shape[1];
  int64_t i0 = r / bc.shape[1];
  return i0 * bc.b_stride[0] + i1 * bc.b_stride[1] + i2 * bc.b_stride[2] + i3 * bc.b_stride[3];
}

// V consecutive outputs share their first three coordinates (V divides shape[3]), so b's V
// values sit at base + k * b_stride[3]: one b_index per vector.
template <int V, class T>
__global__ void binary_k(BinOp op, const T* a, const T* b, T* out, Broadcast bc) {
  DDPM_GRID_LOOP(i, bc.numel() / V) {
    const int64_t base = b_index(bc, i * V);
    Vec<V> x = load_vec<V>(a + i * V), r;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      float y = to_f32(b[base + k * bc.b_stride[3]]);
      r.v[k] = op == BinOp::Add ? x.v[k] + y : op == BinOp::Sub ? x.v[k] - y : x.v[k] * y;
    }
    store_vec<V>(out + i * V, r);
  }
}

// g's address splits as at(j) + off(r): the part of b element j (the dimensions b keeps) plus the
// part of reduced position r (the dimensions summed over). Adjacent dimensions of one kind merge
// into one run (g is contiguous), so each side has at most 2 runs, innermost first, and decomposing
// an index costs at most one division.
struct Runs {
  int n = 0;
  int64_t size[2], stride[2];
  __device__ int64_t offset(int64_t x) const {
    if (n == 0) return 0;
    if (n == 1) return x * stride[0];
    return (x % size[0]) * stride[0] + (x / size[0]) * stride[1];
  }
};

// Version 2: a block of lanes x rows threads; lanes take consecutive b elements (consecutive
// addresses when the last dimension is kept, as in the embedding add [N,1,1,C]: coalesced), rows
// split the reduced positions r = row, row + rows, ...; then each lane adds its rows' partial sums
// in a fixed order, so the result does not depend on scheduling. (Version 1 gave each b element
// one thread: at [64,32,32,128] 8192 threads each summing 1024 values, 5% of the copy bandwidth.)
template <class T>
__global__ void __launch_bounds__(256)
    reduce_to_b_k(const T* g, T* gb, Runs kept, Runs reduced, int64_t nb, int64_t nr) {
  __shared__ float part[256];
  const int lanes = blockDim.x, rows = blockDim.y;
  const int64_t j = int64_t(blockIdx.x) * lanes + threadIdx.x;
  float acc = 0.0f;
  if (j < nb) {
    const T* gj = g + kept.offset(j);
#pragma unroll 4
    for (int64_t r = threadIdx.y; r < nr; r += rows) acc += to_f32(gj[reduced.offset(r)]);
  }
  part[threadIdx.y * lanes + threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y != 0 || j >= nb) return;
  float sum = 0.0f;
  for (int y = 0; y < rows; ++y) sum += part[y * lanes + threadIdx.x];
  gb[j] = from_f32<T>(sum);
}

// A cast of nv vectors of V values (V = kCastVec: 16 bytes of bf16, two 16-byte accesses of f32).
constexpr int kCastVec = kVec16<bf16>;
template <int V, class In, class Out> __global__ void cast_k(const In* x, Out* y, int64_t nv) {
  DDPM_GRID_LOOP(i, nv) store_vec<V>(y + i * V, load_vec<V>(x + i * V));
}
template <class In, class Out> void cast(const char* name, const In* x, Out* y, int64_t n) {
  if (n % kCastVec == 0 && aligned16({x, y})) {
    cast_k<kCastVec><<<grid_for(n / kCastVec), kThreads, 0, stream()>>>(x, y, n / kCastVec);
  } else {
    cast_k<1><<<grid_for(n), kThreads, 0, stream()>>>(x, y, n);
  }
  CUDA_CHECK_LAUNCH(name);
}

// The bodies of the public functions, for T = float and bf16.
template <class T> void accumulate_t(T* out, const T* src, int64_t n) {
  map("accumulate", [] __device__(float o, float s, float) { return o + s; }, out, n, out, src);
}
template <class T> void scale_t(T* x, int64_t n, float s) {
  map("scale", [s] __device__(float v, float, float) { return v * s; }, x, n, x);
}
template <class T> void act_fwd_t(Act act, const T* x, T* y, int64_t n) {
  map("act_fwd", [act] __device__(float v, float, float) { return activate(act, v); }, y, n, x);
}
template <class T> void act_bwd_t(Act act, const T* x, const T* dy, T* dx, int64_t n) {
  map("act_bwd", [act] __device__(float v, float g, float) { return g * activate_grad(act, v); }, dx, n, x, dy);
}
template <class T> void add_act_fwd_t(Act act, const T* a, const T* b, T* y, int64_t n) {
  map("add_act_fwd", [act] __device__(float u, float v, float) { return activate(act, u + v); }, y, n, a, b);
}
template <class T> void add_act_bwd_t(Act act, const T* a, const T* b, const T* dy, T* d, int64_t n) {
  map("add_act_bwd", [act] __device__(float u, float v, float g) { return g * activate_grad(act, u + v); }, d, n,
      a, b, dy);
}
template <class T> void binary_t(BinOp op, const T* a, const T* b, T* out, const Broadcast& bc) {
  constexpr int V = kVec16<T>;
  if (bc.shape[3] % V == 0 && aligned16({a, out})) {
    binary_k<V><<<grid_for(bc.numel() / V), kThreads, 0, stream()>>>(op, a, b, out, bc);
  } else {
    binary_k<1><<<grid_for(bc.numel()), kThreads, 0, stream()>>>(op, a, b, out, bc);
  }
  CUDA_CHECK_LAUNCH("binary_k");
}
template <class T> void reduce_to_b_t(const T* g, T* gb, const Broadcast& bc) {
  Runs kept, reduced;
  bool last_kept = false;
  int64_t gstride = 1;  // g's stride of dimension d (contiguous)
  for (int d = 3; d >= 0; gstride *= bc.shape[d--]) {
    if (bc.shape[d] == 1) continue;  // no coordinate: merges with either neighbour
    const bool is_kept = bc.b_stride[d] != 0;
    Runs& runs = is_kept ? kept : reduced;
    if (runs.n > 0 && is_kept == last_kept) {
      runs.size[runs.n - 1] *= bc.shape[d];
    } else {
      runs.size[runs.n] = bc.shape[d];
      runs.stride[runs.n] = gstride;
      ++runs.n;
    }
    last_kept = is_kept;
  }
  const int64_t nb = bc.b_numel(), nr = bc.numel() / nb;
  int lanes = 1;
  while (lanes < 32 && lanes < nb) lanes *= 2;
  const dim3 block(lanes, 256 / lanes);
  reduce_to_b_k<<<unsigned((nb + lanes - 1) / lanes), block, 0, stream()>>>(g, gb, kept, reduced, nb, nr);
  CUDA_CHECK_LAUNCH("reduce_to_b_k");
}

}  // namespace

void fill(float* x, int64_t n, float v) {
  map("fill", [v] __device__(float, float, float) { return v; }, x, n);
}
void f32_to_bf16(const float* x, bf16* y, int64_t n) { cast("f32_to_bf16", x, y, n); }
void bf16_to_f32(const bf16* x, float* y, int64_t n) { cast("bf16_to_f32", x, y, n); }

// The same functions for f32 and bf16 data.
#define FOR_FLOAT_AND_BF16(T)                                                                                     \
  void accumulate(T* out, const T* src, int64_t n) { accumulate_t(out, src, n); }                                 \
  void scale(T* x, int64_t n, float s) { scale_t(x, n, s); }                                                      \
  void act_fwd(Act act, const T* x, T* y, int64_t n) { act_fwd_t(act, x, y, n); }                                 \
  void act_bwd(Act act, const T* x, const T* dy, T* dx, int64_t n) { act_bwd_t(act, x, dy, dx, n); }              \
  void add_act_fwd(Act act, const T* a, const T* b, T* y, int64_t n) { add_act_fwd_t(act, a, b, y, n); }          \
  void add_act_bwd(Act act, const T* a, const T* b, const T* dy, T* d, int64_t n) {                               \
    add_act_bwd_t(act, a, b, dy, d, n);                                                                           \
  }                                                                                                               \
  void binary(BinOp op, const T* a, const T* b, T* out, const Broadcast& bc) { binary_t(op, a, b, out, bc); }     \
  void reduce_to_b(const T* g, T* gb, const Broadcast& bc) { reduce_to_b_t(g, gb, bc); }
FOR_FLOAT_AND_BF16(float)
FOR_FLOAT_AND_BF16(bf16)
#undef FOR_FLOAT_AND_BF16

}  // namespace ddpm::kernels::cuda
