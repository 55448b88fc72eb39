// Launch helpers for the elementwise-style CUDA kernels: grid sizing and the launch check.
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/cuda_context.hpp"

namespace ddpm::cuda {

constexpr int kThreads = 256;

// Blocks for n elements at `per_thread` elements each, capped so grid-stride loops take the rest.
inline unsigned grid_for(int64_t n, int per_thread = 1) {
  int64_t blocks = (n + int64_t(kThreads) * per_thread - 1) / (int64_t(kThreads) * per_thread);
  return unsigned(std::clamp<int64_t>(blocks, 1, 132 * 32));
}

}  // namespace ddpm::cuda

// for (i in [0, n)) over the whole grid.
#define DDPM_GRID_LOOP(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)
