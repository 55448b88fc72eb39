// Launch helpers for the memory-bound CUDA kernels: grid sizing and the launch check.
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

#ifdef __CUDACC__
// The launcher that the host-side launch sequences of kernels/norm.cuh and kernels/conv_thin.cuh
// take (tests/cuda_emulation.hpp's emu::Launcher runs the same sequences on the host):
// launch(name, grid, [dynamic shared bytes,] kernel, args...) runs kernel(args...) on `grid` blocks
// of kThreads threads on the engine's stream, and checks the launch.
struct DeviceLaunch {
  template <class... P, class... A>
  void operator()(const char* name, uint3 grid, size_t smem, void (*kernel)(P...), A... args) const {
    kernel<<<grid, kThreads, smem, stream()>>>(P(args)...);
    CUDA_CHECK_LAUNCH(name);
  }
  template <class... P, class... A>
  void operator()(const char* name, uint3 grid, void (*kernel)(P...), A... args) const {
    (*this)(name, grid, 0, kernel, args...);
  }
};
#endif

}  // namespace ddpm::cuda

// for (i in [0, n)) over the whole grid.
#define DDPM_GRID_LOOP(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)
