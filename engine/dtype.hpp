// Element types and devices a tensor can have.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "kernels/bf16.hpp"
#include "kernels/error.hpp"

namespace ddpm {

enum class DType { F32, BF16, I32, I64 };
enum class Device { CPU, CUDA };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::BF16: return 2;
    case DType::I32: return 4;
    case DType::I64: return 8;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::BF16: return "bf16";
    case DType::I32: return "i32";
    case DType::I64: return "i64";
  }
  return "?";
}

// The values of the --precision flags: the dtypes a network computes in, by name.
inline std::map<std::string, DType> precision_names() { return {{"f32", DType::F32}, {"bf16", DType::BF16}}; }

inline const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

// The C++ type behind each DType, for Tensor::data<T>() checks.
template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<bf16>() { return DType::BF16; }
template <> constexpr DType dtype_of<int32_t>() { return DType::I32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::I64; }

// True when this build has the CUDA backend and a GPU is present at run time.
bool cuda_available();
#ifdef DDPM_HAVE_CUDA
inline constexpr bool cuda_built = true;
#else
inline constexpr bool cuda_built = false;
#endif

}  // namespace ddpm
