// kernels/memory_bound.cuh's vector accesses (4 or 8 f32 in one or two float4; 4 or 8 bf16 in one
// 8- or 16-byte word), compiled as host C++, against the one-value conversions of kernels/bf16.cuh
// that the V = 1 paths use: every memory-bound kernel moves its data through these, so a value in the
// wrong half of a word would corrupt all of them. CI has no GPU.
#include <cstring>

#include "helpers.hpp"
// Last: it defines __device__ and the other CUDA keywords as macros.
#include "cuda_emulation.hpp"
// Host C++ only: keeps the CUDA runtime's headers (and their own uint4, ...) out.
#undef DDPM_HAVE_CUDA
#include "kernels/memory_bound.cuh"

using namespace ddpm;
using namespace ddpm::test;
using ddpm::cuda::from_f32;
using ddpm::cuda::load_vec;
using ddpm::cuda::store_vec;
using ddpm::cuda::to_f32;
using ddpm::cuda::Vec;

namespace {

template <class T> bool same_bits(T a, T b) { return std::memcmp(&a, &b, sizeof(T)) == 0; }

// Loads every V-vector of fresh values and stores values that need rounding, element by element
// against to_f32 and from_f32 at the same index.
template <int V, class T> void check_vectors() {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed(), V, sizeof(T));
  constexpr int n = 64;
  const std::vector<float> a = randn({n}, gen).to_floats(), b = randn({n}, gen, 3.0f).to_floats();
  alignas(16) T in[n], out[n];
  for (int i = 0; i < n; ++i) in[i] = from_f32<T>(a[i]), out[i] = from_f32<T>(NAN);
  int wrong_loads = 0, wrong_stores = 0;
  for (int at = 0; at < n; at += V) {
    const Vec<V> v = load_vec<V>(in + at);
    Vec<V> w;
    for (int k = 0; k < V; ++k) {
      wrong_loads += v.v[k] != to_f32(in[at + k]);
      w.v[k] = b[size_t(at + k)];
    }
    store_vec<V>(out + at, w);
  }
  for (int i = 0; i < n; ++i) wrong_stores += !same_bits(out[i], from_f32<T>(b[size_t(i)]));
  CHECK(wrong_loads == 0);
  CHECK(wrong_stores == 0);
}

}  // namespace

TEST_CASE("emulated: vector loads and stores match the one-value conversions", "[emulated][memory_bound]") {
  check_vectors<4, float>();
  check_vectors<8, float>();
  check_vectors<4, bf16>();
  check_vectors<8, bf16>();
  check_vectors<1, bf16>();
}
