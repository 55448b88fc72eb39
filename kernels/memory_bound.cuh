// Building blocks of the memory-bound CUDA kernels (norm, reduce, resample).
//
// - Vec<V>: V consecutive values moved with one load/store, held as floats; V = 4 uses float4
//   (16 B) for f32 data (V = 8: two) and one 8-byte word for bf16 data, V = 8 one 16-byte word
//   (widened on load, rounded on store: kernels/bf16.cuh). Choose V > 1 only for 16-byte aligned
//   addresses (aligned16() on the host). kVec16<T> is the V of a 16-byte access: 4 for f32, 8 for
//   bf16. On bf16 data, 8-byte accesses left the elementwise kernels about as slow as on f32 data
//   (H200, de7b432 and fc776d5: GELU at [64, 4096, 64] 43 us, where f32 took ~45 for the same
//   count): each thread moves half the bytes for the same instructions and latency.
// - warp_sum / block_sum: deterministic sums. The shuffle tree and the shared-memory step always
//   combine the same values in the same order, so a result is reproducible bit for bit from run
//   to run (no atomics, whose arrival order varies).
#pragma once
#include <cstdint>
#include <initializer_list>

#include "kernels/bf16.cuh"
#include "kernels/cuda_launch.cuh"

namespace ddpm::cuda {

template <int V> struct Vec {
  float v[V];
};

template <class T> constexpr int kVec16 = int(16 / sizeof(T));

template <int V> __device__ __forceinline__ Vec<V> load_vec(const float* p) {
  Vec<V> r;
  if constexpr (V % 4 == 0) {
    for (int q = 0; q < V; q += 4) {
      const float4 t = *reinterpret_cast<const float4*>(p + q);
      r.v[q] = t.x, r.v[q + 1] = t.y, r.v[q + 2] = t.z, r.v[q + 3] = t.w;
    }
  } else {
    for (int k = 0; k < V; ++k) r.v[k] = p[k];
  }
  return r;
}

template <int V> __device__ __forceinline__ void store_vec(float* p, const Vec<V>& r) {
  if constexpr (V % 4 == 0) {
    for (int q = 0; q < V; q += 4)
      *reinterpret_cast<float4*>(p + q) = make_float4(r.v[q], r.v[q + 1], r.v[q + 2], r.v[q + 3]);
  } else {
    for (int k = 0; k < V; ++k) p[k] = r.v[k];
  }
}

// bf16 pairs in 32-bit words: element 2i in the low half of word i (little-endian memory order).
__device__ __forceinline__ void widen_pair(uint32_t w, float* v) {
  v[0] = __uint_as_float(w << 16), v[1] = __uint_as_float(w & 0xffff0000u);
}
__device__ __forceinline__ uint32_t round_pair(const float* v) {
  return uint32_t(from_f32<bf16>(v[0]).bits) | uint32_t(from_f32<bf16>(v[1]).bits) << 16;
}

template <int V> __device__ __forceinline__ Vec<V> load_vec(const bf16* p) {
  Vec<V> r;
  if constexpr (V == 4) {
    const uint2 t = *reinterpret_cast<const uint2*>(p);
    widen_pair(t.x, r.v), widen_pair(t.y, r.v + 2);
  } else if constexpr (V == 8) {
    const uint4 t = *reinterpret_cast<const uint4*>(p);
    widen_pair(t.x, r.v), widen_pair(t.y, r.v + 2), widen_pair(t.z, r.v + 4), widen_pair(t.w, r.v + 6);
  } else {
    for (int k = 0; k < V; ++k) r.v[k] = to_f32(p[k]);
  }
  return r;
}

template <int V> __device__ __forceinline__ void store_vec(bf16* p, const Vec<V>& r) {
  if constexpr (V == 4) {
    *reinterpret_cast<uint2*>(p) = make_uint2(round_pair(r.v), round_pair(r.v + 2));
  } else if constexpr (V == 8) {
    *reinterpret_cast<uint4*>(p) =
        make_uint4(round_pair(r.v), round_pair(r.v + 2), round_pair(r.v + 4), round_pair(r.v + 6));
  } else {
    for (int k = 0; k < V; ++k) p[k] = from_f32<bf16>(r.v[k]);
  }
}

// True when every pointer is 16-byte aligned (views made by slicing may not be).
inline bool aligned16(std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (reinterpret_cast<uintptr_t>(p) % 16) return false;
  return true;
}

// Sum over the 32 lanes of a warp; the result is in lane 0.
template <class T> __device__ __forceinline__ T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over each aligned group of `width` lanes (a power of two <= 32), by xor butterfly: every
// lane of a group ends with the same sum. All 32 lanes of the warp must call it.
template <class T> __device__ __forceinline__ T lanes_sum(T v, int width) {
  for (int offset = width / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset, width);
  return v;
}

// Sum of v over all threads of the block (blockDim.x a multiple of 32, at most 1024); the
// result is in thread 0. All threads must call it. Reusable back to back (it syncs on entry).
template <class T> __device__ T block_sum(T v) {
  __shared__ T warp_totals[32];
  __syncthreads();  // a previous call may still be reading warp_totals
  v = warp_sum(v);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_totals[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < int(blockDim.x / 32) ? warp_totals[lane] : T(0);
    v = warp_sum(v);
  }
  return v;
}

}  // namespace ddpm::cuda
