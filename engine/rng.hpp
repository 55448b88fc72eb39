// Generator: a (seed, offset) position in a Philox stream (kernels/rng.hpp). Each draw of n
// numbers uses indices offset .. offset+n-1 and then advances the offset by n, so the numbers
// depend only on (seed, offset) and are the same on the CPU and the GPU. Saving the pair saves
// the generator exactly (checkpoints use this to resume).
#pragma once
#include <cstdint>

namespace ddpm {

class Tensor;

class Generator {
 public:
  explicit Generator(uint64_t seed = 0, uint64_t offset = 0) : seed_(seed), offset_(offset) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_offset(uint64_t offset) { offset_ = offset; }

  void fill_normal(Tensor& t);   // N(0, 1), f32 tensor on any device
  void fill_uniform(Tensor& t);  // U(0, 1)
  uint64_t take(uint64_t n) {    // reserves n indices, returns the first
    uint64_t first = offset_;
    offset_ += n;
    return first;
  }

 private:
  uint64_t seed_;
  uint64_t offset_;
};

}  // namespace ddpm
