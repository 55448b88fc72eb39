// bf16 on the GPU: the device side of kernels/bf16.hpp. Kernels that take float or bf16 data
// (template parameter T) read with to_f32 and write with from_f32<T>, so all arithmetic is f32
// and each stored value is rounded once, to nearest even, with the same bits as the host's
// float_to_bf16 (the CPU twins of the bf16 kernels round with that one).
#pragma once
#include <cstdint>

#include "kernels/bf16.hpp"

namespace ddpm::cuda {

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(bf16 v) { return __uint_as_float(uint32_t(v.bits) << 16); }

template <class T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ bf16 from_f32<bf16>(float v) {
  const uint32_t u = __float_as_uint(v);
  const bool nan = (u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu);
  return bf16{nan ? uint16_t((u >> 16) | 0x40) : uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16)};
}

}  // namespace ddpm::cuda
