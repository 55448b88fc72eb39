// Building blocks of the memory-bound CUDA kernels (norm, reduce, resample).
//
// - Vec<V>: V consecutive values moved with one load/store, held as floats; V = 4 uses float4
//   (16 B) for f32 data and one 8-byte word for bf16 data (widened on load, rounded on store:
//   kernels/bf16.cuh). Choose V = 4 only for 16-byte aligned addresses (aligned16() on the host).
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

template <int V> __device__ __forceinline__ Vec<V> load_vec(const float* p) {
  Vec<V> r;
  if constexpr (V == 4) {
    float4 t = *reinterpret_cast<const float4*>(p);
    r.v[0] = t.x, r.v[1] = t.y, r.v[2] = t.z, r.v[3] = t.w;
  } else {
    for (int k = 0; k < V; ++k) r.v[k] = p[k];
  }
  return r;
}

template <int V> __device__ __forceinline__ void store_vec(float* p, const Vec<V>& r) {
  if constexpr (V == 4) {
    *reinterpret_cast<float4*>(p) = make_float4(r.v[0], r.v[1], r.v[2], r.v[3]);
  } else {
    for (int k = 0; k < V; ++k) p[k] = r.v[k];
  }
}

template <int V> __device__ __forceinline__ Vec<V> load_vec(const bf16* p) {
  Vec<V> r;
  if constexpr (V == 4) {
    const uint2 t = *reinterpret_cast<const uint2*>(p);  // element 0 in the low half of t.x
    r.v[0] = __uint_as_float(t.x << 16), r.v[1] = __uint_as_float(t.x & 0xffff0000u);
    r.v[2] = __uint_as_float(t.y << 16), r.v[3] = __uint_as_float(t.y & 0xffff0000u);
  } else {
    for (int k = 0; k < V; ++k) r.v[k] = to_f32(p[k]);
  }
  return r;
}

template <int V> __device__ __forceinline__ void store_vec(bf16* p, const Vec<V>& r) {
  if constexpr (V == 4) {
    uint16_t h[4];
    for (int k = 0; k < 4; ++k) h[k] = from_f32<bf16>(r.v[k]).bits;
    *reinterpret_cast<uint2*>(p) = make_uint2(h[0] | uint32_t(h[1]) << 16, h[2] | uint32_t(h[3]) << 16);
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
