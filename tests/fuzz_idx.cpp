// libFuzzer target for the IDX parser (built with -DDDPM_FUZZ=ON and clang): any byte string
// must either parse or throw ddpm::Error, never crash, hang or read out of bounds.
#include <cstddef>
#include <cstdint>

#include "diffusion/data.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    ddpm::IdxArray a = ddpm::parse_idx(data, size, "fuzz input");
    size_t total = 1;
    for (int64_t d : a.dims) total *= size_t(d);
    if (total != a.data.size()) __builtin_trap();  // a parsed array must hold exactly its elements
  } catch (const ddpm::Error&) {
  }
  return 0;
}
