// libFuzzer target: arbitrary bytes into the safetensors parser. Every input must either parse or
// throw ddpm::Error; anything else (a crash, a sanitizer report, another exception) is a bug.
// Build: cmake -S . -B build-fuzz -DDDPM_FUZZ=ON -DDDPM_CUDA=OFF -DCMAKE_CXX_COMPILER=clang++
//        -DCMAKE_C_COMPILER=clang && make -C build-fuzz fuzz_safetensors
// Run:   mkdir -p /tmp/corpus && ./build-fuzz/tests/fuzz_safetensors -max_total_time=60 /tmp/corpus tests/data
//        (libFuzzer adds new inputs to the first folder: keep tests/data second, read only)
#include <cstdint>

#include "model/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    ddpm::SafeTensors f = ddpm::parse_safetensors(data, size, "fuzz input");
    // A parsed file's tensors tile the data section: their bytes add up to at most the input.
    size_t bytes = 0;
    for (const auto& [name, t] : f.tensors) bytes += size_t(t.numel()) * ddpm::dtype_size(t.dtype());
    if (bytes > size) __builtin_trap();
  } catch (const ddpm::Error&) {
  }
  return 0;
}
