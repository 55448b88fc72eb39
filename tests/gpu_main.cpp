// Entry point of test_gpu: every GPU op checked against its CPU twin. Without a GPU (or in a
// CPU-only build) it says so loudly and exits 4, which ctest reports as "skipped".
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cstdio>

#include "engine/storage.hpp"

int main(int argc, char** argv) {
  if (!ddpm::cuda_available()) {
    std::fprintf(stderr,
                 "\n*** test_gpu SKIPPED: %s. The GPU kernels were NOT tested. ***\n"
                 "*** Run tools/gpu-check.sh on a machine with a GPU (docs/gpu.md). ***\n\n",
                 ddpm::cuda_built ? "no CUDA device is present" : "this build has no CUDA backend");
    return 4;
  }
  ddpm::set_poison_allocations(true);  // unwritten outputs read as NaN and fail
  return Catch::Session().run(argc, argv);
}
